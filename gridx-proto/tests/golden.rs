//! Golden JSON fixtures for every wire message and REST body.
//!
//! Each value below is serialised and compared with `fixtures/<name>.json`, and the
//! fixture is decoded back and compared with the value. A change to the wire format
//! therefore shows up as a changed fixture in review. To accept an intended change,
//! run `GRIDX_BLESS=1 cargo test -p gridx-proto --test golden` and commit the files.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

use gridx_proto::api::*;
use gridx_proto::events::ServerEvent;
use gridx_proto::gpu::GpuDevice;
use gridx_proto::job::{RunEnd, RunOutcome};
use gridx_proto::protocol::*;
use gridx_proto::time_fmt::from_unix_millis;
use gridx_proto::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::path::PathBuf;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.json"))
}

fn golden<T: Serialize + DeserializeOwned + PartialEq + Debug>(name: &str, value: &T) {
    let path = fixture_path(name);
    let actual = serde_json::to_string_pretty(value).unwrap() + "\n";
    if std::env::var_os("GRIDX_BLESS").is_some() {
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "missing fixture {}: {e}; run with GRIDX_BLESS=1 to create it",
            path.display()
        )
    });
    assert_eq!(actual, expected, "wire format of {name} changed");
    let decoded: T = serde_json::from_str(&expected).unwrap();
    assert_eq!(
        &decoded, value,
        "fixture {name} does not decode to the value"
    );
}

fn worker_message(name: &str, m: WorkerMessage) {
    golden(name, &m);
    let text = std::fs::read_to_string(fixture_path(name)).unwrap();
    assert_eq!(
        decode_worker_message(&text, DEFAULT_MAX_FRAME_BYTES).unwrap(),
        m
    );
}

fn coordinator_message(name: &str, m: CoordinatorMessage) {
    golden(name, &m);
    let text = std::fs::read_to_string(fixture_path(name)).unwrap();
    assert_eq!(
        decode_coordinator_message(&text, DEFAULT_MAX_FRAME_BYTES).unwrap(),
        m
    );
}

fn metrics() -> HostMetrics {
    HostMetrics {
        cpu_percent: 37.5,
        cpu_per_core: vec![50.0, 25.0],
        memory_used_mb: 2048,
        memory_total_mb: 8192,
        gpus: vec![GpuMetrics {
            index: 0,
            name: "NVIDIA H100 80GB HBM3".into(),
            utilization_percent: Some(87),
            memory_used_mb: Some(40960),
            memory_total_mb: Some(81559),
            temperature_c: Some(61),
            power_w: Some(312.5),
            power_limit_w: Some(700.0),
        }],
        gpu_note: None,
    }
}

fn spec() -> JobSpec {
    JobSpec {
        gpu_memory_mb: None,
        gpus: 0,
        language: Language::Python,
        code: "print(input())".into(),
        stdin: "hello\n".into(),
        timeout_s: 30,
        memory_mb: 256,
        priority: 0,
        max_output_bytes: 1048576,
    }
}

fn outcome() -> RunOutcome {
    RunOutcome {
        end: RunEnd::Exited,
        exit_code: Some(0),
        stdout: "hello\n".into(),
        stderr: String::new(),
        stdout_truncated: false,
        stderr_truncated: false,
        duration_ms: 41,
        message: None,
        compile_output: None,
    }
}

