//! A whole grid for the reliability scenarios: one coordinator and several workers,
//! either as processes on 127.0.0.1 ([`Kind::Local`]) or as containers on a private
//! Docker network, each worker running jobs through the engine's socket
//! ([`Kind::Docker`]). The scenarios are written once against [`Cluster`] and run on
//! both.
//!
//! Faults: kill -9 and SIGTERM of the coordinator or of one worker, and a network
//! partition of one worker (`docker network disconnect`, or a relay that goes silent
//! on 127.0.0.1). The coordinator's data directory is always a directory on this
//! host (bind-mounted into its container), so `gridx-server ledger verify` and the
//! admin commands run the same way on both kinds.

use crate::docker_hosts::{self, CLUSTER_LABEL, HOST_IMAGE, docker};
use crate::proxy::Proxy;
use crate::{
    admin_on, assert_ledger_verifies_of, binary, require_executor, spawn_server, terminate,
    wait_healthy,
};
use gridx_proto::Credits;
use serde_json::Value;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Processes on 127.0.0.1; workers use bubblewrap.
    Local,
    /// Containers on a private Docker network; workers use the Docker executor.
    Docker,
}

/// Short heartbeats so losses show within seconds; rate limits out of the way (the
/// scenarios test the queue and the ledger; the hostile-client suite tests limits);
/// grace long enough for the scenarios' jobs; quick worker reconnects; plain http
/// between containers (a private network, not loopback).
const CONFIG: &str = "\
[server]
heartbeat_s = 1
shutdown_grace_s = 20
rate_limit_per_s = 10000
rate_limit_burst = 10000

[worker]
shutdown_grace_s = 20
reconnect_max_backoff_s = 2
# Docker workers dial http://coordinator:8420 on the cluster's private network.
allow_insecure = true
";

/// One scenario at a time: they share two cores, and their timings mean something
/// only when nothing else competes.
static SERIAL: Mutex<()> = Mutex::new(());
static NEXT_RUN: AtomicU32 = AtomicU32::new(0);

struct WorkerHost {
    name: String,
    token: String,
    slots: u32,
    /// Local: the process, its relay and its work dir. Docker: the container name.
    local: Option<LocalWorker>,
}

struct LocalWorker {
    child: Option<Child>,
    proxy: Proxy,
    work_dir: tempfile::TempDir,
}

pub struct Cluster {
    pub kind: Kind,
    /// The coordinator's data directory, on this host.
    pub data: tempfile::TempDir,
    /// Config file and logs.
    scratch: tempfile::TempDir,
    pub http: reqwest::Client,
    /// The port this test process reaches the coordinator on: the one it reported
    /// binding (Local) or the one Docker published (Docker); 0 before the first start.
    port: u16,
    run: String,
    server: Option<Child>,
    workers: Vec<WorkerHost>,
    /// A user that only observes (lists workers), made on first use.
    observer: OnceLock<String>,
    _serial: MutexGuard<'static, ()>,
}

impl Cluster {
    /// Starts a coordinator of `kind`; `None` when the test must skip (Docker is
    /// absent outside CI: see [`crate::skip`]). A failed image build or `docker
    /// create` fails the test.
    pub async fn start(kind: Kind) -> Option<Cluster> {
        Cluster::start_with(kind, "").await
    }

