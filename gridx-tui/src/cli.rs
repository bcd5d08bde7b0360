//! The `gridx-tui` command line. Global flags, then one subcommand; no subcommand
//! opens the dashboard. The console's commands are also one-shot subcommands.

use crate::commands::ConsoleCommand;
use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;
use color_eyre::eyre::Result;
use gridx_proto::config::{ExecutorChoice, GridxConfig};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "gridx-tui",
    version,
    about = "Grid-X: dashboard, console, worker host and demo",
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Coordinator URL [env: GRIDX_SERVER] (default http://127.0.0.1:8420); for
    /// coordinators in failover, all of them: URL,URL,... (whichever leads is used).
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// Also trust this CA certificate (PEM) for https:// [env: GRIDX_CA_CERT].
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Allow plain http:// to an address outside loopback [env: GRIDX_ALLOW_INSECURE].
    #[arg(long, global = true)]
    pub insecure: bool,
    /// API token; for `worker`, the worker token [env: GRIDX_TOKEN / GRIDX_WORKER_TOKEN].
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Config file (default: the platform config dir's gridx/gridx.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Machine-readable output for one-shot commands.
    #[arg(long, global = true)]
    pub json: bool,
    /// Dashboard theme: dark, light, high-contrast, ansi, or a file in themes_dir.
    #[arg(long, global = true)]
    pub theme: Option<String>,
    /// Disable every action that changes anything (submit, cancel).
    #[arg(long, global = true)]
    pub read_only: bool,
    /// Plain ASCII borders and gauges.
    #[arg(long, global = true)]
    pub ascii: bool,
    /// Capture the mouse (off by default so terminal selection keeps working).
    #[arg(long, global = true)]
    pub mouse: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a worker host: lend this machine to the grid.
    Worker(WorkerArgs),
    /// The console as a line editor, with history and completion.
    Repl,
    /// A coordinator, a local worker, sample jobs and the dashboard, in one process.
    Demo,
    /// Runtime images for the Docker executor.
    #[command(subcommand)]
    Images(ImagesCommand),
    /// What this machine would offer as a worker: metrics (CPU, memory, GPUs through
    /// NVML) and which sandbox would run jobs.
    HostInfo,
    /// Print a shell completion script on stdout.
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page on stdout, or write one page per command into DIR.
    Man {
        /// Directory to write gridx-tui.1, gridx-tui-worker.1, ... into (created if
        /// missing).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    #[command(flatten)]
    Console(ConsoleCommand),
}

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// Log to stderr instead of opening the dashboard.
    #[arg(long)]
    pub headless: bool,
    /// Read the worker token from FILE (owner-only, e.g. mode 600), so that it shows
    /// neither in `ps` nor in the environment; overrides GRIDX_WORKER_TOKEN.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
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
    /// bubblewrap: start even where this host cannot enforce every limit (no usable
    /// cgroup, or no seccomp filter for this architecture); the missing ones are named.
    #[arg(long)]
    pub allow_weak_sandbox: bool,
    /// bubblewrap: the cgroup (as /proc/self/cgroup names it) that jobs' groups are made
    /// under, for a worker that was delegated one; default: the worker's own.
    #[arg(long, value_name = "CGROUP")]
    pub cgroup_parent: Option<String>,
    /// Base directory of job workspaces.
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// The Docker engine's OCI runtime for job containers, e.g. runsc (gVisor).
    #[arg(long, value_name = "NAME")]
    pub docker_runtime: Option<String>,
    /// GPUs to lend to jobs: none (the default), all, or NVML indices such as 0,2.
    /// A job gets only the GPUs it is assigned (docs/worker.md, "GPUs").
    #[arg(long, value_name = "none|all|LIST", value_parser = parse_gpus)]
    pub gpus: Option<gridx_proto::gpu::GpuLending>,
    /// The most memory one job may ask for, in MB (default 4096); larger ones are
    /// refused.
    #[arg(long, value_name = "MB")]
    pub max_job_memory_mb: Option<u32>,
    /// The most memory the jobs running at once may ask for together, in MB
    /// (default: three quarters of this host's memory).
    #[arg(long, value_name = "MB")]
    pub memory_budget_mb: Option<u64>,
    /// The longest timeout a job may ask for, in seconds (default 300).
    #[arg(long, value_name = "SECONDS")]
    pub max_job_timeout_s: Option<u32>,
}

fn parse_gpus(s: &str) -> Result<gridx_proto::gpu::GpuLending, String> {
    s.parse()
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
    /// Build the runtime images (python, node, bash, and the toolchains of the
    /// compiled languages and Ruby) from Debian packages, locally.
    Build {
        /// Rebuild even when an image's recipe hash is unchanged.
        #[arg(long)]
        force: bool,
    },
}

/// The layered config with the global flags applied.
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
    if let Some(token) = &global.token {
        config.client.token = Some(token.clone());
    }
    if let Some(ca) = &global.ca_cert {
        config.client.ca_cert = Some(ca.clone());
        config.worker.ca_cert = Some(ca.clone());
    }
    config.client.allow_insecure |= global.insecure;
    config.worker.allow_insecure |= global.insecure;
    if let Some(theme) = &global.theme {
        config.dashboard.theme = theme.clone();
    }
    config.dashboard.read_only |= global.read_only;
    config.dashboard.ascii |= global.ascii;
    config.dashboard.mouse |= global.mouse;
    Ok(config)
}

