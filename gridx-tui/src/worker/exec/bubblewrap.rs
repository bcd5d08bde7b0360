//! The bubblewrap (`bwrap`) sandbox, used when no Docker engine answers: every
//! namespace unshared (so no network), the host's /usr mounted read-only, a private
//! size-limited tmpfs for /tmp, /dev/shm and the workspace, everything else read-only
//! (/dev included), the job's source copied in through a pipe, no capabilities, uid
//! 65534, no further user namespaces (`--disable-userns`), a seccomp filter modelled on
//! Docker's default profile ([`super::seccomp`]), a control group of its own with
//! memory, swap, pids and CPU limits ([`super::cgroup`]), rlimits, and every process of
//! the job killed on timeout or cancel.
//!
//! A host where the cgroup limits or the filter cannot be had is refused unless the
//! volunteer passes `--allow-weak-sandbox`; what is missing is named then, by the
//! refusal, by `host-info` and in the log.
//!
//! bwrap reports on a status pipe (`--json-status-fd`) whether it started the job's
//! program; when it ends without saying so, its setup failed and the outcome is
//! `SandboxError`, never the job's own failure (see [`process::STATUS_FD`]).

use super::cgroup::{Cgroups, JobLimits};
use super::process::{self, ProcessPlan, Rlimits};
use super::toolchain::{self, SANDBOX_BUILD_DIR};
use super::{Executor, JobRun, SandboxLimits, StopToken, job_command, write_source};
use crate::worker::gpus::{GpuGrant, Loan};
use futures_util::future::BoxFuture;
use gridx_proto::Language;
use gridx_proto::job::RunOutcome;
use gridx_proto::protocol::ExecutorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct BubblewrapExecutor {
    bwrap: PathBuf,
    limits: SandboxLimits,
    languages: Vec<Language>,
    /// Toolchain configuration from /etc, mounted read-only (`toolchain`).
    config_dirs: Vec<PathBuf>,
    /// The compiled filter, `--seccomp`; absent only with `allow_weak_sandbox`.
    seccomp: Option<Vec<u8>>,
    /// Where jobs' groups are made; absent only with `allow_weak_sandbox`.
    cgroups: Option<Cgroups>,
    /// What this host cannot enforce, in words (empty on a fully able host).
    weaknesses: Vec<String>,
}

/// The oldest bubblewrap with `--disable-userns` and `--assert-userns-disabled`.
const MIN_BWRAP: (u32, u32, u32) = (0, 8, 0);

/// `0.8.0` from `bubblewrap 0.8.0`.
fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let version = text.split_whitespace().nth(1)?;
    let mut parts = version.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .ok()
    });
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

