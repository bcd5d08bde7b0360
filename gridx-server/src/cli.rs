//! The `gridx-server` command line: `serve` and the admin commands. Admin commands
//! open the same data directory and work while `serve` runs (SQLite WAL).

use crate::settings;
use crate::store::{self, ledger, users};
use clap::{Args, Parser, Subcommand};
use color_eyre::eyre::{Context, Result, bail, eyre};
use gridx_proto::config::{GridxConfig, LogFormat};
use gridx_proto::{Credits, UserName, WorkerId};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "gridx-server",
    version,
    about = "The Grid-X coordinator and its admin commands"
)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug)]
struct Global {
    /// Config file (default: the platform config dir's gridx/gridx.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory holding the store (overrides the config and GRIDX_DATA_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the coordinator.
    Serve {
        /// Address to listen on (default 127.0.0.1:8420).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Log format on stderr.
        #[arg(long, value_enum)]
        log_format: Option<LogFormatArg>,
    },
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage worker tokens.
    #[command(subcommand)]
    Worker(WorkerCommand),
    /// Write a consistent copy of the store to FILE, also while `serve` runs.
    Backup { file: PathBuf },
    /// Check the credit ledger.
    #[command(subcommand)]
    Ledger(LedgerCommand),
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Create a user; prints its API token alone on stdout.
    Add {
        name: String,
        /// Starting credits (default: server.new_user_credits, 100).
        #[arg(long)]
        credits: Option<String>,
        /// May list and cancel everyone's jobs.
        #[arg(long)]
        admin: bool,
    },
    /// List users with their balances.
    List,
    /// Issue a new API token for NAME (the old one stops working).
    Token { name: String },
}

#[derive(Subcommand, Debug)]
enum WorkerCommand {
    /// Register a worker owned by a user; prints its token alone on stdout.
    Add {
        #[arg(long)]
        owner: String,
        /// Label shown in the dashboard.
        #[arg(long)]
        name: Option<String>,
    },
    /// Revoke a worker's token; a connected worker is dropped.
    Revoke { id: String },
    /// List registered workers.
    List,
}

