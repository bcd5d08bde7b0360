//! The bounds of every field of the worker protocol, checked by the frame decoders
//! after parsing. Worker and coordinator share these rules, so a frame one side
//! accepts is a frame the other side may send. `docs/protocol.md` lists each bound.
//!
//! The limits are "a typo or a lie" limits, far above any real host: they keep
//! hostile numbers out of the scheduler, the store (SQLite integers are i64) and the
//! dashboards, not real hardware out of the grid.

use crate::gpu::{GpuDevice, MAX_LENT_GPU_NAME_BYTES, MAX_LENT_GPUS};
use crate::ids::{JobId, UserName, WorkerId};
use crate::job::RunOutcome;
use crate::metrics::{GpuMetrics, HostMetrics};
use crate::protocol::{Capabilities, CoordinatorMessage, DecodeError, JobAttempt, WorkerMessage};

/// Most slots a worker may claim.
pub const MAX_SLOTS: u32 = 1024;
/// Most entries in a `running` list, whatever the slots (see
/// [`check_running_within_slots`]).
pub const MAX_RUNNING: usize = MAX_SLOTS as usize;
/// Most entries in `capabilities.languages`.
pub const MAX_LANGUAGES: usize = 16;
/// Most logical CPU cores, and entries in `metrics.cpu_per_core`.
pub const MAX_CPU_CORES: u32 = 16_384;
/// Most memory, in MB, of a host or a GPU: 1 PiB.
pub const MAX_MEMORY_MB: u64 = 1 << 30;
/// Most GPUs in `capabilities.gpus` and `metrics.gpus`; a GPU's index is below it.
pub const MAX_GPUS: u32 = 256;
/// Highest GPU temperature, in °C.
pub const MAX_TEMPERATURE_C: u32 = 200;
/// Highest GPU power draw or limit, in W.
pub const MAX_POWER_W: f32 = 100_000.0;
/// Longest GPU name, in bytes.
pub const MAX_GPU_NAME_BYTES: usize = 256;
/// Longest `gpu_note`, in bytes.
pub const MAX_GPU_NOTE_BYTES: usize = 1024;
/// Longest `outcome.message`, in bytes.
pub const MAX_OUTCOME_MESSAGE_BYTES: usize = 16 * 1024;
/// Longest `outcome.compile_output`, in bytes: the compiler's messages, which the
/// worker cuts to this (docs/jobs.md, "Compiled languages").
pub const MAX_COMPILE_OUTPUT_BYTES: usize = 64 * 1024;
/// Longest `text` of one `output` message, in bytes.
pub const MAX_OUTPUT_CHUNK_BYTES: usize = 64 * 1024;
/// `output` messages a session may send at once before the rate below applies.
pub const OUTPUT_BURST: u32 = 64;
/// `output` messages per second per slot a session may send in the long run: four
/// per stream per running job, twice what the reference worker sends (it sends each
/// stream's new output at most every 500 ms).
pub const OUTPUTS_PER_SECOND_PER_SLOT: u32 = 8;
/// Longest `reason` of a `refused`, in bytes: a sentence for the job's owner.
pub const MAX_REFUSAL_REASON_BYTES: usize = 1024;
/// Largest job or worker id and `duration_ms`: they are stored as SQLite integers.
pub const MAX_ID: u64 = i64::MAX as u64;
/// Largest `hello` frame, in bytes. A hello at every other bound (1024 `running`
/// entries with the largest ids) fits; the coordinator reads no more than this (and
/// the framing) from a connection before its token is checked.
pub const MAX_HELLO_BYTES: usize = 64 * 1024;
/// Heartbeats a session may send at once before the rate below applies.
pub const HEARTBEAT_BURST: u32 = 10;
/// Heartbeats per `heartbeat_s` a session may send in the long run: four times what
/// a worker needs. The coordinator drops the ones past it (docs/protocol.md §3).
pub const HEARTBEATS_PER_INTERVAL: u32 = 4;

