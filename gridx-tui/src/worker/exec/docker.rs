//! The Docker executor, through bollard. One fresh container per attempt, never
//! reused, hardened by default: no network, read-only root filesystem, size-limited
//! tmpfs for /tmp and /workspace, every capability dropped, no-new-privileges, uid
//! 65534, a pids limit, memory equal to memory+swap, a CPU quota, nofile and fsize
//! ulimits, an init process, and no log driver (output is read from the attach
//! stream and capped here, so nothing grows on the engine's disk).
//!
//! The job's code reaches the container through its stdin (the first N bytes, written
//! to the tmpfs by `head -c N`), so nothing of the host is mounted: that keeps working
//! when the worker itself runs in a container and talks to the host's engine.

use super::output::CappedBuffer;
use super::{Executor, JobRun, SandboxLimits, StopReason, StopToken, interpreter_command};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, ResourcesUlimits};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, KillContainerOptionsBuilder,
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use gridx_proto::Language;
use gridx_proto::config::RuntimeImages;
use gridx_proto::job::{RunEnd, RunOutcome};
use gridx_proto::protocol::ExecutorKind;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// Label on every container this worker creates, with the worker's name as value.
pub const WORKER_LABEL: &str = "io.gridx.worker";
const JOB_LABEL: &str = "io.gridx.job";

pub struct DockerExecutor {
    docker: Docker,
    images: RuntimeImages,
    languages: Vec<Language>,
    limits: SandboxLimits,
    worker_name: String,
    pool: Option<std::sync::Arc<Pool>>,
}

/// An experiment, used by the sandbox-cost benchmark: containers created ahead of
/// time (never started, one per job, never reused) for jobs with the default memory
/// limit, refilled in the background as they are taken.
pub struct Pool {
    ready: std::sync::Mutex<HashMap<Language, std::collections::VecDeque<String>>>,
}

/// The memory limit pooled containers are created with (the default `memory_mb`, docs/api.md).
const POOL_MEMORY_MB: u32 = 256;

/// Connects to the local engine and pings it within `timeout`.
pub async fn connect(timeout: Duration) -> Result<Docker, String> {
    let docker =
        Docker::connect_with_local_defaults().map_err(|e| format!("no Docker engine: {e}"))?;
    match tokio::time::timeout(timeout, docker.ping()).await {
        Ok(Ok(_)) => Ok(docker),
        Ok(Err(e)) => Err(format!("the Docker engine did not answer: {e}")),
        Err(_) => Err(format!(
            "the Docker engine did not answer within {} ms",
            timeout.as_millis()
        )),
    }
}

pub fn image_for(images: &RuntimeImages, language: Language) -> &str {
    match language {
        Language::Python => &images.python,
        Language::Node => &images.node,
        Language::Bash => &images.bash,
    }
}

impl DockerExecutor {
    /// Uses an engine that answered a ping; offers the languages whose image exists.
    pub async fn new(
        docker: Docker,
        images: RuntimeImages,
        limits: SandboxLimits,
        worker_name: String,
    ) -> Self {
        let mut languages = Vec::new();
        for language in Language::ALL {
            if docker
                .inspect_image(image_for(&images, language))
                .await
                .is_ok()
            {
                languages.push(language);
            }
        }
        Self {
            docker,
            images,
            languages,
            limits,
            worker_name,
            pool: None,
        }
    }

    /// Pre-creates `size` containers per language (the pool experiment).
    pub async fn with_pool(mut self, size: usize) -> Self {
        let pool = std::sync::Arc::new(Pool {
            ready: std::sync::Mutex::new(HashMap::new()),
        });
        for language in self.languages.clone() {
            for _ in 0..size {
                let config = self.container_config(language, POOL_MEMORY_MB, "pool".into());
                if let Ok(created) = self.docker.create_container(None, config).await
                    && let Ok(mut ready) = pool.ready.lock()
                {
                    ready.entry(language).or_default().push_back(created.id);
                }
            }
        }
        self.pool = Some(pool);
        self
    }

    /// A pre-created container for this job, if the pool has one that fits; a
    /// replacement is created in the background.
    fn take_pooled(&self, job: &JobRun) -> Option<String> {
        let pool = self.pool.as_ref()?;
        if job.spec.memory_mb != POOL_MEMORY_MB {
            return None;
        }
        let language = job.spec.language;
        let id = pool.ready.lock().ok()?.get_mut(&language)?.pop_front()?;
        let docker = self.docker.clone();
        let config = self.container_config(language, POOL_MEMORY_MB, "pool".into());
        let pool = pool.clone();
        tokio::spawn(async move {
            if let Ok(created) = docker.create_container(None, config).await
                && let Ok(mut ready) = pool.ready.lock()
            {
                ready.entry(language).or_default().push_back(created.id);
            }
        });
        Some(id)
    }

