//! A fixed, deterministic grid for tests and benchmarks of the dashboard: ids, times
//! and metrics are constants, so snapshots never change by themselves.

use super::keymap::Keymap;
use super::state::{AppState, LogLevel, Mode};
use super::theme::Theme;
use gridx_proto::api::{JobSummary, LedgerEntryView, LedgerKind, WorkerStatus, WorkerView};
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
        });
    }
    entries.reverse();
    state.ledger = entries.into();
    state.log(LogLevel::Info, "> submit --lang python --code 'print(6*7)'");
    state.log(LogLevel::Output, "submitted job 12 (python, queued)");
    state.log(LogLevel::Error, "job 99: no such job (not_found, HTTP 404)");
    state
}

/// The worker host's own dashboard.
pub fn worker_state(executor: ExecutorKind) -> AppState {
    let mut state = AppState::new(
        Mode::WorkerHost {
            executor,
            name: "lab-7".into(),
            weaknesses: Vec::new(),
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
