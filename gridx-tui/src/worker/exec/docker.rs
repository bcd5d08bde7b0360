//! The Docker executor, through bollard. One fresh container per attempt, never
//! reused, hardened by default: no network, read-only root filesystem, size-limited
//! tmpfs for /tmp and /workspace, every capability dropped, no-new-privileges, uid
//! 65534, a pids limit, memory equal to memory+swap, a CPU quota, nofile and fsize
//! ulimits, its own deadline, and no log driver (output is read from the attach
//! stream and capped here, so nothing grows on the engine's disk).
//!
//! The job's code reaches the container through its stdin (the first N bytes, written
//! to the tmpfs by `head -c N`), so nothing of the host is mounted: that keeps working
//! when the worker itself runs in a container and talks to the host's engine.
//!
//! Every container also carries its own deadline: GNU `timeout --signal=KILL` is its
//! PID 1 and runs the job, given the job's timeout plus [`DEADLINE_GRACE_S`] on
//! stdin. The worker kills at the timeout itself; the deadline is for a worker that
//! died (SIGKILL, a crash) and can no longer kill: its containers still end on time.
//! PID 1, not a child of docker's init: the kernel keeps the job from killing or
//! stopping its namespace's init, while a `timeout` under docker's init could be
//! stopped (SIGSTOP) by the job, which would then outlive its deadline. The price:
//! nothing reaps the job's orphans; their zombies count against the job's own pids
//! limit until the container ends.

use super::output::CappedBuffer;
use super::toolchain::{self, SANDBOX_BUILD_DIR, shell_quote};
use super::{Executor, JobRun, SandboxLimits, StopReason, StopToken, job_command};
use crate::worker::gpus::{GpuGrant, Loan};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::DeviceRequest;
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

/// Seconds past the job's timeout at which the container ends by itself. The worker's
/// own timer starts before the container does and kills first; this only ever fires
/// when the worker is gone.
pub const DEADLINE_GRACE_S: u32 = 5;
/// Seconds the container waits for each part of its handoff (the two header lines,
/// then the code) before giving up, so that even a container whose worker died
/// before writing its stdin ends.
const HANDOFF_S: u32 = 30;

/// The smallest memory limit a job container gets, in MB. Docker reads a limit of 0
/// as "unlimited", so a spec's 0 (or anything tiny) is raised to this, never passed on.
pub const MIN_MEMORY_MB: u32 = 16;

/// The memory limit a job really gets, in MB: its spec's, but at least [`MIN_MEMORY_MB`].
pub fn memory_limit_mb(requested_mb: u32) -> u32 {
    requested_mb.max(MIN_MEMORY_MB)
}

/// The container's memory limit in bytes (also its memory+swap: no swap). Never 0.
pub fn memory_bytes(requested_mb: u32) -> i64 {
    i64::from(memory_limit_mb(requested_mb)) * 1024 * 1024
}

pub struct DockerExecutor {
    docker: Docker,
    images: RuntimeImages,
    languages: Vec<Language>,
    limits: SandboxLimits,
    worker_name: String,
    /// The engine's OCI runtime (e.g. `runsc`); `None` is the engine's default.
    runtime: Option<String>,
    pool: Option<std::sync::Arc<Pool>>,
    /// `docker info` lists the NVIDIA runtime: device requests for GPUs work.
    nvidia_runtime: bool,
}

/// An experiment, used by the sandbox-cost benchmark: containers created ahead of
/// time (never started, one per job, never reused) for jobs with the default memory
/// limit, refilled in the background as they are taken.
pub struct Pool {
    ready: std::sync::Mutex<HashMap<Language, std::collections::VecDeque<String>>>,
}

/// The memory limit pooled containers are created with (the default `memory_mb`, docs/api.md).
const POOL_MEMORY_MB: u32 = 256;

