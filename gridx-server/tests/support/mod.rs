//! An in-process coordinator on an ephemeral port, and a scripted fake worker that
//! speaks the real protocol over a real WebSocket.
#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use gridx_proto::config::ServerConfig;
use gridx_proto::job::{RunEnd, RunOutcome};
use gridx_proto::protocol::{
    Capabilities, CoordinatorMessage, ExecutorKind, JobAttempt, PROTOCOL_VERSION, RejectCode,
    WorkerMessage, decode_coordinator_message, encode,
};
use gridx_proto::{Credits, JobId, JobSpec, Language, UserName, WorkerId};
use gridx_server::store::{self, ledger, users};
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub struct TestServer {
    pub base: String,
    pub ws_base: String,
    pub data_dir: PathBuf,
    /// Where the store is: SQLite in `data_dir`, or a PostgreSQL database of its own
    /// on the shared test cluster when the suite runs on PostgreSQL (see [`engine`]).
    pub location: store::Location,
    _tmp: Option<tempfile::TempDir>,
    shutdown: watch::Sender<bool>,
    handle: JoinHandle<Result<(), gridx_server::app::LaunchError>>,
    pub http: reqwest::Client,
    pub config: ServerConfig,
}

/// Which store this suite runs on: PostgreSQL when it was included by
/// `tests/on_postgres.rs` (its module path says so), else SQLite. Without a
/// PostgreSQL server outside CI, a PostgreSQL suite runs on SQLite and reports the
/// skip (in CI that fails).
pub fn engine_is_postgres() -> bool {
    module_path!().starts_with("on_postgres")
}

/// A fresh store for one test server.
fn fresh_location(data_dir: &std::path::Path) -> store::Location {
    if engine_is_postgres() {
        match gridx_e2e::postgres::shared().and_then(|c| c.create_database()) {
            Ok(url) => return store::Location::Postgres(url),
            Err(why) => gridx_e2e::skip::skip(gridx_e2e::skip::Tool::Postgres, why),
        }
    }
    store::Location::Sqlite(data_dir.to_owned())
}

/// Runs `f` on a thread of its own: PostgreSQL's synchronous client must not run
/// inside the test's async runtime.
pub fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| scope.spawn(f).join().expect("store thread"))
}

