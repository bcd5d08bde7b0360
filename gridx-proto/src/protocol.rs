//! The worker protocol: JSON objects over a WebSocket, one per text frame, tagged by
//! `type`. `docs/protocol.md` describes it for implementers in other languages.
//!
//! Unknown *fields* are ignored so that a newer peer may add optional fields; unknown
//! *types* and unknown values of enumerated fields are errors, every field is
//! checked against its bounds (`bounds.rs`), and anything incompatible bumps
//! [`PROTOCOL_VERSION`]. `close.rs` holds the WebSocket close codes the coordinator
//! ends a connection with.

mod admission;
mod bounds;
mod close;

pub use admission::{AdmissionCaps, Inadmissible};
pub use bounds::{
    HEARTBEAT_BURST, HEARTBEATS_PER_INTERVAL, MAX_COMPILE_OUTPUT_BYTES, MAX_CPU_CORES,
    MAX_GPU_NAME_BYTES, MAX_GPU_NOTE_BYTES, MAX_GPUS, MAX_HELLO_BYTES, MAX_ID, MAX_LANGUAGES,
    MAX_MEMORY_MB, MAX_OUTCOME_MESSAGE_BYTES, MAX_OUTPUT_CHUNK_BYTES, MAX_POWER_W,
    MAX_REFUSAL_REASON_BYTES, MAX_RUNNING, MAX_SLOTS, MAX_TEMPERATURE_C, OUTPUT_BURST,
    OUTPUTS_PER_SECOND_PER_SLOT, check_running_within_slots,
};
pub use close::{CloseCode, MAX_CLOSE_REASON_BYTES, close_reason};

use crate::ids::{JobId, WorkerId};
use crate::job::RunOutcome;
use crate::language::Language;
use crate::limits::JobSpec;
use crate::metrics::HostMetrics;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;
use utoipa::ToSchema;

/// Version of the worker protocol spoken by this build. A `hello` with another
/// version is refused with `reject {code: "protocol_mismatch"}`.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest frame either side accepts by default. A `finished` carries up to
/// 1 MiB each of stdout and stderr, which JSON escaping can grow up to sixfold.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// How many heartbeat intervals of silence make a peer lost: the coordinator then
/// re-queues the worker's jobs, and the worker drops the link and reconnects.
pub const SILENT_HEARTBEATS: u32 = 3;

/// A job together with the attempt number that fences it: every message about a job
/// names its attempt, and one about a superseded attempt is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct JobAttempt {
    pub job_id: JobId,
    pub attempt: u32,
}

/// Which sandbox a worker runs jobs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecutorKind {
    Docker,
    Bubblewrap,
    /// No sandbox at all: only with the operator's explicit flag, for trusted jobs.
    /// The coordinator gives such a worker only its owner's jobs.
    Unsandboxed,
    /// Finishes every job at once without running it (tests and benchmarks). Like
    /// `Unsandboxed`, it gets only its owner's jobs.
    Noop,
}

impl ExecutorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutorKind::Docker => "docker",
            ExecutorKind::Bubblewrap => "bubblewrap",
            ExecutorKind::Unsandboxed => "unsandboxed",
            ExecutorKind::Noop => "noop",
        }
    }

    pub fn is_sandboxed(self) -> bool {
        matches!(self, ExecutorKind::Docker | ExecutorKind::Bubblewrap)
    }

    /// Whether a worker with this executor may run other users' jobs: only a sandbox
    /// protects its host from a stranger's code, and only a real run gives a
    /// stranger the result they pay for. Others run their owner's jobs alone.
    pub fn runs_strangers_jobs(self) -> bool {
        self.is_sandboxed()
    }
}

