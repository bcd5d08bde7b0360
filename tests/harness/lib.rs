//! Shared helpers of the end-to-end tests in `tests/`: the built binaries, a
//! coordinator process on a free port with its own data directory, worker processes,
//! and a small HTTP client. [`cluster`] adds a whole grid (a coordinator and several
//! workers) either as processes on 127.0.0.1 or as containers on a Docker network,
//! with the faults the reliability scenarios inject.

pub mod cluster;
mod docker_hosts;
mod proxy;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Path of a workspace binary built by the same `cargo test` run's profile.
///
/// `cargo test --workspace` builds both binaries before any test runs, because the
/// `gridx-server` and `gridx-tui` packages have integration tests of their own.
pub fn binary(name: &str) -> PathBuf {
    built(&profile_dir().join(name))
}

/// Path of a workspace example (benchmarks); `cargo test --workspace` builds them.
pub fn example(name: &str) -> PathBuf {
    built(&profile_dir().join("examples").join(name))
}

/// target/<profile>, from the test binary's own path (target/<profile>/deps/<test>).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("test binaries live in target/<profile>/deps")
        .to_owned()
}

fn built(path: &Path) -> PathBuf {
    assert!(
        path.exists(),
        "{} is not built; run `cargo test --workspace`",
        path.display()
    );
    path.to_owned()
}