/// Refuses a bubblewrap too old for the options the sandbox relies on, naming its
/// version.
async fn check_version(bwrap: &Path) -> Result<(), String> {
    let out = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::process::Command::new(bwrap)
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .map_err(|_| "bwrap --version did not answer within 5 s".to_owned())?
    .map_err(|e| format!("bwrap did not start: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let text = text.trim();
    match parse_version(text) {
        Some(version) if version >= MIN_BWRAP => Ok(()),
        Some(_) => Err(format!(
            "{text} is too old: {}.{}.{} or newer is needed for --disable-userns \
             (no user namespaces inside a job)",
            MIN_BWRAP.0, MIN_BWRAP.1, MIN_BWRAP.2
        )),
        None => Err(format!("bwrap --version said {text:?}, not a version")),
    }
}

impl BubblewrapExecutor {
    /// Finds `bwrap` and checks that it can really create its namespaces here.
    pub async fn detect(limits: SandboxLimits) -> Result<Self, String> {
        let bwrap = ["/usr/bin/bwrap", "/usr/local/bin/bwrap"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .ok_or("bwrap is not installed (apt-get install bubblewrap)")?;
        check_version(&bwrap).await?;
        // Only /usr is mounted into the sandbox, so a language is offered only when
        // its toolchain is there.
        let languages: Vec<Language> = Language::ALL
            .into_iter()
            .filter(|l| toolchain::available_on_host(*l))
            .collect();
        let mut weaknesses = Vec::new();
        let seccomp = match super::seccomp::job_filter_bytes() {
            Ok(filter) => Some(filter),
            Err(e) => {
                weaknesses.push(format!("no seccomp filter ({e})"));
                None
            }
        };
        let cgroups = match Cgroups::detect(limits.cgroup_parent.as_deref(), limits.inspect_only) {
            Ok(cgroups) => {
                let missing = cgroups.missing();
                if !missing.is_empty() {
                    let names: Vec<&str> = missing.iter().map(|l| l.name()).collect();
                    weaknesses.push(format!(
                        "no cgroup limit on {} ({})",
                        names.join(", "),
                        cgroups.describe()
                    ));
                }
                Some(cgroups)
            }
            Err(e) => {
                weaknesses.push(format!(
                    "no cgroup limits on memory, swap, pids or cpu ({e})"
                ));
                None
            }
        };
        if !weaknesses.is_empty() && !limits.allow_weak_sandbox {
            return Err(format!(
                "this host cannot confine jobs fully: {}. Run the worker as root or in a \
                 delegated cgroup (docs/worker.md#cgroups), or pass --allow-weak-sandbox to \
                 run jobs without these limits",
                weaknesses.join("; ")
            ));
        }
        if !weaknesses.is_empty() {
            tracing::warn!(weaknesses = %weaknesses.join("; "), "bubblewrap runs jobs with a WEAK sandbox, as allowed");
        }
        let executor = Self {
            bwrap,
            limits,
            config_dirs: toolchain::host_config_dirs(),
            languages,
            seccomp,
            cgroups,
            weaknesses,
        };
        // The probe is a whole job's sandbox (namespaces, mounts, the filter, the
        // cgroup) around /usr/bin/true, so a host that cannot give one is refused here,
        // not on every job.
        let mut probe = bash_probe();
        probe.workspace = std::env::temp_dir();
        let mut plan = executor.plan(&probe, "probe");
        if let Some(command) = plan.args.iter().position(|arg| arg == "--") {
            plan.args.truncate(command + 1);
            plan.args.push("/usr/bin/true".into());
        }
        plan.timeout = Duration::from_secs(5);
        let outcome = if executor.limits.inspect_only {
            // Nothing made on the host: the probe runs without a cgroup of its own.
            process::run(plan, StopToken::new()).await
        } else {
            executor.run_plan(&probe, plan, StopToken::new()).await
        };
        match (outcome.end, outcome.exit_code) {
            (gridx_proto::job::RunEnd::Exited, Some(0)) => Ok(executor),
            _ => Err(format!(
                "bwrap cannot set up a sandbox here: {}",
                outcome
                    .message
                    .unwrap_or_else(|| outcome.stderr.trim().to_owned())
            )),
        }
    }

    /// Runs a plan inside a fresh cgroup of its own, removed afterwards.
    async fn run_plan(&self, job: &JobRun, plan: ProcessPlan, stop: StopToken) -> RunOutcome {
        self.run_tapped(job, plan, stop, (None, None)).await
    }

    /// [`Self::run_plan`] with the job's live taps.
    async fn run_tapped(
        &self,
        job: &JobRun,
        mut plan: ProcessPlan,
        stop: StopToken,
        taps: (Option<super::output::Tap>, Option<super::output::Tap>),
    ) -> RunOutcome {
        if let Some(cgroups) = &self.cgroups {
            static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let name = format!(
                "gridx-{}-{}-{}-{}",
                std::process::id(),
                job.job_id,
                job.attempt,
                SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            );
            let limits = JobLimits {
                memory_bytes: u64::from(job.spec.memory_mb.max(16)) * 1024 * 1024,
                pids: self.limits.pids,
                cpu_millicores: self.limits.cpu_millicores,
            };
            let made = tokio::task::spawn_blocking({
                let cgroups = cgroups.clone();
                move || cgroups.create(&name, limits)
            })
            .await;
            let made = made
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
            match made {
                Ok(group) => plan.cgroup = Some(std::sync::Arc::new(group)),
                Err(e) => {
                    return super::sandbox_error(
                        format!("could not make the job's cgroup: {e}"),
                        0,
                    );
                }
            }
        }
        let group = plan.cgroup.clone();
        let outcome = process::run_tapped(plan, stop, taps).await;
        // Every process of the job was killed through the group before `run` returned.
        // The last handle goes in the background: removing the directories waits for
        // the kernel to finish reaping (rmdir answers EBUSY until then), and the
        // outcome need not wait for that.
        if let Some(group) = group {
            drop(tokio::task::spawn_blocking(move || drop(group)));
        }
        outcome
    }

    fn sandbox_args(&self, memory_mb: u32, source: &str, gpus: &GpuGrant) -> Vec<String> {
        let tmpfs_bytes = (u64::from(self.limits.tmpfs_mb) * 1024 * 1024).to_string();
        let mut args: Vec<String> = [
            "--unshare-all",
            // Explicit, so that --disable-userns applies: the job can make no user
            // namespace of its own (max_user_namespaces is 0 inside), which the check
            // after it asserts.
            "--unshare-user",
            "--disable-userns",
            "--assert-userns-disabled",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        .map(String::from)
        .to_vec();
        for dir in ["bin", "lib", "lib64", "sbin"] {
            let host = Path::new("/").join(dir);
            if host.is_symlink() {
                args.extend(["--symlink".into(), format!("usr/{dir}"), format!("/{dir}")]);
            } else if host.exists() {
                args.extend([
                    "--ro-bind".into(),
                    host.display().to_string(),
                    format!("/{dir}"),
                ]);
            }
        }
        for dir in &self.config_dirs {
            let dir = dir.display().to_string();
            args.extend(["--ro-bind".into(), dir.clone(), dir]);
        }
        args.extend(
            [
                "--ro-bind-try",
                "/etc/alternatives",
                "/etc/alternatives",
                "--ro-bind-try",
                "/etc/ld.so.cache",
                "/etc/ld.so.cache",
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                // bwrap's /dev is a tmpfs of half the host's RAM, owned by the job's
                // uid: /dev/shm gets a bounded tmpfs of its own and /dev itself is
                // made read-only below, or a job could fill the host's memory there.
                "--size",
                &tmpfs_bytes,
                "--tmpfs",
                "/dev/shm",
                "--size",
                &tmpfs_bytes,
                "--tmpfs",
                "/tmp",
                "--size",
                &tmpfs_bytes,
                "--tmpfs",
                "/workspace",
            ]
            .map(String::from),
        );
        // Only the assigned GPUs' device nodes, and the driver's shared ones, on top
        // of bwrap's own minimal /dev: a job that asked for none sees no GPU.
        for (host, inside) in &gpus.nodes {
            args.extend([
                "--dev-bind".into(),
                host.display().to_string(),
                inside.display().to_string(),
            ]);
        }
        args.extend([
            "--perms".into(),
            "0400".into(),
            "--file".into(),
            "3".into(),
            source.to_owned(),
        ]);
        args.extend(
            [
                // Everything outside /tmp, /workspace and /dev/shm is read-only, the
                // root and /dev too (not recursive: /dev/null and the rest stay usable).
                "--remount-ro",
                "/",
                "--remount-ro",
                "/dev",
                "--chdir",
                "/workspace",
                "--uid",
                "65534",
                "--gid",
                "65534",
                "--clearenv",
                "--setenv",
                "PATH",
                "/usr/bin:/bin",
                "--setenv",
                "HOME",
                "/workspace",
                "--setenv",
                "LANG",
                "C.UTF-8",
                "--setenv",
                "PYTHONDONTWRITEBYTECODE",
                "1",
                "--setenv",
                "NODE_OPTIONS",
            ]
            .map(String::from),
        );
        args.push(format!("--max-old-space-size={}", memory_mb.max(16)));
        if let Some(devices) = gpus.cuda_visible_devices() {
            args.extend(["--setenv".into(), "CUDA_VISIBLE_DEVICES".into(), devices]);
            args.extend([
                "--setenv".into(),
                "CUDA_DEVICE_ORDER".into(),
                "PCI_BUS_ID".into(),
            ]);
        }
        args.push("--".into());
        args
    }

    /// The bwrap command line and limits of one job; `marker` is its compile marker
    /// (`toolchain`).
    fn plan(&self, job: &JobRun, marker: &str) -> ProcessPlan {
        // The code reaches the sandbox's private tmpfs through a pipe on fd 3
        // (`--file 3`), so nothing of the host's file system needs to be reachable by
        // the job's unprivileged uid, and no extra process runs before the job. bwrap
        // reports on fd 4 whether it started the job's program (`bwrap_status`).
        let spec = &job.spec;
        let source = format!("/workspace/{}", spec.language.source_file_name());
        let mut args = vec![
            "--json-status-fd".to_owned(),
            process::STATUS_FD.to_string(),
        ];
        if self.seccomp.is_some() {
            args.extend(["--seccomp".to_owned(), process::SECCOMP_FD.to_string()]);
        }
        args.extend(self.sandbox_args(spec.memory_mb, &source, &job.gpus));
        let mut command = job_command(
            spec.language,
            spec.memory_mb,
            &source,
            SANDBOX_BUILD_DIR,
            &self.limits,
            marker,
        );
        // Every program a job starts with lives in /usr/bin (`toolchain`).
        command[0] = format!("/usr/bin/{}", command[0]);
        args.extend(command);
        let memory = u64::from(spec.memory_mb) * 1024 * 1024;
        ProcessPlan {
            program: self.bwrap.clone(),
            args,
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: "/".into(),
            rlimits: Rlimits {
                data_bytes: memory,
                cpu_seconds: u64::from(spec.timeout_s) + 1,
                file_bytes: u64::from(self.limits.fsize_mb) * 1024 * 1024,
                open_files: u64::from(self.limits.nofile),
                processes: u64::from(self.limits.pids),
            },
            drop_privileges: true,
            stdin: spec.stdin.clone(),
            fd3: Some(spec.code.clone().into_bytes()),
            bwrap_status: true,
            seccomp: self.seccomp.clone(),
            cgroup: None,
            timeout: Duration::from_secs(u64::from(spec.timeout_s)),
            max_output_bytes: spec.max_output_bytes,
            max_stderr_bytes: toolchain::stderr_capacity(spec.language, spec.max_output_bytes),
        }
    }
}

impl Executor for BubblewrapExecutor {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Bubblewrap
    }

    fn languages(&self) -> Vec<Language> {
        self.languages.clone()
    }

    fn weaknesses(&self) -> Vec<String> {
        self.weaknesses.clone()
    }

    /// The lent GPUs' device nodes must exist to be bound in.
    fn gpu_support(&self, loan: &Loan) -> Result<(), String> {
        let missing = loan.missing_nodes();
        if missing.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = missing.iter().map(|p| p.display().to_string()).collect();
        Err(format!(
            "bubblewrap binds each lent GPU's device node into its jobs' sandboxes, and {} missing (is the NVIDIA driver loaded?)",
            if names.len() == 1 {
                format!("{} is", names[0])
            } else {
                format!("{} are", names.join(", "))
            }
        ))
    }

    /// The cgroups of a worker that was killed outright (its processes are gone with
    /// it: bwrap dies with its parent).
    fn remove_orphans(&self) -> BoxFuture<'_, usize> {
        Box::pin(async move {
            let Some(cgroups) = self.cgroups.clone() else {
                return 0;
            };
            tokio::task::spawn_blocking(move || cgroups.remove_stale())
                .await
                .unwrap_or(0)
        })
    }

    fn run(&self, job: JobRun, stop: StopToken) -> BoxFuture<'_, RunOutcome> {
        Box::pin(async move {
            let marker = toolchain::new_marker();
            let plan = self.plan(&job, &marker);
            let taps = job.taps(&marker);
            let mut outcome = self.run_tapped(&job, plan, stop, taps).await;
            toolchain::split_compile_output(
                job.spec.language,
                &marker,
                job.spec.max_output_bytes,
                &mut outcome,
            );
            outcome
        })
    }
}

/// The job the start-up probe's sandbox is made for.
fn bash_probe() -> JobRun {
    JobRun {
        job_id: gridx_proto::JobId(0),
        attempt: 0,
        spec: gridx_proto::JobSpec {
            gpu_memory_mb: None,
            gpus: 0,
            language: Language::Bash,
            code: "exit 0".into(),
            stdin: String::new(),
            timeout_s: 5,
            memory_mb: 64,
            priority: 0,
            max_output_bytes: 4096,
        },
        workspace: std::env::temp_dir(),
        live: None,
        gpus: GpuGrant::default(),
    }
}

/// Runs jobs as plain processes with rlimits and nothing else. Only with the
/// operator's explicit `allow_unsandboxed`, for trusted jobs (the demo on a machine
/// with neither Docker nor bubblewrap).
pub struct UnsandboxedExecutor {
    limits: SandboxLimits,
    languages: Vec<(Language, PathBuf)>,
}

impl UnsandboxedExecutor {
    pub fn detect(limits: SandboxLimits) -> Self {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let find = |name: &str| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        };
        let probe = SandboxLimits::default();
        let languages = Language::ALL
            .into_iter()
            .filter_map(|l| {
                // The program the job starts with (an interpreter, or bash for a
                // compiler's wrapper), and every program of its toolchain.
                let first = job_command(l, 64, "", "", &probe, "")[0].clone();
                let program = find(&first)?;
                toolchain::required_programs(l)
                    .iter()
                    .filter_map(|p| Path::new(p).file_name()?.to_str())
                    .all(|name| find(name).is_some())
                    .then_some((l, program))
            })
            .collect();
        Self { limits, languages }
    }
}