    fn container_config(
        &self,
        language: Language,
        memory_mb: u32,
        label: String,
    ) -> ContainerCreateBody {
        let memory = i64::from(memory_mb) * 1024 * 1024;
        let tmpfs_mb = self.limits.tmpfs_mb;
        let source = format!("/workspace/{}", language.source_file_name());
        let run = interpreter_command(language, &source).join(" ");
        let mut tmpfs = HashMap::new();
        tmpfs.insert(
            "/tmp".to_owned(),
            format!("rw,nosuid,nodev,size={tmpfs_mb}m,mode=1777"),
        );
        tmpfs.insert(
            "/workspace".to_owned(),
            format!("rw,nosuid,nodev,size={tmpfs_mb}m,uid=65534,gid=65534,mode=0700"),
        );
        let mut labels = HashMap::new();
        labels.insert(WORKER_LABEL.to_owned(), self.worker_name.clone());
        labels.insert(JOB_LABEL.to_owned(), label);
        let fsize = i64::from(self.limits.fsize_mb) * 1024 * 1024;
        let nofile = i64::from(self.limits.nofile);
        ContainerCreateBody {
            image: Some(image_for(&self.images, language).to_owned()),
            // The first line of stdin is the code's length, then the code, then the
            // job's own stdin: so the same container works for any code (and can be
            // created before the job is known). `read` takes exactly one line.
            cmd: Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("umask 077 && read -r n && head -c \"$n\" > {source} && exec {run}"),
            ]),
            env: Some(vec![
                "HOME=/workspace".into(),
                "LANG=C.UTF-8".into(),
                "PATH=/usr/local/bin:/usr/bin:/bin".into(),
                "PYTHONDONTWRITEBYTECODE=1".into(),
                format!("NODE_OPTIONS=--max-old-space-size={}", memory_mb.max(16)),
            ]),
            user: Some("65534:65534".into()),
            working_dir: Some("/workspace".into()),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            open_stdin: Some(true),
            stdin_once: Some(true),
            tty: Some(false),
            network_disabled: Some(true),
            labels: Some(labels),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                readonly_rootfs: Some(true),
                tmpfs: Some(tmpfs),
                cap_drop: Some(vec!["ALL".into()]),
                security_opt: Some(vec!["no-new-privileges".into()]),
                pids_limit: Some(i64::from(self.limits.pids)),
                memory: Some(memory),
                memory_swap: Some(memory),
                nano_cpus: Some(i64::from(self.limits.cpu_millicores) * 1_000_000),
                ulimits: Some(vec![
                    ResourcesUlimits {
                        name: Some("nofile".into()),
                        soft: Some(nofile),
                        hard: Some(nofile),
                    },
                    ResourcesUlimits {
                        name: Some("fsize".into()),
                        soft: Some(fsize),
                        hard: Some(fsize),
                    },
                ]),
                init: Some(true),
                log_config: Some(HostConfigLogConfig {
                    typ: Some("none".into()),
                    config: None,
                }),
                auto_remove: Some(false),
                privileged: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    async fn remove(&self, id: &str) {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        if let Err(e) = self.docker.remove_container(id, Some(options)).await {
            tracing::warn!(container = id, error = %e, "could not remove a job container");
        }
    }

    async fn run_attempt(&self, job: JobRun, stop: StopToken) -> RunOutcome {
        if let Some(id) = self.take_pooled(&job) {
            let outcome = self.attach_and_wait(&id, &job, &stop).await;
            self.remove(&id).await;
            return outcome;
        }
        let name = format!(
            "gridx-{}-{}-{}-{}",
            self.worker_name,
            job.job_id,
            job.attempt,
            std::process::id()
        );
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let created = match self
            .docker
            .create_container(
                Some(options),
                self.container_config(
                    job.spec.language,
                    job.spec.memory_mb,
                    format!("{}.{}", job.job_id, job.attempt),
                ),
            )
            .await
        {
            Ok(created) => created,
            Err(e) => {
                return super::sandbox_error(format!("could not create the container: {e}"), 0);
            }
        };
        let id = created.id;
        let outcome = self.attach_and_wait(&id, &job, &stop).await;
        self.remove(&id).await;
        outcome
    }