fn job_view() -> JobView {
    JobView { waiting: None, gpu_indices: Vec::new(), gpu_memory_mb: None, gpus: 0,
        job_id: JobId(42),
        user: UserName::new("alice").unwrap(),
        status: JobStatus::Succeeded,
        language: Language::Python,
        priority: 0,
        timeout_s: 30,
        memory_mb: 256,
        submitted_at: from_unix_millis(1_780_000_000_000),
        started_at: Some(from_unix_millis(1_780_000_000_012)),
        finished_at: Some(from_unix_millis(1_780_000_000_061)),
        worker_id: Some(WorkerId(7)),
        attempts: 1,
        exit_code: Some(0),
        stdout: "hello\n".into(),
        stderr: String::new(),
        stdout_truncated: false,
        stderr_truncated: false,
        duration_ms: Some(41),
        reason: None,
        message: None,
        refusals: 1,
        refusal: Some(
            "refused by worker small-box (#3): the job asks for 256 MB of memory and the jobs running on this worker already hold 900 MB of its 1024 MB".into(),
        ),
        cost: Credits::from_millis(1000),
        validation: JobValidation {
            required: true,
            outcome: Some(ValidationOutcome::Quorum),
            replicas: vec![
                ReplicaView {
                    attempt: 1,
                    worker_id: WorkerId(3),
                    owner: UserName::new("carol").unwrap(),
                    status: JobStatus::Succeeded,
                    reason: None,
                    exit_code: Some(0),
                    stdout_sha256: "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03".into(),
                    stderr_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
                    stdout_truncated: false,
                    stderr_truncated: false,
                    verdict: Verdict::Valid,
                    compile_output_sha256: None,
                },
                ReplicaView {
                    attempt: 2,
                    worker_id: WorkerId(7),
                    owner: UserName::new("bob").unwrap(),
                    status: JobStatus::Succeeded,
                    reason: None,
                    exit_code: Some(0),
                    stdout_sha256: "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03".into(),
                    stderr_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
                    stdout_truncated: false,
                    stderr_truncated: false,
                    verdict: Verdict::Valid,
                    compile_output_sha256: None,
                },
            ],
            waiting: None,
        },
        compile_output: None,
    }
}

#[test]
fn worker_messages() {
    worker_message(
        "hello",
        WorkerMessage::Hello {
            protocol: PROTOCOL_VERSION,
            token: "gxw_0123456789abcdef".into(),
            name: "lab-box-1".into(),
            capabilities: Capabilities {
                gpu_devices: Vec::new(),
                languages: vec![Language::Python, Language::Node, Language::Bash],
                slots: 4,
                executor: ExecutorKind::Docker,
                cpu_cores: 8,
                memory_mb: 32768,
                gpus: 1,
                max_job_memory_mb: Some(4096),
                memory_budget_mb: Some(24576),
                max_job_timeout_s: Some(300),
            },
            running: vec![JobAttempt {
                job_id: JobId(41),
                attempt: 2,
            }],
        },
    );
    // A worker with compilers: the first three languages where every coordinator
    // reads them, the rest in `more_languages`, which older ones ignore.
    worker_message(
        "hello_compilers",
        WorkerMessage::Hello {
            protocol: PROTOCOL_VERSION,
            token: "gxw_0123456789abcdef".into(),
            name: "lab-box-2".into(),
            capabilities: Capabilities {
                gpu_devices: Vec::new(),
                languages: Language::ALL.to_vec(),
                slots: 2,
                executor: ExecutorKind::Bubblewrap,
                cpu_cores: 4,
                memory_mb: 16384,
                gpus: 0,
                max_job_memory_mb: None,
                memory_budget_mb: None,
                max_job_timeout_s: None,
            },
            running: vec![],
        },
    );
    // A worker that lends its GPUs: `gpu_devices`, which older coordinators ignore.
    worker_message(
        "hello_gpus",
        WorkerMessage::Hello {
            protocol: PROTOCOL_VERSION,
            token: "gxw_0123456789abcdef".into(),
            name: "gpu-box".into(),
            capabilities: Capabilities {
                gpu_devices: vec![
                    GpuDevice {
                        index: 0,
                        name: "NVIDIA H200".into(),
                        memory_mb: 143_771,
                    },
                    GpuDevice {
                        index: 2,
                        name: "NVIDIA L4".into(),
                        memory_mb: 23_034,
                    },
                ],
                languages: vec![Language::Python, Language::Bash],
                slots: 4,
                executor: ExecutorKind::Bubblewrap,
                cpu_cores: 16,
                memory_mb: 131_072,
                gpus: 3,
                max_job_memory_mb: Some(4096),
                memory_budget_mb: None,
                max_job_timeout_s: Some(300),
            },
            running: vec![],
        },
    );
    worker_message(
        "heartbeat",
        WorkerMessage::Heartbeat {
            metrics: metrics(),
            running: vec![JobAttempt {
                job_id: JobId(42),
                attempt: 1,
            }],
            draining: false,
        },
    );
    worker_message(
        "started",
        WorkerMessage::Started {
            job_id: JobId(42),
            attempt: 1,
        },
    );
    worker_message(
        "finished",
        WorkerMessage::Finished {
            job_id: JobId(42),
            attempt: 1,
            outcome: outcome(),
        },
    );
    worker_message(
        "finished_oom",
        WorkerMessage::Finished {
            job_id: JobId(43),
            attempt: 1,
            outcome: RunOutcome {
                end: RunEnd::Oom,
                exit_code: Some(137),
                stdout: String::new(),
                stderr: "Killed\n".into(),
                stdout_truncated: false,
                stderr_truncated: true,
                duration_ms: 812,
                message: Some("memory limit of 64 MB reached".into()),
                compile_output: None,
            },
        },
    );
    worker_message(
        "finished_compile_error",
        WorkerMessage::Finished {
            job_id: JobId(45),
            attempt: 1,
            outcome: RunOutcome {
                end: RunEnd::CompileError,
                exit_code: None,
                stdout: String::new(),
                stderr: String::new(),
                stdout_truncated: false,
                stderr_truncated: false,
                duration_ms: 96,
                message: None,
                compile_output: Some(
                    "/workspace/main.c: In function 'main':\n/workspace/main.c:1:25: error: 'x' undeclared (first use in this function)\n".into(),
                ),
            },
        },
    );
    worker_message(
        "output",
        WorkerMessage::Output {
            job_id: JobId(42),
            attempt: 1,
            stream: gridx_proto::api::OutputStream::Stdout,
            offset: 6,
            text: "tick 2\n".into(),
        },
    );
    worker_message(
        "refused",
        WorkerMessage::Refused {
            job_id: JobId(44),
            attempt: 1,
            reason: "the job asks for 8192 MB of memory, more than this worker's 4096 MB per job"
                .into(),
        },
    );
}