/// Checks a decoded worker frame against the protocol's bounds.
pub fn check_worker(message: &WorkerMessage) -> Result<(), DecodeError> {
    match message {
        WorkerMessage::Hello {
            name,
            capabilities,
            running,
            ..
        } => {
            if UserName::new(name).is_err() {
                return Err(out_of_bounds(
                    "name",
                    "must be 1 to 64 of A-Z, a-z, 0-9, '_' and '-'",
                ));
            }
            check_capabilities(capabilities)?;
            check_running(running)?;
            check_running_within_slots(running.len(), capabilities.slots)
        }
        WorkerMessage::Heartbeat {
            metrics, running, ..
        } => {
            check_metrics(metrics)?;
            check_running(running)
        }
        WorkerMessage::Started { job_id, attempt } => {
            check_attempt("job_id", "attempt", *job_id, *attempt)
        }
        WorkerMessage::Finished {
            job_id,
            attempt,
            outcome,
        } => {
            check_attempt("job_id", "attempt", *job_id, *attempt)?;
            check_outcome(outcome)
        }
        WorkerMessage::Output {
            job_id,
            attempt,
            offset,
            text,
            ..
        } => {
            check_attempt("job_id", "attempt", *job_id, *attempt)?;
            at_most("offset", 0, MAX_ID, *offset)?;
            longest("text", MAX_OUTPUT_CHUNK_BYTES, text)
        }
        WorkerMessage::Refused {
            job_id,
            attempt,
            reason,
        } => {
            check_attempt("job_id", "attempt", *job_id, *attempt)?;
            longest("reason", MAX_REFUSAL_REASON_BYTES, reason)
        }
    }
}

/// Checks a decoded coordinator frame against the protocol's bounds. The job spec's
/// bounds are the operator's (`[server.limits]`), so a worker takes them as given.
pub fn check_coordinator(message: &CoordinatorMessage) -> Result<(), DecodeError> {
    match message {
        CoordinatorMessage::Welcome {
            worker_id: WorkerId(id),
            heartbeat_s,
            ..
        } => {
            at_most("worker_id", 1, MAX_ID, *id)?;
            at_most(
                "heartbeat_s",
                1,
                u64::from(u32::MAX),
                u64::from(*heartbeat_s),
            )
        }
        CoordinatorMessage::Assign { job, attempt } => {
            check_attempt("job.job_id", "attempt", job.job_id, *attempt)?;
            if job.gpus.len() > MAX_LENT_GPUS {
                return Err(too_many("job.gpus", MAX_LENT_GPUS));
            }
            Ok(())
        }
        CoordinatorMessage::Cancel { job_id, attempt } => {
            check_attempt("job_id", "attempt", *job_id, *attempt)
        }
        CoordinatorMessage::Reject { .. } | CoordinatorMessage::Drain {} => Ok(()),
    }
}

fn check_capabilities(c: &Capabilities) -> Result<(), DecodeError> {
    if c.languages.len() > MAX_LANGUAGES {
        return Err(too_many("capabilities.languages", MAX_LANGUAGES));
    }
    at_most(
        "capabilities.slots",
        1,
        u64::from(MAX_SLOTS),
        u64::from(c.slots),
    )?;
    at_most(
        "capabilities.cpu_cores",
        1,
        u64::from(MAX_CPU_CORES),
        u64::from(c.cpu_cores),
    )?;
    at_most("capabilities.memory_mb", 0, MAX_MEMORY_MB, c.memory_mb)?;
    at_most(
        "capabilities.gpus",
        0,
        u64::from(MAX_GPUS),
        u64::from(c.gpus),
    )?;
    check_gpu_devices(&c.gpu_devices)?;
    // The admission caps, when advertised: a cap of zero would refuse every job.
    if let Some(v) = c.max_job_memory_mb {
        at_most(
            "capabilities.max_job_memory_mb",
            1,
            MAX_MEMORY_MB,
            u64::from(v),
        )?;
    }
    if let Some(v) = c.memory_budget_mb {
        at_most("capabilities.memory_budget_mb", 1, MAX_MEMORY_MB, v)?;
    }
    if let Some(v) = c.max_job_timeout_s {
        at_most(
            "capabilities.max_job_timeout_s",
            1,
            u64::from(u32::MAX),
            u64::from(v),
        )?;
    }
    Ok(())
}

