//! The `gridx-tui` command line. Global flags, then one subcommand; no subcommand
//! opens the dashboard.

use crate::worker::exec::select_executor;
use crate::worker::host::{HostExit, HostOptions, WorkerEvent, WorkerHost, describe};
use clap::{Args, Parser, Subcommand};
use color_eyre::eyre::{Context, Result, bail, eyre};
use gridx_proto::config::{ExecutorChoice, GridxConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "gridx-tui",
    version,
    about = "Grid-X: dashboard, console, worker host and demo"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Coordinator URL [env: GRIDX_SERVER] (default http://127.0.0.1:8420).
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// API token; for `worker`, the worker token [env: GRIDX_TOKEN / GRIDX_WORKER_TOKEN].
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Config file (default: the platform config dir's gridx/gridx.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Machine-readable output for one-shot commands.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a worker host: lend this machine to the grid.
    Worker(WorkerArgs),
    /// Runtime images for the Docker executor.
    #[command(subcommand)]
    Images(ImagesCommand),
    /// What this machine would offer as a worker: metrics (CPU, memory, GPUs through
    /// NVML) and which sandbox would run jobs.
    HostInfo,
}

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// Log to stderr instead of opening the dashboard.
    #[arg(long)]
    pub headless: bool,
    /// Label shown in the dashboard ([A-Za-z0-9_-]{1,64}); default: the host name.
    #[arg(long)]
    pub name: Option<String>,
    /// Jobs to run at once (default: one per CPU core).
    #[arg(long)]
    pub slots: Option<u32>,
    /// auto, docker, bubblewrap or unsandboxed.
    #[arg(long, value_parser = parse_executor)]
    pub executor: Option<ExecutorChoice>,
    /// Accept running jobs WITHOUT a sandbox when none is available (trusted jobs only).
    #[arg(long)]
    pub allow_unsandboxed: bool,
    /// Base directory of job workspaces.
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
}

fn parse_executor(text: &str) -> Result<ExecutorChoice, String> {
    match text {
        "auto" => Ok(ExecutorChoice::Auto),
        "docker" => Ok(ExecutorChoice::Docker),
        "bubblewrap" | "bwrap" => Ok(ExecutorChoice::Bubblewrap),
        "unsandboxed" => Ok(ExecutorChoice::Unsandboxed),
        other => Err(format!(
            "unknown executor {other:?}: use auto, docker, bubblewrap or unsandboxed"
        )),
    }
}

#[derive(Subcommand, Debug)]
pub enum ImagesCommand {
    /// Build the python, node and bash runtime images from Debian packages, locally.
    Build {
        /// Rebuild even when an image's recipe hash is unchanged.
        #[arg(long)]
        force: bool,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let _ = color_eyre::install();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

pub fn load_config(global: &Global) -> Result<GridxConfig> {
    let default =
        directories::ProjectDirs::from("", "", "gridx").map(|d| d.config_dir().join("gridx.toml"));
    let mut config = GridxConfig::load(
        global.config.as_deref(),
        default,
        |p| std::fs::read_to_string(p),
        std::env::vars(),
    )?;
    if let Some(server) = &global.server {
        config.client.server = server.clone();
        config.worker.server = server.clone();
    }
    Ok(config)
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let config = load_config(&cli.global)?;
    match cli.command {
        Some(Command::Worker(args)) => worker(config, &cli.global, args).await,
        Some(Command::Images(ImagesCommand::Build { force })) => images_build(&config, force).await,
        Some(Command::HostInfo) => host_info(&config, cli.global.json).await,
        None => bail!(
            "the dashboard is not built yet (issue 5); `gridx-tui worker --headless` and `gridx-tui images build` work"
        ),
    }
}

fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("GRIDX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// This host's name as a worker label: `[A-Za-z0-9_-]`, at most 64 characters.
fn default_worker_name() -> String {
    let raw = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        "worker".into()
    } else {
        name
    }
}

async fn worker(mut config: GridxConfig, global: &Global, args: WorkerArgs) -> Result<ExitCode> {
    init_logging();
    let w = &mut config.worker;
    if let Some(token) = &global.token {
        w.token = Some(token.clone());
    }
    if let Some(name) = args.name {
        w.name = Some(
            gridx_proto::UserName::new(&name)
                .map_err(|e| eyre!("--name: {e}"))?
                .to_string(),
        );
    }
    if let Some(slots) = args.slots {
        if slots == 0 {
            bail!("--slots must be at least 1");
        }
        w.slots = Some(slots);
    }
    if let Some(executor) = args.executor {
        w.executor = executor;
    }
    w.allow_unsandboxed |= args.allow_unsandboxed;
    if let Some(dir) = args.work_dir {
        w.work_dir = Some(dir);
    }
    let Some(token) = w.token.clone() else {
        bail!(
            "no worker token: pass --token or set GRIDX_WORKER_TOKEN (an operator issues one with `gridx-server worker add --owner YOU`)"
        );
    };
    let name = w.name.clone().unwrap_or_else(default_worker_name);
    let work_dir = match &w.work_dir {
        Some(dir) => dir.clone(),
        None => directories::ProjectDirs::from("", "", "gridx")
            .map(|d| d.cache_dir().join("workspaces"))
            .ok_or_else(|| eyre!("no cache directory; pass --work-dir"))?,
    };
    let executor = select_executor(w, &name).await?;
    let languages: Vec<String> = executor.languages().iter().map(|l| l.to_string()).collect();
    if languages.is_empty() {
        bail!(
            "the {} executor can run no language here (for Docker, run `gridx-tui images build`)",
            executor.kind()
        );
    }
    tracing::info!(executor = describe(executor.kind()), languages = %languages.join(","), "sandbox ready");
    let slots = w
        .slots
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    let options = HostOptions {
        server: w.server.clone(),
        token,
        name,
        slots,
        work_dir,
        grace: Duration::from_secs(u64::from(w.shutdown_grace_s)),
        max_backoff: Duration::from_secs(u64::from(w.reconnect_max_backoff_s.max(1))),
    };
    let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut host = WorkerHost::new(options, executor, events_tx);
    // Nothing starts before the coordinator accepted us.
    let first = host
        .authenticate()
        .await
        .context("worker authentication failed")?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = shutdown_tx.send(true);
    });
    if !args.headless {
        tracing::warn!("the worker dashboard is not built yet (issue 5); logging to stderr");
    }
    let logger = tokio::spawn(async move {
        while let Some(event) = events_rx.recv().await {
            log_event(&event);
        }
    });
    let exit = host.run(first, shutdown_rx).await;
    logger.abort();
    match exit {
        Ok(HostExit::Drained) => tracing::info!("drained by the coordinator; exiting"),
        Ok(HostExit::Shutdown) => tracing::info!("shut down gracefully"),
        Err(e) => return Err(e).context("the worker stopped"),
    }
    Ok(ExitCode::SUCCESS)
}

fn log_event(event: &WorkerEvent) {
    match event {
        WorkerEvent::Connected {
            worker_id,
            heartbeat_s,
        } => {
            tracing::info!(worker = %worker_id, heartbeat_s, "authenticated; taking jobs")
        }
        WorkerEvent::Disconnected { reason, retry_in } => {
            tracing::warn!(%reason, retry_in_ms = retry_in.map(|d| d.as_millis() as u64), "disconnected")
        }
        WorkerEvent::JobStarted {
            job_id,
            attempt,
            language,
        } => {
            tracing::info!(job = %job_id, attempt, %language, "job started")
        }
        WorkerEvent::JobFinished {
            job_id,
            attempt,
            outcome,
        } => tracing::info!(
            job = %job_id, attempt, end = ?outcome.end, exit_code = ?outcome.exit_code,
            duration_ms = outcome.duration_ms, "job finished"
        ),
        WorkerEvent::Metrics(_) => {}
        WorkerEvent::Draining { reason } => tracing::info!(%reason, "draining"),
        WorkerEvent::Stopped => tracing::info!("stopped"),
    }
}

async fn host_info(config: &GridxConfig, json: bool) -> Result<ExitCode> {
    let mut monitor = crate::worker::monitor::Monitor::new();
    // CPU usage is measured between two samples.
    let _ = monitor.sample();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let metrics = monitor.sample();
    let name = config
        .worker
        .name
        .clone()
        .unwrap_or_else(default_worker_name);
    let (executor, languages, problem) = match select_executor(&config.worker, &name).await {
        Ok(e) => (
            Some(e.kind().to_string()),
            e.languages().iter().map(|l| l.to_string()).collect(),
            None,
        ),
        Err(e) => (None, Vec::new(), Some(e.to_string())),
    };
    if json {
        let value = serde_json::json!({
            "name": name,
            "executor": executor,
            "languages": languages,
            "executor_problem": problem,
            "cpu_cores": monitor.cpu_cores(),
            "metrics": metrics,
        });
        println!("{value}");
    } else {
        println!("worker name   {name}");
        match (&executor, &problem) {
            (Some(kind), _) => println!("executor      {kind} ({})", languages.join(", ")),
            (None, Some(p)) => println!("executor      none: {p}"),
            _ => {}
        }
        println!(
            "cpu           {:.1}% over {} cores",
            metrics.cpu_percent,
            monitor.cpu_cores()
        );
        println!(
            "memory        {} / {} MB",
            metrics.memory_used_mb, metrics.memory_total_mb
        );
        if metrics.gpus.is_empty() {
            println!(
                "gpus          {}",
                metrics.gpu_note.as_deref().unwrap_or("none")
            );
        }
        for gpu in &metrics.gpus {
            let opt = |v: Option<String>| v.unwrap_or_else(|| "n/a".into());
            println!(
                "gpu {}         {}: util {}%, memory {}/{} MB, {} C, {} W (limit {} W)",
                gpu.index,
                gpu.name,
                opt(gpu.utilization_percent.map(|v| v.to_string())),
                opt(gpu.memory_used_mb.map(|v| v.to_string())),
                opt(gpu.memory_total_mb.map(|v| v.to_string())),
                opt(gpu.temperature_c.map(|v| v.to_string())),
                opt(gpu.power_w.map(|v| format!("{v:.1}"))),
                opt(gpu.power_limit_w.map(|v| format!("{v:.0}"))),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn images_build(config: &GridxConfig, force: bool) -> Result<ExitCode> {
    let timeout = Duration::from_millis(u64::from(config.worker.docker_connect_timeout_ms));
    let docker = crate::worker::exec::docker::connect(timeout)
        .await
        .map_err(|e| eyre!("{e}; `images build` needs a running Docker engine"))?;
    let results = crate::worker::images::build_all(&docker, &config.worker.images, force, |line| {
        eprintln!("{line}");
    })
    .await?;
    eprintln!("{} images ready", results.len());
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
