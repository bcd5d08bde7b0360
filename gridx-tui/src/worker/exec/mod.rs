//! Executors: how a worker runs one job attempt. One trait, several sandboxes; the
//! rest of the worker does not care which one runs.
//!
//! In bacalhau's terms (start, wait, cancel, logs), [`Executor::run`] is start and wait
//! in one call, the cancellation token is cancel, and the returned outcome carries the
//! logs (stdout and stderr, each capped).

pub mod bubblewrap;
pub mod cgroup;
pub mod docker;
pub mod noop;
pub mod output;
pub mod process;
pub mod seccomp;
pub mod select;
pub mod toolchain;

use futures_util::future::BoxFuture;
use gridx_proto::job::RunOutcome;
use gridx_proto::protocol::ExecutorKind;
use gridx_proto::{JobId, JobSpec, Language};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

pub use select::{SelectError, inspect_executor, select_executor};

/// One attempt to run.
#[derive(Debug, Clone)]
pub struct JobRun {
    pub job_id: JobId,
    pub attempt: u32,
    pub spec: JobSpec,
    /// A fresh, empty directory for this attempt on the host, removed afterwards by
    /// the caller. Executors write the job's source file into it.
    pub workspace: PathBuf,
    /// Where the output goes as it is read, for live output; `None`: only at the end.
    pub live: Option<output::LiveSink>,
    /// The GPUs assigned to this attempt, checked (`worker::gpus`); empty for a job
    /// that asked for none, whose sandbox then has no GPU device at all.
    pub gpus: crate::worker::gpus::GpuGrant,
}

impl JobRun {
    /// The taps of stdout and stderr into [`JobRun::live`], if any: each passes on at
    /// most the job's cap, and a compiled language's stderr only after the compiler's
    /// part (`toolchain`, whose `marker` this attempt uses).
    pub fn taps(&self, marker: &str) -> (Option<output::Tap>, Option<output::Tap>) {
        let Some(sink) = &self.live else {
            return (None, None);
        };
        let cap = self.spec.max_output_bytes;
        let stdout = output::Tap::new(sink.clone(), gridx_proto::api::OutputStream::Stdout, cap);
        let mut stderr =
            output::Tap::new(sink.clone(), gridx_proto::api::OutputStream::Stderr, cap);
        if self.spec.language.is_compiled() {
            stderr = stderr.after_marker(marker);
        }
        (Some(stdout), Some(stderr))
    }
}

/// Why cancellation happened, so the outcome can say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The coordinator sent `cancel`.
    Cancelled,
    /// The worker is shutting down and the grace period ran out.
    Shutdown,
}

/// Resource limits of a job and how the sandbox may enforce them, from `[worker]`
/// config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxLimits {
    pub cpu_millicores: u32,
    pub pids: u32,
    pub tmpfs_mb: u32,
    pub nofile: u32,
    pub fsize_mb: u32,
    /// bubblewrap: the cgroup job groups are made under (as /proc/self/cgroup names
    /// it); unset means the worker's own.
    pub cgroup_parent: Option<String>,
    /// bubblewrap: start even where a cgroup limit or the seccomp filter is missing.
    pub allow_weak_sandbox: bool,
    /// Detect only, changing nothing on the host (`host-info`): no cgroup is made or
    /// joined, no process moved, no v2 controller enabled.
    pub inspect_only: bool,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        let c = gridx_proto::config::WorkerConfig::default();
        SandboxLimits::from_config(&c)
    }
}

impl SandboxLimits {
    pub fn from_config(c: &gridx_proto::config::WorkerConfig) -> Self {
        Self {
            cpu_millicores: c.cpu_millicores,
            pids: c.pids_limit,
            tmpfs_mb: c.tmpfs_mb,
            nofile: c.nofile_limit,
            fsize_mb: c.fsize_mb,
            cgroup_parent: c.cgroup_parent.clone(),
            allow_weak_sandbox: c.allow_weak_sandbox,
            inspect_only: false,
        }
    }
}

/// A sandbox that can run jobs.
pub trait Executor: Send + Sync + 'static {
    fn kind(&self) -> ExecutorKind;

    /// The languages this executor can really run right now (image present,
    /// interpreter found). A worker advertises exactly these.
    fn languages(&self) -> Vec<Language>;

    /// Runs one attempt to its end: exit, timeout, OOM, cancellation or sandbox
    /// failure. Never panics on the job's behaviour; every ending is an outcome.
    /// The token carries why it was cancelled via [`StopToken`].
    fn run(&self, job: JobRun, stop: StopToken) -> BoxFuture<'_, RunOutcome>;

    /// What this sandbox cannot enforce on this host, in words (empty when every
    /// documented wall holds): shown by `host-info`, logged at start.
    fn weaknesses(&self) -> Vec<String> {
        Vec::new()
    }

    /// Whether this executor can give jobs the GPUs this host lends, and if not why
    /// (the worker then refuses to start with `gpus` set).
    fn gpu_support(&self, loan: &crate::worker::gpus::Loan) -> Result<(), String> {
        let _ = loan;
        Err(format!(
            "the {} executor cannot give jobs GPUs",
            self.kind()
        ))
    }

    /// Removes what a previous, crashed instance of this worker left behind.
    fn remove_orphans(&self) -> BoxFuture<'_, usize> {
        Box::pin(async { 0 })
    }
}

/// A cancellation token that remembers why it was cancelled.
#[derive(Debug, Clone, Default)]
pub struct StopToken {
    token: CancellationToken,
    reason: std::sync::Arc<std::sync::OnceLock<StopReason>>,
}

impl StopToken {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stop(&self, reason: StopReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    pub fn reason(&self) -> Option<StopReason> {
        self.reason.get().copied()
    }

    pub async fn stopped(&self) {
        self.token.cancelled().await
    }
}

/// What the sandbox runs for a job in `language` with `memory_mb`, whose source is at
/// `source` inside it, under `limits`: see [`toolchain`]. `marker` is the attempt's
/// compile marker ([`toolchain::new_marker`]).
pub fn job_command(
    language: Language,
    memory_mb: u32,
    source: &str,
    build_dir: &str,
    limits: &SandboxLimits,
    marker: &str,
) -> Vec<String> {
    toolchain::command(
        &toolchain::Target {
            language,
            source,
            build_dir,
            memory_mb,
            cpus: limits.cpu_millicores.div_ceil(1000),
        },
        marker,
    )
}

/// Writes the job's code where the sandbox will find it: `<workspace>/<main.ext>`,
/// readable by the unprivileged user the job runs as.
pub fn write_source(job: &JobRun) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = job.workspace.join(job.spec.language.source_file_name());
    std::fs::write(&path, &job.spec.code)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444))?;
    std::fs::set_permissions(&job.workspace, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// An outcome for a sandbox that failed before or around the job.
pub fn sandbox_error(message: impl Into<String>, duration_ms: u64) -> RunOutcome {
    RunOutcome {
        end: gridx_proto::job::RunEnd::SandboxError,
        exit_code: None,
        stdout: String::new(),
        stderr: String::new(),
        stdout_truncated: false,
        stderr_truncated: false,
        duration_ms,
        message: Some(message.into()),
        compile_output: None,
    }
}
