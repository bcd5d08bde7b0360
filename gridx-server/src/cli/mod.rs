//! The `gridx-server` command line: `serve` and the admin commands. It belongs to the
//! binary; the library (`gridx_server::launch`, the store) knows nothing of clap, so
//! tests, the load generator and the demo use it without a command line. Admin
//! commands open the same data directory and work while `serve` runs (SQLite WAL).

pub mod args;
mod audit;
mod backup;
mod completions;
mod ledger;
mod manpages;
mod output;
mod serve;
mod store_level;
mod tls;
mod users;
mod workers;

use args::{Cli, Command, LedgerCommand, TlsCommand};
use color_eyre::eyre::Result;
use gridx_proto::config::GridxConfig;
use gridx_server::settings;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let global = cli.global;
    let json = global.json;
    // Only commands that touch the store read the config: completions and man pages
    // come from the grammar alone and work without a home directory or config file.
    let configured = || configured(global.config.as_deref(), global.data_dir.as_deref());
    match cli.command {
        Command::Serve {
            listen,
            log_format,
            tls_cert,
            tls_key,
        } => {
            let (mut config, data_dir) = configured()?;
            if let Some(listen) = listen {
                config.server.listen = listen;
            }
            if let Some(format) = log_format {
                config.server.log_format = format.into();
            }
            if let Some(cert) = tls_cert {
                config.server.tls.cert = Some(cert);
            }
            if let Some(key) = tls_key {
                config.server.tls.key = Some(key);
            }
            config.validate()?;
            // Before binding: a refused store must not first say `listening on`.
            store_level::refuse_newer_store(&data_dir)?;
            serve::serve(config, data_dir)
        }
        Command::Tls(TlsCommand::SelfSigned { hosts, out, force }) => {
            // The listen port for the printed client flags; no store is touched.
            let config = settings::load(global.config.as_deref())?;
            tls::self_signed(&hosts, &out, force, &config.server.listen)
        }
        Command::User(cmd) => {
            let (config, data_dir) = configured()?;
            store_level::refuse_newer_store(&data_dir)?;
            users::user(cmd, &config, &data_dir, json)
        }
        Command::Worker(cmd) => {
            let data_dir = configured()?.1;
            store_level::refuse_newer_store(&data_dir)?;
            workers::worker(cmd, &data_dir, json)
        }
        Command::Backup { file } => backup::backup(&configured()?.1, &file),
        Command::Ledger(LedgerCommand::Verify) => ledger::verify(&configured()?.1, json),
        Command::Audit { limit, before } => audit::show(&configured()?.1, limit, before, json),
        Command::Completions { shell } => completions::print(shell),
        Command::Man { out } => manpages::write(out.as_deref()),
    }
}

/// The layered config (defaults, file, environment) with `--data-dir` applied, and the
/// data directory it names.
fn configured(file: Option<&Path>, data_dir: Option<&Path>) -> Result<(GridxConfig, PathBuf)> {
    let mut config = settings::load(file)?;
    if let Some(dir) = data_dir {
        config.server.data_dir = Some(dir.to_owned());
    }
    let data_dir = settings::data_dir(config.server.data_dir.as_deref())?;
    Ok((config, data_dir))
}