/// Appends one line of measured figures to `target/gridx-e2e-figures.txt` (and to the
/// test's output): `cargo test` hides a passing test's output, and `.ci/run` prints
/// this file at the end so every CI log carries the figures of its run.
pub fn record_figures(line: &str) {
    println!("{line}");
    let path = profile_dir()
        .parent()
        .map(|target| target.join("gridx-e2e-figures.txt"));
    if let Some(path) = path {
        use std::io::Write;
        if let Ok(mut file) = std::fs::File::options()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(file, "{line}");
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A coordinator process and its data directory; killed when dropped.
pub struct Grid {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub url: String,
    server: Option<Child>,
    pub http: reqwest::Client,
    /// Extra `[server]` settings of this grid's coordinator.
    extra_server_config: String,
}

impl Grid {
    pub async fn start() -> Grid {
        Grid::start_with("").await
    }

    /// A grid whose coordinator also has these `[server]` settings (TOML lines).
    pub async fn start_with(extra_server_config: &str) -> Grid {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut grid = Grid {
            dir,
            port,
            url: format!("http://127.0.0.1:{port}"),
            server: None,
            http: reqwest::Client::new(),
            extra_server_config: extra_server_config.to_owned(),
        };
        grid.start_server().await;
        grid
    }

    pub async fn start_server(&mut self) {
        // Short heartbeats so lost workers are noticed within seconds in tests.
        let config = self.dir.path().join("gridx.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nheartbeat_s = 1\nshutdown_grace_s = 5\n{}\n",
                self.extra_server_config
            ),
        )
        .expect("write config");
        let child = Command::new(binary("gridx-server"))
            .arg("--data-dir")
            .arg(self.dir.path())
            .arg("--config")
            .arg(&config)
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .env("GRIDX_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn gridx-server");
        self.server = Some(child);
        for _ in 0..200 {
            if let Ok(r) = self.http.get(format!("{}/healthz", self.url)).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("gridx-server did not become healthy");
    }

    /// Runs an admin command on this grid's data directory; returns stdout, trimmed.
    pub fn admin(&self, args: &[&str]) -> String {
        admin_on(self.dir.path(), args)
    }

    pub fn user(&self, name: &str, credits: &str) -> String {
        self.admin(&["user", "add", name, "--credits", credits])
    }

    pub fn worker_token(&self, owner: &str, name: &str) -> String {
        self.admin(&["worker", "add", "--owner", owner, "--name", name])
    }

    pub fn verify_ledger(&self) -> (bool, String) {
        verify_ledger_of(self.dir.path())
    }

    /// Panics with the report unless `ledger verify` passes.
    pub fn assert_ledger_verifies(&self) {
        assert_ledger_verifies_of(self.dir.path(), "");
    }

    /// Starts `gridx-tui worker --headless` against this grid.
    pub fn spawn_worker(
        &self,
        token: &str,
        name: &str,
        executor: &str,
        work_dir: &Path,
        extra: &[&str],
    ) -> Child {
        Command::new(binary("gridx-tui"))
            .args([
                "worker",
                "--headless",
                "--server",
                &self.url,
                "--token",
                token,
            ])
            .args(["--name", name, "--executor", executor])
            .arg("--work-dir")
            .arg(work_dir)
            .args(extra)
            .env("GRIDX_LOG", "info")
            .env_remove("GRIDX_WORKER_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gridx-tui worker")
    }

    pub async fn submit(&self, token: &str, body: serde_json::Value) -> serde_json::Value {
        let response = self
            .http
            .post(format!("{}/v1/jobs", self.url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("submit");
        assert_eq!(response.status(), 201, "submit refused");
        response.json().await.expect("job view")
    }

    pub async fn get(&self, token: &str, path: &str) -> serde_json::Value {
        self.http
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json")
    }

    /// Polls until the job is terminal or `secs` pass; returns its last view.
    pub async fn wait_terminal(&self, token: &str, id: u64, secs: u64) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let job = self.get(token, &format!("/v1/jobs/{id}")).await;
            let status = job["status"].as_str().unwrap_or_default().to_owned();
            if !matches!(status.as_str(), "queued" | "running")
                || tokio::time::Instant::now() > deadline
            {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn workers(&self, token: &str) -> Vec<serde_json::Value> {
        self.get(token, "/v1/workers").await["workers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until a worker with this name is online.
    pub async fn wait_online(&self, token: &str, name: &str) {
        for _ in 0..200 {
            if self
                .workers(token)
                .await
                .iter()
                .any(|w| w["name"] == name && w["status"] == "online")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("worker {name} never came online");
    }

    pub fn server_pid(&self) -> Option<u32> {
        self.server.as_ref().map(|c| c.id())
    }

    /// SIGTERM to the coordinator; returns its exit status.
    pub fn stop_server(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let mut child = self.server.take()?;
        terminate(&mut child, secs)
    }

    pub fn kill_server(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Grid {
    fn drop(&mut self) {
        self.kill_server();
    }
}

/// Runs an admin command of `gridx-server` on a data directory (the coordinator may
/// be running on it); returns stdout, trimmed, and panics with stderr on failure.
pub fn admin_on(data_dir: &Path, args: &[&str]) -> String {
    let out = admin_output(data_dir, args);
    assert!(
        out.status.success(),
        "gridx-server {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs `gridx-server --data-dir DIR ARGS` to completion, whatever its outcome.
pub fn admin_output(data_dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(binary("gridx-server"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .expect("run gridx-server")
}

/// `gridx-server ledger verify` on a data directory: whether it passed, and its report.
pub fn verify_ledger_of(data_dir: &Path) -> (bool, String) {
    let out = admin_output(data_dir, &["ledger", "verify"]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Panics with the report unless `ledger verify` passes on the data directory; `when`
/// says at which point of a test.
pub fn assert_ledger_verifies_of(data_dir: &Path, when: &str) {
    let (ok, report) = verify_ledger_of(data_dir);
    assert!(ok, "ledger verify failed {when}:\n{report}");
}

/// Sends SIGTERM to a child and waits for it, up to `secs`.
pub fn terminate(child: &mut Child, secs: u64) -> Option<std::process::ExitStatus> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether an executor can run here, and if not, why (for a test's SKIPPED line).
pub fn executor_available(executor: &str) -> Result<(), String> {
    match executor {
        "docker" => {
            let engine = Command::new("docker")
                .args(["version", "--format", "{{.Server.Version}}"])
                .output();
            match engine {
                Ok(o) if o.status.success() => {}
                Ok(o) => {
                    return Err(format!(
                        "no Docker engine: {}",
                        String::from_utf8_lossy(&o.stderr).trim()
                    ));
                }
                Err(e) => return Err(format!("no docker CLI: {e}")),
            }
            // Builds the runtime images if missing; a no-op when their recipes match.
            let built = Command::new(binary("gridx-tui"))
                .args(["images", "build"])
                .output();
            match built {
                Ok(o) if o.status.success() => Ok(()),
                Ok(o) => panic!(
                    "the Docker engine is here but `gridx-tui images build` failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                ),
                Err(e) => panic!("could not run gridx-tui images build: {e}"),
            }
        }
        "bubblewrap" => {
            if Path::new("/usr/bin/bwrap").exists() {
                Ok(())
            } else {
                Err("bwrap is not installed".into())
            }
        }
        other => Err(format!("unknown executor {other}")),
    }
}