/// The GPUs a worker lends: few, each index once and below [`MAX_GPUS`], names
/// short. A name reaches dashboards, which make its escapes inert.
fn check_gpu_devices(devices: &[GpuDevice]) -> Result<(), DecodeError> {
    if devices.len() > MAX_LENT_GPUS {
        return Err(too_many("capabilities.gpu_devices", MAX_LENT_GPUS));
    }
    for (i, d) in devices.iter().enumerate() {
        at_most(
            "capabilities.gpu_devices[].index",
            0,
            u64::from(MAX_GPUS - 1),
            u64::from(d.index),
        )?;
        if devices[..i].iter().any(|o| o.index == d.index) {
            return Err(out_of_bounds(
                "capabilities.gpu_devices[].index",
                "must not repeat",
            ));
        }
        longest(
            "capabilities.gpu_devices[].name",
            MAX_LENT_GPU_NAME_BYTES,
            &d.name,
        )?;
        at_most(
            "capabilities.gpu_devices[].memory_mb",
            0,
            MAX_MEMORY_MB,
            d.memory_mb,
        )?;
    }
    Ok(())
}

/// A `running` list, in `hello` or in a heartbeat, lists at most twice `slots`
/// attempts. A worker runs at most `slots`, and the coordinator counts the attempts
/// it is still stopping against them; but an `assign` that crossed two heartbeats is
/// lost and its slot refilled while the worker still starts it, so a worker can hold
/// a few more for a moment. The decoder checks a hello's; the coordinator checks each
/// heartbeat's against the slots of the session's hello.
pub fn check_running_within_slots(running: usize, slots: u32) -> Result<(), DecodeError> {
    let max = 2 * slots as usize;
    if running > max {
        return Err(out_of_bounds(
            "running",
            &format!("must have at most twice capabilities.slots ({max}) entries, got {running}"),
        ));
    }
    Ok(())
}

fn check_running(running: &[JobAttempt]) -> Result<(), DecodeError> {
    if running.len() > MAX_RUNNING {
        return Err(too_many("running", MAX_RUNNING));
    }
    running.iter().try_for_each(|a| {
        check_attempt("running[].job_id", "running[].attempt", a.job_id, a.attempt)
    })
}

/// A job id and its attempt; the field names say where they sit in the frame.
fn check_attempt(
    job_field: &str,
    attempt_field: &str,
    JobId(id): JobId,
    attempt: u32,
) -> Result<(), DecodeError> {
    at_most(job_field, 1, MAX_ID, id)?;
    at_most(attempt_field, 1, u64::from(u32::MAX), u64::from(attempt))
}

fn check_metrics(m: &HostMetrics) -> Result<(), DecodeError> {
    percent("metrics.cpu_percent", m.cpu_percent)?;
    if m.cpu_per_core.len() > MAX_CPU_CORES as usize {
        return Err(too_many("metrics.cpu_per_core", MAX_CPU_CORES as usize));
    }
    for v in &m.cpu_per_core {
        percent("metrics.cpu_per_core[]", *v)?;
    }
    at_most("metrics.memory_used_mb", 0, MAX_MEMORY_MB, m.memory_used_mb)?;
    at_most(
        "metrics.memory_total_mb",
        0,
        MAX_MEMORY_MB,
        m.memory_total_mb,
    )?;
    if m.gpus.len() > MAX_GPUS as usize {
        return Err(too_many("metrics.gpus", MAX_GPUS as usize));
    }
    m.gpus.iter().try_for_each(check_gpu)?;
    if let Some(note) = &m.gpu_note {
        longest("metrics.gpu_note", MAX_GPU_NOTE_BYTES, note)?;
    }
    Ok(())
}

