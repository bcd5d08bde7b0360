//! `gridx-server serve`: logging, the async runtime, the listener and signals around
//! the library's `launch`.

use super::output::print_stdout;
use color_eyre::eyre::{Context, Result};
use gridx_proto::config::{GridxConfig, LogFormat};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GRIDX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The store holds everyone's code, output and token hashes: say so, in the log and
/// plainly on stderr, when group or others may read it (docs/operations.md).
fn warn_if_exposed(data_dir: &Path) {
    for (path, mode) in gridx_server::store::exposed_paths(data_dir) {
        let want = if path.is_dir() {
            gridx_server::store::DIR_MODE
        } else {
            gridx_server::store::FILE_MODE
        };
        tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "the store is readable by group or others");
        eprintln!(
            "warning: {} has mode {mode:o}: group or others can reach the store; run `chmod {want:o} {}`",
            path.display(),
            path.display()
        );
    }
}

/// SIGHUP reloads the TLS certificate (`gridx_server::tls`). Without TLS nothing
/// listens for it, and its default action would end the coordinator at once, without
/// the graceful shutdown, on a `systemctl reload` (contrib/systemd/gridx-server.service
/// has `ExecReload`); systemd counts an exit by SIGHUP as clean, so `Restart=on-failure`
/// would not even bring it back. So it is taken here and logged.
fn ignore_hangup_without_tls(tls: bool) {
    #[cfg(unix)]
    if !tls {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hangup) => {
                tokio::spawn(async move {
                    while hangup.recv().await.is_some() {
                        tracing::info!(
                            "SIGHUP received; no TLS certificate to reload, nothing to do"
                        );
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; a SIGHUP would stop the coordinator")
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tls;
}

pub fn serve(config: GridxConfig, data_dir: PathBuf) -> Result<ExitCode> {
    let runtime = start(&config)?;
    warn_if_exposed(&data_dir);
    // Before binding too: a store this user cannot write, or one another coordinator
    // serves, stops `serve` before it says `listening on`.
    let opened = gridx_server::store::open_for_serving(&data_dir)
        .with_context(|| format!("opening the store in {}", data_dir.display()))?;
    runtime.block_on(async move {
        let listener = bind(&config).await?;
        let shutdown = shutdown_on_signal();
        tracing::info!(data_dir = %data_dir.display(), "starting");
        gridx_server::app::launch_on(config.server, data_dir, opened, listener, shutdown)
            .await
            .context("coordinator failed")?;
        Ok::<_, color_eyre::Report>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `serve` on a PostgreSQL store: one of several coordinators, leading or standing by
/// (`gridx_server::replicated`). It exits with an error when it led and lost the
/// leadership; its service manager restarts it as a standby.
pub fn serve_replicated(config: GridxConfig, url: String) -> Result<ExitCode> {
    let runtime = start(&config)?;
    let shown = gridx_server::store::redact(&url);
    // Before binding: a database that cannot be reached, or holds a newer schema,
    // stops `serve` before it says `listening on`.
    gridx_server::store::postgres::open(&url, None)
        .with_context(|| format!("opening the store {shown}"))?;
    let outcome = runtime.block_on(async move {
        let listener = bind(&config).await?;
        let bound = listener.local_addr()?;
        let scheme = if config.server.tls.cert.is_some() {
            "https"
        } else {
            "http"
        };
        let advertise = config
            .store
            .advertise_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{bound}"));
        let shutdown = shutdown_on_signal();
        tracing::info!(store = %shown, %advertise, "starting on a shared store");
        gridx_server::replicated::launch_replicated(
            config.server,
            url,
            advertise,
            gridx_server::leadership::Timing::default(),
            listener,
            shutdown,
        )
        .await
        .with_context(|| format!("coordinator on {shown} failed"))?;
        Ok::<_, color_eyre::Report>(())
    });
    // A deposed leader's reads may still wait on a database it cannot reach: do not
    // wait for them to exit.
    runtime.shutdown_timeout(Duration::from_millis(500));
    outcome?;
    Ok(ExitCode::SUCCESS)
}

/// Logging and the async runtime; a certificate that does not load stops `serve`
/// here, before it binds and says `listening on` (`launch` loads it again to serve).
fn start(config: &GridxConfig) -> Result<tokio::runtime::Runtime> {
    init_logging(config.server.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gridx-server")
        .build()
        .context("starting the async runtime")?;
    if let (Some(cert), Some(key)) = (&config.server.tls.cert, &config.server.tls.key) {
        gridx_server::tls::load_pair(cert, key).context("the TLS certificate")?;
    }
    Ok(runtime)
}

/// Binds the listen address and says `listening on ADDR` with the address really
/// bound, so `--listen 127.0.0.1:0` (tests, scripts) learns the port the system
/// picked (docs/operations.md).
async fn bind(config: &GridxConfig) -> Result<tokio::net::TcpListener> {
    // Before `listening on`: from then on a service manager may send SIGHUP.
    ignore_hangup_without_tls(config.server.tls.cert.is_some());
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    print_stdout(&format!("listening on {}", listener.local_addr()?))?;
    Ok(listener)
}

/// A flag that turns true at SIGINT or SIGTERM.
fn shutdown_on_signal() -> tokio::sync::watch::Receiver<bool> {
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        gridx_server::signals::shutdown_signal().await;
        tracing::info!("signal received");
        let _ = shutdown_tx.send(true);
    });
    shutdown_rx
}