pub fn fast_config() -> ServerConfig {
    ServerConfig {
        heartbeat_s: 1,
        hello_timeout_s: 1,
        shutdown_grace_s: 0,
        ..ServerConfig::default()
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut config = fast_config();
        tweak(&mut config);
        let dir = tmp.path().to_owned();
        let location = fresh_location(&dir);
        let mut server = Self::start_in(dir, location, config).await;
        server._tmp = Some(tmp);
        server
    }

    /// A server on a store the caller chose (a migrated PostgreSQL database, say).
    pub async fn start_on(location: store::Location) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut server = Self::start_in(tmp.path().to_owned(), location, fast_config()).await;
        server._tmp = Some(tmp);
        server
    }

    async fn start_in(data_dir: PathBuf, location: store::Location, config: ServerConfig) -> Self {
        if std::env::var_os("GRIDX_TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        }
        // Create the store before launch so tests can add users straight away.
        off_runtime(|| drop(store::open_writer_at(&location).expect("store")));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (shutdown, rx) = watch::channel(false);
        let handle = match &location {
            store::Location::Sqlite(dir) => tokio::spawn(gridx_server::launch(
                config.clone(),
                dir.clone(),
                listener,
                rx,
            )),
            store::Location::Postgres(url) => {
                tokio::spawn(gridx_server::replicated::launch_replicated(
                    config.clone(),
                    url.clone(),
                    format!("http://{addr}"),
                    // The default timing: a suite's server is alone on its database
                    // and leads at once; the fast timing would depose a leader whose
                    // renewal is late on two loaded cores.
                    gridx_server::leadership::Timing::default(),
                    listener,
                    rx,
                ))
            }
        };
        let server = TestServer {
            base: format!("http://{addr}"),
            ws_base: format!("ws://{addr}"),
            data_dir,
            location,
            _tmp: None,
            shutdown,
            handle,
            http: reqwest::Client::new(),
            config,
        };
        // Up, and leading (a coordinator on PostgreSQL stands by until it leads).
        for _ in 0..500 {
            if let Ok(r) = server.http.get(server.url("/healthz")).send().await
                && r.status() == 200
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("test server did not come up");
    }

    /// A handle on a coordinator running in another process (no shutdown control).
    pub fn remote(addr: &str, data_dir: &std::path::Path) -> Self {
        let (shutdown, _) = watch::channel(false);
        TestServer {
            base: format!("http://{addr}"),
            ws_base: format!("ws://{addr}"),
            data_dir: data_dir.to_owned(),
            location: store::Location::Sqlite(data_dir.to_owned()),
            _tmp: None,
            shutdown,
            handle: tokio::spawn(async { Ok(()) }),
            http: reqwest::Client::new(),
            config: fast_config(),
        }
    }

    /// Stops the coordinator (grace as configured) and starts a new one on the same
    /// store, as after a restart.
    pub async fn restart(mut self) -> Self {
        let tmp = self._tmp.take();
        self.stop().await;
        let mut server = Self::start_in(
            self.data_dir.clone(),
            self.location.clone(),
            self.config.clone(),
        )
        .await;
        server._tmp = tmp;
        server
    }

    pub async fn stop(&mut self) {
        let _ = self.shutdown.send(true);
        let handle = std::mem::replace(&mut self.handle, tokio::spawn(async { Ok(()) }));
        tokio::time::timeout(Duration::from_secs(20), handle)
            .await
            .expect("server stopped in time")
            .expect("server task")
            .expect("server ran cleanly");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The flag that names this server's store to a `gridx-server` admin command.
    pub fn store_flag(&self) -> [String; 2] {
        match &self.location {
            store::Location::Sqlite(dir) => ["--data-dir".into(), dir.display().to_string()],
            store::Location::Postgres(url) => ["--store".into(), url.clone()],
        }
    }

    /// Runs `f` on a writer connection to this server's store, off the runtime.
    pub fn with_store<T: Send>(&self, f: impl FnOnce(&store::Db) -> T + Send) -> T {
        let location = &self.location;
        off_runtime(move || f(&store::open_writer_at(location).expect("store")))
    }

    pub fn add_user(&self, name: &str, credits: i64) -> String {
        self.with_store(|conn| {
            users::create_user(
                conn,
                &UserName::new(name).unwrap(),
                Credits::from_whole(credits),
                false,
            )
            .expect("create user")
        })
    }

    /// Lets a user submit up to `max` (the operator's `user set --max-priority`).
    pub fn set_max_priority(&self, name: &str, max: i32) {
        self.with_store(|conn| {
            users::set_max_priority(conn, &UserName::new(name).unwrap(), max).expect("set")
        });
    }

    pub fn add_admin(&self, name: &str) -> String {
        self.with_store(|conn| {
            users::create_user(
                conn,
                &UserName::new(name).unwrap(),
                Credits::from_whole(100),
                true,
            )
            .expect("create admin")
        })
    }

    pub fn add_worker(&self, owner: &str) -> (WorkerId, String) {
        self.with_store(|conn| {
            let (id, token) =
                users::add_worker(conn, &UserName::new(owner).unwrap(), "w").expect("add worker");
            // Trusted, so results are taken as reported; the result-check suite
            // (tests/validation.rs) registers its workers with `add_untrusted_worker`.
            gridx_server::store::trust::set_trusted(conn, id, true).expect("trust");
            (id, token)
        })
    }

    /// A worker on probation: its results are checked by replicas (docs/trust.md).
    pub fn add_untrusted_worker(&self, owner: &str) -> (WorkerId, String) {
        self.with_store(|conn| {
            users::add_worker(conn, &UserName::new(owner).unwrap(), "w").expect("add worker")
        })
    }

    pub fn revoke_worker(&self, id: WorkerId) {
        self.with_store(|conn| users::revoke_worker(conn, id).expect("revoke"));
    }

    pub fn verify_ledger(&self) -> ledger::VerifyReport {
        self.with_store(|conn| ledger::verify(conn).expect("verify"))
    }

    pub fn assert_ledger_ok(&self) {
        let report = self.verify_ledger();
        assert!(
            report.violations.is_empty(),
            "ledger violations: {:#?}",
            report.violations
        );
    }

    pub async fn submit(&self, token: &str, body: serde_json::Value) -> reqwest::Response {
        self.http
            .post(self.url("/v1/jobs"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn submit_ok(&self, token: &str, code: &str) -> JobId {
        let response = self
            .submit(
                token,
                serde_json::json!({"language": "python", "code": code}),
            )
            .await;
        assert_eq!(response.status(), 201);
        let view: serde_json::Value = response.json().await.unwrap();
        JobId(view["job_id"].as_u64().unwrap())
    }

    pub async fn get_json(&self, token: &str, path: &str) -> (u16, serde_json::Value) {
        self.request_json(reqwest::Method::GET, token, path).await
    }

    pub async fn post_json(&self, token: &str, path: &str) -> (u16, serde_json::Value) {
        self.request_json(reqwest::Method::POST, token, path).await
    }

    /// POSTs a JSON body; the status and the JSON answer (`Null` if none).
    pub async fn post_body(
        &self,
        token: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.send_json(reqwest::Method::POST, token, path, Some(body))
            .await
    }

    async fn request_json(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
    ) -> (u16, serde_json::Value) {
        self.send_json(method, token, path, None).await
    }

    async fn send_json(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn job(&self, token: &str, id: JobId) -> serde_json::Value {
        let (status, body) = self.get_json(token, &format!("/v1/jobs/{id}")).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Polls a job until its status is `want`, or panics after `secs`.
    pub async fn wait_status(
        &self,
        token: &str,
        id: JobId,
        want: &str,
        secs: u64,
    ) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let job = self.job(token, id).await;
            if job["status"] == want {
                return job;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "job {id} is {} not {want} after {secs} s: {job}",
                    job["status"]
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn balance(&self, token: &str) -> Credits {
        let (status, body) = self.get_json(token, "/v1/balance").await;
        assert_eq!(status, 200);
        serde_json::from_value(body["balance"].clone()).unwrap()
    }
}

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct FakeWorker {
    pub socket: Socket,
    pub worker_id: WorkerId,
    pub token: String,
}

pub fn hello(token: &str, slots: u32, running: Vec<JobAttempt>) -> WorkerMessage {
    hello_with(token, running, capabilities(slots))
}

/// What the fake worker claims by default: a sandbox (so it gets every user's jobs;
/// a `noop` or `unsandboxed` worker gets its owner's only) and no admission caps.
pub fn capabilities(slots: u32) -> Capabilities {
    Capabilities {
        gpu_devices: Vec::new(),
        languages: vec![Language::Python, Language::Node, Language::Bash],
        slots,
        executor: ExecutorKind::Docker,
        cpu_cores: 2,
        memory_mb: 1024,
        gpus: 0,
        max_job_memory_mb: None,
        memory_budget_mb: None,
        max_job_timeout_s: None,
    }
}

pub fn hello_with(
    token: &str,
    running: Vec<JobAttempt>,
    capabilities: Capabilities,
) -> WorkerMessage {
    WorkerMessage::Hello {
        protocol: PROTOCOL_VERSION,
        token: token.into(),
        name: "fake".into(),
        capabilities,
        running,
    }
}

pub async fn raw_socket(server: &TestServer) -> Socket {
    let (socket, _) =
        tokio_tungstenite::connect_async(format!("{}/v1/worker/connect", server.ws_base))
            .await
            .expect("ws connect");
    socket
}

pub async fn send(socket: &mut Socket, message: &WorkerMessage) {
    socket
        .send(Message::Text(encode(message).unwrap().into()))
        .await
        .expect("send");
}

/// The next coordinator message, or None when the connection closed.
pub async fn recv(socket: &mut Socket, secs: u64) -> Option<CoordinatorMessage> {
    let deadline = Duration::from_secs(secs);
    loop {
        let frame = tokio::time::timeout(deadline, socket.next())
            .await
            .expect("a coordinator message in time");
        match frame {
            None | Some(Err(_)) => return None,
            Some(Ok(Message::Text(text))) => {
                return Some(decode_coordinator_message(&text, usize::MAX).expect("valid frame"));
            }
            Some(Ok(Message::Close(_))) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

impl FakeWorker {
    pub async fn connect(server: &TestServer, token: &str, slots: u32) -> FakeWorker {
        Self::connect_with(server, token, slots, vec![])
            .await
            .expect("welcome")
    }

    pub async fn connect_with(
        server: &TestServer,
        token: &str,
        slots: u32,
        running: Vec<JobAttempt>,
    ) -> Result<FakeWorker, (RejectCode, String)> {
        Self::connect_claiming(server, token, running, capabilities(slots)).await
    }

    /// Connects claiming these capabilities (an executor, admission caps).
    pub async fn connect_claiming(
        server: &TestServer,
        token: &str,
        running: Vec<JobAttempt>,
        capabilities: Capabilities,
    ) -> Result<FakeWorker, (RejectCode, String)> {
        let mut socket = raw_socket(server).await;
        send(&mut socket, &hello_with(token, running, capabilities)).await;
        match recv(&mut socket, 5).await {
            Some(CoordinatorMessage::Welcome { worker_id, .. }) => Ok(FakeWorker {
                socket,
                worker_id,
                token: token.into(),
            }),
            Some(CoordinatorMessage::Reject { code, message }) => Err((code, message)),
            other => panic!("expected welcome or reject, got {other:?}"),
        }
    }

    pub async fn recv(&mut self, secs: u64) -> Option<CoordinatorMessage> {
        recv(&mut self.socket, secs).await
    }

    /// The next coordinator message before `deadline`, if one comes; panics if the
    /// connection ends.
    pub async fn recv_until(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> Option<CoordinatorMessage> {
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return None,
                Ok(Some(Ok(Message::Text(text)))) => {
                    return Some(
                        decode_coordinator_message(&text, usize::MAX).expect("valid frame"),
                    );
                }
                Ok(Some(Ok(_))) => continue,
                Ok(other) => panic!("the connection ended: {other:?}"),
            }
        }
    }

    /// [`FakeWorker::recv_until`] `ms` from now.
    pub async fn recv_within(&mut self, ms: u64) -> Option<CoordinatorMessage> {
        self.recv_until(tokio::time::Instant::now() + Duration::from_millis(ms))
            .await
    }

    pub async fn send(&mut self, message: WorkerMessage) {
        send(&mut self.socket, &message).await;
    }

    pub async fn expect_assign(&mut self) -> (JobId, u32, JobSpec) {
        match self.recv(10).await {
            Some(CoordinatorMessage::Assign { job, attempt }) => (job.job_id, attempt, job.spec),
            other => panic!("expected assign, got {other:?}"),
        }
    }

    pub async fn heartbeat(&mut self, running: Vec<JobAttempt>) {
        self.send(WorkerMessage::Heartbeat {
            metrics: Default::default(),
            running,
            draining: false,
        })
        .await;
    }

    pub async fn finish(
        &mut self,
        job_id: JobId,
        attempt: u32,
        end: RunEnd,
        exit_code: Option<i32>,
        stdout: &str,
    ) {
        self.send(WorkerMessage::Finished {
            job_id,
            attempt,
            outcome: RunOutcome {
                end,
                exit_code,
                stdout: stdout.into(),
                stderr: String::new(),
                stdout_truncated: false,
                stderr_truncated: false,
                duration_ms: 5,
                message: None,
                compile_output: None,
            },
        })
        .await;
    }

    pub async fn run_ok(&mut self, job_id: JobId, attempt: u32, stdout: &str) {
        self.send(WorkerMessage::Started { job_id, attempt }).await;
        self.finish(job_id, attempt, RunEnd::Exited, Some(0), stdout)
            .await;
    }
}