impl fmt::Display for ExecutorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a worker can do, sent once in `hello`.
///
/// On the wire the languages are split in two (`CapabilitiesWire`): the first three
/// in `languages`, whose unknown values are decode errors, and every later one in
/// `more_languages`, which an older coordinator ignores as an unknown field and a
/// newer one reads leniently (an entry it does not know is skipped). So a worker with
/// compilers still talks to a coordinator from before them, which simply never
/// assigns it a compiled language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "CapabilitiesWire", into = "CapabilitiesWire")]
pub struct Capabilities {
    /// Only the languages the executor can really run right now.
    pub languages: Vec<Language>,
    /// How many jobs it runs at once.
    pub slots: u32,
    pub executor: ExecutorKind,
    pub cpu_cores: u32,
    pub memory_mb: u64,
    /// Number of GPUs found through NVML (0 when none or no library).
    pub gpus: u32,
    /// The GPUs it lends to jobs (`[worker] gpus`), at most
    /// [`crate::gpu::MAX_LENT_GPUS`]: only these may be named in an `assign`. A worker
    /// that lends none (the default, and every worker older than GPU jobs) is never
    /// given a job that asks for GPUs.
    pub gpu_devices: Vec<crate::gpu::GpuDevice>,
    /// The admission caps (`[worker]` `max_job_memory_mb`, `memory_budget_mb`,
    /// `max_job_timeout_s`): the most memory one job may ask for, the most all jobs
    /// running at once may ask for together, and the longest `timeout_s`. The
    /// coordinator assigns nothing past them, and the worker refuses what is past them
    /// (`refused`). Absent (a worker older than them): no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_job_memory_mb: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_budget_mb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_job_timeout_s: Option<u32>,
}

/// `Capabilities` as it travels (see there).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CapabilitiesWire {
    languages: Vec<Language>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    more_languages: Vec<LenientLanguage>,
    slots: u32,
    executor: ExecutorKind,
    cpu_cores: u32,
    memory_mb: u64,
    gpus: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    gpu_devices: Vec<crate::gpu::GpuDevice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_job_memory_mb: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory_budget_mb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_job_timeout_s: Option<u32>,
}

/// A `more_languages` entry: a language this build knows, or a name from a newer
/// worker that it does not (skipped, not an error). Either way a string.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum LenientLanguage {
    Known(Language),
    Unknown(String),
}

impl From<CapabilitiesWire> for Capabilities {
    fn from(w: CapabilitiesWire) -> Self {
        let mut languages = w.languages;
        for l in w.more_languages {
            if let LenientLanguage::Known(l) = l
                && !languages.contains(&l)
            {
                languages.push(l);
            }
        }
        Capabilities {
            languages,
            slots: w.slots,
            executor: w.executor,
            cpu_cores: w.cpu_cores,
            memory_mb: w.memory_mb,
            gpus: w.gpus,
            gpu_devices: w.gpu_devices,
            max_job_memory_mb: w.max_job_memory_mb,
            memory_budget_mb: w.memory_budget_mb,
            max_job_timeout_s: w.max_job_timeout_s,
        }
    }
}

impl From<Capabilities> for CapabilitiesWire {
    fn from(c: Capabilities) -> Self {
        let (first, more): (Vec<Language>, Vec<Language>) =
            c.languages.into_iter().partition(|l| l.is_first());
        CapabilitiesWire {
            languages: first,
            more_languages: more.into_iter().map(LenientLanguage::Known).collect(),
            slots: c.slots,
            executor: c.executor,
            cpu_cores: c.cpu_cores,
            memory_mb: c.memory_mb,
            gpus: c.gpus,
            gpu_devices: c.gpu_devices,
            max_job_memory_mb: c.max_job_memory_mb,
            memory_budget_mb: c.memory_budget_mb,
            max_job_timeout_s: c.max_job_timeout_s,
        }
    }
}

