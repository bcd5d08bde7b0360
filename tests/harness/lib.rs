//! Shared helpers of the end-to-end tests in `tests/`: the built binaries, a
//! coordinator process on a port of its own with its own data directory, worker
//! processes, and a small HTTP client. [`cluster`] adds a whole grid (a coordinator
//! and several workers) either as processes on 127.0.0.1 or as containers on a Docker
//! network, with the faults the reliability scenarios inject. [`skip`] holds the rule
//! for tests that need a tool the machine may lack.

pub mod cheater;
pub mod cluster;
pub mod completions;
pub mod coordinators;
mod docker_hosts;
pub mod fake_worker;
pub mod postgres;
pub mod proxy;
pub mod skip;
pub mod tls;
pub mod tmux;

use skip::Tool;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// Path of a workspace binary of the test's own profile, built first (see [`ensure_built`]).
pub fn binary(name: &str) -> PathBuf {
    built(&profile_dir().join(name))
}

/// Path of a workspace example (benchmarks), built first like the binaries.
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
    ensure_built();
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace --bins --examples`",
        path.display()
    );
    path.to_owned()
}

/// Builds the workspace's binaries and examples once per test process.
///
/// `cargo test --test one_shot` builds only this package's tests, not gridx-server
/// or gridx-tui, so without this a test would drive binaries older than the sources
/// it is meant to check. Building (rather than refusing stale binaries) keeps that
/// command the whole workflow; when `cargo test --workspace` has just built them, it
/// is a no-op of a second or two. Same cargo, profile and target directory as the
/// test binary itself, so it reuses that build and honours CARGO_TARGET_DIR.
fn ensure_built() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let profile_dir = profile_dir();
        let target = profile_dir
            .parent()
            .ok_or("the profile directory has no parent")?;
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev".to_owned(),
            Some(other) => other.to_owned(),
            None => return Err("the profile directory has no name".into()),
        };
        let cargo = std::env::var_os("CARGO")
            .or_else(|| option_env!("CARGO").map(Into::into))
            .unwrap_or_else(|| "cargo".into());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let out = Command::new(&cargo)
            .args(["build", "--quiet", "--workspace", "--bins", "--examples"])
            .args(["--profile", &profile])
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target-dir")
            .arg(target)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("could not run {}: {e}", cargo.to_string_lossy()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`cargo build --workspace --bins --examples` failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(why) = result {
        panic!("the binaries under test could not be built: {why}");
    }
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

/// The address in `gridx-server serve`'s `listening on ADDR` line on stdout.
pub fn bound_address(line: &str) -> Option<SocketAddr> {
    line.strip_prefix("listening on ")?.trim().parse().ok()
}

/// Spawns a `gridx-server ... serve` command (its stdout is taken here) and waits for
/// the address it reports having bound. Servers in tests listen on port 0 (or on the
/// port they reported before a restart), so the address is known only from this line;
/// and since it is this child's own report, nothing is ever asked of a server that
/// another test started. `Err` says why no address came (the caller adds its log).
pub async fn spawn_server(command: &mut Command) -> Result<(Child, SocketAddr), String> {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot spawn gridx-server: {e}"))?;
    let Some(stdout) = child.stdout.take() else {
        return Err("gridx-server's stdout was not piped".into());
    };
    let (report, reported) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut report = Some(report);
        // Reads to the end, so the server never writes to a closed pipe.
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = bound_address(&line)
                && let Some(report) = report.take()
            {
                let _ = report.send(addr);
            }
        }
    });
    match tokio::time::timeout(Duration::from_secs(60), reported).await {
        Ok(Ok(addr)) => Ok((child, addr)),
        Ok(Err(_)) => {
            let status = child.wait();
            Err(format!(
                "gridx-server exited before it reported the address it bound: {status:?}"
            ))
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err("gridx-server did not report the address it bound within 60 s".into())
        }
    }
}

/// Polls `GET {url}/healthz` until it answers 200; panics with `context` after `secs`.
pub async fn wait_healthy(
    http: &reqwest::Client,
    url: &str,
    secs: u64,
    context: &dyn Fn() -> String,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(r) = http.get(format!("{url}/healthz")).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the coordinator at {url} did not become healthy in {secs} s{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A coordinator process and its data directory; killed when dropped.
pub struct Grid {
    pub dir: tempfile::TempDir,
    /// The port the coordinator reported binding (0 before it first started).
    pub port: u16,
    pub url: String,
    server: Option<Child>,
    pub http: reqwest::Client,
    /// Extra `[server]` settings of this grid's coordinator.
    extra_server_config: String,
    /// The coordinator serves TLS (`--tls-cert`/`--tls-key`) and `url` is https.
    pub tls: Option<tls::GridTls>,
}

impl Grid {
    pub async fn start() -> Grid {
        Grid::start_with("").await
    }

    /// A grid whose coordinator also has these `[server]` settings (TOML lines).
    pub async fn start_with(extra_server_config: &str) -> Grid {
        Grid::start_inner(extra_server_config, None).await
    }

    /// A grid whose coordinator terminates TLS with `tls`'s certificate; `url` is
    /// `https://HOST:PORT` and `http` trusts the test CA.
    pub async fn start_tls(tls: tls::GridTls) -> Grid {
        Grid::start_inner("", Some(tls)).await
    }

    async fn start_inner(extra_server_config: &str, tls: Option<tls::GridTls>) -> Grid {
        let dir = tempfile::tempdir().expect("temp dir");
        let http = tls
            .as_ref()
            .map_or_else(reqwest::Client::new, tls::GridTls::http_client);
        let mut grid = Grid {
            dir,
            port: 0,
            url: String::new(),
            server: None,
            http,
            extra_server_config: extra_server_config.to_owned(),
            tls,
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
        // The first start binds port 0. A restart binds the port the first one
        // reported: the workers of this grid dial that address directly and must find
        // the new coordinator there. The port was this grid's until the old process
        // died; should another process take it in that instant, the new coordinator
        // fails to bind and `spawn_server` fails the test with that, rather than the
        // test talking to someone else's server.
        let log_path = self.dir.path().join("server.log");
        let log = std::fs::File::create(&log_path).expect("create the server's log");
        let server_log = || {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            format!("\ngridx-server's stderr:\n{text}")
        };
        let mut command = Command::new(binary("gridx-server"));
        command
            .arg("--data-dir")
            .arg(self.dir.path())
            .arg("--config")
            .arg(&config)
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .env("GRIDX_LOG", "warn")
            .stderr(log);
        if let Some(tls) = &self.tls {
            command
                .arg("--tls-cert")
                .arg(&tls.cert)
                .arg("--tls-key")
                .arg(&tls.key);
        }
        let (child, addr) = spawn_server(&mut command)
            .await
            .unwrap_or_else(|why| panic!("{why}{}", server_log()));
        self.server = Some(child);
        self.port = addr.port();
        self.url = match &self.tls {
            Some(tls) => format!("https://{}:{}", tls.host, addr.port()),
            None => format!("http://{addr}"),
        };
        wait_healthy(&self.http, &self.url, 10, &server_log).await;
    }

    /// Runs an admin command on this grid's data directory; returns stdout, trimmed.
    pub fn admin(&self, args: &[&str]) -> String {
        admin_on(self.dir.path(), args)
    }

    pub fn user(&self, name: &str, credits: &str) -> String {
        self.admin(&["user", "add", name, "--credits", credits])
    }

    /// A trusted worker's token (its results need no replica, docs/trust.md).
    pub fn worker_token(&self, owner: &str, name: &str) -> String {
        self.admin(&[
            "worker",
            "add",
            "--owner",
            owner,
            "--name",
            name,
            "--trusted",
        ])
    }

    /// The token of a worker on probation: its results are checked by replicas.
    pub fn untrusted_worker_token(&self, owner: &str, name: &str) -> String {
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

    /// Polls until a worker reported that the job's code started (`started_at` is
    /// set); panics with its last view after `secs`.
    pub async fn wait_started(&self, token: &str, id: u64, secs: u64) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let job = self.get(token, &format!("/v1/jobs/{id}")).await;
            if job["status"] == "running" && !job["started_at"].is_null() {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {id} did not start in {secs} s: {job}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
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

    /// The coordinator's stderr so far (its log, at `warn` and above).
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
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

/// Whether a test may use `executor` here: `true` when it can run; otherwise the
/// test's skip is reported (in CI it fails, see [`skip`]) and `false` returned, and
/// the test must return. For Docker it also builds the runtime images, a no-op when
/// their recipes match; a failed build fails the test, CI or not.
#[must_use]
pub fn require_executor(executor: &str) -> bool {
    match executor {
        "docker" => {
            if !skip::require(Tool::Docker) {
                return false;
            }
            let built = Command::new(binary("gridx-tui"))
                .args(["images", "build"])
                .output();
            match built {
                Ok(o) if o.status.success() => true,
                Ok(o) => panic!(
                    "the Docker engine is here but `gridx-tui images build` failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                ),
                Err(e) => panic!("could not run gridx-tui images build: {e}"),
            }
        }
        "bubblewrap" => skip::require(Tool::Bubblewrap),
        other => panic!("no test executor called {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::bound_address;

    #[test]
    fn the_bound_address_is_read_from_the_servers_line() {
        assert_eq!(
            bound_address("listening on 127.0.0.1:41234"),
            Some(([127, 0, 0, 1], 41234).into())
        );
        assert_eq!(
            bound_address("listening on [::1]:8420\n"),
            Some("[::1]:8420".parse().expect("an address"))
        );
        assert_eq!(bound_address("listening on 127.0.0.1"), None);
        assert_eq!(bound_address("something else 127.0.0.1:1"), None);
    }
}