    async fn attach_and_wait(&self, id: &str, job: &JobRun, stop: &StopToken) -> RunOutcome {
        let spec = &job.spec;
        let attach = AttachContainerOptionsBuilder::new()
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .stream(true)
            .build();
        let attached = match self.docker.attach_container(id, Some(attach)).await {
            Ok(attached) => attached,
            Err(e) => {
                return super::sandbox_error(format!("could not attach to the container: {e}"), 0);
            }
        };
        let mut input = attached.input;
        let mut output = attached.output;
        let cap = spec.max_output_bytes;
        let reader = tokio::spawn(async move {
            let mut stdout = CappedBuffer::new(cap);
            let mut stderr = CappedBuffer::new(cap);
            // Read to the end even past the caps, so the container never blocks on a
            // full pipe; what is past the cap is dropped here.
            while let Some(frame) = output.next().await {
                match frame {
                    Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                        stdout.push(&message)
                    }
                    Ok(LogOutput::StdErr { message }) => stderr.push(&message),
                    Ok(LogOutput::StdIn { .. }) => {}
                    Err(_) => break,
                }
            }
            (stdout, stderr)
        });
        let started = Instant::now();
        if let Err(e) = self.docker.start_container(id, None).await {
            reader.abort();
            return super::sandbox_error(format!("could not start the container: {e}"), 0);
        }
        let mut payload = Vec::with_capacity(spec.code.len() + spec.stdin.len() + 12);
        payload.extend_from_slice(format!("{}\n", spec.code.len()).as_bytes());
        payload.extend_from_slice(spec.code.as_bytes());
        payload.extend_from_slice(spec.stdin.as_bytes());
        let writer = tokio::spawn(async move {
            let _ = input.write_all(&payload).await;
            let _ = input.shutdown().await;
        });

        let timeout = Duration::from_secs(u64::from(spec.timeout_s));
        let mut wait = self.docker.wait_container(id, None);
        let mut killed_for = None;
        let exit = tokio::select! {
            exit = wait.next() => exit,
            _ = tokio::time::sleep(timeout) => { killed_for = Some(RunEnd::TimedOut); None }
            _ = stop.stopped() => {
                killed_for = Some(match stop.reason() {
                    Some(StopReason::Shutdown) => RunEnd::WorkerShutdown,
                    _ => RunEnd::Cancelled,
                });
                None
            }
        };
        let exit_code = match (killed_for, exit) {
            (None, Some(Ok(response))) => Some(response.status_code),
            (None, Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. }))) => {
                Some(code)
            }
            (None, other) => {
                writer.abort();
                reader.abort();
                let why = match other {
                    Some(Err(e)) => e.to_string(),
                    _ => "the engine ended the wait without a status".into(),
                };
                return super::sandbox_error(
                    format!("waiting for the container failed: {why}"),
                    elapsed_ms(started),
                );
            }
            (Some(_), _) => {
                let kill = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
                let _ = self.docker.kill_container(id, Some(kill)).await;
                // The wait stream resolves once the container is really gone.
                let mut wait = self.docker.wait_container(id, None);
                let _ = tokio::time::timeout(Duration::from_secs(10), wait.next()).await;
                None
            }
        };
        let duration_ms = elapsed_ms(started);
        writer.abort();
        let (stdout, stderr) = match tokio::time::timeout(Duration::from_secs(5), reader).await {
            Ok(Ok(buffers)) => buffers,
            _ => (CappedBuffer::new(0), CappedBuffer::new(0)),
        };
        let oom = self
            .docker
            .inspect_container(id, None)
            .await
            .ok()
            .and_then(|c| c.state)
            .and_then(|s| s.oom_killed)
            .unwrap_or(false);
        let end = match killed_for {
            Some(end) => end,
            None if oom => RunEnd::Oom,
            None => RunEnd::Exited,
        };
        let (stdout, stdout_truncated) = stdout.into_text();
        let (stderr, stderr_truncated) = stderr.into_text();
        RunOutcome {
            end,
            exit_code: exit_code.map(|c| i32::try_from(c).unwrap_or(i32::MAX)),
            stdout,
            stderr,
            stdout_truncated,
            stderr_truncated,
            duration_ms,
            message: (end == RunEnd::Oom)
                .then(|| format!("killed at the memory limit of {} MB", spec.memory_mb)),
        }
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Executor for DockerExecutor {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Docker
    }

    fn languages(&self) -> Vec<Language> {
        self.languages.clone()
    }

    fn run(&self, job: JobRun, stop: StopToken) -> BoxFuture<'_, RunOutcome> {
        Box::pin(self.run_attempt(job, stop))
    }

    fn remove_orphans(&self) -> BoxFuture<'_, usize> {
        Box::pin(async move {
            let mut filters = HashMap::new();
            filters.insert(
                "label",
                vec![format!("{WORKER_LABEL}={}", self.worker_name)],
            );
            let options = ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build();
            let containers = match self.docker.list_containers(Some(options)).await {
                Ok(list) => list,
                Err(e) => {
                    tracing::warn!(error = %e, "could not list containers to remove orphans");
                    return 0;
                }
            };
            let mut removed = 0;
            for container in containers {
                if let Some(id) = container.id {
                    self.remove(&id).await;
                    removed += 1;
                }
            }
            removed
        })
    }
}
