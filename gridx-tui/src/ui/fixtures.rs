//! A fixed, deterministic grid for tests and benchmarks of the dashboard: ids, times
//! and metrics are constants, so snapshots never change by themselves.

use super::keymap::Keymap;
use super::state::{AppState, LogLevel, Mode};
use super::theme::Theme;
use gridx_proto::api::{
    JobSummary, JobValidation, LedgerEntryView, LedgerKind, Reliability, ReplicaView,
    ValidationOutcome, Verdict, WorkerStatus, WorkerView,
};
use gridx_proto::metrics::{GpuMetrics, HostMetrics};
use gridx_proto::protocol::ExecutorKind;
use gridx_proto::time_fmt::from_unix_millis;
use gridx_proto::{Credits, JobId, JobStatus, Language, UserName, WorkerId};

/// The fixed "now" of fixtures: 2026-06-01T12:00:00Z.
pub const NOW_MS: i64 = 1_780_315_200_000;

fn name(s: &str) -> UserName {
    UserName::new(s).unwrap_or_else(|_| unreachable!("fixture names are valid"))
}

pub fn metrics(cpu: f32, gpus: u32) -> HostMetrics {
    HostMetrics {
        cpu_percent: cpu,
        cpu_per_core: (0..8).map(|i| (cpu + i as f32 * 7.0) % 100.0).collect(),
        memory_used_mb: 12_288,
        memory_total_mb: 32_768,
        gpus: (0..gpus)
            .map(|i| GpuMetrics {
                index: i,
                name: "NVIDIA H100 80GB HBM3".into(),
                utilization_percent: Some(40 + i * 10),
                memory_used_mb: Some(40_960),
                memory_total_mb: Some(81_559),
                temperature_c: Some(60 + i),
                power_w: Some(300.0 + i as f32 * 10.0),
                power_limit_w: Some(700.0),
            })
            .collect(),
        gpu_note: (gpus == 0).then(|| "no GPU: the NVIDIA driver is not loaded".to_owned()),
    }
}

pub fn worker(
    id: u64,
    worker_name: &str,
    owner: &str,
    status: WorkerStatus,
    executor: ExecutorKind,
    running: u32,
) -> WorkerView {
    WorkerView {
        gpus: Vec::new(),
        worker_id: WorkerId(id),
        name: worker_name.into(),
        owner: name(owner),
        status,
        languages: vec![Language::Python, Language::Node, Language::Bash],
        slots: 4,
        running,
        executor: Some(executor),
        metrics: Some(metrics(
            20.0 + id as f32 * 15.0,
            if id == 1 { 2 } else { 0 },
        )),
        last_seen: Some(from_unix_millis(NOW_MS - 2_000 * id as i64)),
        reliability: Default::default(),
    }
}

/// A worker the operator marked trusted.
pub fn trusted() -> Reliability {
    Reliability {
        trusted: true,
        validated: 340,
        streak: 340,
        ..Default::default()
    }
}

/// A worker on probation: every result checked, one waiting for its replica.
pub fn on_probation() -> Reliability {
    Reliability {
        validated: 3,
        streak: 3,
        spot_check_permille: 1000,
        pending: 1,
        ..Default::default()
    }
}

/// A worker past probation: a long streak, one result in twenty checked.
pub fn proven() -> Reliability {
    Reliability {
        validated: 214,
        errors: 1,
        lost: 2,
        streak: 180,
        spot_check_permille: 55,
        ..Default::default()
    }
}

/// A worker whose results two quorums contradicted.
pub fn quarantined() -> Reliability {
    Reliability {
        validated: 1,
        invalid: 2,
        spot_check_permille: 1000,
        quarantined: Some(
            "2 invalid results since it was last restored (the last on job 4)".into(),
        ),
        ..Default::default()
    }
}