    /// Like [`Cluster::start`], with `extra_config` (TOML tables, e.g. a
    /// `[server.validation]` policy) after the cluster's own settings.
    pub async fn start_with(kind: Kind, extra_config: &str) -> Option<Cluster> {
        let serial = SERIAL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // The workers run other users' jobs, which an unsandboxed worker never gets
        // (docs/worker.md), so a local grid needs bubblewrap.
        if kind == Kind::Local && !require_executor("bubblewrap") {
            return None;
        }
        if kind == Kind::Docker {
            if !require_executor("docker") {
                return None;
            }
            docker_hosts::ensure_host_image()
                .unwrap_or_else(|why| panic!("the host image could not be built: {why}"));
            docker_hosts::remove_abandoned_clusters();
        }
        let run = format!(
            "gx{}x{}",
            std::process::id(),
            NEXT_RUN.fetch_add(1, Ordering::Relaxed)
        );
        let scratch = tempfile::tempdir().expect("a scratch directory");
        std::fs::write(
            scratch.path().join("gridx.toml"),
            format!("{CONFIG}\n{extra_config}\n"),
        )
        .expect("write the config");
        let mut cluster = Cluster {
            kind,
            data: tempfile::tempdir().expect("a data directory"),
            scratch,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
            port: 0,
            run,
            server: None,
            workers: Vec::new(),
            observer: OnceLock::new(),
            _serial: serial,
        };
        if kind == Kind::Docker {
            docker(&[
                "network",
                "create",
                "--label",
                &format!("{CLUSTER_LABEL}={}", cluster.run),
                &cluster.network(),
            ])
            .unwrap_or_else(|why| panic!("{why}"));
            // Docker picks the host port; `start_coordinator` reads which.
            cluster.create_coordinator_container("127.0.0.1::8420");
        }
        cluster.start_coordinator().await;
        Some(cluster)
    }

    /// `docker create`s the coordinator's container, publishing its port 8420 as
    /// `publish` says.
    fn create_coordinator_container(&self, publish: &str) {
        docker(&[
            "create",
            "--name",
            &self.coordinator_container(),
            "--network",
            &self.network(),
            "--network-alias",
            "coordinator",
            "--label",
            &format!("{CLUSTER_LABEL}={}", self.run),
            "--publish",
            publish,
            "--volume",
            &format!("{}:/data", self.data.path().display()),
            "--volume",
            &format!("{}:/etc/gridx:ro", self.scratch.path().display()),
            "--env",
            "GRIDX_LOG=info",
            HOST_IMAGE,
            "gridx-server",
            "--data-dir",
            "/data",
            "--config",
            "/etc/gridx/gridx.toml",
            "serve",
            "--listen",
            "0.0.0.0:8420",
        ])
        .unwrap_or_else(|why| panic!("{why}"));
    }

