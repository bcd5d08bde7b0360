//! Choosing the executor: Docker if an engine answers, else bubblewrap if namespaces
//! work, else refuse, unless the operator explicitly accepted running unsandboxed.
//! A `docker_runtime` the engine lacks refuses to start, even in auto: the operator
//! asked for that isolation, so no other sandbox stands in for it.

use super::bubblewrap::{BubblewrapExecutor, UnsandboxedExecutor};
use super::docker::{self, DockerExecutor};
use super::{Executor, SandboxLimits};
use gridx_proto::config::{ExecutorChoice, WorkerConfig};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error(
        "no sandbox is available: {docker}; {bubblewrap}. Install Docker or bubblewrap, or pass \
         --allow-unsandboxed to run trusted jobs without a sandbox"
    )]
    NoSandbox { docker: String, bubblewrap: String },
    #[error("the Docker executor was asked for but is not usable: {0}")]
    Docker(String),
    /// Never a reason to fall back to another sandbox: the operator asked for this
    /// runtime's isolation.
    #[error("{0}")]
    DockerRuntime(String),
    #[error("the bubblewrap executor was asked for but is not usable: {0}")]
    Bubblewrap(String),
    #[error("the unsandboxed executor needs allow_unsandboxed = true (or --allow-unsandboxed)")]
    UnsandboxedNotAllowed,
}

/// Picks and prepares the executor `config` asks for. `name` labels containers so a
/// restarted worker can find its orphans.
pub async fn select_executor(
    config: &WorkerConfig,
    name: &str,
) -> Result<Arc<dyn Executor>, SelectError> {
    select(config, name, SandboxLimits::from_config(config)).await
}

/// As [`select_executor`], for `host-info`: the same choice and the same refusals, but
/// nothing on the host is changed (no cgroup made or joined, see
/// [`SandboxLimits::inspect_only`]).
pub async fn inspect_executor(
    config: &WorkerConfig,
    name: &str,
) -> Result<Arc<dyn Executor>, SelectError> {
    let limits = SandboxLimits {
        inspect_only: true,
        ..SandboxLimits::from_config(config)
    };
    select(config, name, limits).await
}

async fn select(
    config: &WorkerConfig,
    name: &str,
    limits: SandboxLimits,
) -> Result<Arc<dyn Executor>, SelectError> {
    let timeout = Duration::from_millis(u64::from(config.docker_connect_timeout_ms));
    // Err(Docker) when there is no usable engine, Err(DockerRuntime) when the engine
    // lacks the configured runtime.
    let docker = || async {
        let engine = docker::connect(timeout)
            .await
            .map_err(SelectError::Docker)?;
        let executor = DockerExecutor::new(
            engine,
            config.images.clone(),
            limits.clone(),
            name.to_owned(),
        )
        .await;
        match &config.docker_runtime {
            Some(runtime) => executor
                .with_runtime(runtime)
                .await
                .map_err(SelectError::DockerRuntime),
            None => Ok(executor),
        }
    };
    match config.executor {
        ExecutorChoice::Docker => Ok(Arc::new(docker().await?)),
        ExecutorChoice::Bubblewrap => Ok(Arc::new(
            BubblewrapExecutor::detect(limits.clone())
                .await
                .map_err(SelectError::Bubblewrap)?,
        )),
        ExecutorChoice::Unsandboxed if config.allow_unsandboxed => {
            Ok(Arc::new(UnsandboxedExecutor::detect(limits)))
        }
        ExecutorChoice::Unsandboxed => Err(SelectError::UnsandboxedNotAllowed),
        ExecutorChoice::Auto => {
            let docker_error = match docker().await {
                Ok(executor) if !executor.languages().is_empty() => return Ok(Arc::new(executor)),
                Ok(_) => "the Docker engine has no runtime images (run `gridx-tui images build`)"
                    .to_owned(),
                Err(SelectError::Docker(e)) => e,
                Err(e) => return Err(e),
            };
            let bwrap_error = match BubblewrapExecutor::detect(limits.clone()).await {
                Ok(executor) if !executor.languages().is_empty() => return Ok(Arc::new(executor)),
                Ok(_) => "bubblewrap found no interpreter under /usr".to_owned(),
                Err(e) => e,
            };
            if config.allow_unsandboxed {
                tracing::warn!(%docker_error, %bwrap_error, "no sandbox available; running jobs UNSANDBOXED as allowed");
                return Ok(Arc::new(UnsandboxedExecutor::detect(limits)));
            }
            Err(SelectError::NoSandbox {
                docker: docker_error,
                bubblewrap: bwrap_error,
            })
        }
    }
}