/// The warning for a client or worker left on the default address while the same
/// config file moved the coordinator: the example config copied whole keeps
/// `[client]`/`[worker]` at 127.0.0.1:8420 after `server.listen` changes. `None`
/// when the default still reaches that listener (port 8420 on this machine's loopback
/// or every address).
pub fn default_server_warning(config: &GridxConfig, section: &str, server: &str) -> Option<String> {
    let defaults = GridxConfig::default();
    let listen = config.server.listen.as_str();
    if server != defaults.client.server || listen == defaults.server.listen {
        return None;
    }
    let reached = listen.rsplit_once(':').is_some_and(|(host, port)| {
        port == "8420" && ["127.0.0.1", "0.0.0.0", "localhost", "[::]"].contains(&host)
    });
    (!reached).then(|| {
        format!(
            "warning: connecting to {server}, the default, but server.listen is {listen}; \
             set [{section}] server (or --server, GRIDX_SERVER) to the coordinator's address"
        )
    })
}

/// Runs one parsed command line. Only the commands that need it load the config:
/// completions and man pages come from the grammar alone, so a broken config file or
/// a missing home directory cannot stop them.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    use crate::launch;
    let global = &cli.global;
    // Warned once here, for the commands that connect, before anything else prints.
    let config = |section: &str| {
        let config = load_config(global)?;
        let server = match section {
            "worker" => &config.worker.server,
            _ => &config.client.server,
        };
        if let Some(warning) = default_server_warning(&config, section, server) {
            eprintln!("{warning}");
        }
        Ok::<_, color_eyre::eyre::Report>(config)
    };
    let quiet = || load_config(global);
    match cli.command {
        None => launch::dashboard(config("client")?).await,
        Some(Command::Worker(args)) => launch::worker(config("worker")?, global, args).await,
        Some(Command::Repl) => launch::repl(config("client")?).await,
        Some(Command::Demo) => launch::demo(quiet()?).await,
        Some(Command::Images(ImagesCommand::Build { force })) => {
            launch::images_build(&quiet()?, force).await
        }
        Some(Command::HostInfo) => launch::host_info(&quiet()?, global.json).await,
        Some(Command::Completions { shell }) => launch::completions(shell),
        Some(Command::Man { out }) => launch::man_pages(out.as_deref()),
        Some(Command::Console(command)) => {
            launch::one_shot(config("client")?, command, global.json).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn console_commands_are_one_shot_commands_too() {
        let cli =
            Cli::try_parse_from(["gridx-tui", "--json", "jobs", "--status", "running"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Console(ConsoleCommand::Jobs { .. }))
        ));
        let cli =
            Cli::try_parse_from(["gridx-tui", "submit", "-", "--lang", "bash", "--wait"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Console(ConsoleCommand::Submit(_)))
        ));
        assert!(Cli::try_parse_from(["gridx-tui", "worker", "--executor", "podman"]).is_err());
    }

    #[test]
    fn the_worker_takes_a_token_file() {
        let cli = Cli::try_parse_from(["gridx-tui", "worker", "--token-file", "/etc/gridx/token"])
            .unwrap();
        let Some(Command::Worker(args)) = cli.command else {
            panic!("not the worker command");
        };
        assert_eq!(
            args.token_file.as_deref(),
            Some(std::path::Path::new("/etc/gridx/token"))
        );
    }

    #[test]
    fn tls_flags_reach_the_client_and_the_worker() {
        let cli = Cli::try_parse_from([
            "gridx-tui",
            "jobs",
            "--ca-cert",
            "/ca.pem",
            "--insecure",
            "--config",
            "/nonexistent/gridx.toml",
        ])
        .unwrap();
        assert_eq!(
            cli.global.ca_cert.as_deref(),
            Some(std::path::Path::new("/ca.pem"))
        );
        assert!(cli.global.insecure);
    }

    #[test]
    fn a_default_server_with_a_moved_listener_is_warned_of() {
        let moved = |listen: &str| {
            GridxConfig::from_toml_str(&format!("[server]\nlisten = \"{listen}\"")).unwrap()
        };
        let default = "http://127.0.0.1:8420";
        let warning = default_server_warning(&moved("0.0.0.0:9000"), "client", default).unwrap();
        assert!(
            warning.contains("server.listen is 0.0.0.0:9000"),
            "{warning}"
        );
        assert!(warning.contains("[client] server"), "{warning}");
        assert!(default_server_warning(&moved("10.0.0.5:8420"), "worker", default).is_some());
        // The default still reaches these, or the address was set: no warning.
        for quiet in ["127.0.0.1:8420", "0.0.0.0:8420", "[::]:8420"] {
            assert_eq!(
                default_server_warning(&moved(quiet), "client", default),
                None
            );
        }
        assert_eq!(
            default_server_warning(&moved("0.0.0.0:9000"), "client", "http://grid:9000"),
            None
        );
    }

    #[test]
    fn completions_take_a_known_shell_only() {
        let cli = Cli::try_parse_from(["gridx-tui", "completions", "fish"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Completions { shell: Shell::Fish })
        ));
        assert!(Cli::try_parse_from(["gridx-tui", "completions", "tcsh"]).is_err());
    }
}
