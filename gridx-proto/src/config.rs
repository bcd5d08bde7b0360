//! The configuration file (`gridx.toml`) shared by the server, the worker host and the
//! dashboard, and its layering: defaults, then the TOML file, then `GRIDX_*`
//! environment variables. Command-line flags are applied last, by each binary.
//!
//! This module only parses text it is given; reading the file and the environment is
//! the binaries' job, which keeps every rule here testable without I/O.

use crate::credits::Credits;
use crate::limits::JobLimits;
use crate::protocol::DEFAULT_MAX_FRAME_BYTES;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GridxConfig {
    pub server: ServerConfig,
    pub client: ClientConfig,
    pub worker: WorkerConfig,
    pub dashboard: DashboardConfig,
    pub store: StoreConfig,
}

/// `[store]`: where the coordinator and the admin commands keep their state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite:DIR` or `postgres://USER@HOST/DATABASE`; unset: SQLite in the data
    /// directory. `--store` and `GRIDX_STORE` override it.
    pub url: Option<String>,
    /// How this coordinator names itself to the others on a shared PostgreSQL
    /// store: the URL clients and workers reach it at (standbys name the leader by
    /// it). Unset: `http(s)://` and the address it listens on.
    pub advertise_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[server]`: the coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    /// Where the SQLite store lives; unset means the platform data directory.
    pub data_dir: Option<PathBuf>,
    pub log_format: LogFormat,
    pub heartbeat_s: u32,
    pub hello_timeout_s: u32,
    pub max_attempts: u32,
    pub job_cost: Credits,
    /// Added to `job_cost` for each GPU a job asks for (docs/jobs.md, "GPU jobs"):
    /// a job with `gpus: N` costs `job_cost + N × gpu_cost`, held and settled as one.
    pub gpu_cost: Credits,
    /// The worker owner's share of a job's cost, in per-mille; the rest is the fee.
    pub reward_permille: u16,
    pub new_user_credits: Credits,
    pub queue_capacity: u64,
    pub max_queued_per_user: u64,
    pub rate_limit_per_s: u32,
    pub rate_limit_burst: u32,
    pub max_request_bytes: usize,
    pub max_ws_frame_bytes: usize,
    pub request_timeout_s: u32,
    pub retention_days: u32,
    pub cors_allowed_origins: Vec<String>,
    pub shutdown_grace_s: u32,
    /// Overload limits (docs/operations.md, "What is limited"): worker sockets and
    /// `/v1/events` streams open at once per client address and in all, how far an
    /// event subscriber may fall behind before it is dropped, and how long one frame
    /// to a worker or subscriber may take to send before that peer is dropped.
    pub max_worker_connections_per_address: u32,
    pub max_worker_connections: u32,
    pub max_event_streams_per_address: u32,
    pub max_event_streams: u32,
    pub max_event_backlog_bytes: usize,
    pub send_timeout_s: u32,
    pub limits: JobLimits,
    pub tls: ServerTlsConfig,
    pub validation: ValidationConfig,
    pub judge0: Judge0Config,
}

/// `[server.judge0]`: the Judge0-compatible API's options (docs/judge0.md). Off by
/// default, like everything that makes the coordinator reach out to an address a
/// stranger chose.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Judge0Config {
    /// Accept `callback_url`: when a submission ends, PUT it to that URL.
    pub callbacks: bool,
    /// Also call back to loopback, private, link-local and other non-public
    /// addresses. Only for a grid whose clients are all on the operator's own
    /// network: on the open internet it lets any user make the coordinator reach
    /// inside it.
    pub callbacks_to_private_addresses: bool,
}

/// `[server.validation]`: how the results of workers nobody vouches for are checked
/// (docs/trust.md). The defaults are the safe ones: every new worker's result is run
/// again by another owner's worker until its record earns it spot checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidationConfig {
    /// Replicas, run by workers of different owners, that must agree for a checked
    /// result to be accepted. 1 turns checking off: every result is taken as reported.
    pub quorum: u32,
    /// The most replicas a job runs; no quorum among that many ends it `error`,
    /// refunded.
    pub max_replicas: u32,
    /// Confirmed results in a row before a worker is spot-checked rather than always
    /// checked; its rate is then `probation / streak`, never below the floor.
    pub probation: u32,
    /// The floor of the spot-check rate, in per-mille (never 0: a cheater that earned
    /// a record is still caught).
    pub min_spot_check_permille: u16,
    /// Invalid results that quarantine a worker, or its owner (all its workers, and
    /// any new one): it gets no jobs until an operator restores it.
    pub quarantine_after: u32,
    /// Confirmed results in a row that let a worker run `validate: false` jobs
    /// without being marked trusted.
    pub trusted_streak: u32,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        Self {
            quorum: 2,
            max_replicas: 3,
            probation: 10,
            min_spot_check_permille: 50,
            quarantine_after: 2,
            trusted_streak: 200,
        }
    }
}

/// `[server.tls]`: serve HTTPS and WSS with this certificate chain and key (PEM
/// files, reloaded on SIGHUP or when they change). Both or neither.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerTlsConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8420".into(),
            data_dir: None,
            log_format: LogFormat::Text,
            heartbeat_s: 5,
            hello_timeout_s: 5,
            max_attempts: 3,
            job_cost: Credits::from_whole(1),
            gpu_cost: Credits::from_whole(4),
            reward_permille: 800,
            new_user_credits: Credits::from_whole(100),
            queue_capacity: 100_000,
            max_queued_per_user: 10_000,
            rate_limit_per_s: 200,
            rate_limit_burst: 400,
            max_request_bytes: 2 * 1024 * 1024,
            max_ws_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            request_timeout_s: 30,
            retention_days: 7,
            cors_allowed_origins: Vec::new(),
            shutdown_grace_s: 10,
            max_worker_connections_per_address: 16,
            max_worker_connections: 4096,
            max_event_streams_per_address: 16,
            max_event_streams: 4096,
            max_event_backlog_bytes: 8 * 1024 * 1024,
            send_timeout_s: 10,
            limits: JobLimits::default(),
            tls: ServerTlsConfig::default(),
            validation: ValidationConfig::default(),
            judge0: Judge0Config::default(),
        }
    }
}

/// `[client]`: where the dashboard, REPL and one-shot commands connect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientConfig {
    /// The coordinator's URL; for coordinators in failover, all of them as
    /// `URL,URL,…` (at most 16; gridx-tui's `client::coordinators` reads it).
    pub server: String,
    pub token: Option<String>,
    /// A CA certificate (PEM) trusted besides the system's, for a private CA.
    pub ca_cert: Option<PathBuf>,
    /// Allow plain http:// to an address outside loopback.
    pub allow_insecure: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            server: "http://127.0.0.1:8420".into(),
            token: None,
            ca_cert: None,
            allow_insecure: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorChoice {
    /// Docker if an engine answers, else bubblewrap, else refuse to start.
    #[default]
    Auto,
    Docker,
    Bubblewrap,
    /// Runs jobs as plain processes. Needs `allow_unsandboxed = true` as well.
    Unsandboxed,
}

/// `[worker]`: the worker host run by `gridx-tui worker`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// As `[client] server`: one URL, or `URL,URL,…` for coordinators in failover.
    pub server: String,
    pub token: Option<String>,
    pub name: Option<String>,
    /// Jobs run at once; unset means one per CPU core.
    pub slots: Option<u32>,
    pub executor: ExecutorChoice,
    pub allow_unsandboxed: bool,
    /// bubblewrap: start even where the host cannot enforce every limit (no usable
    /// cgroup, or no seccomp filter for this architecture). Off: such a worker refuses
    /// to start and says what is missing.
    pub allow_weak_sandbox: bool,
    /// bubblewrap: the cgroup (a path as /proc/self/cgroup prints it) that job groups
    /// are made under; unset means the worker's own group.
    pub cgroup_parent: Option<String>,
    /// Base directory of job workspaces; unset means the platform cache directory.
    pub work_dir: Option<PathBuf>,
    /// CPU share of one job in thousandths of a core (1000 = one core); an integer so
    /// no float reaches a container limit.
    pub cpu_millicores: u32,
    pub pids_limit: u32,
    pub tmpfs_mb: u32,
    pub nofile_limit: u32,
    pub fsize_mb: u32,
    pub shutdown_grace_s: u32,
    pub reconnect_max_backoff_s: u32,
    pub docker_connect_timeout_ms: u32,
    /// The engine's OCI runtime for job containers, e.g. gVisor's `runsc`; unset
    /// means the engine's default (normally `runc`). Checked against `docker info`
    /// at start: a runtime the engine lacks refuses to start the Docker executor.
    pub docker_runtime: Option<String>,
    /// Admission caps (docs/worker.md, "Admission"): the most memory one job may ask
    /// for, the most all running jobs may ask for together (unset: three quarters of
    /// the host's memory, measured at start), and the longest timeout. An assignment
    /// past them is refused, and the coordinator, told them in `hello`, sends none.
    pub max_job_memory_mb: u32,
    pub memory_budget_mb: Option<u64>,
    pub max_job_timeout_s: u32,
    pub images: RuntimeImages,
    /// The GPUs lent to jobs: `none` (the default), `all`, or NVML indices such as
    /// `0,2` (docs/worker.md, "GPUs"). A job gets only the GPUs it is assigned.
    pub gpus: crate::gpu::GpuLending,
    /// As in `[client]`: a private CA, and plain http:// outside loopback.
    pub ca_cert: Option<PathBuf>,
    pub allow_insecure: bool,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            server: "http://127.0.0.1:8420".into(),
            token: None,
            name: None,
            slots: None,
            executor: ExecutorChoice::Auto,
            allow_unsandboxed: false,
            allow_weak_sandbox: false,
            cgroup_parent: None,
            work_dir: None,
            cpu_millicores: 1000,
            pids_limit: 128,
            tmpfs_mb: 64,
            nofile_limit: 256,
            fsize_mb: 64,
            shutdown_grace_s: 10,
            reconnect_max_backoff_s: 30,
            docker_connect_timeout_ms: 2000,
            docker_runtime: None,
            // The coordinator's default `server.limits.max_memory_mb` and
            // `max_timeout_s`: a worker with the defaults takes any default job.
            max_job_memory_mb: 4096,
            memory_budget_mb: None,
            max_job_timeout_s: 300,
            images: RuntimeImages::default(),
            gpus: crate::gpu::GpuLending::None,
            ca_cert: None,
            allow_insecure: false,
        }
    }
}

/// `[worker.images]`: the runtime image for each language. Languages may share an
/// image: `images build` makes each named image once, with every package its
/// languages need. By default the compilers and Ruby share one image, so their common
/// Debian base is fetched once (docs/worker.md, "Runtime images").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeImages {
    pub python: String,
    pub node: String,
    pub bash: String,
    pub c: String,
    pub cpp: String,
    pub java: String,
    pub go: String,
    pub rust: String,
    pub ruby: String,
}

/// The default image of the compiled languages and Ruby.
pub const TOOLCHAINS_IMAGE: &str = "gridx-runtime/toolchains:local";

impl Default for RuntimeImages {
    fn default() -> Self {
        Self {
            python: "gridx-runtime/python:local".into(),
            node: "gridx-runtime/node:local".into(),
            bash: "gridx-runtime/bash:local".into(),
            c: TOOLCHAINS_IMAGE.into(),
            cpp: TOOLCHAINS_IMAGE.into(),
            java: TOOLCHAINS_IMAGE.into(),
            go: TOOLCHAINS_IMAGE.into(),
            rust: TOOLCHAINS_IMAGE.into(),
            ruby: TOOLCHAINS_IMAGE.into(),
        }
    }
}

impl RuntimeImages {
    /// The image configured for `language`.
    pub fn for_language(&self, language: crate::Language) -> &str {
        use crate::Language as L;
        match language {
            L::Python => &self.python,
            L::Node => &self.node,
            L::Bash => &self.bash,
            L::C => &self.c,
            L::Cpp => &self.cpp,
            L::Java => &self.java,
            L::Go => &self.go,
            L::Rust => &self.rust,
            L::Ruby => &self.ruby,
        }
    }
}

/// `[dashboard]`: the full-screen UI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardConfig {
    pub theme: String,
    /// Extra directory searched for `<name>.toml` themes before the built-in ones.
    pub themes_dir: Option<PathBuf>,
    pub ascii: bool,
    pub mouse: bool,
    pub read_only: bool,
    pub keymap: Option<PathBuf>,
    /// Jobs kept in the job pane.
    pub max_jobs: u32,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            theme: "dark".into(),
            themes_dir: None,
            ascii: false,
            mouse: false,
            read_only: false,
            keymap: None,
            max_jobs: 10_000,
        }
    }
}

/// Why a configuration was refused. Each names where the bad value came from.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("config file: {0}")]
    Toml(String),
    #[error("cannot read config file {path}: {message}")]
    Read { path: PathBuf, message: String },
    /// The file's name before what was wrong in it. `error` is part of the message
    /// and deliberately not a `source()`: printers walk the source chain, and a
    /// source that is also in the message would be printed twice.
    #[error("{path}: {error}")]
    InFile {
        path: PathBuf,
        error: Box<ConfigError>,
    },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("config: {0}")]
    Invalid(String),
}

impl GridxConfig {
    /// The layered load shared by every binary: defaults, then the file, then the
    /// environment. An explicit `path` must be readable; the `default_path` may be
    /// missing. The caller passes the file reader and the environment, so this stays
    /// free of I/O and testable.
    pub fn load<I, K, V>(
        path: Option<&std::path::Path>,
        default_path: Option<PathBuf>,
        read: impl Fn(&std::path::Path) -> std::io::Result<String>,
        env: I,
    ) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let (path, required) = match path {
            Some(p) => (Some(p.to_owned()), true),
            None => (default_path, false),
        };
        let mut config = match path {
            None => GridxConfig::default(),
            Some(path) => match read(&path) {
                Ok(text) => GridxConfig::from_toml_str(&text).map_err(|e| ConfigError::InFile {
                    path: path.clone(),
                    error: Box::new(e),
                })?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                    GridxConfig::default()
                }
                Err(e) => {
                    return Err(ConfigError::Read {
                        path,
                        message: e.to_string(),
                    });
                }
            },
        };
        config.apply_env(env)?;
        Ok(config)
    }

    /// Parses a whole file; every key is optional, unknown keys are errors.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let config: GridxConfig =
            toml::from_str(text).map_err(|e| ConfigError::Toml(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Applies `GRIDX_*` variables over what the file said.
    pub fn apply_env<I, K, V>(&mut self, vars: I) -> Result<(), ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        for (key, value) in vars {
            let (key, value) = (key.as_ref(), value.as_ref());
            let bad = |message: String| ConfigError::Env {
                var: key.to_owned(),
                message,
            };
            match key {
                "GRIDX_LISTEN" => {
                    // Checked here too, so the message names the variable.
                    check_listen(value).map_err(bad)?;
                    self.server.listen = value.to_owned();
                }
                "GRIDX_DATA_DIR" => self.server.data_dir = Some(PathBuf::from(value)),
                "GRIDX_STORE" => self.store.url = Some(value.to_owned()),
                "GRIDX_LOG_FORMAT" => {
                    self.server.log_format = match value {
                        "text" => LogFormat::Text,
                        "json" => LogFormat::Json,
                        other => return Err(bad(format!("{other:?} is not text or json"))),
                    }
                }
                "GRIDX_SERVER" => {
                    self.client.server = value.to_owned();
                    self.worker.server = value.to_owned();
                }
                "GRIDX_TOKEN" => self.client.token = Some(value.to_owned()),
                "GRIDX_WORKER_TOKEN" => self.worker.token = Some(value.to_owned()),
                "GRIDX_WORKER_NAME" => self.worker.name = Some(value.to_owned()),
                "GRIDX_WORK_DIR" => self.worker.work_dir = Some(PathBuf::from(value)),
                "GRIDX_THEME" => self.dashboard.theme = value.to_owned(),
                "GRIDX_SLOTS" => {
                    let slots = value
                        .parse::<u32>()
                        .map_err(|_| bad(format!("{value:?} is not a whole number")))?;
                    self.worker.slots = Some(slots);
                }
                "GRIDX_TLS_CERT" => self.server.tls.cert = Some(PathBuf::from(value)),
                "GRIDX_TLS_KEY" => self.server.tls.key = Some(PathBuf::from(value)),
                "GRIDX_CA_CERT" => {
                    self.client.ca_cert = Some(PathBuf::from(value));
                    self.worker.ca_cert = Some(PathBuf::from(value));
                }
                "GRIDX_ALLOW_INSECURE" => {
                    let allow = match value {
                        "1" | "true" | "yes" => true,
                        "0" | "false" | "no" | "" => false,
                        other => return Err(bad(format!("{other:?} is not true or false"))),
                    };
                    self.client.allow_insecure = allow;
                    self.worker.allow_insecure = allow;
                }
                _ => {}
            }
        }
        self.validate()
    }

    /// Cross-field checks that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        check_listen(&s.listen).map_err(|m| ConfigError::Invalid(format!("server.listen: {m}")))?;
        if s.heartbeat_s == 0 {
            return invalid("server.heartbeat_s must be at least 1");
        }
        if s.hello_timeout_s == 0 {
            return invalid("server.hello_timeout_s must be at least 1");
        }
        if s.max_attempts == 0 {
            return invalid("server.max_attempts must be at least 1");
        }
        if s.reward_permille > 1000 {
            return invalid("server.reward_permille must be at most 1000");
        }
        if s.job_cost.is_negative() || s.new_user_credits.is_negative() || s.gpu_cost.is_negative()
        {
            return invalid(
                "server.job_cost, server.gpu_cost and server.new_user_credits must not be negative",
            );
        }
        // The dearest job must fit the ledger's range, so a submit never fails on it.
        let dearest = i64::from(s.limits.max_gpus)
            .checked_mul(s.gpu_cost.millis())
            .and_then(|gpus| gpus.checked_add(s.job_cost.millis()));
        if dearest.is_none_or(|m| m > crate::credits::MAX_ABS_MILLIS) {
            return invalid(
                "server.job_cost + server.limits.max_gpus × server.gpu_cost is past the range of credits",
            );
        }
        if s.rate_limit_per_s == 0 || s.rate_limit_burst == 0 {
            return invalid("server.rate_limit_per_s and rate_limit_burst must be at least 1");
        }
        if s.queue_capacity == 0 || s.max_queued_per_user == 0 {
            return invalid("server.queue_capacity and max_queued_per_user must be at least 1");
        }
        if s.request_timeout_s == 0 {
            return invalid("server.request_timeout_s must be at least 1");
        }
        if s.max_ws_frame_bytes < 1024 {
            return invalid("server.max_ws_frame_bytes must be at least 1024");
        }
        if s.tls.cert.is_some() != s.tls.key.is_some() {
            return invalid("server.tls.cert and server.tls.key go together: set both or neither");
        }
        if [
            s.max_worker_connections_per_address,
            s.max_worker_connections,
            s.max_event_streams_per_address,
            s.max_event_streams,
            s.send_timeout_s,
        ]
        .contains(&0)
        {
            return invalid(
                "server.max_worker_connections(_per_address), max_event_streams(_per_address) and send_timeout_s must be at least 1",
            );
        }
        if s.max_event_backlog_bytes < 64 * 1024 {
            return invalid("server.max_event_backlog_bytes must be at least 65536");
        }
        s.limits
            .check()
            .map_err(|m| ConfigError::Invalid(format!("server.limits.{m}")))?;
        let v = &s.validation;
        if v.quorum == 0 || v.quorum > 16 {
            return invalid("server.validation.quorum must be between 1 and 16");
        }
        if v.max_replicas < v.quorum || v.max_replicas > 16 {
            return invalid(
                "server.validation.max_replicas must be at least quorum and at most 16",
            );
        }
        if v.min_spot_check_permille == 0 || v.min_spot_check_permille > 1000 {
            return invalid(
                "server.validation.min_spot_check_permille must be between 1 and 1000: a rate of 0 would never check a worker with a record",
            );
        }
        if v.quarantine_after == 0 {
            return invalid("server.validation.quarantine_after must be at least 1");
        }
        let w = &self.worker;
        if w.slots == Some(0) {
            return invalid("worker.slots must be at least 1");
        }
        if w.cpu_millicores == 0 {
            return invalid("worker.cpu_millicores must be at least 1");
        }
        if w.pids_limit < 8 {
            return invalid("worker.pids_limit must be at least 8");
        }
        // The caps travel in `hello`, whose bounds they must meet (protocol.md §2).
        let max_mb = crate::protocol::MAX_MEMORY_MB;
        if w.max_job_memory_mb == 0 || u64::from(w.max_job_memory_mb) > max_mb {
            return Err(ConfigError::Invalid(format!(
                "worker.max_job_memory_mb must be between 1 and {max_mb}"
            )));
        }
        if w.memory_budget_mb.is_some_and(|b| b == 0 || b > max_mb) {
            return Err(ConfigError::Invalid(format!(
                "worker.memory_budget_mb must be between 1 and {max_mb}"
            )));
        }
        if w.max_job_timeout_s == 0 {
            return invalid("worker.max_job_timeout_s must be at least 1");
        }
        if w.executor == ExecutorChoice::Unsandboxed && !w.allow_unsandboxed {
            return invalid(
                "worker.executor = \"unsandboxed\" also needs worker.allow_unsandboxed = true",
            );
        }
        if let Some(parent) = &w.cgroup_parent
            && (!parent.starts_with('/') || parent.split('/').any(|p| p == ".."))
        {
            return invalid(
                "worker.cgroup_parent must be an absolute cgroup path without \"..\", as /proc/self/cgroup prints it",
            );
        }
        if let Some(runtime) = &w.docker_runtime {
            check_docker_runtime(runtime)
                .map_err(|m| ConfigError::Invalid(format!("worker.docker_runtime: {m}")))?;
        }
        if let Some(name) = &w.name {
            crate::ids::UserName::new(name)
                .map_err(|e| ConfigError::Invalid(format!("worker.name: {e}")))?;
        }
        if self.dashboard.max_jobs == 0 {
            return invalid("dashboard.max_jobs must be at least 1");
        }
        Ok(())
    }
}

/// The coordinator's listen address: `HOST:PORT` as a socket binds it (`0.0.0.0:8420`,
/// `[::]:8420`, `localhost:8420`), not a URL and not a bare host, both of which the
/// bind would refuse with a message that does not say what was expected.
pub fn check_listen(listen: &str) -> Result<(), String> {
    let shown: String = listen.chars().take(80).collect();
    let expected = "expected HOST:PORT, e.g. 0.0.0.0:8420 or 127.0.0.1:8420";
    if let Some((_, rest)) = listen.split_once("://") {
        let hint = rest.split('/').next().unwrap_or(rest);
        return Err(format!(
            "{shown:?} is a URL; {expected} (here perhaps {hint:?}): the coordinator picks http or https from --tls-cert/--tls-key"
        ));
    }
    let Some((host, port)) = listen.rsplit_once(':') else {
        return Err(format!("{shown:?} has no port; {expected}"));
    };
    // An IPv6 host is bracketed; unbracketed colons (`::1`) mean the port is missing.
    let host_ok = match host.strip_prefix('[') {
        Some(v6) => v6.len() > 1 && v6.ends_with(']'),
        None => !host.is_empty() && !host.contains(':'),
    };
    if !host_ok {
        return Err(format!("{shown:?} is not a host and a port; {expected}"));
    }
    match port.parse::<u16>() {
        Ok(_) => Ok(()),
        Err(_) => Err(format!(
            "{shown:?} has no valid port (0 to 65535); {expected}"
        )),
    }
}

/// A Docker runtime name as engines register them (`runsc`, `io.containerd.runc.v2`):
/// 1 to 64 of `A-Z a-z 0-9 . _ -`. Whether the engine has it is checked at start.
pub fn check_docker_runtime(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not a runtime name (1 to 64 of A-Z a-z 0-9 . _ -)",
            name.chars().take(80).collect::<String>()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layered_load_reads_the_file_then_the_environment() {
        let read =
            |_: &std::path::Path| Ok("[server]\nheartbeat_s = 9\nlisten = \"a:1\"".to_owned());
        let c = GridxConfig::load(
            Some(std::path::Path::new("x.toml")),
            None,
            read,
            [("GRIDX_LISTEN", "b:2")],
        )
        .unwrap();
        assert_eq!((c.server.heartbeat_s, c.server.listen.as_str()), (9, "b:2"));
        let missing = |_: &std::path::Path| Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(
            GridxConfig::load(
                Some(std::path::Path::new("x")),
                None,
                missing,
                Vec::<(String, String)>::new()
            )
            .is_err()
        );
        let default = GridxConfig::load(
            None,
            Some("y".into()),
            missing,
            Vec::<(String, String)>::new(),
        )
        .unwrap();
        assert_eq!(default, GridxConfig::default());
        let bad = |_: &std::path::Path| Ok("[server]\nbogus = 1".to_owned());
        let err = GridxConfig::load(
            Some(std::path::Path::new("f.toml")),
            None,
            bad,
            Vec::<(String, String)>::new(),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("f.toml: "), "{err}");
    }

    #[test]
    fn listen_is_host_and_port() {
        for ok in [
            "127.0.0.1:8420",
            "0.0.0.0:0",
            "[::]:8420",
            "[::1]:1",
            "localhost:8420",
            "a:1",
        ] {
            assert_eq!(check_listen(ok), Ok(()), "{ok}");
        }
        for (bad, says) in [
            ("0.0.0.0", "has no port"),
            ("localhost", "has no port"),
            ("::1", "not a host and a port"),
            ("", "has no port"),
            (":8420", "not a host and a port"),
            ("0.0.0.0:http", "no valid port"),
            ("0.0.0.0:70000", "no valid port"),
            ("http://0.0.0.0:8420", "is a URL"),
            ("https://0.0.0.0:8420/", "is a URL"),
        ] {
            let err = check_listen(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(
                err.contains("expected HOST:PORT, e.g. 0.0.0.0:8420"),
                "{bad}: {err}"
            );
        }
        // The file and GRIDX_LISTEN both go through validate.
        let err = GridxConfig::from_toml_str("[server]\nlisten = \"0.0.0.0\"").unwrap_err();
        assert!(err.to_string().contains("server.listen"), "{err}");
        let err = GridxConfig::default()
            .apply_env([("GRIDX_LISTEN", "http://0.0.0.0:8420")])
            .unwrap_err();
        assert!(err.to_string().contains("expected HOST:PORT"), "{err}");
        assert!(err.to_string().contains("GRIDX_LISTEN"), "{err}");
    }

    #[test]
    fn a_file_error_is_its_own_message_and_not_again_its_source() {
        use std::error::Error as _;
        let bad = |_: &std::path::Path| Ok("[server]\nlisten = 5".to_owned());
        let err = GridxConfig::load(
            Some(std::path::Path::new("f.toml")),
            None,
            bad,
            Vec::<(String, String)>::new(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");
        assert!(err.source().is_none(), "{err}");
    }

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(
            GridxConfig::from_toml_str("").unwrap(),
            GridxConfig::default()
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = GridxConfig::from_toml_str("[server]\nlisten_addr = \"x\"").unwrap_err();
        assert!(err.to_string().contains("listen_addr"), "{err}");
        assert!(GridxConfig::from_toml_str("[servr]").is_err());
    }

    #[test]
    fn env_overrides_file() {
        let mut c = GridxConfig::from_toml_str("[server]\nlisten = \"0.0.0.0:1\"").unwrap();
        c.apply_env([
            ("GRIDX_LISTEN", "127.0.0.1:9"),
            ("GRIDX_SERVER", "http://h:1"),
            ("HOME", "/x"),
        ])
        .unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:9");
        assert_eq!(c.client.server, "http://h:1");
        assert_eq!(c.worker.server, "http://h:1");
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        let mut c = GridxConfig::default();
        let err = c.apply_env([("GRIDX_SLOTS", "many")]).unwrap_err();
        assert!(err.to_string().contains("GRIDX_SLOTS"), "{err}");
    }

    #[test]
    fn unsandboxed_needs_the_explicit_flag() {
        let err = GridxConfig::from_toml_str("[worker]\nexecutor = \"unsandboxed\"").unwrap_err();
        assert!(err.to_string().contains("allow_unsandboxed"), "{err}");
        assert!(
            GridxConfig::from_toml_str(
                "[worker]\nexecutor = \"unsandboxed\"\nallow_unsandboxed = true"
            )
            .is_ok()
        );
    }

    #[test]
    fn tls_settings_come_in_pairs_and_from_the_environment() {
        let err = GridxConfig::from_toml_str("[server.tls]\ncert = \"c.pem\"").unwrap_err();
        assert!(err.to_string().contains("server.tls.key"), "{err}");
        let c =
            GridxConfig::from_toml_str("[server.tls]\ncert = \"c.pem\"\nkey = \"k.pem\"").unwrap();
        assert_eq!(
            c.server.tls.key.as_deref(),
            Some(std::path::Path::new("k.pem"))
        );
        let mut c = GridxConfig::default();
        c.apply_env([("GRIDX_CA_CERT", "/ca.pem"), ("GRIDX_ALLOW_INSECURE", "1")])
            .unwrap();
        assert_eq!(c.client.ca_cert, c.worker.ca_cert);
        assert!(c.client.allow_insecure && c.worker.allow_insecure);
        let err = c
            .apply_env([("GRIDX_ALLOW_INSECURE", "maybe")])
            .unwrap_err();
        assert!(err.to_string().contains("GRIDX_ALLOW_INSECURE"), "{err}");
        let err = c.apply_env([("GRIDX_TLS_KEY", "k.pem")]).unwrap_err();
        assert!(err.to_string().contains("go together"), "{err}");
    }

    #[test]
    fn docker_runtime_is_a_plain_name() {
        let c = GridxConfig::from_toml_str("[worker]\ndocker_runtime = \"runsc\"").unwrap();
        assert_eq!(c.worker.docker_runtime.as_deref(), Some("runsc"));
        assert_eq!(GridxConfig::default().worker.docker_runtime, None);
        assert!(check_docker_runtime("io.containerd.runsc.v1").is_ok());
        for bad in ["", "run sc", "runsc;rm", "../runc", &"r".repeat(65)] {
            let err = check_docker_runtime(bad).unwrap_err();
            assert!(err.contains("not a runtime name"), "{bad:?}: {err}");
        }
        let err = GridxConfig::from_toml_str("[worker]\ndocker_runtime = \"\"").unwrap_err();
        assert!(err.to_string().contains("worker.docker_runtime"), "{err}");
    }

    #[test]
    fn admission_caps_default_to_the_coordinators_maxima_and_are_bounded() {
        let w = GridxConfig::default().worker;
        let limits = JobLimits::default();
        assert_eq!(w.max_job_memory_mb, limits.max_memory_mb);
        assert_eq!(w.max_job_timeout_s, limits.max_timeout_s);
        assert_eq!(w.memory_budget_mb, None);
        let c = GridxConfig::from_toml_str(
            "[worker]\nmax_job_memory_mb = 512\nmemory_budget_mb = 2048\nmax_job_timeout_s = 60",
        )
        .unwrap();
        assert_eq!(
            (
                c.worker.max_job_memory_mb,
                c.worker.memory_budget_mb,
                c.worker.max_job_timeout_s
            ),
            (512, Some(2048), 60)
        );
        for (bad, named) in [
            ("max_job_memory_mb = 0", "worker.max_job_memory_mb"),
            ("max_job_memory_mb = 1073741825", "worker.max_job_memory_mb"),
            ("memory_budget_mb = 0", "worker.memory_budget_mb"),
            ("memory_budget_mb = 1073741825", "worker.memory_budget_mb"),
            ("max_job_timeout_s = 0", "worker.max_job_timeout_s"),
        ] {
            let err = GridxConfig::from_toml_str(&format!("[worker]\n{bad}")).unwrap_err();
            assert!(err.to_string().contains(named), "{bad}: {err}");
        }
    }

    #[test]
    fn credits_in_config_are_exact_decimals() {
        let c =
            GridxConfig::from_toml_str("[server]\njob_cost = 0.25\nnew_user_credits = 10").unwrap();
        assert_eq!(c.server.job_cost.millis(), 250);
        assert_eq!(c.server.new_user_credits.millis(), 10_000);
        assert!(GridxConfig::from_toml_str("[server]\njob_cost = 0.0001").is_err());
        assert!(GridxConfig::from_toml_str("[server]\njob_cost = -1").is_err());
        // The dearest job (max_gpus GPUs) must fit the ledger's range.
        let fits = GridxConfig::from_toml_str("[server]\ngpu_cost = 100000000000");
        assert!(fits.is_ok(), "{fits:?}");
        let dear = GridxConfig::from_toml_str("[server]\ngpu_cost = 200000000000");
        assert!(
            dear.as_ref()
                .is_err_and(|e| e.to_string().contains("gpu_cost")),
            "{dear:?}"
        );
    }
}