fn check_gpu(g: &GpuMetrics) -> Result<(), DecodeError> {
    at_most(
        "metrics.gpus[].index",
        0,
        u64::from(MAX_GPUS - 1),
        u64::from(g.index),
    )?;
    longest("metrics.gpus[].name", MAX_GPU_NAME_BYTES, &g.name)?;
    if let Some(v) = g.utilization_percent {
        at_most("metrics.gpus[].utilization_percent", 0, 100, u64::from(v))?;
    }
    if let Some(v) = g.memory_used_mb {
        at_most("metrics.gpus[].memory_used_mb", 0, MAX_MEMORY_MB, v)?;
    }
    if let Some(v) = g.memory_total_mb {
        at_most("metrics.gpus[].memory_total_mb", 0, MAX_MEMORY_MB, v)?;
    }
    if let Some(v) = g.temperature_c {
        at_most(
            "metrics.gpus[].temperature_c",
            0,
            u64::from(MAX_TEMPERATURE_C),
            u64::from(v),
        )?;
    }
    for (field, value) in [
        ("metrics.gpus[].power_w", g.power_w),
        ("metrics.gpus[].power_limit_w", g.power_limit_w),
    ] {
        if let Some(v) = value
            && !(0.0..=MAX_POWER_W).contains(&v)
        {
            return Err(out_of_bounds(
                field,
                &format!("must be between 0 and {MAX_POWER_W}, got {v}"),
            ));
        }
    }
    Ok(())
}

fn check_outcome(o: &RunOutcome) -> Result<(), DecodeError> {
    at_most("outcome.duration_ms", 0, MAX_ID, o.duration_ms)?;
    if let Some(message) = &o.message {
        longest("outcome.message", MAX_OUTCOME_MESSAGE_BYTES, message)?;
    }
    if let Some(text) = &o.compile_output {
        longest("outcome.compile_output", MAX_COMPILE_OUTPUT_BYTES, text)?;
    }
    Ok(())
}

fn percent(field: &str, v: f32) -> Result<(), DecodeError> {
    if (0.0..=100.0).contains(&v) {
        Ok(())
    } else {
        Err(out_of_bounds(
            field,
            &format!("must be between 0 and 100, got {v}"),
        ))
    }
}

fn at_most(field: &str, min: u64, max: u64, v: u64) -> Result<(), DecodeError> {
    if (min..=max).contains(&v) {
        Ok(())
    } else {
        Err(out_of_bounds(
            field,
            &format!("must be between {min} and {max}, got {v}"),
        ))
    }
}

fn longest(field: &str, max: usize, s: &str) -> Result<(), DecodeError> {
    if s.len() <= max {
        Ok(())
    } else {
        Err(out_of_bounds(
            field,
            &format!("must be at most {max} bytes, got {}", s.len()),
        ))
    }
}

fn too_many(field: &str, max: usize) -> DecodeError {
    out_of_bounds(field, &format!("must have at most {max} entries"))
}