impl Executor for UnsandboxedExecutor {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Unsandboxed
    }

    fn languages(&self) -> Vec<Language> {
        self.languages.iter().map(|(l, _)| *l).collect()
    }

    fn weaknesses(&self) -> Vec<String> {
        vec![
            "no sandbox: jobs run as plain processes with rlimits, so this worker takes only its owner's jobs".into(),
        ]
    }

    /// No sandbox hides a device, so every job could reach every GPU; the jobs are
    /// the owner's own, and `CUDA_VISIBLE_DEVICES` steers CUDA to the assigned ones.
    fn gpu_support(&self, _loan: &Loan) -> Result<(), String> {
        Ok(())
    }

    fn run(&self, job: JobRun, stop: StopToken) -> BoxFuture<'_, RunOutcome> {
        Box::pin(async move {
            let source = match write_source(&job) {
                Ok(path) => path,
                Err(e) => {
                    return super::sandbox_error(
                        format!("could not write the job's source: {e}"),
                        0,
                    );
                }
            };
            let spec = &job.spec;
            let Some((_, program)) = self.languages.iter().find(|(l, _)| *l == spec.language)
            else {
                return super::sandbox_error(
                    format!("no {} interpreter on this host", spec.language),
                    0,
                );
            };
            // Each attempt's workspace is its own, so the build goes there.
            let build_dir = job.workspace.join("build");
            let marker = toolchain::new_marker();
            let mut command = job_command(
                spec.language,
                spec.memory_mb,
                &source.display().to_string(),
                &build_dir.display().to_string(),
                &self.limits,
                &marker,
            );
            command.remove(0);
            let memory = u64::from(spec.memory_mb) * 1024 * 1024;
            let plan = ProcessPlan {
                program: program.clone(),
                args: command,
                env: vec![
                    ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
                    ("HOME".into(), job.workspace.display().to_string()),
                    ("LANG".into(), "C.UTF-8".into()),
                    // The assigned GPUs by UUID; none (an empty list) for the rest.
                    (
                        "CUDA_VISIBLE_DEVICES".into(),
                        job.gpus.cuda_visible_devices().unwrap_or_default(),
                    ),
                    ("CUDA_DEVICE_ORDER".into(), "PCI_BUS_ID".into()),
                ],
                cwd: job.workspace.clone(),
                rlimits: Rlimits {
                    data_bytes: memory,
                    cpu_seconds: u64::from(spec.timeout_s) + 1,
                    file_bytes: u64::from(self.limits.fsize_mb) * 1024 * 1024,
                    open_files: u64::from(self.limits.nofile),
                    processes: u64::from(self.limits.pids),
                },
                drop_privileges: true,
                stdin: spec.stdin.clone(),
                fd3: None,
                bwrap_status: false,
                seccomp: None,
                cgroup: None,
                timeout: Duration::from_secs(u64::from(spec.timeout_s)),
                max_output_bytes: spec.max_output_bytes,
                max_stderr_bytes: toolchain::stderr_capacity(spec.language, spec.max_output_bytes),
            };
            let taps = job.taps(&marker);
            let mut outcome = process::run_tapped(plan, stop, taps).await;
            toolchain::split_compile_output(
                spec.language,
                &marker,
                spec.max_output_bytes,
                &mut outcome,
            );
            outcome
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridx_e2e::skip::{self, Tool};
    use gridx_proto::job::RunEnd;
    use gridx_proto::{JobId, JobSpec};

    async fn executor() -> Option<BubblewrapExecutor> {
        detected(SandboxLimits::default()).await
    }

    /// The executor, or `None` after a skip (a failure with CI=true: gridx_e2e::skip).
    async fn detected(limits: SandboxLimits) -> Option<BubblewrapExecutor> {
        if !skip::require(Tool::Bubblewrap) {
            return None;
        }
        match BubblewrapExecutor::detect(limits).await {
            Ok(executor) => Some(executor),
            Err(why) => {
                skip::skip(Tool::Bubblewrap, why);
                None
            }
        }
    }

    fn bash_job(code: &str) -> JobRun {
        JobRun {
            gpus: Default::default(),
            job_id: JobId(1),
            attempt: 1,
            spec: JobSpec {
                gpu_memory_mb: None,
                gpus: 0,
                language: Language::Bash,
                code: code.into(),
                stdin: String::new(),
                timeout_s: 20,
                memory_mb: 64,
                priority: 0,
                max_output_bytes: 64 * 1024,
            },
            workspace: std::env::temp_dir(),
            live: None,
        }
    }

    /// A job's plan with `extra` bwrap options added before the command.
    fn plan_with(executor: &BubblewrapExecutor, code: &str, extra: &[&str]) -> ProcessPlan {
        let mut plan = executor.plan(&bash_job(code), "m");
        let command = plan
            .args
            .iter()
            .position(|arg| arg == "--")
            .expect("the command follows --");
        plan.args
            .splice(command..command, extra.iter().map(|arg| arg.to_string()));
        plan
    }

    fn assert_sandbox_error(outcome: &RunOutcome, says: &str) {
        assert_eq!(outcome.end, RunEnd::SandboxError, "{outcome:?}");
        assert_eq!(outcome.exit_code, None, "{outcome:?}");
        assert_eq!(
            outcome.final_status(),
            (
                gridx_proto::JobStatus::Error,
                Some(gridx_proto::job::FailureReason::SandboxError)
            )
        );
        let message = outcome.message.as_deref().unwrap_or_default();
        assert!(
            message.starts_with("the sandbox could not start: bwrap: ") && message.contains(says),
            "{outcome:?}"
        );
    }

    /// bwrap cannot clone its namespaces (here: the job's uid may run one process, bwrap
    /// itself), the "Creating new namespace failed: Resource temporarily unavailable"
    /// seen in production: bwrap never reports a child.
    #[tokio::test]
    async fn namespaces_that_cannot_be_created_are_a_sandbox_error() {
        // RLIMIT_NPROC is applied only by a root worker.
        if !skip::require(Tool::Root) {
            return;
        }
        let Some(executor) = executor().await else {
            return;
        };
        let mut plan = plan_with(&executor, "echo ran; exit 0", &[]);
        plan.rlimits.processes = 1;
        let outcome = process::run(plan, StopToken::new()).await;
        assert_sandbox_error(&outcome, "Creating new namespace failed");
    }

    /// A mount of the setup fails after bwrap reported its child, but before the job's
    /// program: still the sandbox's failure.
    #[tokio::test]
    async fn a_failed_mount_is_a_sandbox_error() {
        let Some(executor) = executor().await else {
            return;
        };
        let plan = plan_with(
            &executor,
            "echo ran; exit 1",
            &["--ro-bind", "/gridx-no-such-path", "/gridx"],
        );
        let outcome = process::run(plan, StopToken::new()).await;
        assert_sandbox_error(&outcome, "/gridx-no-such-path");
    }

    /// The exec of the interpreter itself fails: the job's code never ran.
    #[tokio::test]
    async fn an_interpreter_that_cannot_run_is_a_sandbox_error() {
        let Some(executor) = executor().await else {
            return;
        };
        let mut plan = executor.plan(&bash_job("exit 1"), "m");
        let command = plan.args.iter().position(|arg| arg == "--").unwrap() + 1;
        plan.args[command] = "/usr/bin/gridx-no-such-interpreter".into();
        let outcome = process::run(plan, StopToken::new()).await;
        assert_sandbox_error(&outcome, "execvp /usr/bin/gridx-no-such-interpreter");
    }

    /// Neither the source pipe (fd 3) nor the status pipe (fd 4) reaches the job, so it
    /// can neither forge bwrap's report nor keep it from ending.
    #[tokio::test]
    async fn the_pipes_never_reach_the_job() {
        let Some(executor) = executor().await else {
            return;
        };
        let code =
            "for fd in 3 4; do [ -e /proc/$$/fd/$fd ] && echo \"fd $fd open\"; done; echo checked";
        let outcome = executor.run(bash_job(code), StopToken::new()).await;
        assert_eq!(
            (outcome.end, outcome.exit_code, outcome.stdout.as_str()),
            (RunEnd::Exited, Some(0), "checked\n"),
            "{outcome:?}"
        );
    }

    /// A job's program killed by a signal (here by itself) is the job's own end, with
    /// bwrap's 128 + signal as its exit code; that a job says what bwrap says on a setup
    /// failure is checked in tests/executors.rs.
    #[tokio::test]
    async fn a_job_killed_by_a_signal_is_its_own_end() {
        let Some(executor) = executor().await else {
            return;
        };
        let outcome = executor.run(bash_job("kill -9 $$"), StopToken::new()).await;
        assert_eq!(
            (outcome.end, outcome.exit_code),
            (RunEnd::Exited, Some(137)),
            "{outcome:?}"
        );
    }

    fn python_job(code: &str, memory_mb: u32) -> JobRun {
        let mut job = bash_job("");
        job.spec.language = Language::Python;
        job.spec.code = code.into();
        job.spec.memory_mb = memory_mb;
        job
    }

    /// A busy loop of `seconds` that prints its own CPU share: CPU time over wall time.
    fn cpu_share_job(seconds: f64) -> JobRun {
        let code = format!(
            "import time\n\
             wall, cpu = time.monotonic(), time.process_time()\n\
             while time.monotonic() - wall < {seconds}:\n\
             \x20   pass\n\
             print(round((time.process_time() - cpu) / (time.monotonic() - wall), 3))\n"
        );
        python_job(&code, 64)
    }

    /// Inside a job no user namespace can be made (`unshare -Ur` gave uid 0 with every
    /// capability before the filter and --disable-userns), nor any other namespace,
    /// and the refusal is the job's own failure, not a sandbox error.
    #[tokio::test]
    async fn nested_namespaces_are_refused_as_the_jobs_own_failure() {
        let Some(executor) = executor().await else {
            return;
        };
        let code = "unshare -Ur id -u 2>&1; echo \"user $?\"\n\
                    unshare -n true 2>&1; echo \"net $?\"\n\
                    unshare -m true 2>&1; echo \"mount $?\"\n\
                    exit 3";
        let outcome = executor.run(bash_job(code), StopToken::new()).await;
        assert_eq!(
            (outcome.end, outcome.exit_code),
            (RunEnd::Exited, Some(3)),
            "{outcome:?}"
        );
        for namespace in ["user", "net", "mount"] {
            assert!(
                outcome.stdout.contains(&format!("{namespace} 1")),
                "unshare of a {namespace} namespace was not refused: {outcome:?}"
            );
        }
        assert!(
            outcome.stdout.contains("Operation not permitted"),
            "{outcome:?}"
        );
        assert!(!outcome.stdout.lines().any(|l| l == "0"), "{outcome:?}");
    }

    /// A call the filter denies is an ordinary error the job can see and handle.
    #[tokio::test]
    async fn a_denied_call_fails_with_eperm_inside_the_job() {
        let Some(executor) = executor().await else {
            return;
        };
        let code = format!(
            "import ctypes, os\n\
             libc = ctypes.CDLL(None, use_errno=True)\n\
             for name, nr in (('keyctl', {keyctl}), ('bpf', {bpf}), ('userfaultfd', {uffd}), ('perf_event_open', {perf})):\n\
             \x20   r = libc.syscall(nr, 0, 0, 0, 0, 0)\n\
             \x20   print(name, r, os.strerror(ctypes.get_errno()))\n\
             import socket\n\
             try:\n\
             \x20   socket.socket(40, socket.SOCK_STREAM)\n\
             \x20   print('vsock OPENED')\n\
             except OSError as e:\n\
             \x20   print('vsock', os.strerror(e.errno))\n\
             r = libc.syscall({personality}, 0x0040000)\n\
             print('personality', r, os.strerror(ctypes.get_errno()))\n\
             r = libc.syscall(467, 0, 0, 0, 0, 0)\n\
             print('newer', r, os.strerror(ctypes.get_errno()))\n\
             raise SystemExit(4)\n",
            personality = libc::SYS_personality,
            keyctl = libc::SYS_keyctl,
            bpf = libc::SYS_bpf,
            uffd = libc::SYS_userfaultfd,
            perf = libc::SYS_perf_event_open,
        );
        let outcome = executor.run(python_job(&code, 64), StopToken::new()).await;
        assert_eq!(
            (outcome.end, outcome.exit_code),
            (RunEnd::Exited, Some(4)),
            "{outcome:?}"
        );
        for name in ["keyctl", "bpf", "userfaultfd", "perf_event_open"] {
            assert!(
                outcome
                    .stdout
                    .contains(&format!("{name} -1 Operation not permitted")),
                "{name}: {outcome:?}"
            );
        }
        // vsock would reach a VM's host whatever the network namespace; personality
        // flags such as ADDR_NO_RANDOMIZE are not Docker's five; and a call newer than
        // the audited list is "not implemented".
        for line in [
            "vsock Operation not permitted",
            "personality -1 Operation not permitted",
            "newer -1 Function not implemented",
        ] {
            assert!(outcome.stdout.contains(line), "{line}: {outcome:?}");
        }
    }

    /// Shared memory (memfd, /dev/shm, tmpfs) is charged to the job's cgroup: past its
    /// memory limit the kernel OOM-kills it, and the outcome says OOM from the group's
    /// own counter. Before the cgroup, a 64 MB job held 300 MB through memfd.
    #[tokio::test]
    async fn shared_memory_counts_against_the_jobs_memory() {
        let Some(executor) = executor().await else {
            return;
        };
        let memfd = "import os\n\
                     fd = os.memfd_create('bomb')\n\
                     chunk = b'x' * (1 << 20)\n\
                     for i in range(300):\n\
                     \x20   os.write(fd, chunk)\n\
                     print('held', i + 1, 'MiB')\n";
        let outcome = executor.run(python_job(memfd, 64), StopToken::new()).await;
        assert_eq!(outcome.end, RunEnd::Oom, "memfd: {outcome:?}");
        assert!(!outcome.stdout.contains("held"), "{outcome:?}");
        // Three tmpfs of 64 MiB each, filled together, past a 48 MiB job.
        let tmpfs = "for d in /tmp /dev/shm /workspace; do head -c 60M /dev/zero > $d/fill; done\n\
                     echo filled";
        let mut job = bash_job(tmpfs);
        job.spec.memory_mb = 48;
        let outcome = executor.run(job, StopToken::new()).await;
        assert_eq!(outcome.end, RunEnd::Oom, "tmpfs: {outcome:?}");
        assert!(!outcome.stdout.contains("filled"), "{outcome:?}");
    }

    /// cpu_millicores holds under bubblewrap: a busy loop at 500 millicores gets about
    /// half a core. The job measures itself: CPU time over wall time.
    #[tokio::test]
    async fn a_busy_loop_gets_only_its_cpu_share() {
        let limits = SandboxLimits {
            cpu_millicores: 500,
            ..SandboxLimits::default()
        };
        let Some(executor) = detected(limits).await else {
            return;
        };
        let outcome = executor.run(cpu_share_job(2.0), StopToken::new()).await;
        assert_eq!(outcome.end, RunEnd::Exited, "{outcome:?}");
        let share: f64 = outcome
            .stdout
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{outcome:?}"));
        // Only an upper bound: a loaded machine gives less, never more.
        assert!(share <= 0.55, "a 500-millicore job used {share} of a core");
    }

    /// The same at 100 millicores, which even a busy test machine's scheduler would
    /// exceed without the quota.
    #[tokio::test]
    async fn a_tenth_of_a_core_is_a_tenth() {
        let limits = SandboxLimits {
            cpu_millicores: 100,
            ..SandboxLimits::default()
        };
        let Some(executor) = detected(limits).await else {
            return;
        };
        let outcome = executor.run(cpu_share_job(1.5), StopToken::new()).await;
        let share: f64 = outcome
            .stdout
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{outcome:?}"));
        assert!(share <= 0.15, "a 100-millicore job used {share} of a core");
    }

    /// The cgroup's pids limit bounds a fork bomb whatever uid the worker runs as
    /// (RLIMIT_NPROC only holds for a root worker's per-job uid).
    #[tokio::test]
    async fn a_fork_bomb_meets_the_pids_limit() {
        let limits = SandboxLimits {
            pids: 32,
            ..SandboxLimits::default()
        };
        let Some(executor) = detected(limits).await else {
            return;
        };
        let code = "import os, time\n\
                    made = 0\n\
                    for _ in range(200):\n\
                    \x20   try:\n\
                    \x20       pid = os.fork()\n\
                    \x20   except OSError:\n\
                    \x20       break\n\
                    \x20   if pid == 0:\n\
                    \x20       time.sleep(5)\n\
                    \x20       os._exit(0)\n\
                    \x20   made += 1\n\
                    print('running', made)\n";
        // RLIMIT_NPROC lifted, as for a worker run by a normal user: only the cgroup
        // bounds the bomb.
        let job = python_job(code, 64);
        let mut plan = executor.plan(&job, "m");
        let mut hard = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit fills a valid struct.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NPROC, &mut hard) }, 0);
        plan.rlimits.processes = hard.rlim_max;
        let outcome = executor.run_plan(&job, plan, StopToken::new()).await;
        let running: u32 = outcome
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("running "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{outcome:?}"));
        assert!(
            running <= 32,
            "{running} processes under a pids limit of 32"
        );
    }

    /// A process that left the job's process group and session (`setsid`) is still in
    /// the job's cgroup, and dies with the job.
    #[tokio::test]
    async fn nothing_outlives_the_job() {
        let Some(executor) = executor().await else {
            return;
        };
        let marker = format!("gridx-outlive-{}", std::process::id());
        let code = format!("setsid sh -c 'exec -a {marker} sleep 300' & sleep 0.3; echo started");
        let outcome = executor.run(bash_job(&code), StopToken::new()).await;
        assert_eq!(outcome.stdout, "started\n", "{outcome:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let left = std::process::Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .expect("pgrep");
        assert!(
            left.stdout.is_empty(),
            "still running after the job: {}",
            String::from_utf8_lossy(&left.stdout)
        );
    }

    #[test]
    fn versions_are_read_and_compared() {
        assert_eq!(parse_version("bubblewrap 0.8.0"), Some((0, 8, 0)));
        assert_eq!(parse_version("bubblewrap 0.11.0-rc1"), Some((0, 11, 0)));
        assert_eq!(parse_version("bubblewrap 1"), Some((1, 0, 0)));
        assert_eq!(parse_version("nonsense"), None);
        assert!(parse_version("bubblewrap 0.6.1") < Some(MIN_BWRAP));
    }

    /// Found by tests/hostile_jobs.rs: bwrap's own /dev is a tmpfs of half the host's
    /// RAM owned by the job's uid, so a job could fill the host's memory through /dev
    /// or /dev/shm. /dev must be read-only and /dev/shm bounded like /tmp.
    #[tokio::test]
    async fn dev_is_read_only_and_dev_shm_is_bounded() {
        let limits = SandboxLimits {
            tmpfs_mb: 4,
            ..SandboxLimits::default()
        };
        let Some(executor) = detected(limits).await else {
            return;
        };
        let code = "echo x > /dev/gridx-escape 2> /dev/null && echo 'dev WRITABLE' || echo 'dev read-only'\n\
                    head -c 64M /dev/zero > /dev/shm/fill 2> /dev/null\n\
                    echo \"shm $(stat -c %s /dev/shm/fill)\"\n\
                    echo x > /dev/null && echo 'null ok'\n";
        let outcome = executor.run(bash_job(code), StopToken::new()).await;
        assert_eq!(outcome.end, RunEnd::Exited, "{outcome:?}");
        let lines: Vec<&str> = outcome.stdout.lines().collect();
        assert_eq!(lines.len(), 3, "{outcome:?}");
        assert_eq!(lines[0], "dev read-only", "{outcome:?}");
        let shm: u64 = lines[1]
            .strip_prefix("shm ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{outcome:?}"));
        assert!(
            shm <= 4 * 1024 * 1024,
            "/dev/shm took {shm} bytes: {outcome:?}"
        );
        assert_eq!(lines[2], "null ok", "{outcome:?}");
    }
}