#[derive(Subcommand, Debug)]
enum LedgerCommand {
    /// Check every ledger invariant; exit 1 with the offending rows if one fails.
    Verify,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let _ = color_eyre::install();
    let cli = Cli::parse();
    match run(cli) {
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

fn run(cli: Cli) -> Result<ExitCode> {
    let mut config = settings::load(cli.global.config.as_deref())?;
    if let Some(dir) = &cli.global.data_dir {
        config.server.data_dir = Some(dir.clone());
    }
    let data_dir = settings::data_dir(config.server.data_dir.as_deref())?;
    match cli.command {
        Command::Serve { listen, log_format } => {
            if let Some(listen) = listen {
                config.server.listen = listen;
            }
            if let Some(f) = log_format {
                config.server.log_format = match f {
                    LogFormatArg::Text => LogFormat::Text,
                    LogFormatArg::Json => LogFormat::Json,
                };
            }
            serve(config, data_dir)
        }
        Command::User(cmd) => user(cmd, &config, &data_dir, cli.global.json),
        Command::Worker(cmd) => worker(cmd, &data_dir, cli.global.json),
        Command::Backup { file } => backup(&data_dir, &file),
        Command::Ledger(LedgerCommand::Verify) => verify(&data_dir, cli.global.json),
    }
}

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GRIDX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn serve(config: GridxConfig, data_dir: PathBuf) -> Result<ExitCode> {
    init_logging(config.server.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gridx-server")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&config.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.listen))?;
        // The address really bound, so `--listen 127.0.0.1:0` (tests, scripts) learns
        // the port the system picked (docs/operations.md).
        print_stdout(&format!("listening on {}", listener.local_addr()?))?;
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            crate::signals::shutdown_signal().await;
            tracing::info!("signal received");
            let _ = shutdown_tx.send(true);
        });
        tracing::info!(data_dir = %data_dir.display(), "starting");
        crate::app::launch(config.server, data_dir, listener, shutdown_rx)
            .await
            .context("coordinator failed")?;
        Ok::<_, color_eyre::Report>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn print_stdout(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").context("writing to stdout")?;
    Ok(())
}

fn user(cmd: UserCommand, config: &GridxConfig, data_dir: &Path, json: bool) -> Result<ExitCode> {
    let mut conn = store::open_writer(data_dir)?;
    match cmd {
        UserCommand::Add {
            name,
            credits,
            admin,
        } => {
            let name = UserName::new(&name)?;
            let credits = match credits {
                Some(text) => text.parse::<Credits>()?,
                None => config.server.new_user_credits,
            };
            if credits.is_negative() {
                bail!("--credits must not be negative");
            }
            let token = users::create_user(&mut conn, &name, credits, admin)?;
            eprintln!(
                "created user {name} with {credits} credits{}",
                if admin { " (admin)" } else { "" }
            );
            if json {
                print_stdout(&serde_json::json!({"user": name, "token": token}).to_string())?;
            } else {
                print_stdout(&token)?;
            }
        }
        UserCommand::List => {
            let list = users::list_users(&conn)?;
            if json {
                print_stdout(&serde_json::to_string(&list)?)?;
            } else {
                print_stdout(&format!(
                    "{:<24} {:>14} {:>8}  ADMIN",
                    "USER", "BALANCE", "JOBS"
                ))?;
                for u in list {
                    print_stdout(&format!(
                        "{:<24} {:>14} {:>8}  {}",
                        u.user.to_string(),
                        u.balance.to_string(),
                        u.jobs,
                        if u.admin { "yes" } else { "" }
                    ))?;
                }
            }
        }
        UserCommand::Token { name } => {
            let name = UserName::new(&name)?;
            let token = users::rotate_user_token(&conn, &name)?;
            eprintln!("issued a new token for {name}; the old one no longer works");
            if json {
                print_stdout(&serde_json::json!({"user": name, "token": token}).to_string())?;
            } else {
                print_stdout(&token)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn worker(cmd: WorkerCommand, data_dir: &Path, json: bool) -> Result<ExitCode> {
    let conn = store::open_writer(data_dir)?;
    match cmd {
        WorkerCommand::Add { owner, name } => {
            let owner = UserName::new(&owner)?;
            let label = match name {
                Some(n) => UserName::new(&n)
                    .map_err(|e| eyre!("--name: {e}"))?
                    .to_string(),
                None => format!("{owner}-worker"),
            };
            let (id, token) = users::add_worker(&conn, &owner, &label)?;
            eprintln!("registered worker {id} ({label}) owned by {owner}");
            if json {
                print_stdout(&serde_json::json!({"worker_id": id, "name": label, "owner": owner, "token": token}).to_string())?;
            } else {
                print_stdout(&token)?;
            }
        }
        WorkerCommand::Revoke { id } => {
            let id: WorkerId = id.parse()?;
            users::revoke_worker(&conn, id)?;
            eprintln!("revoked worker {id}; a running coordinator drops it within a second");
        }
        WorkerCommand::List => {
            let list = users::all_workers(&conn)?;
            if json {
                let rows: Vec<_> = list
                    .iter()
                    .map(|(w, _)| serde_json::json!({"worker_id": w.id, "name": w.name, "owner": w.owner, "revoked": w.revoked}))
                    .collect();
                print_stdout(&serde_json::to_string(&rows)?)?;
            } else {
                print_stdout(&format!(
                    "{:>6}  {:<24} {:<24} REVOKED",
                    "ID", "NAME", "OWNER"
                ))?;
                for (w, _) in list {
                    print_stdout(&format!(
                        "{:>6}  {:<24} {:<24} {}",
                        w.id.to_string(),
                        w.name,
                        w.owner.to_string(),
                        if w.revoked { "yes" } else { "" }
                    ))?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn backup(data_dir: &Path, file: &Path) -> Result<ExitCode> {
    if file.exists() {
        bail!("{} already exists; choose a new file", file.display());
    }
    let conn = store::open_reader(data_dir)
        .with_context(|| format!("opening the store in {}", data_dir.display()))?;
    conn.backup(rusqlite::MAIN_DB, file, None)
        .with_context(|| format!("writing {}", file.display()))?;
    eprintln!(
        "backed up {} to {}",
        store::database_path(data_dir).display(),
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn verify(data_dir: &Path, json: bool) -> Result<ExitCode> {
    let conn = store::open_reader(data_dir)
        .with_context(|| format!("opening the store in {}", data_dir.display()))?;
    let report = ledger::verify(&conn)?;
    let t = &report.totals;
    if json {
        print_stdout(
            &serde_json::json!({
                "ok": report.violations.is_empty(),
                "entries": t.entries,
                "jobs": report.jobs,
                "granted": t.granted,
                "users": t.users,
                "escrow": t.escrow,
                "platform": t.platform,
                "violations": report.violations,
            })
            .to_string(),
        )?;
    } else if report.violations.is_empty() {
        print_stdout(&format!(
            "ledger ok: {} entries, {} jobs, granted {}, users {}, escrow {}, platform {}",
            t.entries, report.jobs, t.granted, t.users, t.escrow, t.platform
        ))?;
    } else {
        print_stdout(&format!(
            "ledger FAILED: {} violations",
            report.violations.len()
        ))?;
        for v in &report.violations {
            print_stdout(&format!("  {v}"))?;
        }
    }
    Ok(if report.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
