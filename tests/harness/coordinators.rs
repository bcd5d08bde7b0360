//! Several `gridx-server serve --store postgres://…` processes on one throwaway
//! PostgreSQL cluster, one leading (docs/operations.md, "Several coordinators"), with
//! real `gridx-tui worker` processes given every coordinator's address: the failover
//! suite's grid (tests/failover.rs).

use crate::postgres::Cluster;
use crate::proxy::Proxy;
use crate::{binary, require_executor, spawn_server, terminate};
use serde_json::Value;
use std::fs::File;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Heartbeats of a second so lost workers show quickly; rate limits out of the way;
/// workers reconnect within 2 s.
const CONFIG: &str = "\
[server]
heartbeat_s = 1
shutdown_grace_s = 5
rate_limit_per_s = 10000
rate_limit_burst = 10000

[worker]
shutdown_grace_s = 5
reconnect_max_backoff_s = 2
";

pub struct Coordinator {
    pub child: Option<Child>,
    pub port: u16,
    /// The store URL this coordinator was given (directly, or through a relay).
    pub store: String,
}

pub struct Coordinators {
    pub pg: Cluster,
    /// The database all coordinators share.
    pub store: String,
    pub scratch: tempfile::TempDir,
    pub http: reqwest::Client,
    pub coordinators: Vec<Coordinator>,
    workers: Vec<Child>,
    work_dirs: Vec<tempfile::TempDir>,
}

/// Who answers `/healthz` as leader now: its index and epoch.
pub type Leader = (usize, i64);

impl Coordinators {
    /// A cluster and its database, no coordinator yet; `None` when the test must
    /// skip (PostgreSQL or bubblewrap absent outside CI).
    pub fn new() -> Option<Coordinators> {
        if !require_executor("bubblewrap") {
            return None;
        }
        let pg = match Cluster::start() {
            Ok(pg) => pg,
            Err(why) => {
                crate::skip::skip(crate::skip::Tool::Postgres, why);
                return None;
            }
        };
        let store = pg.create_database().unwrap_or_else(|why| panic!("{why}"));
        let scratch = tempfile::tempdir().expect("scratch");
        std::fs::write(scratch.path().join("gridx.toml"), CONFIG).expect("config");
        Some(Coordinators {
            pg,
            store,
            scratch,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
            coordinators: Vec::new(),
            workers: Vec::new(),
            work_dirs: Vec::new(),
        })
    }

    fn log(&self, name: &str) -> File {
        File::options()
            .create(true)
            .append(true)
            .open(self.scratch.path().join(format!("{name}.log")))
            .expect("log file")
    }

