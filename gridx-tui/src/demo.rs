//! `gridx-tui demo`: the whole grid in one process. A coordinator on a temporary
//! store, a local worker with the best sandbox available, a demo user with credits,
//! a few sample jobs in each language, and the dashboard.

use crate::client::{ApiClient, Endpoint};
use crate::worker::admission;
use crate::worker::exec::select_executor;
use crate::worker::host::{HostOptions, WorkerHost, describe};
use color_eyre::eyre::{Context, Result, eyre};
use gridx_proto::api::SubmitJobRequest;
use gridx_proto::config::{GridxConfig, ServerConfig};
use gridx_proto::protocol::ExecutorKind;
use gridx_proto::{Credits, Language, UserName};
use gridx_server::store::{self, users};
use std::time::Duration;

/// A running demo grid.
pub struct DemoGrid {
    pub url: String,
    pub token: String,
    pub executor: ExecutorKind,
    /// What the demo worker's sandbox cannot enforce here (a weak bubblewrap).
    pub weaknesses: Vec<String>,
    pub languages: Vec<Language>,
    /// `export GRIDX_SERVER=… GRIDX_TOKEN=…` for the demo user, readable by this
    /// user only, so other terminals can use the grid (`. FILE; gridx-tui jobs`).
    /// It lives in the demo's temporary directory and goes with it.
    pub env_file: std::path::PathBuf,
    stop: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<Result<(), gridx_server::app::LaunchError>>,
    worker: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// The sample jobs: one or more per language, a failure, a slow one and stdin.
pub fn samples() -> Vec<SubmitJobRequest> {
    let job = |language, code: &str, stdin: Option<&str>| SubmitJobRequest {
        gpu_memory_mb: None,
        gpus: None,
        language,
        code: code.into(),
        stdin: stdin.map(str::to_owned),
        timeout_s: Some(20),
        memory_mb: None,
        priority: None,
        validate: None,
    };
    vec![
        job(
            Language::Python,
            "import platform\nprint('hello from python', platform.python_version())",
            None,
        ),
        job(
            Language::Node,
            "console.log('hello from node', process.version)",
            None,
        ),
        job(
            Language::Bash,
            "echo \"hello from bash $BASH_VERSION\"; uname -s",
            None,
        ),
        job(
            Language::Python,
            "import sys\nname = sys.stdin.read().strip()\nprint(f'hello, {name}!')",
            Some("grid\n"),
        ),
        job(
            Language::Python,
            "print(sum(i * i for i in range(10**6)))",
            None,
        ),
        job(Language::Bash, "echo working...; sleep 4; echo done", None),
        job(
            Language::Node,
            "throw new Error('this sample fails on purpose')",
            None,
        ),
        // Compiled on the worker, in the job's own sandbox (offered when the worker
        // has the toolchain).
        job(
            Language::C,
            "#include <stdio.h>\nint main(void) {\n    printf(\"hello from C, compiled by GCC %s\\n\", __VERSION__);\n    return 0;\n}\n",
            None,
        ),
        job(
            Language::Rust,
            "fn main() {\n    let primes: Vec<u32> = (2..60).filter(|n| (2..*n).all(|d| n % d != 0)).collect();\n    println!(\"hello from Rust: {primes:?}\");\n}\n",
            None,
        ),
    ]
}

impl DemoGrid {
    pub async fn start(config: &GridxConfig) -> Result<DemoGrid> {
        let dir = tempfile::tempdir().context("creating the demo's temporary store")?;
        let data = dir.path().to_owned();
        let demo = UserName::new("demo").map_err(|e| eyre!("{e}"))?;
        let lender = UserName::new("lender").map_err(|e| eyre!("{e}"))?;
        let token = {
            let conn = store::open_writer(&data)?;
            let token = users::create_user(&conn, &demo, Credits::from_whole(100), true)?;
            users::create_user(&conn, &lender, Credits::ZERO, false)?;
            token
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let env_file = data.join("demo.env");
        write_private(
            &env_file,
            &format!("export GRIDX_SERVER={url} GRIDX_TOKEN={token}\n"),
        )
        .context("writing the demo's env file")?;
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        // Plain http on loopback, whatever [server.tls] says: the demo is local.
        let server_config = ServerConfig {
            heartbeat_s: 2,
            shutdown_grace_s: 3,
            tls: Default::default(),
            ..config.server.clone()
        };
        let server = tokio::spawn(gridx_server::launch(
            server_config,
            data.clone(),
            listener,
            stop_rx.clone(),
        ));

        let mut worker_config = config.worker.clone();
        worker_config.server = url.clone();
        let executor = match select_executor(&worker_config, "demo-worker").await {
            Ok(e) => e,
            Err(_) => {
                // The demo's own sample jobs are trusted; say so loudly in the UI. A
                // bubblewrap without every limit (no cgroup for a normal user) still
                // beats no sandbox at all, so it is tried first.
                worker_config.allow_weak_sandbox = true;
                worker_config.allow_unsandboxed = true;
                select_executor(&worker_config, "demo-worker").await?
            }
        };
        let kind = executor.kind();
        let weaknesses = executor.weaknesses();
        let languages = executor.languages();
        // A lender's worker earns the demo's rewards; an unsandboxed one runs only its
        // owner's jobs (docs/worker.md), so then the demo user lends it to themself.
        let owner = if kind.runs_strangers_jobs() {
            &lender
        } else {
            &demo
        };
        // The demo's grid has one owner, fewer than a quorum (docs/trust.md): its own
        // worker is trusted, as an operator marks the machines they run themselves.
        let conn = store::open_writer(&data)?;
        let (worker_id, worker_token) = users::add_worker(&conn, owner, "demo-worker")?;
        store::trust::set_trusted(&conn, worker_id, true)?;
        drop(conn);
        let options = HostOptions {
            coordinators: Endpoint::new(&url, None, false)?.into(),
            token: worker_token,
            name: "demo-worker".into(),
            slots: 2,
            work_dir: data.join("workspaces"),
            grace: Duration::from_secs(3),
            max_backoff: Duration::from_secs(5),
            admission: admission::Settings::from_config(&worker_config),
            gpus: crate::worker::gpus::Loan::none(),
        };
        let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel();
        // The dashboard shows the worker through the coordinator; its local events
        // are not needed here.
        tokio::spawn(async move { while events_rx.recv().await.is_some() {} });
        let mut host = WorkerHost::new(options, executor, events_tx);
        let first = host
            .authenticate()
            .await
            .context("the demo worker could not join")?;
        let worker = tokio::spawn(async move {
            if let Err(e) = host.run(first, stop_rx).await {
                tracing::error!(error = %e, "demo worker stopped");
            }
        });
        Ok(DemoGrid {
            url,
            token,
            executor: kind,
            weaknesses,
            languages,
            env_file,
            stop,
            server,
            worker,
            _dir: dir,
        })
    }

    /// Submits the sample jobs the worker can run.
    pub async fn submit_samples(&self) -> Result<usize> {
        let client = ApiClient::new(
            Endpoint::new(&self.url, None, false)?,
            Some(self.token.clone()),
        )?;
        let mut n = 0;
        for sample in samples()
            .into_iter()
            .filter(|s| self.languages.contains(&s.language))
        {
            client.submit(&sample).await?;
            n += 1;
        }
        Ok(n)
    }

    /// How to reach the demo from another terminal.
    pub fn reach_hint(&self) -> String {
        format!(
            "other terminals: . {} && gridx-tui jobs (or repl)",
            self.env_file.display()
        )
    }

    pub fn describe(&self) -> String {
        format!(
            "demo grid at {} · worker demo-worker · {}",
            self.url,
            describe(self.executor)
        )
    }

    /// Stops the worker and the coordinator.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.worker).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.server).await;
    }
}

/// Creates `path` with `text`, readable and writable by this user only (it holds a
/// token).
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::write_private;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_env_file_is_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.env");
        write_private(&path, "export GRIDX_TOKEN=x\n").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            write_private(&path, "other").is_err(),
            "an existing file is kept"
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "export GRIDX_TOKEN=x\n"
        );
    }
}