/// Messages from a worker to the coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerMessage {
    /// First frame, within the coordinator's hello timeout (5 s by default).
    Hello {
        protocol: u32,
        token: String,
        name: String,
        capabilities: Capabilities,
        /// Jobs this worker is still running from before a reconnect.
        #[serde(default)]
        running: Vec<JobAttempt>,
    },
    /// Every `heartbeat_s` seconds. Three missed heartbeats and the worker is lost.
    Heartbeat {
        metrics: HostMetrics,
        #[serde(default)]
        running: Vec<JobAttempt>,
        /// The worker is shutting down: assign it nothing more. Sent at once when its
        /// drain begins, so the coordinator stops assigning before an assignment can
        /// race the drain (and be handed back). Absent means false.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        draining: bool,
    },
    /// The sandbox is up and the job's code has started.
    Started { job_id: JobId, attempt: u32 },
    /// The run ended, however it ended.
    Finished {
        job_id: JobId,
        attempt: u32,
        outcome: RunOutcome,
    },
    /// A piece of a running attempt's output, sent while it runs (docs/protocol.md
    /// §3, `output`), only to a coordinator whose `welcome` has `reads_output`.
    /// `offset` is where `text` starts in that stream's text so far (in bytes of
    /// UTF-8): pieces are contiguous, and after a reconnect a worker sends its running
    /// attempts' output again from 0, so the coordinator keeps only what is new.
    Output {
        job_id: JobId,
        attempt: u32,
        stream: crate::api::OutputStream,
        offset: u64,
        /// At most [`MAX_OUTPUT_CHUNK_BYTES`].
        text: String,
    },
    /// The worker will not run this attempt (it is past its admission caps) and did
    /// not start it. The coordinator requeues the job without charging anyone or
    /// counting the attempt, and does not assign it to this worker again.
    Refused {
        job_id: JobId,
        attempt: u32,
        /// Why, for the job's owner: at most [`MAX_REFUSAL_REASON_BYTES`].
        reason: String,
    },
}

/// Why the coordinator refused or dropped a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    /// The token is unknown.
    BadToken,
    /// The token was revoked by an operator.
    Revoked,
    /// The worker speaks another protocol version.
    ProtocolMismatch,
    /// No `hello` arrived in time.
    HelloTimeout,
    /// The first frame was not a valid `hello`.
    Malformed,
    /// A newer connection with the same token replaced this one.
    Replaced,
    /// The coordinator is shutting down.
    ShuttingDown,
}

impl RejectCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::BadToken => "bad_token",
            RejectCode::Revoked => "revoked",
            RejectCode::ProtocolMismatch => "protocol_mismatch",
            RejectCode::HelloTimeout => "hello_timeout",
            RejectCode::Malformed => "malformed",
            RejectCode::Replaced => "replaced",
            RejectCode::ShuttingDown => "shutting_down",
        }
    }

    /// Whether a worker should try again later (with backoff) or give up.
    pub fn is_retryable(self) -> bool {
        matches!(self, RejectCode::Replaced | RejectCode::ShuttingDown)
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job handed to a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AssignedJob {
    pub job_id: JobId,
    pub spec: JobSpec,
    /// The worker's GPUs (NVML indices, from its `gpu_devices`) this attempt gets:
    /// as many as `spec.gpus`, none in use by another of its jobs. Absent: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<u32>,
}

/// Messages from the coordinator to a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CoordinatorMessage {
    Welcome {
        worker_id: WorkerId,
        heartbeat_s: u32,
        /// This coordinator reads `refused`. A worker sends `refused` only when told
        /// so, since an older coordinator would end the session on an unknown type;
        /// to one that does not, it reports what it will not run as `finished` with
        /// `end: "sandbox_error"`. Absent means false.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        reads_refused: bool,
        /// This coordinator reads `output` (live output while a job runs). A worker
        /// sends it only when told so, for the same reason as `refused`; to one that
        /// does not, the output arrives with `finished` alone. Absent means false.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        reads_output: bool,
    },
    /// Followed by the close of the connection.
    Reject {
        code: RejectCode,
        message: String,
    },
    Assign {
        job: AssignedJob,
        attempt: u32,
    },
    /// Stop this attempt: kill it and report `finished` with `end: "cancelled"`.
    Cancel {
        job_id: JobId,
        attempt: u32,
    },
    /// Take no new jobs; finish the running ones, then disconnect.
    Drain {},
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("message has no `type` field")]
    MissingType,
    #[error("message is missing field `{0}`")]
    MissingField(String),
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The frame parsed, but a field is outside the protocol's bounds.
    #[error("field `{field}` {rule}")]
    OutOfBounds { field: String, rule: String },
}