    pub fn log_of(&self, name: &str) -> String {
        std::fs::read_to_string(self.scratch.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Every coordinator's log, for a failure's message.
    pub fn logs(&self) -> String {
        (0..self.coordinators.len())
            .map(|i| {
                format!(
                    "--- coordinator {i}\n{}",
                    tail(&self.log_of(&format!("c{i}")))
                )
            })
            .collect()
    }

    /// `gridx-server --store … ARGS`; stdout trimmed, panics on failure.
    pub fn admin(&self, args: &[&str]) -> String {
        let out = Command::new(binary("gridx-server"))
            .arg("--store")
            .arg(&self.store)
            .args(args)
            .output()
            .expect("run gridx-server");
        assert!(
            out.status.success(),
            "gridx-server {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A user with `credits`; its token.
    pub fn user(&self, name: &str, credits: &str) -> String {
        let out = self.admin(&["user", "add", name, "--credits", credits]);
        out.lines().last().unwrap_or_default().to_owned()
    }

    /// Starts coordinator `index` (a new one when `index` is past the end) on its
    /// port (0 the first time), with `store` as its store URL.
    pub async fn start(&mut self, index: usize, store: Option<String>) {
        if index == self.coordinators.len() {
            self.coordinators.push(Coordinator {
                child: None,
                port: 0,
                store: store.clone().unwrap_or_else(|| self.store.clone()),
            });
        }
        let (port, store) = {
            let c = &self.coordinators[index];
            (c.port, c.store.clone())
        };
        let started = spawn_server(
            Command::new(binary("gridx-server"))
                .arg("--store")
                .arg(&store)
                .arg("--config")
                .arg(self.scratch.path().join("gridx.toml"))
                .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
                .env("GRIDX_LOG", "info")
                .stdin(Stdio::null())
                .stderr(self.log(&format!("c{index}"))),
        )
        .await;
        let (child, addr): (Child, SocketAddr) =
            started.unwrap_or_else(|why| panic!("{why}\n{}", self.logs()));
        let c = &mut self.coordinators[index];
        c.child = Some(child);
        c.port = addr.port();
    }

    pub fn url(&self, index: usize) -> String {
        format!("http://127.0.0.1:{}", self.coordinators[index].port)
    }

    /// Every coordinator's address, as `--server` takes them.
    pub fn urls(&self) -> Vec<String> {
        (0..self.coordinators.len()).map(|i| self.url(i)).collect()
    }

    /// What coordinator `index` answers on `/healthz`: status and body.
    pub async fn health(&self, index: usize) -> Option<(u16, Value)> {
        let r = self
            .http
            .get(format!("{}/healthz", self.url(index)))
            .timeout(Duration::from_millis(500))
            .send()
            .await
            .ok()?;
        let status = r.status().as_u16();
        Some((status, r.json().await.ok()?))
    }

    /// The coordinator answering as leader now, if any.
    pub async fn leader(&self) -> Option<Leader> {
        for i in 0..self.coordinators.len() {
            if self.coordinators[i].child.is_none() {
                continue;
            }
            if let Some((200, body)) = self.health(i).await
                && body["role"] == "leader"
            {
                return Some((i, body["epoch"].as_i64().unwrap_or(0)));
            }
        }
        None
    }

    /// Waits until some coordinator other than `not` leads with an epoch past
    /// `after`; it and when it was first seen.
    pub async fn wait_leader(
        &self,
        not: Option<usize>,
        after: i64,
        secs: u64,
    ) -> (Leader, Instant) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some((i, epoch)) = self.leader().await
                && Some(i) != not
                && epoch > after
            {
                return ((i, epoch), Instant::now());
            }
            assert!(
                Instant::now() < deadline,
                "no coordinator led within {secs} s\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL coordinator `index`.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.coordinators[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a `gridx-tui worker` (bubblewrap) with every coordinator's address.
    pub fn start_worker(&mut self, name: &str, token: &str, slots: u32) {
        let work_dir = tempfile::tempdir().expect("work dir");
        let child = Command::new(binary("gridx-tui"))
            .arg("--config")
            .arg(self.scratch.path().join("gridx.toml"))
            .args([
                "worker",
                "--headless",
                "--server",
                &self.urls().join(","),
                "--name",
                name,
                "--executor",
                "bubblewrap",
                "--slots",
                &slots.to_string(),
            ])
            .arg("--work-dir")
            .arg(work_dir.path())
            .env("GRIDX_WORKER_TOKEN", token)
            .env("GRIDX_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(self.log(name))
            .spawn()
            .expect("spawn gridx-tui worker");
        self.workers.push(child);
        self.work_dirs.push(work_dir);
    }

    /// `ledger verify` on the shared store; panics with the report when it fails.
    pub fn assert_ledger_verifies(&self, when: &str) {
        let out = Command::new(binary("gridx-server"))
            .arg("--store")
            .arg(&self.store)
            .args(["ledger", "verify"])
            .output()
            .expect("run gridx-server");
        assert!(
            out.status.success(),
            "ledger verify failed {when}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A relay to the cluster, to cut one coordinator off from the database.
    pub fn relay_to_database(&self) -> (Proxy, String) {
        let proxy = Proxy::start(([127, 0, 0, 1], self.pg.port).into());
        let url = self
            .store
            .replace(&format!(":{}/", self.pg.port), &format!(":{}/", proxy.port));
        (proxy, url)
    }
}

impl Drop for Coordinators {
    fn drop(&mut self) {
        for mut w in self.workers.drain(..) {
            let _ = terminate(&mut w, 5);
        }
        for c in &mut self.coordinators {
            if let Some(mut child) = c.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
