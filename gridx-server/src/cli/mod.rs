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
mod migrate;
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
use gridx_server::store::Location;
use std::path::Path;
use std::process::ExitCode;

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let global = cli.global;
    let json = global.json;
    // Only commands that touch the store read the config: completions and man pages
    // come from the grammar alone and work without a home directory or config file.
    let configured = || {
        configured(
            global.config.as_deref(),
            global.data_dir.as_deref(),
            global.store.as_deref(),
        )
    };
    match cli.command {
        Command::Serve {
            listen,
            log_format,
            tls_cert,
            tls_key,
        } => {
            let (mut config, location) = configured()?;
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
            match location {
                Location::Sqlite(data_dir) => {
                    // Before binding: a refused store must not first say `listening on`.
                    store_level::refuse_newer_store(&data_dir)?;
                    serve::serve(config, data_dir)
                }
                Location::Postgres(url) => serve::serve_replicated(config, url),
            }
        }
        Command::Tls(TlsCommand::SelfSigned { hosts, out, force }) => {
            // The listen port for the printed client flags; no store is touched.
            let config = settings::load(global.config.as_deref())?;
            tls::self_signed(&hosts, &out, force, &config.server.listen)
        }
        Command::User(cmd) => {
            let (config, location) = configured()?;
            refuse_newer(&location)?;
            users::user(cmd, &config, &location, json)
        }
        Command::Worker(cmd) => {
            let location = configured()?.1;
            refuse_newer(&location)?;
            workers::worker(cmd, &location, json)
        }
        Command::Backup { file } => match configured()?.1 {
            Location::Sqlite(data_dir) => backup::backup(&data_dir, &file),
            Location::Postgres(_) => Err(color_eyre::eyre::eyre!(
                "backup copies an SQLite store; back up PostgreSQL with pg_dump or its own replication"
            )),
        },
        Command::Migrate { to } => match configured()?.1 {
            Location::Sqlite(data_dir) => migrate::migrate(&data_dir, &to, json),
            Location::Postgres(_) => Err(color_eyre::eyre::eyre!(
                "migrate copies an SQLite store (--data-dir or --store sqlite:DIR) into PostgreSQL"
            )),
        },
        Command::Ledger(LedgerCommand::Verify) => ledger::verify(&configured()?.1, json),
        Command::Audit { limit, before } => audit::show(&configured()?.1, limit, before, json),
        Command::Completions { shell } => completions::print(shell),
        Command::Man { out } => manpages::write(out.as_deref()),
    }
}

/// The layered config (defaults, file, environment) with `--data-dir` and `--store`
/// applied, and the store they name: `--store`, else `[store] url` (or
/// `GRIDX_STORE`), else SQLite in the data directory.
fn configured(
    file: Option<&Path>,
    data_dir: Option<&Path>,
    store: Option<&str>,
) -> Result<(GridxConfig, Location)> {
    let mut config = settings::load(file)?;
    if let Some(dir) = data_dir {
        config.server.data_dir = Some(dir.to_owned());
    }
    if let Some(url) = store {
        config.store.url = Some(url.to_owned());
    }
    let location = match config.store.url.as_deref() {
        Some(url) => Location::parse(url).map_err(|e| color_eyre::eyre::eyre!("--store: {e}"))?,
        None => Location::Sqlite(settings::data_dir(config.server.data_dir.as_deref())?),
    };
    if let Location::Sqlite(dir) = &location {
        config.server.data_dir = Some(dir.clone());
    }
    Ok((config, location))
}

/// An SQLite store written by a newer gridx-server is refused before it is opened
/// (PostgreSQL's level is checked when the store opens).
fn refuse_newer(location: &Location) -> Result<()> {
    match location {
        Location::Sqlite(dir) => store_level::refuse_newer_store(dir),
        Location::Postgres(_) => Ok(()),
    }
}