    /// The coordinator's URL as this test process reaches it.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn network(&self) -> String {
        format!("{}-net", self.run)
    }

    fn coordinator_container(&self) -> String {
        format!("{}-coordinator", self.run)
    }

    fn config_path(&self) -> PathBuf {
        self.scratch.path().join("gridx.toml")
    }

    fn log(&self, name: &str) -> File {
        File::options()
            .create(true)
            .append(true)
            .open(self.scratch.path().join(format!("{name}.log")))
            .expect("open a log file")
    }

    // ---- the coordinator -------------------------------------------------------

    /// Starts (or restarts, on the same data) the coordinator and waits for health.
    ///
    /// The first start takes a port the system picks. A restart (after kill -9 or
    /// SIGTERM) keeps that port: the load generators of the scenarios hold the URL
    /// across restarts and count a refused connection as "not sent", and the local
    /// workers' relays point at it. The port was this cluster's until the old process
    /// died; should another process take it in that instant, the restart fails to bind
    /// and the test fails with that, never talking to another test's coordinator.
    pub async fn start_coordinator(&mut self) {
        match self.kind {
            Kind::Local => {
                let started = spawn_server(
                    Command::new(binary("gridx-server"))
                        .arg("--data-dir")
                        .arg(self.data.path())
                        .arg("--config")
                        .arg(self.config_path())
                        .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
                        .env("GRIDX_LOG", "info")
                        .stdin(Stdio::null())
                        .stderr(self.log("coordinator")),
                )
                .await;
                let (child, addr) =
                    started.unwrap_or_else(|why| panic!("{why}\n{}", self.coordinator_log()));
                self.server = Some(child);
                self.port = addr.port();
            }
            Kind::Docker => {
                let name = self.coordinator_container();
                if self.port != 0 {
                    // Docker gives a dynamically published port a new number at every
                    // start, so a restart is a new container on the same data
                    // directory, publishing the port the first one got.
                    let earlier = docker_hosts::log_tail(&name, 200);
                    let _ = std::io::Write::write_all(
                        &mut self.log("coordinator-earlier"),
                        earlier.as_bytes(),
                    );
                    docker(&["rm", "-f", &name]).unwrap_or_else(|why| panic!("{why}"));
                    self.create_coordinator_container(&format!("127.0.0.1:{}:8420", self.port));
                }
                docker(&["start", &name]).expect("start the coordinator");
                self.port =
                    docker_hosts::published_port(&name, 8420).unwrap_or_else(|why| panic!("{why}"));
            }
        }
        let url = self.url();
        wait_healthy(&self.http, &url, 20, &|| {
            format!("\n{}", self.coordinator_log())
        })
        .await;
    }

    /// SIGKILL: no drain, no flush.
    pub fn kill_coordinator(&mut self) {
        match self.kind {
            Kind::Local => {
                if let Some(mut child) = self.server.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
            Kind::Docker => {
                let name = self.coordinator_container();
                docker(&["kill", "--signal", "KILL", &name]).expect("kill the coordinator");
                // `docker kill` returns once the signal is sent; wait for the exit.
                let _ = docker(&["wait", &name]);
            }
        }
    }

    /// SIGTERM and wait up to `secs`; the exit code, or `None` if it had to be killed.
    pub fn stop_coordinator(&mut self, secs: u64) -> Option<i32> {
        match self.kind {
            Kind::Local => {
                let mut child = self.server.take()?;
                terminate(&mut child, secs).and_then(|s| s.code())
            }
            Kind::Docker => stop_container(&self.coordinator_container(), secs),
        }
    }

    pub fn coordinator_log(&self) -> String {
        match self.kind {
            Kind::Local => tail_file(&self.scratch.path().join("coordinator.log"), 40),
            // With what the containers before a restart logged (see start_coordinator).
            Kind::Docker => format!(
                "{}\n{}",
                tail_file(&self.scratch.path().join("coordinator-earlier.log"), 20),
                docker_hosts::log_tail(&self.coordinator_container(), 40)
            ),
        }
    }

    // ---- admin commands on the data directory ----------------------------------

    /// Adds a user with `credits`; returns the API token.
    pub fn user(&self, name: &str, credits: &str) -> String {
        admin_on(
            self.data.path(),
            &["user", "add", name, "--credits", credits],
        )
    }

    /// Panics with the report unless `ledger verify` passes.
    pub fn assert_ledger_verifies(&self, when: &str) {
        assert_ledger_verifies_of(self.data.path(), when);
    }

    // ---- workers -------------------------------------------------------------------

    /// Registers a worker owned by `owner`, marked trusted (its results need no
    /// replica, docs/trust.md), and starts it; returns its index.
    pub async fn add_worker(&mut self, owner: &str, slots: u32) -> usize {
        self.add_worker_with(owner, slots, true).await
    }

    /// Registers a worker on probation (every result checked by another owner's
    /// worker) and starts it; returns its index.
    pub async fn add_untrusted_worker(&mut self, owner: &str, slots: u32) -> usize {
        self.add_worker_with(owner, slots, false).await
    }

    /// Registers a worker on probation for `owner` without starting anything: the
    /// token of a worker the test plays itself (a cheater, `crate::cheater`).
    pub fn untrusted_worker_token(&self, owner: &str, name: &str) -> String {
        admin_on(
            self.data.path(),
            &["worker", "add", "--owner", owner, "--name", name],
        )
    }

    /// Runs a `gridx-server` admin command on the coordinator's data directory (it
    /// may be running); its stdout, trimmed.
    pub fn admin(&self, args: &[&str]) -> String {
        admin_on(self.data.path(), args)
    }

    async fn add_worker_with(&mut self, owner: &str, slots: u32, trusted: bool) -> usize {
        let index = self.workers.len();
        let name = format!("{}-w{}", self.run, index + 1);
        let mut args = vec!["worker", "add", "--owner", owner, "--name", &name];
        if trusted {
            args.push("--trusted");
        }
        let token = admin_on(self.data.path(), &args);
        let local = match self.kind {
            Kind::Local => Some(LocalWorker {
                child: None,
                proxy: Proxy::start(([127, 0, 0, 1], self.port).into()),
                work_dir: tempfile::tempdir().expect("work dir"),
            }),
            Kind::Docker => {
                let container = self.worker_container(&name);
                docker(&[
                    "create",
                    "--name",
                    &container,
                    "--network",
                    &self.network(),
                    "--label",
                    &format!("{CLUSTER_LABEL}={}", self.run),
                    "--volume",
                    "/var/run/docker.sock:/var/run/docker.sock",
                    "--volume",
                    &format!("{}:/etc/gridx:ro", self.scratch.path().display()),
                    "--env",
                    &format!("GRIDX_WORKER_TOKEN={token}"),
                    "--env",
                    "GRIDX_LOG=info",
                    HOST_IMAGE,
                    "gridx-tui",
                    "--config",
                    "/etc/gridx/gridx.toml",
                    "worker",
                    "--headless",
                    "--server",
                    "http://coordinator:8420",
                    "--name",
                    &name,
                    "--executor",
                    "docker",
                    "--slots",
                    &slots.to_string(),
                ])
                .expect("create a worker container");
                None
            }
        };
        self.workers.push(WorkerHost {
            name,
            token,
            slots,
            local,
        });
        self.start_worker(index).await;
        index
    }

    fn worker_container(&self, name: &str) -> String {
        format!("{name}-host")
    }

    pub fn worker_name(&self, index: usize) -> &str {
        &self.workers[index].name
    }

    /// Starts worker `index` (again) and waits until the coordinator lists it online.
    pub async fn start_worker(&mut self, index: usize) {
        match self.kind {
            Kind::Local => {
                let log = self.log(&self.workers[index].name);
                let worker = &mut self.workers[index];
                let Some(local) = worker.local.as_mut() else {
                    return;
                };
                let child = Command::new(binary("gridx-tui"))
                    .arg("--config")
                    .arg(self.scratch.path().join("gridx.toml"))
                    .args([
                        "worker",
                        "--headless",
                        "--server",
                        &format!("http://127.0.0.1:{}", local.proxy.port),
                        "--name",
                        &worker.name,
                        "--executor",
                        "bubblewrap",
                        "--slots",
                        &worker.slots.to_string(),
                    ])
                    .arg("--work-dir")
                    .arg(local.work_dir.path())
                    .env("GRIDX_WORKER_TOKEN", &worker.token)
                    .env("GRIDX_LOG", "info")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .expect("spawn gridx-tui worker");
                local.child = Some(child);
            }
            Kind::Docker => {
                let container = self.worker_container(&self.workers[index].name);
                docker(&["start", &container]).expect("start a worker container");
            }
        }
        let name = self.workers[index].name.clone();
        self.wait_worker_status(index, "online", 60)
            .await
            .unwrap_or_else(|| panic!("worker {name} never came online"));
    }

    /// Waits until the coordinator lists worker `index` with `status`; its view.
    pub async fn wait_worker_status(&self, index: usize, status: &str, secs: u64) -> Option<Value> {
        let name = &self.workers[index].name;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while tokio::time::Instant::now() < deadline {
            if let Ok(workers) = self.workers_view().await
                && let Some(view) = workers
                    .into_iter()
                    .find(|w| w["name"] == name.as_str() && w["status"] == status)
            {
                return Some(view);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// The coordinator's id for worker `index`.
    pub async fn worker_id(&self, index: usize) -> u64 {
        let name = &self.workers[index].name;
        self.workers_view()
            .await
            .expect("list workers")
            .iter()
            .find(|w| w["name"] == name.as_str())
            .and_then(|w| w["worker_id"].as_u64())
            .unwrap_or_else(|| panic!("worker {name} is not registered"))
    }

    /// SIGKILL worker `index`.
    pub fn kill_worker(&mut self, index: usize) {
        match self.kind {
            Kind::Local => {
                if let Some(child) = self.workers[index]
                    .local
                    .as_mut()
                    .and_then(|l| l.child.as_mut())
                {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
            Kind::Docker => {
                let container = self.worker_container(&self.workers[index].name);
                docker(&["kill", "--signal", "KILL", &container]).expect("kill a worker");
                let _ = docker(&["wait", &container]);
            }
        }
    }

    /// SIGTERM worker `index` and wait up to `secs`: its exit code, `None` if killed.
    pub fn stop_worker(&mut self, index: usize, secs: u64) -> Option<i32> {
        match self.kind {
            Kind::Local => {
                let child = self.workers[index].local.as_mut()?.child.as_mut()?;
                terminate(child, secs).and_then(|s| s.code())
            }
            Kind::Docker => stop_container(&self.worker_container(&self.workers[index].name), secs),
        }
    }

    /// Whether worker `index`'s process or container is still running.
    pub fn worker_running(&mut self, index: usize) -> bool {
        match self.kind {
            Kind::Local => self.workers[index]
                .local
                .as_mut()
                .and_then(|l| l.child.as_mut())
                .is_some_and(|c| matches!(c.try_wait(), Ok(None))),
            Kind::Docker => {
                docker_hosts::is_running(&self.worker_container(&self.workers[index].name))
            }
        }
    }

    /// Cuts worker `index` off the network; its jobs keep running where they are.
    pub fn partition(&self, index: usize) {
        match self.kind {
            Kind::Local => {
                if let Some(local) = &self.workers[index].local {
                    local.proxy.cut();
                }
            }
            Kind::Docker => {
                let container = self.worker_container(&self.workers[index].name);
                docker(&["network", "disconnect", &self.network(), &container])
                    .expect("disconnect a worker");
            }
        }
    }

    pub fn heal(&self, index: usize) {
        match self.kind {
            Kind::Local => {
                if let Some(local) = &self.workers[index].local {
                    local.proxy.heal();
                }
            }
            Kind::Docker => {
                let container = self.worker_container(&self.workers[index].name);
                docker(&["network", "connect", &self.network(), &container])
                    .expect("reconnect a worker");
            }
        }
    }

    pub fn worker_log(&self, index: usize) -> String {
        let name = &self.workers[index].name;
        match self.kind {
            Kind::Local => tail_file(&self.scratch.path().join(format!("{name}.log")), 40),
            Kind::Docker => docker_hosts::log_tail(&self.worker_container(name), 40),
        }
    }

    // ---- the HTTP API ----------------------------------------------------------

    /// POST /v1/jobs: the job view, or the status and error body.
    pub async fn submit(&self, token: &str, body: &Value) -> Result<Value, (u16, String)> {
        let response = self
            .http
            .post(format!("{}/v1/jobs", self.url()))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .map_err(|e| (0, e.to_string()))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| (status, e.to_string()))?;
        if status == 201 {
            serde_json::from_str(&text).map_err(|e| (status, e.to_string()))
        } else {
            Err((status, text))
        }
    }

    /// GET `path` as `token`; the JSON body of a 200.
    pub async fn get(&self, token: &str, path: &str) -> Result<Value, String> {
        let response = self
            .http
            .get(format!("{}{path}", self.url()))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let text = response.text().await.map_err(|e| e.to_string())?;
        if status == 200 {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            Err(format!("GET {path}: {status} {text}"))
        }
    }

    pub async fn workers_view(&self) -> Result<Vec<Value>, String> {
        let token = self
            .observer
            .get_or_init(|| self.user("observer", "0"))
            .clone();
        Ok(self.get(&token, "/v1/workers").await?["workers"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Every job of the user, following the pages.
    pub async fn all_jobs(&self, token: &str) -> Vec<Value> {
        let mut jobs = Vec::new();
        let mut before: Option<u64> = None;
        loop {
            let path = match before {
                Some(b) => format!("/v1/jobs?limit=500&before={b}"),
                None => "/v1/jobs?limit=500".to_owned(),
            };
            let page = self.get(token, &path).await.expect("list jobs");
            jobs.extend(page["jobs"].as_array().cloned().unwrap_or_default());
            match page["next"].as_u64() {
                Some(next) => before = Some(next),
                None => return jobs,
            }
        }
    }

    /// Every job of the user with its output. Lists carry summaries without output,
    /// so each job's view is read on its own, waiting out the rate limit when a long
    /// run of reads meets it.
    pub async fn all_jobs_with_output(&self, token: &str) -> Vec<Value> {
        let mut jobs = Vec::new();
        for summary in self.all_jobs(token).await {
            let id = summary["job_id"].as_u64().expect("a job id");
            let path = format!("/v1/jobs/{id}");
            let mut tries = 0;
            let view = loop {
                match self.get(token, &path).await {
                    Ok(view) => break view,
                    Err(why) if why.contains("429") && tries < 120 => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Err(why) => panic!("reading job {id}: {why}"),
                }
            };
            jobs.push(view);
        }
        jobs
    }

    /// Waits until none of the users' jobs is queued or running; panics after `secs`.
    pub async fn wait_all_settled(&self, tokens: &[&str], secs: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let mut open = 0;
            for token in tokens {
                for status in ["queued", "running"] {
                    let page = self
                        .get(token, &format!("/v1/jobs?status={status}&limit=500"))
                        .await;
                    open += page
                        .ok()
                        .and_then(|p| p["jobs"].as_array().map(Vec::len))
                        .unwrap_or(1);
                }
            }
            if open == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{open} jobs still open after {secs} s\ncoordinator:\n{}",
                self.coordinator_log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The user's balance in milli-credits, exactly.
    pub async fn balance_millis(&self, token: &str) -> i64 {
        let body = self.get(token, "/v1/balance").await.expect("balance");
        credits_millis(&body["balance"])
    }

    /// A counter or gauge from `/metrics` (0 when absent).
    pub async fn metric(&self, name: &str) -> f64 {
        let Ok(response) = self
            .http
            .get(format!("{}/metrics", self.url()))
            .send()
            .await
        else {
            return 0.0;
        };
        let text = response.text().await.unwrap_or_default();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (key, value) = l.split_once(' ')?;
                (key == name).then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0.0)
    }
}

/// A JSON credit amount in milli-credits, parsed exactly (no floating point).
pub fn credits_millis(value: &Value) -> i64 {
    serde_json::from_value::<Credits>(value.clone())
        .unwrap_or_else(|e| panic!("{value} is not a credit amount: {e}"))
        .millis()
}

fn stop_container(name: &str, secs: u64) -> Option<i32> {
    docker(&["stop", "--time", &secs.to_string(), name]).ok()?;
    let code = docker_hosts::exit_code(name).ok()?;
    // `docker stop` kills after the timeout: 137 means it did not exit by itself.
    (code != 137).then_some(code)
}

fn tail_file(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- coordinator log ---\n{}", self.coordinator_log());
            for index in 0..self.workers.len() {
                eprintln!(
                    "--- worker {} log ---\n{}",
                    self.workers[index].name,
                    self.worker_log(index)
                );
            }
        }
        match self.kind {
            Kind::Local => {
                for worker in &mut self.workers {
                    if let Some(child) = worker.local.as_mut().and_then(|l| l.child.as_mut()) {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                }
                if let Some(mut child) = self.server.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
            Kind::Docker => {
                let names: Vec<String> = self.workers.iter().map(|w| w.name.clone()).collect();
                docker_hosts::remove_cluster(&self.run, &self.network(), &names);
            }
        }
    }
}
