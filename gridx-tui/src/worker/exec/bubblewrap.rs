//! The bubblewrap (`bwrap`) sandbox, used when no Docker engine answers: every
//! namespace unshared (so no network), the host's /usr mounted read-only, a private
//! size-limited tmpfs for /tmp, /dev/shm and the workspace, everything else read-only
//! (/dev included), the job's source copied in through a pipe, no capabilities, uid
//! 65534, rlimits, and the whole process group killed on timeout or cancel.
//!
//! bwrap reports on a status pipe (`--json-status-fd`) whether it started the job's
//! program; when it ends without saying so, its setup failed and the outcome is
//! `SandboxError`, never the job's own failure (see [`process::STATUS_FD`]).

use super::process::{self, ProcessPlan, Rlimits};
use super::{Executor, JobRun, SandboxLimits, StopToken, interpreter_command, write_source};
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
}

/// Where system interpreters live. Only these are mounted into the sandbox, so a
/// language is offered only when its interpreter is under /usr.
fn interpreter_path(language: Language) -> &'static str {
    match language {
        Language::Python => "/usr/bin/python3",
        Language::Node => "/usr/bin/node",
        Language::Bash => "/usr/bin/bash",
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
        let languages: Vec<Language> = Language::ALL
            .into_iter()
            .filter(|l| Path::new(interpreter_path(*l)).exists())
            .collect();
        let executor = Self {
            bwrap,
            limits,
            languages,
        };
        // The probe asks for the status report too (on stdout, which goes nowhere), so
        // a bwrap too old for `--json-status-fd` (before 0.5) is refused here, not on
        // every job.
        let probe = tokio::process::Command::new(&executor.bwrap)
            .args(["--json-status-fd", "1"])
            .args(executor.sandbox_args(16, None))
            .arg("/usr/bin/true")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .output();
        match tokio::time::timeout(Duration::from_secs(5), probe).await {
            Ok(Ok(out)) if out.status.success() => Ok(executor),
            Ok(Ok(out)) => Err(format!(
                "bwrap cannot create namespaces here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Ok(Err(e)) => Err(format!("bwrap did not start: {e}")),
            Err(_) => Err("bwrap did not answer within 5 s".into()),
        }
    }

    fn sandbox_args(&self, memory_mb: u32, source: Option<&str>) -> Vec<String> {
        let tmpfs_bytes = (u64::from(self.limits.tmpfs_mb) * 1024 * 1024).to_string();
        let mut args: Vec<String> = [
            "--unshare-all",
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
        if let Some(source) = source {
            args.extend([
                "--perms".into(),
                "0400".into(),
                "--file".into(),
                "3".into(),
                source.to_owned(),
            ]);
        }
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
        args.push("--".into());
        args
    }

    /// The bwrap command line and limits of one job.
    fn plan(&self, job: &JobRun) -> ProcessPlan {
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
        args.extend(self.sandbox_args(spec.memory_mb, Some(&source)));
        let mut command = interpreter_command(spec.language, &source);
        command[0] = interpreter_path(spec.language).into();
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
            timeout: Duration::from_secs(u64::from(spec.timeout_s)),
            max_output_bytes: spec.max_output_bytes,
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

    fn run(&self, job: JobRun, stop: StopToken) -> BoxFuture<'_, RunOutcome> {
        Box::pin(async move { process::run(self.plan(&job), stop).await })
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
        let languages = Language::ALL
            .into_iter()
            .filter_map(|l| {
                let name = interpreter_command(l, "")[0].clone();
                std::env::split_paths(&path)
                    .map(|dir| dir.join(&name))
                    .find(|p| p.is_file())
                    .map(|p| (l, p))
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
            let mut command = interpreter_command(spec.language, &source.display().to_string());
            command.remove(0);
            let memory = u64::from(spec.memory_mb) * 1024 * 1024;
            let plan = ProcessPlan {
                program: program.clone(),
                args: command,
                env: vec![
                    ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
                    ("HOME".into(), job.workspace.display().to_string()),
                    ("LANG".into(), "C.UTF-8".into()),
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
                timeout: Duration::from_secs(u64::from(spec.timeout_s)),
                max_output_bytes: spec.max_output_bytes,
            };
            process::run(plan, stop).await
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
            job_id: JobId(1),
            attempt: 1,
            spec: JobSpec {
                language: Language::Bash,
                code: code.into(),
                stdin: String::new(),
                timeout_s: 20,
                memory_mb: 64,
                priority: 0,
                max_output_bytes: 64 * 1024,
            },
            workspace: std::env::temp_dir(),
        }
    }

    /// A job's plan with `extra` bwrap options added before the command.
    fn plan_with(executor: &BubblewrapExecutor, code: &str, extra: &[&str]) -> ProcessPlan {
        let mut plan = executor.plan(&bash_job(code));
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
        let mut plan = executor.plan(&bash_job("exit 1"));
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