/// One replica of a job: every fixture replica succeeded with exit 0; an invalid one
/// printed something else (its digest differs).
pub fn replica(attempt: u32, worker: u64, owner: &str, verdict: Verdict) -> ReplicaView {
    let digest = if verdict == Verdict::Invalid {
        "0badc0de0badc0de0badc0de0badc0de0badc0de0badc0de0badc0de0badc0de"
    } else {
        "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
    };
    ReplicaView {
        attempt,
        worker_id: WorkerId(worker),
        owner: name(owner),
        status: JobStatus::Succeeded,
        reason: None,
        exit_code: Some(0),
        stdout_sha256: digest.into(),
        stderr_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
        stdout_truncated: false,
        stderr_truncated: false,
        verdict,
        compile_output_sha256: None,
    }
}

/// A result a quorum of two accepted after mallory's replica disagreed.
pub fn validated_by_quorum() -> JobValidation {
    JobValidation {
        required: true,
        outcome: Some(ValidationOutcome::Quorum),
        replicas: vec![
            replica(1, 1, "bob", Verdict::Valid),
            replica(2, 2, "carol", Verdict::Valid),
            replica(3, 9, "mallory", Verdict::Invalid),
        ],
        waiting: None,
    }
}

/// A queued job no run has started: too few owners are online for a quorum.
pub fn waiting_for_quorum() -> JobValidation {
    JobValidation {
        required: true,
        outcome: None,
        replicas: vec![],
        waiting: Some(
            "waiting for a quorum: its result is checked by workers of 2 different owners, and online workers that run python belong to 1 (bob); an operator can mark a worker trusted (`gridx-server worker trust ID`)".into(),
        ),
    }
}

/// What the fixture jobs printed: one line for an ended job, nothing before.
pub fn job_stdout(id: u64, status: JobStatus) -> String {
    if status.is_terminal() {
        format!("output of job {id}\n")
    } else {
        String::new()
    }
}

pub fn job(id: u64, user: &str, language: Language, status: JobStatus) -> JobSummary {
    let submitted = NOW_MS - 60_000 * id as i64;
    let terminal = status.is_terminal();
    let started = matches!(status, JobStatus::Running) || terminal;
    JobSummary {
        gpus: 0,
        job_id: JobId(id),
        user: name(user),
        status,
        language,
        priority: 0,
        timeout_s: 30,
        memory_mb: 256,
        submitted_at: from_unix_millis(submitted),
        started_at: started.then(|| from_unix_millis(submitted + 500)),
        finished_at: terminal.then(|| from_unix_millis(submitted + 1_700)),
        worker_id: started.then_some(WorkerId(1 + id % 2)),
        attempts: u32::from(started),
        exit_code: match status {
            JobStatus::Succeeded => Some(0),
            JobStatus::Failed => Some(1),
            _ => None,
        },
        stdout_bytes: job_stdout(id, status).len() as u64,
        stderr_bytes: 0,
        stdout_truncated: false,
        stderr_truncated: false,
        duration_ms: terminal.then_some(1_200),
        reason: None,
        message: None,
        refusals: 0,
        refusal: None,
        cost: Credits::from_whole(1),
    }
}