#[test]
fn coordinator_messages() {
    coordinator_message(
        "welcome",
        CoordinatorMessage::Welcome {
            worker_id: WorkerId(7),
            heartbeat_s: 5,
            reads_refused: true,
            reads_output: true,
        },
    );
    coordinator_message(
        "reject",
        CoordinatorMessage::Reject {
            code: RejectCode::BadToken,
            message: "unknown worker token".into(),
        },
    );
    coordinator_message(
        "assign",
        CoordinatorMessage::Assign {
            job: AssignedJob {
                gpus: Vec::new(),
                job_id: JobId(42),
                spec: spec(),
            },
            attempt: 1,
        },
    );
    coordinator_message(
        "assign_gpus",
        CoordinatorMessage::Assign {
            job: AssignedJob {
                gpus: vec![2],
                job_id: JobId(43),
                spec: JobSpec {
                    gpus: 1,
                    gpu_memory_mb: Some(16_000),
                    ..spec()
                },
            },
            attempt: 1,
        },
    );
    coordinator_message(
        "cancel",
        CoordinatorMessage::Cancel {
            job_id: JobId(42),
            attempt: 1,
        },
    );
    coordinator_message("drain", CoordinatorMessage::Drain {});
}

#[test]
fn rest_bodies() {
    golden(
        "submit_request",
        &SubmitJobRequest {
            gpu_memory_mb: None,
            gpus: None,
            language: Language::Node,
            code: "console.log(1)".into(),
            stdin: Some("".into()),
            timeout_s: Some(10),
            memory_mb: Some(128),
            priority: Some(5),
            validate: Some(false),
        },
    );
    golden(
        "submit_request_gpus",
        &SubmitJobRequest {
            gpu_memory_mb: Some(16_000),
            gpus: Some(1),
            language: Language::Python,
            code: "import subprocess; subprocess.run(['nvidia-smi', '-L'])".into(),
            stdin: None,
            timeout_s: None,
            memory_mb: None,
            priority: None,
            validate: None,
        },
    );
    golden("job_view", &job_view());
    golden(
        "job_list",
        &JobListResponse {
            jobs: vec![job_view().summary()],
            next: Some(JobId(41)),
        },
    );
    golden(
        "balance",
        &BalanceResponse {
            user: UserName::new("alice").unwrap(),
            balance: Credits::from_millis(98_200),
        },
    );
    golden(
        "ledger",
        &LedgerResponse {
            entries: vec![
                LedgerEntryView {
                    id: 4,
                    at: from_unix_millis(1_780_000_100_000),
                    kind: LedgerKind::Debit,
                    amount: Credits::from_millis(-2500),
                    job_id: None,
                    balance_after: Credits::from_millis(96_500),
                    reason: Some("granted twice by mistake".into()),
                },
                LedgerEntryView {
                    id: 3,
                    at: from_unix_millis(1_780_000_000_000),
                    kind: LedgerKind::Hold,
                    amount: Credits::from_millis(-1000),
                    job_id: Some(JobId(42)),
                    balance_after: Credits::from_millis(99_000),
                    reason: None,
                },
                LedgerEntryView {
                    id: 1,
                    at: from_unix_millis(1_779_999_000_000),
                    kind: LedgerKind::Grant,
                    amount: Credits::from_millis(100_000),
                    job_id: None,
                    balance_after: Credits::from_millis(100_000),
                    reason: None,
                },
            ],
        },
    );
    golden(
        "workers",
        &WorkersResponse {
            workers: vec![WorkerView {
                gpus: vec![
                    WorkerGpu {
                        index: 0,
                        name: "NVIDIA H200".into(),
                        memory_mb: 143_771,
                        job_id: Some(JobId(43)),
                    },
                    WorkerGpu {
                        index: 2,
                        name: "NVIDIA L4".into(),
                        memory_mb: 23_034,
                        job_id: None,
                    },
                ],
                worker_id: WorkerId(7),
                name: "lab-box-1".into(),
                owner: UserName::new("bob").unwrap(),
                status: WorkerStatus::Online,
                languages: vec![Language::Python, Language::Bash],
                slots: 4,
                running: 1,
                executor: Some(ExecutorKind::Docker),
                metrics: Some(metrics()),
                last_seen: Some(from_unix_millis(1_780_000_000_000)),
                reliability: Reliability {
                    trusted: false,
                    validated: 120,
                    invalid: 0,
                    errors: 1,
                    lost: 2,
                    streak: 120,
                    spot_check_permille: 83,
                    pending: 1,
                    quarantined: None,
                },
            }],
        },
    );
    golden(
        "health",
        &HealthResponse {
            status: "ok".into(),
            version: "0.1.0".into(),
            protocol: PROTOCOL_VERSION,
            uptime_s: 12,
            workers_online: 3,
            jobs_queued: 0,
            role: Some("leader".into()),
            leader: None,
            epoch: Some(4),
        },
    );
    golden(
        "health_standby",
        &HealthResponse {
            status: "standby".into(),
            version: "0.1.0".into(),
            protocol: PROTOCOL_VERSION,
            uptime_s: 2,
            workers_online: 0,
            jobs_queued: 0,
            role: Some("standby".into()),
            leader: Some("https://coord-a.example:8420".into()),
            epoch: None,
        },
    );
    golden(
        "error",
        &ErrorBody::new(
            ErrorCode::InsufficientCredits,
            "balance 0.5 is below the job cost 1",
        ),
    );
    golden(
        "event_job",
        &ServerEvent::Job {
            job: job_view().summary(),
        },
    );
    golden("event_lagged", &ServerEvent::Lagged { missed: 12 });
}