impl WorkerMessage {
    /// Every `type` a worker may send.
    pub const TYPES: [&'static str; 5] = ["hello", "heartbeat", "started", "finished", "refused"];
}

impl CoordinatorMessage {
    /// Every `type` a coordinator may send.
    pub const TYPES: [&'static str; 5] = ["welcome", "reject", "assign", "cancel", "drain"];
}

/// Decodes a worker's frame, enforcing `max_bytes` before parsing anything and the
/// bounds of every field after; a `hello` is also held to [`MAX_HELLO_BYTES`].
pub fn decode_worker_message(text: &str, max_bytes: usize) -> Result<WorkerMessage, DecodeError> {
    let message = decode(text, max_bytes, &WorkerMessage::TYPES)?;
    if matches!(message, WorkerMessage::Hello { .. }) && text.len() > MAX_HELLO_BYTES {
        return Err(DecodeError::TooLarge {
            len: text.len(),
            max: MAX_HELLO_BYTES,
        });
    }
    bounds::check_worker(&message)?;
    Ok(message)
}

/// Decodes a coordinator's frame, enforcing `max_bytes` before parsing anything and
/// the bounds of every field after.
pub fn decode_coordinator_message(
    text: &str,
    max_bytes: usize,
) -> Result<CoordinatorMessage, DecodeError> {
    let message = decode(text, max_bytes, &CoordinatorMessage::TYPES)?;
    bounds::check_coordinator(&message)?;
    Ok(message)
}

/// The `protocol` number of a frame that looks like a `hello`, even one this build
/// cannot decode: a worker of another version gets `protocol_mismatch`, not
/// `malformed`, when its hello differs in more than the number.
pub fn hello_protocol(text: &str) -> Option<u64> {
    #[derive(Deserialize)]
    struct Versioned {
        #[serde(rename = "type")]
        kind: String,
        protocol: u64,
    }
    serde_json::from_str::<Versioned>(text)
        .ok()
        .filter(|v| v.kind == "hello")
        .map(|v| v.protocol)
}

/// Encodes a message as one text frame. Serialising these types cannot fail (no maps
/// with non-string keys, no non-finite floats reach here), but the error is kept typed.
pub fn encode<T: Serialize>(message: &T) -> Result<String, DecodeError> {
    serde_json::to_string(message).map_err(|e| DecodeError::Malformed(e.to_string()))
}

fn decode<T: DeserializeOwned>(
    text: &str,
    max_bytes: usize,
    types: &[&str],
) -> Result<T, DecodeError> {
    if text.len() > max_bytes {
        return Err(DecodeError::TooLarge {
            len: text.len(),
            max: max_bytes,
        });
    }
    match serde_json::from_str::<T>(text) {
        Ok(message) => Ok(message),
        Err(err) => Err(classify(text, &err, types)),
    }
}

/// Turns serde's error into a typed one. Only runs on the failure path, so the
/// second, shallow parse costs nothing on the hot path. `types` tells an unknown
/// `type` apart from an unknown value of an enumerated field (an `executor` of
/// `"firecracker"`), which serde reports in the same words.
fn classify(text: &str, err: &serde_json::Error, types: &[&str]) -> DecodeError {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(rename = "type")]
        kind: Option<serde_json::Value>,
    }
    if let Ok(envelope) = serde_json::from_str::<Envelope>(text) {
        match envelope.kind {
            None => return DecodeError::MissingType,
            Some(serde_json::Value::String(kind)) => {
                let msg = err.to_string();
                if !types.contains(&kind.as_str()) {
                    return DecodeError::UnknownType(crate::ids::truncate_for_message(&kind));
                }
                if let Some(rest) = msg.strip_prefix("missing field `") {
                    let field = rest.split('`').next().unwrap_or_default();
                    return DecodeError::MissingField(field.to_owned());
                }
            }
            Some(_) => return DecodeError::Malformed("`type` must be a string".into()),
        }
    }
    DecodeError::Malformed(err.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn more_languages_are_read_leniently_and_written_apart() {
        let hello = r#"{"type":"hello","protocol":1,"token":"gxw_x","name":"n","capabilities":{"languages":["bash"],"more_languages":["go","cobol","ruby"],"slots":1,"executor":"bubblewrap","cpu_cores":1,"memory_mb":1,"gpus":0}}"#;
        let Ok(WorkerMessage::Hello { capabilities, .. }) = decode_worker_message(hello, 1 << 20)
        else {
            panic!("a hello with a language from the future decodes");
        };
        assert_eq!(
            capabilities.languages,
            [Language::Bash, Language::Go, Language::Ruby],
            "the unknown one is skipped"
        );
        let written = serde_json::to_value(&capabilities).unwrap();
        assert_eq!(written["languages"], serde_json::json!(["bash"]));
        assert_eq!(written["more_languages"], serde_json::json!(["go", "ruby"]));
        // What a coordinator from before the compilers reads: `languages` alone, the
        // rest being an unknown field it ignores.
        #[derive(serde::Deserialize)]
        struct Older {
            languages: Vec<String>,
        }
        let older: Older = serde_json::from_value(written).unwrap();
        assert_eq!(older.languages, ["bash"]);
    }

    use super::*;

    /// The fuzzer's find: `1e39` narrowed to an infinite f32, which re-encoded as
    /// `null` and could not be read back. Now refused at the door, in every float.
    #[test]
    fn metrics_past_f32_range_are_refused() {
        let max = DEFAULT_MAX_FRAME_BYTES;
        // fuzz/seeds/protocol_decoder/heartbeat_f32_overflow.json
        let crash = r#"{"type":"heartbeat","metrics":{"cpu_percent":1e39,"memory_used_mb":0,"memory_total_mb":0}}"#;
        assert!(matches!(
            decode_worker_message(crash, max),
            Err(DecodeError::Malformed(m)) if m.contains("finite")
        ));
        for frame in [
            r#"{"type":"heartbeat","metrics":{"cpu_percent":1,"cpu_per_core":[1e39],"memory_used_mb":0,"memory_total_mb":0}}"#,
            r#"{"type":"heartbeat","metrics":{"cpu_percent":1,"memory_used_mb":0,"memory_total_mb":0,"gpus":[{"index":0,"name":"g","power_w":-1e39}]}}"#,
        ] {
            assert!(decode_worker_message(frame, max).is_err(), "{frame}");
        }
        // Finite but past the percentage's bound: refused by the bounds instead.
        let huge = r#"{"type":"heartbeat","metrics":{"cpu_percent":3.4e38,"memory_used_mb":0,"memory_total_mb":0}}"#;
        assert!(matches!(
            decode_worker_message(huge, max),
            Err(DecodeError::OutOfBounds { field, .. }) if field == "metrics.cpu_percent"
        ));
        let fine = r#"{"type":"heartbeat","metrics":{"cpu_percent":99.99999,"memory_used_mb":0,"memory_total_mb":0}}"#;
        let decoded = decode_worker_message(fine, max).expect("in range");
        let again = decode_worker_message(&encode(&decoded).expect("encode"), max);
        assert_eq!(again, Ok(decoded));
    }

    #[test]
    fn non_finite_samples_are_made_finite_before_sending() {
        let mut sample = crate::metrics::HostMetrics {
            cpu_percent: f32::NAN,
            cpu_per_core: vec![1.0, f32::INFINITY],
            ..Default::default()
        };
        sample.gpus.push(crate::metrics::GpuMetrics {
            power_w: Some(f32::NAN),
            ..Default::default()
        });
        let sample = sample.within_bounds();
        assert_eq!(sample.cpu_percent, 0.0);
        assert_eq!(sample.cpu_per_core, vec![1.0, 0.0]);
        assert_eq!(sample.gpus[0].power_w, None);
    }

    #[test]
    fn oversized_frames_are_refused_before_parsing() {
        let big = format!("{{\"type\":\"drain\",\"pad\":\"{}\"}}", "x".repeat(100));
        assert!(matches!(
            decode_coordinator_message(&big, 64),
            Err(DecodeError::TooLarge { max: 64, .. })
        ));
    }

    #[test]
    fn errors_are_typed() {
        let max = DEFAULT_MAX_FRAME_BYTES;
        assert_eq!(
            decode_worker_message(r#"{"type":"explode"}"#, max),
            Err(DecodeError::UnknownType("explode".into()))
        );
        assert_eq!(
            decode_worker_message(r#"{"job_id":1}"#, max),
            Err(DecodeError::MissingType)
        );
        assert_eq!(
            decode_worker_message(r#"{"type":"started","job_id":1}"#, max),
            Err(DecodeError::MissingField("attempt".into()))
        );
        assert!(matches!(
            decode_worker_message("{not json", max),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode_worker_message(r#"{"type":7}"#, max),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode_worker_message(r#"{"type":"started","job_id":"x","attempt":1}"#, max),
            Err(DecodeError::Malformed(_))
        ));
    }

    /// An unknown value of an enumerated field is a decode error, and is not
    /// mistaken for an unknown `type` (serde words both the same way).
    #[test]
    fn unknown_enumerated_values_are_refused() {
        let max = DEFAULT_MAX_FRAME_BYTES;
        let hello = |executor: &str, language: &str| {
            format!(
                r#"{{"type":"hello","protocol":1,"token":"gxw_x","name":"n","capabilities":{{"languages":["{language}"],"slots":1,"executor":"{executor}","cpu_cores":1,"memory_mb":1,"gpus":0}}}}"#
            )
        };
        assert!(decode_worker_message(&hello("docker", "python"), max).is_ok());
        let finished = |end: &str| {
            format!(
                r#"{{"type":"finished","job_id":1,"attempt":1,"outcome":{{"end":"{end}","stdout":"","stderr":"","duration_ms":1}}}}"#
            )
        };
        assert!(decode_worker_message(&finished("exited"), max).is_ok());
        for (frame, value) in [
            (hello("firecracker", "python"), "firecracker"),
            (hello("docker", "cobol"), "cobol"),
            (hello("Docker", "python"), "Docker"),
            (finished("crashed"), "crashed"),
        ] {
            match decode_worker_message(&frame, max) {
                Err(DecodeError::Malformed(m)) => assert!(m.contains(value), "{m}"),
                other => panic!("{value}: {other:?}"),
            }
        }
        match decode_coordinator_message(r#"{"type":"reject","code":"nope","message":"m"}"#, max) {
            Err(DecodeError::Malformed(m)) => assert!(m.contains("nope"), "{m}"),
            other => panic!("{other:?}"),
        }
        let assign = r#"{"type":"assign","job":{"job_id":1,"spec":{"language":"cobol","code":"x","timeout_s":1,"memory_mb":32,"max_output_bytes":1}},"attempt":1}"#;
        assert!(matches!(
            decode_coordinator_message(assign, max),
            Err(DecodeError::Malformed(_))
        ));
    }

    /// The lists of known types, which tell an unknown type from an unknown value,
    /// name every variant.
    #[test]
    fn the_type_lists_name_every_message() {
        let tag = |text: String| -> String {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            v["type"].as_str().unwrap().to_owned()
        };
        let attempt = JobAttempt {
            job_id: JobId(1),
            attempt: 1,
        };
        let outcome = crate::job::RunOutcome {
            end: crate::job::RunEnd::Exited,
            exit_code: Some(0),
            stdout: String::new(),
            stderr: String::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            duration_ms: 0,
            message: None,
            compile_output: None,
        };
        let worker = [
            WorkerMessage::Hello {
                protocol: 1,
                token: String::new(),
                name: "n".into(),
                capabilities: Capabilities {
                    gpu_devices: Vec::new(),
                    languages: vec![],
                    slots: 1,
                    executor: ExecutorKind::Noop,
                    cpu_cores: 1,
                    memory_mb: 0,
                    gpus: 0,
                    max_job_memory_mb: None,
                    memory_budget_mb: None,
                    max_job_timeout_s: None,
                },
                running: vec![],
            },
            WorkerMessage::Heartbeat {
                metrics: HostMetrics::default(),
                running: vec![attempt],
                draining: false,
            },
            WorkerMessage::Started {
                job_id: JobId(1),
                attempt: 1,
            },
            WorkerMessage::Finished {
                job_id: JobId(1),
                attempt: 1,
                outcome,
            },
            WorkerMessage::Refused {
                job_id: JobId(1),
                attempt: 1,
                reason: "too big".into(),
            },
        ];
        let names: Vec<String> = worker.iter().map(|m| tag(encode(m).unwrap())).collect();
        assert_eq!(names, WorkerMessage::TYPES);
        let spec = crate::limits::JobSpec {
            gpu_memory_mb: None,
            gpus: 0,
            language: Language::Bash,
            code: "x".into(),
            stdin: String::new(),
            timeout_s: 1,
            memory_mb: 32,
            priority: 0,
            max_output_bytes: 1,
        };
        let coordinator = [
            CoordinatorMessage::Welcome {
                worker_id: WorkerId(1),
                heartbeat_s: 1,
                reads_refused: true,
                reads_output: true,
            },
            CoordinatorMessage::Reject {
                code: RejectCode::Malformed,
                message: String::new(),
            },
            CoordinatorMessage::Assign {
                job: AssignedJob {
                    gpus: Vec::new(),
                    job_id: JobId(1),
                    spec,
                },
                attempt: 1,
            },
            CoordinatorMessage::Cancel {
                job_id: JobId(1),
                attempt: 1,
            },
            CoordinatorMessage::Drain {},
        ];
        let names: Vec<String> = coordinator
            .iter()
            .map(|m| tag(encode(m).unwrap()))
            .collect();
        assert_eq!(names, CoordinatorMessage::TYPES);
    }

    #[test]
    fn a_hello_of_another_version_is_recognised_even_when_it_does_not_decode() {
        assert_eq!(hello_protocol(r#"{"type":"hello","protocol":2}"#), Some(2));
        assert_eq!(
            hello_protocol(r#"{"type":"hello","protocol":1,"token":"t"}"#),
            Some(1)
        );
        assert_eq!(hello_protocol(r#"{"type":"hello"}"#), None);
        assert_eq!(hello_protocol(r#"{"type":"started","protocol":2}"#), None);
        assert_eq!(hello_protocol("not json"), None);
    }

    #[test]
    fn unknown_fields_are_tolerated_for_forward_compatibility() {
        let m = decode_worker_message(
            r#"{"type":"started","job_id":3,"attempt":1,"future":"field"}"#,
            DEFAULT_MAX_FRAME_BYTES,
        )
        .unwrap();
        assert_eq!(
            m,
            WorkerMessage::Started {
                job_id: JobId(3),
                attempt: 1
            }
        );
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_text_never_panics(s in ".{0,200}") {
            let _ = decode_worker_message(&s, 128);
            let _ = decode_coordinator_message(&s, DEFAULT_MAX_FRAME_BYTES);
        }

        #[test]
        fn decoding_json_shaped_text_never_panics(kind in "[a-z_]{0,12}", id in proptest::num::i64::ANY, attempt in proptest::num::i64::ANY) {
            let text = format!(r#"{{"type":"{kind}","job_id":{id},"attempt":{attempt}}}"#);
            if let Ok(WorkerMessage::Started { job_id, attempt: a }) = decode_worker_message(&text, DEFAULT_MAX_FRAME_BYTES) {
                proptest::prop_assert_eq!(job_id.0 as i64, id);
                proptest::prop_assert_eq!(i64::from(a), attempt);
            }
        }
    }

    /// An older coordinator's `welcome` says nothing of `refused` or `output`: its
    /// worker must send neither.
    #[test]
    fn a_welcome_without_reads_refused_does_not_read_it() {
        assert_eq!(
            decode_coordinator_message(r#"{"type":"welcome","worker_id":1,"heartbeat_s":5}"#, 100),
            Ok(CoordinatorMessage::Welcome {
                worker_id: WorkerId(1),
                heartbeat_s: 5,
                reads_refused: false,
                reads_output: false,
            })
        );
    }

    #[test]
    fn drain_is_an_empty_object() {
        assert_eq!(
            encode(&CoordinatorMessage::Drain {}).unwrap(),
            r#"{"type":"drain"}"#
        );
        assert_eq!(
            decode_coordinator_message(r#"{"type":"drain"}"#, 100),
            Ok(CoordinatorMessage::Drain {})
        );
    }
}