/// A dashboard in client mode with three workers, a dozen jobs and some ledger rows.
pub fn client_state() -> AppState {
    let mut state = AppState::new(
        Mode::Client,
        Theme::default_dark(),
        Keymap::default(),
        "http://grid.example:8420".into(),
    );
    state.now = from_unix_millis(NOW_MS);
    state.user = Some("alice".into());
    state.balance = Some(Credits::from_millis(87_400));
    state.connection = super::state::Connection::Online;
    for w in [
        worker(
            1,
            "gpu-box",
            "bob",
            WorkerStatus::Online,
            ExecutorKind::Docker,
            2,
        ),
        worker(
            2,
            "lab-7",
            "carol",
            WorkerStatus::Online,
            ExecutorKind::Bubblewrap,
            1,
        ),
        worker(
            3,
            "old-laptop",
            "dave",
            WorkerStatus::Offline,
            ExecutorKind::Docker,
            0,
        ),
    ] {
        state.workers.insert(w.worker_id, w);
    }
    // One worker of each standing the checks give (docs/trust.md).
    for (id, reliability) in [(1, trusted()), (2, proven()), (3, on_probation())] {
        if let Some(w) = state.workers.get_mut(&WorkerId(id)) {
            w.reliability = reliability;
        }
    }
    let statuses = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::TimedOut,
        JobStatus::Cancelled,
        JobStatus::Error,
        JobStatus::Succeeded,
        JobStatus::Succeeded,
        JobStatus::Queued,
        JobStatus::Succeeded,
    ];
    for (i, status) in statuses.into_iter().enumerate() {
        let language = Language::ALL[i % 3];
        let user = if i % 4 == 0 { "bob" } else { "alice" };
        let j = job(i as u64 + 1, user, language, status);
        state.jobs.insert(j.job_id, j);
    }
    let mut balance = 100_000;
    let mut entries = vec![LedgerEntryView {
        id: 1,
        at: from_unix_millis(NOW_MS - 3_600_000),
        kind: LedgerKind::Grant,
        amount: Credits::from_whole(100),
        job_id: None,
        balance_after: Credits::from_millis(balance),
        reason: None,
    }];
    for i in 1..=8u64 {
        balance -= 1_000;
        entries.push(LedgerEntryView {
            id: i + 1,
            at: from_unix_millis(NOW_MS - 600_000 + i as i64 * 1000),
            kind: LedgerKind::Hold,
            amount: Credits::from_millis(-1_000),
            job_id: Some(JobId(i)),
            balance_after: Credits::from_millis(balance),
            reason: None,
        });
    }
    entries.reverse();
    state.ledger = entries.into();
    state.log(LogLevel::Info, "> submit --lang python --code 'print(6*7)'");
    state.log(LogLevel::Output, "submitted job 12 (python, queued)");
    state.log(LogLevel::Error, "job 99: no such job (not_found, HTTP 404)");
    state
}

/// `client_state` with mallory's worker, quarantined for results a quorum contradicted.
pub fn with_a_quarantined_worker() -> AppState {
    let mut state = client_state();
    let mut w = worker(
        9,
        "mallory-pc",
        "mallory",
        WorkerStatus::Online,
        ExecutorKind::Docker,
        0,
    );
    w.reliability = quarantined();
    w.metrics = Some(metrics(12.0, 0));
    state.workers.insert(w.worker_id, w);
    state
}

/// The worker host's own dashboard.
pub fn worker_state(executor: ExecutorKind) -> AppState {
    let mut state = AppState::new(
        Mode::WorkerHost {
            executor,
            name: "lab-7".into(),
            weaknesses: Vec::new(),
            lent_gpus: Vec::new(),
        },
        Theme::default_dark(),
        Keymap::default(),
        "http://grid.example:8420".into(),
    );
    state.now = from_unix_millis(NOW_MS);
    state.connection = super::state::Connection::Online;
    state.local_metrics = Some(metrics(63.0, 1));
    for v in [10.0, 30.0, 55.0, 63.0, 80.0, 40.0] {
        state.cpu_history.push(v);
    }
    let j = job(42, "alice", Language::Python, JobStatus::Running);
    state.jobs.insert(j.job_id, j);
    state.log(LogLevel::Info, "connected as worker 2");
    state.log(LogLevel::Info, "job 42 attempt 1 started (python)");
    state
}

/// A large grid for the render benchmark: `jobs` jobs and `workers` workers.
pub fn large_state(jobs: u64, workers: u64) -> AppState {
    let mut state = client_state();
    state.jobs.clear();
    state.workers.clear();
    state.max_jobs = jobs as usize + 1;
    let statuses = JobStatus::ALL;
    for i in 1..=jobs {
        let j = job(
            i,
            if i % 3 == 0 { "bob" } else { "alice" },
            Language::ALL[(i % 3) as usize],
            statuses[(i % 7) as usize],
        );
        state.jobs.insert(j.job_id, j);
    }
    for i in 1..=workers {
        let w = worker(
            i,
            &format!("w{i}"),
            "bob",
            WorkerStatus::Online,
            ExecutorKind::Docker,
            (i % 4) as u32,
        );
        state.workers.insert(w.worker_id, w);
    }
    state
}
