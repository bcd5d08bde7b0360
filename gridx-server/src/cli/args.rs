//! The `gridx-server` argument grammar (clap). Completions and man pages are
//! generated from these same definitions.

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;
use gridx_proto::config::LogFormat;
use gridx_proto::protocol::MAX_SLOTS;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "gridx-server",
    version,
    about = "The Grid-X coordinator and its admin commands"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug)]
pub struct Global {
    /// Config file (default: the platform config dir's gridx/gridx.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory holding the store (overrides the config and GRIDX_DATA_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The store: sqlite:DIR (the default, in the data directory) or
    /// postgres://USER@HOST/DATABASE (overrides [store] url and GRIDX_STORE).
    #[arg(long, global = true, value_name = "URL")]
    pub store: Option<String>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the coordinator.
    Serve {
        /// Address to listen on (default 127.0.0.1:8420).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Log format on stderr.
        #[arg(long, value_enum)]
        log_format: Option<LogFormatArg>,
        /// Serve HTTPS/WSS with this certificate chain (PEM); needs --tls-key.
        #[arg(long, value_name = "FILE")]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key (PEM).
        #[arg(long, value_name = "FILE")]
        tls_key: Option<PathBuf>,
    },
    /// TLS certificates for `serve`.
    #[command(subcommand)]
    Tls(TlsCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage worker tokens.
    #[command(subcommand)]
    Worker(WorkerCommand),
    /// Write a consistent copy of the store to FILE, also while `serve` runs.
    Backup { file: PathBuf },
    /// Copy this SQLite store into an empty PostgreSQL database, then verify the
    /// ledger on both sides (the coordinator must be stopped).
    Migrate {
        /// The PostgreSQL database: postgres://USER@HOST/DATABASE.
        #[arg(long, value_name = "URL")]
        to: String,
    },
    /// Check the credit ledger.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Show the audit log: every operator change, who made it and when, newest first.
    Audit {
        /// The most entries to show (1 to 1000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Only entries older than this id (the last id of the previous page).
        #[arg(long, value_name = "ID")]
        before: Option<u64>,
    },
    /// Print a shell completion script on stdout.
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page on stdout, or write one page per command into DIR.
    Man {
        /// Directory to write gridx-server.1, gridx-server-user.1, ... into (created if
        /// missing).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum LogFormatArg {
    Text,
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(arg: LogFormatArg) -> Self {
        match arg {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user; prints its API token alone on stdout.
    Add {
        name: String,
        /// Starting credits (default: server.new_user_credits, 100).
        #[arg(long)]
        credits: Option<String>,
        /// May list and cancel everyone's jobs.
        #[arg(long)]
        admin: bool,
        /// The highest priority this user's jobs may ask for (default 0).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(0..))]
        max_priority: Option<i32>,
    },
    /// Change an existing user's settings.
    Set {
        name: String,
        /// The highest priority this user's jobs may ask for, from their next submit.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(0..))]
        max_priority: i32,
    },
    /// List users with their balances.
    List,
    /// Issue a new API token for NAME (the old one stops working). `--rotate` says so
    /// explicitly; without it the command does the same.
    Token {
        name: String,
        #[arg(long)]
        rotate: bool,
    },
    /// Grant (AMOUNT > 0) or debit (AMOUNT < 0) credits, as a ledger entry with the
    /// reason, which the user sees.
    Credit {
        name: String,
        /// Credits, at most 3 decimals: `50`, `12.5`, `-5`.
        #[arg(allow_negative_numbers = true)]
        amount: String,
        /// Why (shown in the user's ledger and the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Refuse NAME's token from its next request and cancel their queued jobs with a
    /// refund; running jobs finish.
    Disable {
        name: String,
        /// Why (shown to the user when their token is refused).
        #[arg(long)]
        reason: String,
    },
    /// Let a disabled user in again.
    Enable { name: String },
}

#[derive(Subcommand, Debug)]
pub enum WorkerCommand {
    /// Register a worker owned by a user; prints its token alone on stdout.
    Add {
        #[arg(long)]
        owner: String,
        /// Label shown in the dashboard.
        #[arg(long)]
        name: Option<String>,
        /// The most jobs the coordinator runs on it at once, whatever it claims
        /// (default: as many as it claims).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_SLOTS)))]
        max_slots: Option<u32>,
        /// Trust its results without replicas, and never quarantine it automatically
        /// (docs/trust.md): for the operator's own machines, or a grid with fewer
        /// owners than the quorum.
        #[arg(long)]
        trusted: bool,
    },
    /// Change a worker's slot cap (applied when it next connects).
    Set {
        id: String,
        /// The most jobs the coordinator runs on it at once; `none` removes the cap.
        #[arg(long, value_name = "N|none", value_parser = parse_max_slots)]
        max_slots: MaxSlots,
    },
    /// Revoke a worker's token; a connected worker is dropped.
    Revoke { id: String },
    /// Mark a worker trusted (its results need no replica), or with `--off` take the
    /// mark back; a running coordinator applies it within a second.
    Trust {
        id: String,
        #[arg(long)]
        off: bool,
    },
    /// Lift a worker's quarantine, and its owner's: back on probation (every result
    /// checked) with its counts kept.
    Restore { id: String },
    /// List registered workers.
    List,
}

/// `worker set --max-slots`: a cap, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxSlots(pub Option<u32>);

fn parse_max_slots(text: &str) -> Result<MaxSlots, String> {
    if text == "none" {
        return Ok(MaxSlots(None));
    }
    match text.parse::<u32>() {
        Ok(n) if (1..=MAX_SLOTS).contains(&n) => Ok(MaxSlots(Some(n))),
        _ => Err(format!("expected 1 to {MAX_SLOTS}, or none")),
    }
}

#[derive(Subcommand, Debug)]
pub enum TlsCommand {
    /// Make a private CA (ca.pem) and a certificate signed by it for HOSTs (cert.pem,
    /// key.pem); prints the CA's fingerprint and the flags for clients.
    SelfSigned {
        /// A name or IP address the coordinator is reached by (repeat for more).
        #[arg(long = "host", value_name = "NAME", required = true)]
        hosts: Vec<String>,
        /// Directory to write ca.pem, cert.pem and key.pem into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Overwrite files that exist.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum LedgerCommand {
    /// Check every ledger invariant; exit 1 with the offending rows if one fails.
    Verify,
}

#[cfg(test)]
mod tests {
    use super::{Cli, Command, UserCommand};
    use clap::{CommandFactory, Parser};

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_before_or_after_the_subcommand() {
        let before = Cli::try_parse_from(["gridx-server", "--json", "user", "list"]);
        let after = Cli::try_parse_from(["gridx-server", "user", "list", "--json"]);
        for cli in [before, after] {
            let cli = cli.expect("parses");
            assert!(cli.global.json);
            assert!(matches!(cli.command, Command::User(UserCommand::List)));
        }
    }

    #[test]
    fn tls_self_signed_needs_a_host_and_a_directory() {
        let ok = Cli::try_parse_from([
            "gridx-server",
            "tls",
            "self-signed",
            "--host",
            "a",
            "--host",
            "10.0.0.1",
            "--out",
            "d",
        ]);
        match ok.map(|c| c.command) {
            Ok(Command::Tls(super::TlsCommand::SelfSigned { hosts, force, .. })) => {
                assert_eq!(hosts, ["a", "10.0.0.1"]);
                assert!(!force);
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["gridx-server", "tls", "self-signed", "--out", "d"]).is_err());
    }

    #[test]
    fn completions_take_a_known_shell_only() {
        assert!(Cli::try_parse_from(["gridx-server", "completions", "zsh"]).is_ok());
        assert!(Cli::try_parse_from(["gridx-server", "completions", "tcsh"]).is_err());
    }
}