fn out_of_bounds(field: &str, rule: &str) -> DecodeError {
    DecodeError::OutOfBounds {
        field: field.to_owned(),
        rule: rule.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use crate::protocol::{
        DEFAULT_MAX_FRAME_BYTES, DecodeError, decode_coordinator_message, decode_worker_message,
    };
    use serde_json::{Value, json};

    fn hello() -> Value {
        json!({"type": "hello", "protocol": 1, "token": "gxw_x", "name": "box-1",
               "capabilities": {"languages": ["python"], "slots": 2, "executor": "docker",
                                "cpu_cores": 2, "memory_mb": 1024, "gpus": 0,
                                "max_job_memory_mb": 512, "memory_budget_mb": 768,
                                "max_job_timeout_s": 60},
               "running": [{"job_id": 1, "attempt": 1}]})
    }

    fn heartbeat() -> Value {
        json!({"type": "heartbeat",
               "metrics": {"cpu_percent": 1.0, "cpu_per_core": [1.0], "memory_used_mb": 1,
                           "memory_total_mb": 2, "gpu_note": "none",
                           "gpus": [{"index": 0, "name": "g", "utilization_percent": 1,
                                     "memory_used_mb": 1, "memory_total_mb": 2,
                                     "temperature_c": 50, "power_w": 1.0, "power_limit_w": 2.0}]},
               "running": []})
    }

    fn finished() -> Value {
        json!({"type": "finished", "job_id": 1, "attempt": 1,
               "outcome": {"end": "exited", "exit_code": 0, "stdout": "", "stderr": "",
                           "duration_ms": 1, "message": "m"}})
    }

    /// Sets `path` (a JSON pointer) in `frame` to `value` and returns the field the
    /// decoder blamed, or None if it accepted the frame.
    fn blamed(mut frame: Value, path: &str, value: Value) -> Option<String> {
        *frame.pointer_mut(path).expect("path exists") = value;
        match decode_worker_message(&frame.to_string(), DEFAULT_MAX_FRAME_BYTES) {
            Ok(_) => None,
            Err(DecodeError::OutOfBounds { field, .. }) => Some(field),
            Err(other) => panic!("{path}: expected an out-of-bounds error, got {other}"),
        }
    }

    #[test]
    fn the_base_frames_are_in_bounds() {
        for frame in [hello(), heartbeat(), finished()] {
            decode_worker_message(&frame.to_string(), DEFAULT_MAX_FRAME_BYTES).expect("valid");
        }
    }

    #[test]
    fn every_bound_of_hello_is_enforced_at_its_edge() {
        let long = "x".repeat(65);
        let cases: Vec<(&str, Value, Value, &str)> = vec![
            // (path, last valid value, first invalid value, blamed field)
            ("/name", json!("a".repeat(64)), json!(long), "name"),
            ("/name", json!("A_b-9"), json!("box.example.com"), "name"),
            ("/name", json!("x"), json!(""), "name"),
            ("/name", json!("x"), json!("ünï"), "name"),
            (
                "/capabilities/slots",
                json!(1),
                json!(0),
                "capabilities.slots",
            ),
            (
                "/capabilities/slots",
                json!(1024),
                json!(1025),
                "capabilities.slots",
            ),
            (
                "/capabilities/cpu_cores",
                json!(1),
                json!(0),
                "capabilities.cpu_cores",
            ),
            (
                "/capabilities/cpu_cores",
                json!(16384),
                json!(16385),
                "capabilities.cpu_cores",
            ),
            (
                "/capabilities/memory_mb",
                json!(1u64 << 30),
                json!((1u64 << 30) + 1),
                "capabilities.memory_mb",
            ),
            (
                "/capabilities/gpus",
                json!(256),
                json!(257),
                "capabilities.gpus",
            ),
            (
                "/capabilities/languages",
                json!(vec!["bash"; 16]),
                json!(vec!["bash"; 17]),
                "capabilities.languages",
            ),
            (
                "/capabilities/max_job_memory_mb",
                json!(1),
                json!(0),
                "capabilities.max_job_memory_mb",
            ),
            (
                "/capabilities/max_job_memory_mb",
                json!(1u64 << 30),
                json!((1u64 << 30) + 1),
                "capabilities.max_job_memory_mb",
            ),
            (
                "/capabilities/memory_budget_mb",
                json!(1),
                json!(0),
                "capabilities.memory_budget_mb",
            ),
            (
                "/capabilities/memory_budget_mb",
                json!(1u64 << 30),
                json!((1u64 << 30) + 1),
                "capabilities.memory_budget_mb",
            ),
            (
                "/capabilities/max_job_timeout_s",
                json!(1),
                json!(0),
                "capabilities.max_job_timeout_s",
            ),
            ("/running/0/job_id", json!(1), json!(0), "running[].job_id"),
            (
                "/running/0/job_id",
                json!(i64::MAX),
                json!(i64::MAX as u64 + 1),
                "running[].job_id",
            ),
            (
                "/running/0/attempt",
                json!(1),
                json!(0),
                "running[].attempt",
            ),
        ];
        for (path, ok, bad, field) in cases {
            assert_eq!(blamed(hello(), path, ok), None, "{path}");
            assert_eq!(blamed(hello(), path, bad).as_deref(), Some(field), "{path}");
        }
        // Lent GPUs: few, each index once and in range, names short.
        let gpu = |index: u32, name: &str| json!({"index": index, "name": name, "memory_mb": 1});
        assert_eq!(
            blamed(hello(), "/capabilities/gpus", json!(0)),
            None,
            "the NVML count and the lent list are separate"
        );
        let mut lent = hello();
        lent["capabilities"]["gpu_devices"] = json!([gpu(0, "a"), gpu(255, &"n".repeat(96))]);
        decode_worker_message(&lent.to_string(), DEFAULT_MAX_FRAME_BYTES).expect("in bounds");
        for (devices, field) in [
            (json!([gpu(256, "a")]), "capabilities.gpu_devices[].index"),
            (
                json!([gpu(1, "a"), gpu(1, "b")]),
                "capabilities.gpu_devices[].index",
            ),
            (
                json!([gpu(0, &"n".repeat(97))]),
                "capabilities.gpu_devices[].name",
            ),
            (
                json!((0..17).map(|i| gpu(i, "a")).collect::<Vec<_>>()),
                "capabilities.gpu_devices",
            ),
        ] {
            let mut frame = hello();
            frame["capabilities"]["gpu_devices"] = devices;
            match decode_worker_message(&frame.to_string(), DEFAULT_MAX_FRAME_BYTES) {
                Err(DecodeError::OutOfBounds { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        let running = vec![json!({"job_id": 1, "attempt": 1}); 1025];
        assert_eq!(
            blamed(hello(), "/running", json!(running)).as_deref(),
            Some("running")
        );
    }

    /// A hello lists at most twice its slots; the coordinator holds heartbeats to the
    /// same rule.
    #[test]
    fn a_hello_lists_at_most_its_slots() {
        let attempts = |n: usize| -> Value {
            json!(
                (1..=n)
                    .map(|i| json!({"job_id": i, "attempt": 1}))
                    .collect::<Vec<_>>()
            )
        };
        // The base hello has 2 slots.
        assert_eq!(blamed(hello(), "/running", attempts(4)), None);
        assert_eq!(
            blamed(hello(), "/running", attempts(5)).as_deref(),
            Some("running")
        );
        assert!(super::check_running_within_slots(8, 4).is_ok());
        match super::check_running_within_slots(9, 4) {
            Err(DecodeError::OutOfBounds { field, rule }) => {
                assert_eq!(field, "running");
                assert!(rule.contains("(8)") && rule.contains("got 9"), "{rule}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// `MAX_HELLO_BYTES` is what the coordinator reads before it checks a token: a
    /// hello at every other bound must fit in it, and one past it is refused.
    #[test]
    fn a_hello_at_every_bound_fits_the_hello_limit_and_a_longer_one_is_refused() {
        use crate::protocol::{MAX_HELLO_BYTES, MAX_ID, MAX_LANGUAGES, MAX_SLOTS};
        let mut frame = hello();
        frame["token"] = json!(format!("gxw_{}", "f".repeat(252)));
        frame["name"] = json!("n".repeat(64));
        frame["capabilities"]["slots"] = json!(MAX_SLOTS);
        frame["capabilities"]["languages"] = json!(vec!["python"; MAX_LANGUAGES]);
        frame["capabilities"]["memory_mb"] = json!(1u64 << 30);
        frame["capabilities"]["gpu_devices"] = json!(
            (0..crate::gpu::MAX_LENT_GPUS as u32)
                .map(
                    |i| json!({"index": super::MAX_GPUS - 1 - i, "name": "g".repeat(96),
                                "memory_mb": 1u64 << 30})
                )
                .collect::<Vec<_>>()
        );
        frame["running"] = json!(
            (0..MAX_SLOTS as u64)
                .map(|i| json!({"job_id": MAX_ID - i, "attempt": u32::MAX}))
                .collect::<Vec<_>>()
        );
        let text = frame.to_string();
        assert!(text.len() <= MAX_HELLO_BYTES, "{} bytes", text.len());
        decode_worker_message(&text, DEFAULT_MAX_FRAME_BYTES).expect("a hello at its bounds");
        // Padded past the limit (whitespace is legal JSON): too large, not out of bounds.
        let padded = format!("{text}{}", " ".repeat(MAX_HELLO_BYTES + 1 - text.len()));
        assert_eq!(
            decode_worker_message(&padded, DEFAULT_MAX_FRAME_BYTES),
            Err(DecodeError::TooLarge {
                len: MAX_HELLO_BYTES + 1,
                max: MAX_HELLO_BYTES
            })
        );
        // Other messages keep the frame limit.
        let beat = heartbeat().to_string();
        let padded = format!("{beat}{}", " ".repeat(MAX_HELLO_BYTES + 1));
        decode_worker_message(&padded, DEFAULT_MAX_FRAME_BYTES).expect("a long heartbeat");
    }

    #[test]
    fn every_bound_of_heartbeat_is_enforced_at_its_edge() {
        let cases: Vec<(&str, Value, Value, &str)> = vec![
            (
                "/metrics/cpu_percent",
                json!(100.0),
                json!(100.5),
                "metrics.cpu_percent",
            ),
            (
                "/metrics/cpu_percent",
                json!(0.0),
                json!(-0.5),
                "metrics.cpu_percent",
            ),
            (
                "/metrics/cpu_per_core/0",
                json!(100.0),
                json!(101.0),
                "metrics.cpu_per_core[]",
            ),
            (
                "/metrics/memory_used_mb",
                json!(1u64 << 30),
                json!((1u64 << 30) + 1),
                "metrics.memory_used_mb",
            ),
            (
                "/metrics/memory_total_mb",
                json!(1u64 << 30),
                json!(u64::MAX),
                "metrics.memory_total_mb",
            ),
            (
                "/metrics/gpu_note",
                json!("n".repeat(1024)),
                json!("n".repeat(1025)),
                "metrics.gpu_note",
            ),
            (
                "/metrics/gpus/0/index",
                json!(255),
                json!(256),
                "metrics.gpus[].index",
            ),
            (
                "/metrics/gpus/0/name",
                json!("g".repeat(256)),
                json!("g".repeat(257)),
                "metrics.gpus[].name",
            ),
            (
                "/metrics/gpus/0/utilization_percent",
                json!(100),
                json!(101),
                "metrics.gpus[].utilization_percent",
            ),
            (
                "/metrics/gpus/0/memory_used_mb",
                json!(1u64 << 30),
                json!((1u64 << 30) + 1),
                "metrics.gpus[].memory_used_mb",
            ),
            (
                "/metrics/gpus/0/memory_total_mb",
                json!(1u64 << 30),
                json!((1u64 << 30) + 1),
                "metrics.gpus[].memory_total_mb",
            ),
            (
                "/metrics/gpus/0/temperature_c",
                json!(200),
                json!(201),
                "metrics.gpus[].temperature_c",
            ),
            (
                "/metrics/gpus/0/power_w",
                json!(100_000.0),
                json!(100_001.0),
                "metrics.gpus[].power_w",
            ),
            (
                "/metrics/gpus/0/power_w",
                json!(0.0),
                json!(-1.0),
                "metrics.gpus[].power_w",
            ),
            (
                "/metrics/gpus/0/power_limit_w",
                json!(0.0),
                json!(-0.1),
                "metrics.gpus[].power_limit_w",
            ),
        ];
        for (path, ok, bad, field) in cases {
            assert_eq!(blamed(heartbeat(), path, ok), None, "{path}");
            assert_eq!(
                blamed(heartbeat(), path, bad).as_deref(),
                Some(field),
                "{path}"
            );
        }
        assert_eq!(
            blamed(
                heartbeat(),
                "/metrics/cpu_per_core",
                json!(vec![1.0; 16385])
            )
            .as_deref(),
            Some("metrics.cpu_per_core")
        );
        let gpu = heartbeat()["metrics"]["gpus"][0].clone();
        assert_eq!(
            blamed(heartbeat(), "/metrics/gpus", json!(vec![gpu; 257])).as_deref(),
            Some("metrics.gpus")
        );
    }

    #[test]
    fn ids_attempts_and_outcomes_are_bounded_in_started_and_finished() {
        let started = json!({"type": "started", "job_id": 1, "attempt": 1});
        assert_eq!(
            blamed(started.clone(), "/job_id", json!(0)).as_deref(),
            Some("job_id")
        );
        assert_eq!(
            blamed(started, "/attempt", json!(0)).as_deref(),
            Some("attempt")
        );
        assert_eq!(
            blamed(finished(), "/job_id", json!(0)).as_deref(),
            Some("job_id")
        );
        assert_eq!(
            blamed(finished(), "/attempt", json!(0)).as_deref(),
            Some("attempt")
        );
        let cases: Vec<(&str, Value, Value, &str)> = vec![
            (
                "/outcome/duration_ms",
                json!(i64::MAX),
                json!(i64::MAX as u64 + 1),
                "outcome.duration_ms",
            ),
            (
                "/outcome/message",
                json!("m".repeat(16384)),
                json!("m".repeat(16385)),
                "outcome.message",
            ),
        ];
        for (path, ok, bad, field) in cases {
            assert_eq!(blamed(finished(), path, ok), None, "{path}");
            assert_eq!(
                blamed(finished(), path, bad).as_deref(),
                Some(field),
                "{path}"
            );
        }
    }

    /// A worker older than the admission caps sends none: its hello still decodes,
    /// with no cap.
    #[test]
    fn the_admission_caps_are_optional() {
        let mut frame = hello();
        let caps = frame["capabilities"].as_object_mut().expect("an object");
        for cap in ["max_job_memory_mb", "memory_budget_mb", "max_job_timeout_s"] {
            caps.remove(cap);
        }
        match decode_worker_message(&frame.to_string(), DEFAULT_MAX_FRAME_BYTES) {
            Ok(crate::protocol::WorkerMessage::Hello { capabilities, .. }) => {
                assert_eq!(capabilities.max_job_memory_mb, None);
                assert_eq!(capabilities.memory_budget_mb, None);
                assert_eq!(capabilities.max_job_timeout_s, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_refusal_is_bounded_like_the_other_reports() {
        let refused = json!({"type": "refused", "job_id": 1, "attempt": 1, "reason": "too big"});
        assert_eq!(
            blamed(refused.clone(), "/job_id", json!(0)).as_deref(),
            Some("job_id")
        );
        assert_eq!(
            blamed(refused.clone(), "/attempt", json!(0)).as_deref(),
            Some("attempt")
        );
        assert_eq!(
            blamed(refused.clone(), "/reason", json!("r".repeat(1024))),
            None
        );
        assert_eq!(
            blamed(refused.clone(), "/reason", json!("r".repeat(1025))).as_deref(),
            Some("reason")
        );
        assert!(matches!(
            decode_worker_message(
                r#"{"type":"refused","job_id":1,"attempt":1}"#,
                DEFAULT_MAX_FRAME_BYTES
            ),
            Err(DecodeError::MissingField(f)) if f == "reason"
        ));
    }

    #[test]
    fn coordinator_frames_are_bounded_too() {
        let max = DEFAULT_MAX_FRAME_BYTES;
        for (frame, field) in [
            (
                r#"{"type":"welcome","worker_id":0,"heartbeat_s":5}"#,
                "worker_id",
            ),
            (
                r#"{"type":"welcome","worker_id":1,"heartbeat_s":0}"#,
                "heartbeat_s",
            ),
            (r#"{"type":"cancel","job_id":0,"attempt":1}"#, "job_id"),
            (r#"{"type":"cancel","job_id":1,"attempt":0}"#, "attempt"),
            (
                r#"{"type":"assign","job":{"job_id":0,"spec":{"language":"bash","code":"x","timeout_s":1,"memory_mb":32,"max_output_bytes":1}},"attempt":1}"#,
                "job.job_id",
            ),
            (
                r#"{"type":"assign","job":{"job_id":1,"spec":{"language":"bash","code":"x","timeout_s":1,"memory_mb":32,"max_output_bytes":1}},"attempt":0}"#,
                "attempt",
            ),
        ] {
            match decode_coordinator_message(frame, max) {
                Err(DecodeError::OutOfBounds { field: f, .. }) => assert_eq!(f, field, "{frame}"),
                other => panic!("{frame}: {other:?}"),
            }
        }
    }
}