/// The assigned GPUs alone, as `docker run --gpus device=…` asks for them: by UUID
/// when every one is known (stable whatever the enumeration order), else by NVML
/// index. None for a job without GPUs.
fn device_requests(gpus: &GpuGrant) -> Option<Vec<DeviceRequest>> {
    if gpus.is_empty() {
        return None;
    }
    let ids = if gpus.uuids.len() == gpus.indices.len() {
        gpus.uuids.clone()
    } else {
        gpus.indices.iter().map(u32::to_string).collect()
    };
    Some(vec![DeviceRequest {
        driver: None,
        count: None,
        device_ids: Some(ids),
        capabilities: Some(vec![vec!["gpu".into()]]),
        options: None,
    }])
}

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
            let Ok(image) = docker.inspect_image(images.for_language(language)).await else {
                continue;
            };
            // An image built by `images build` says what it can run; an operator's
            // own image without the label is taken at its configured word.
            let built_for = image
                .config
                .and_then(|c| c.labels)
                .and_then(|labels| labels.get(crate::worker::images::LANGUAGES_LABEL).cloned());
            let offers = match built_for {
                Some(list) => list.split(',').any(|name| name == language.as_str()),
                None => true,
            };
            if offers {
                languages.push(language);
            }
        }
        let nvidia_runtime = docker
            .info()
            .await
            .ok()
            .and_then(|info| info.runtimes)
            .is_some_and(|runtimes| runtimes.contains_key("nvidia"));
        Self {
            docker,
            images,
            languages,
            limits,
            worker_name,
            runtime: None,
            pool: None,
            nvidia_runtime,
        }
    }

    /// Runs every job under the engine's runtime `name` (e.g. gVisor's `runsc`), once
    /// `docker info` shows the engine has it; otherwise a clear error naming the
    /// runtimes it does have. Call before [`DockerExecutor::with_pool`].
    pub async fn with_runtime(mut self, name: &str) -> Result<Self, String> {
        let info = self
            .docker
            .info()
            .await
            .map_err(|e| format!("could not ask the Docker engine for its runtimes: {e}"))?;
        let mut known: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
        if !known.iter().any(|k| k == name) {
            known.sort();
            return Err(format!(
                "the Docker engine has no runtime {name:?} (worker.docker_runtime); it has: {}. \
                 Install it and register it with the engine (docs/worker.md, \"gVisor\"), or \
                 unset docker_runtime",
                if known.is_empty() {
                    "none listed".to_owned()
                } else {
                    known.join(", ")
                }
            ));
        }
        self.runtime = Some(name.to_owned());
        Ok(self)
    }

    /// Pre-creates `size` containers per language (the pool experiment).
    pub async fn with_pool(mut self, size: usize) -> Self {
        let pool = std::sync::Arc::new(Pool {
            ready: std::sync::Mutex::new(HashMap::new()),
        });
        for language in self.languages.clone() {
            for _ in 0..size {
                let config = self.container_config(
                    language,
                    POOL_MEMORY_MB,
                    "pool".into(),
                    &GpuGrant::default(),
                );
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
        if memory_limit_mb(job.spec.memory_mb) != POOL_MEMORY_MB || !job.gpus.is_empty() {
            return None;
        }
        let language = job.spec.language;
        let id = pool.ready.lock().ok()?.get_mut(&language)?.pop_front()?;
        let docker = self.docker.clone();
        let config = self.container_config(
            language,
            POOL_MEMORY_MB,
            "pool".into(),
            &GpuGrant::default(),
        );
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
        gpus: &GpuGrant,
    ) -> ContainerCreateBody {
        let memory = memory_bytes(memory_mb);
        let tmpfs_mb = self.limits.tmpfs_mb;
        let source = format!("/workspace/{}", language.source_file_name());
        // The marker comes with the handoff (`$k`), as the container may be made
        // before its job is known (the pool).
        const MARKER_SLOT: &str = "\u{1}marker\u{1}";
        let run = job_command(
            language,
            memory_mb,
            &source,
            SANDBOX_BUILD_DIR,
            &self.limits,
            MARKER_SLOT,
        )
        .iter()
        .map(|word| match word.as_str() {
            MARKER_SLOT => "\"$k\"".to_owned(),
            _ => shell_quote(word),
        })
        .collect::<Vec<_>>()
        .join(" ");
        let mut tmpfs = HashMap::new();
        // The engine mounts a tmpfs noexec unless told otherwise: a compiled
        // language's program is built into /tmp and run from there, so its /tmp
        // allows exec (the job already runs code of its choosing; no privilege
        // comes with it: nosuid, no capabilities, no-new-privileges).
        let exec = if language.is_compiled() { "exec," } else { "" };
        tmpfs.insert(
            "/tmp".to_owned(),
            format!("rw,{exec}nosuid,nodev,size={tmpfs_mb}m,mode=1777"),
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
            image: Some(self.images.for_language(language).to_owned()),
            // Stdin is: the code's length, a line; the deadline in seconds, a line;
            // the compile marker (`toolchain`), a line; the code; then the job's own
            // stdin. So the same container works for any
            // job (and can be created before the job is known, as the pool does).
            // `read` takes exactly one line. bash, not sh: dash has no `read -t`.
            // bash is PID 1 for the handoff, then `exec`s `timeout`: at the deadline
            // it kills the job's process group and exits, and PID 1's exit ends the
            // container and everything left in its PID namespace.
            cmd: Some(vec![
                "/bin/bash".into(),
                "-c".into(),
                format!(
                    "umask 077 && read -t {HANDOFF_S} -r n && read -t {HANDOFF_S} -r t && \
                     read -t {HANDOFF_S} -r k && \
                     timeout --signal=KILL {HANDOFF_S} head -c \"$n\" > {source} && \
                     exec timeout --signal=KILL \"$t\" {run}"
                ),
            ]),
            // `docker stop` (an operator, or the engine shutting down) need not wait
            // the default 10 s for a job that ignores SIGTERM.
            stop_timeout: Some(1),
            env: Some(vec![
                "HOME=/workspace".into(),
                "LANG=C.UTF-8".into(),
                "PATH=/usr/local/bin:/usr/bin:/bin".into(),
                "PYTHONDONTWRITEBYTECODE=1".into(),
                format!(
                    "NODE_OPTIONS=--max-old-space-size={}",
                    memory_limit_mb(memory_mb)
                ),
                // Where the NVIDIA runtime is the engine's default, a container
                // without this would get every GPU; the assigned ones come through
                // the device request below, which sets it for the container.
                if gpus.is_empty() {
                    "NVIDIA_VISIBLE_DEVICES=void".into()
                } else {
                    "NVIDIA_DRIVER_CAPABILITIES=compute,utility".into()
                },
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
                // No docker init: `timeout` is PID 1 (see the module's doc).
                init: Some(false),
                log_config: Some(HostConfigLogConfig {
                    typ: Some("none".into()),
                    config: None,
                }),
                runtime: self.runtime.clone(),
                device_requests: device_requests(gpus),
                // Not auto-removed: the outcome reads the container's OOM state after
                // it ended. A container whose worker died ends at its deadline and is
                // removed by the next start's `remove_orphans`.
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
                    &job.gpus,
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
        let stderr_cap = toolchain::stderr_capacity(spec.language, cap);
        let marker = toolchain::new_marker();
        let (mut stdout_tap, mut stderr_tap) = job.taps(&marker);
        let reader = tokio::spawn(async move {
            let mut stdout = CappedBuffer::new(cap);
            let mut stderr = CappedBuffer::new(stderr_cap);
            // Read to the end even past the caps, so the container never blocks on a
            // full pipe; what is past the cap is dropped here.
            while let Some(frame) = output.next().await {
                match frame {
                    Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                        stdout.push(&message);
                        if let Some(tap) = &mut stdout_tap {
                            tap.push(&message);
                        }
                    }
                    Ok(LogOutput::StdErr { message }) => {
                        stderr.push(&message);
                        if let Some(tap) = &mut stderr_tap {
                            tap.push(&message);
                        }
                    }
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
        // At least the grace, so never 0, which `timeout` would read as "no deadline".
        let deadline_s = spec.timeout_s.saturating_add(DEADLINE_GRACE_S);
        let mut payload = Vec::with_capacity(spec.code.len() + spec.stdin.len() + 24);
        payload
            .extend_from_slice(format!("{}\n{deadline_s}\n{marker}\n", spec.code.len()).as_bytes());
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
            // Only if this worker's timer was starved past the grace: the container's
            // own deadline ended the job.
            (None, Some(Ok(_))) if started.elapsed() >= timeout => {
                killed_for = Some(RunEnd::TimedOut);
                None
            }
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
        let mut outcome = RunOutcome {
            end,
            exit_code: exit_code.map(|c| i32::try_from(c).unwrap_or(i32::MAX)),
            stdout,
            stderr,
            stdout_truncated,
            stderr_truncated,
            duration_ms,
            message: (end == RunEnd::Oom).then(|| {
                format!(
                    "killed at the memory limit of {} MB",
                    memory_limit_mb(spec.memory_mb)
                )
            }),
            compile_output: None,
        };
        toolchain::split_compile_output(spec.language, &marker, cap, &mut outcome);
        outcome
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

    /// GPUs reach a container through the NVIDIA Container Toolkit, which
    /// registers its runtime with the engine.
    fn gpu_support(&self, _loan: &Loan) -> Result<(), String> {
        if let Some(runtime) = &self.runtime {
            // A device request needs the NVIDIA hook of runc; gVisor's own GPU
            // support (nvproxy) is not set up by this worker.
            return Err(format!(
                "GPUs are not lent to containers run under docker_runtime {runtime:?}: lend them without it, or with --executor bubblewrap"
            ));
        }
        if self.nvidia_runtime {
            Ok(())
        } else {
            Err("the Docker engine has no NVIDIA runtime, so containers cannot be given GPUs: install the NVIDIA Container Toolkit and run `nvidia-ctk runtime configure --runtime=docker` (docs/worker.md, \"GPUs\"), or lend GPUs with --executor bubblewrap".into())
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_gpu_job_asks_for_devices_and_only_for_its_own() {
        assert_eq!(device_requests(&GpuGrant::default()), None);
        let by_uuid = GpuGrant {
            indices: vec![1, 3],
            nodes: Vec::new(),
            uuids: vec!["GPU-a".into(), "GPU-b".into()],
        };
        let request = device_requests(&by_uuid).unwrap_or_default();
        assert_eq!(request.len(), 1);
        assert_eq!(
            request[0].device_ids,
            Some(vec!["GPU-a".into(), "GPU-b".into()])
        );
        assert_eq!(request[0].capabilities, Some(vec![vec!["gpu".to_owned()]]));
        assert_eq!(request[0].count, None, "never `all`");
        let by_index = GpuGrant {
            uuids: vec!["GPU-a".into()],
            ..by_uuid
        };
        assert_eq!(
            device_requests(&by_index).unwrap_or_default()[0].device_ids,
            Some(vec!["1".into(), "3".into()])
        );
    }

    #[test]
    fn memory_is_never_unlimited() {
        // Docker reads 0 as "no limit": a spec's 0 must become the floor, not 0.
        assert_eq!(memory_bytes(0), 16 * 1024 * 1024);
        assert_eq!(memory_bytes(1), 16 * 1024 * 1024);
        assert_eq!(memory_bytes(MIN_MEMORY_MB - 1), 16 * 1024 * 1024);
        assert_eq!(memory_bytes(256), 256 * 1024 * 1024);
        assert_eq!(memory_bytes(u32::MAX), i64::from(u32::MAX) * 1024 * 1024);
        assert_eq!(memory_limit_mb(0), MIN_MEMORY_MB);
        assert_eq!(memory_limit_mb(4096), 4096);
    }
}
