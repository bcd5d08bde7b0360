//! The terminal runtime: raw mode and the alternate screen (restored on every exit
//! path, panics included), one reader of terminal events at a time, and a loop that
//! redraws only when something changed.

use super::draw;
use super::state::{AppState, Effect, Msg};
use super::theme::Theme;
use crate::client::ApiClient;
use crate::client::live::{self, LiveEvent};
use crate::commands::{self, run::StdinSource};
use crate::worker::host::WorkerEvent;
use crossterm::event::{Event, EventStream};
use futures_util::StreamExt;
use gridx_proto::api::JobListQuery;
use gridx_proto::time_fmt;
use ratatui::DefaultTerminal;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Where the dashboard's data comes from.
pub struct Sources {
    /// The coordinator, as a client (both modes use it for console commands).
    pub client: Option<ApiClient>,
    /// Follow `/v1/events` (client mode).
    pub live: bool,
    /// The worker host's events (worker-host mode).
    pub worker: Option<mpsc::UnboundedReceiver<WorkerEvent>>,
    pub mouse: bool,
    pub themes_dir: Option<PathBuf>,
    pub no_color: bool,
}

fn enter(mouse: bool) -> std::io::Result<DefaultTerminal> {
    // ratatui::init enables raw mode and the alternate screen, and installs a panic
    // hook that restores the terminal before the panic message is printed.
    let terminal = ratatui::try_init()?;
    if mouse {
        crossterm::execute!(std::io::stdout(), crossterm::event::EnableMouseCapture)?;
    }
    Ok(terminal)
}

/// Takes the terminal back after a suspend or the REPL: a new full-screen terminal
/// (its buffers empty, so the next draw paints every cell) on a screen cleared by a
/// plain escape sequence. Not `Terminal::clear`, which asks the terminal for the
/// cursor position: after `fg` that answer can arrive late or be read by nobody, and
/// crossterm then fails with "the cursor position could not be read" while the reply
/// (`ESC[1;1R`) is typed into the shell once we are gone.
fn retake(mouse: bool) -> std::io::Result<DefaultTerminal> {
    let terminal = enter(mouse)?;
    crossterm::execute!(
        std::io::stdout(),
        crossterm::terminal::Clear(crossterm::terminal::ClearType::All),
        crossterm::cursor::MoveTo(0, 0)
    )?;
    Ok(terminal)
}

/// Stops reading terminal events so that someone else (the shell after Ctrl-Z, the
/// REPL) can. Dropping crossterm's `EventStream` wakes its reader thread through
/// crossterm's internal waker; when that thread was idle, the wake stays pending, and
/// the next poll of the terminal (reedline's cursor-position query) returns at once
/// empty-handed: the query fails, its reply is left queued, and every later query reads
/// the previous one's reply, so reedline paints its prompt over what was printed. One
/// poll here takes the pending wake (it leaves queued input alone).
fn release_reader(events: EventStream) {
    drop(events);
    let _ = crossterm::event::poll(Duration::from_millis(10));
}

fn leave(mouse: bool) {
    if mouse {
        let _ = crossterm::execute!(std::io::stdout(), crossterm::event::DisableMouseCapture);
    }
    ratatui::restore();
}

/// Runs the dashboard until the user quits (or the worker host stops).
pub async fn run(mut state: AppState, mut sources: Sources) -> std::io::Result<()> {
    let mut terminal = enter(sources.mouse)?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    // The followed job's output stream (`Effect::Follow`): one at a time.
    let mut following: Option<tokio::task::JoinHandle<()>> = None;
    let (stop_tx, stop_rx) = watch::channel(false);
    if let (Some(client), true) = (&sources.client, sources.live)
        && let Some(token) = client.token()
    {
        let (live_tx, mut live_rx) = mpsc::unbounded_channel::<LiveEvent>();
        tokio::spawn(live::follow(
            client.coordinators().clone(),
            token.to_owned(),
            live_tx,
            stop_rx.clone(),
        ));
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(event) = live_rx.recv().await {
                if tx.send(Msg::Live(event)).is_err() {
                    break;
                }
            }
        });
    }
    let mut events = EventStream::new();
    let mut clock = tokio::time::interval(Duration::from_secs(1));
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    state.now = time_fmt::now();
    terminal.draw(|f| draw::draw(f, &state))?;
    loop {
        let msg = tokio::select! {
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) => Msg::Key(key),
                Some(Ok(Event::Resize(..))) => Msg::Resize,
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => break,
            },
            Some(msg) = rx.recv() => msg,
            Some(event) = recv_worker(&mut sources.worker) => Msg::Worker(event),
            // The clock only matters while jobs run (their durations tick).
            _ = clock.tick(), if state.jobs.values().any(|j| j.status == gridx_proto::JobStatus::Running) => Msg::Now(time_fmt::now()),
        };
        state.now = time_fmt::now();
        let (effects, mut changed) = state.update(msg);
        for effect in effects {
            match effect {
                Effect::Quit => state.should_quit = true,
                Effect::Refresh => {
                    if let Some(client) = &sources.client {
                        spawn_refresh(client.clone(), tx.clone());
                    }
                }
                Effect::RunCommand(command) => match &sources.client {
                    Some(client) => {
                        let client = client.clone();
                        let tx = tx.clone();
                        let read_only = state.read_only;
                        tokio::spawn(async move {
                            let result = commands::run(
                                command,
                                &client,
                                read_only,
                                StdinSource::Unavailable,
                            )
                            .await
                            .map_err(|e| e.to_string());
                            let _ = tx.send(Msg::CommandDone(result));
                        });
                    }
                    None => state.log(super::state::LogLevel::Error, "no coordinator client here"),
                },
                Effect::FetchOutput(job_id) => {
                    let tx = tx.clone();
                    match sources.client.clone() {
                        Some(client) => {
                            tokio::spawn(async move {
                                let result = client
                                    .job(job_id)
                                    .await
                                    .map(Box::new)
                                    .map_err(|e| e.to_string());
                                let _ = tx.send(Msg::Output { job_id, result });
                            });
                        }
                        None => {
                            let result = Err("no coordinator client here".to_owned());
                            let _ = tx.send(Msg::Output { job_id, result });
                        }
                    }
                }
                Effect::Follow(job, generation) => {
                    if let Some(task) = following.take() {
                        task.abort();
                    }
                    if let (Some(job_id), Some(client)) = (job, sources.client.clone()) {
                        let tx = tx.clone();
                        following = Some(tokio::spawn(async move {
                            let sent = crate::client::follow::follow_output(
                                &client,
                                job_id,
                                true,
                                |event| {
                                    let _ = tx.send(Msg::Followed {
                                        job_id,
                                        generation,
                                        event,
                                    });
                                },
                            )
                            .await;
                            if let Err(e) = sent {
                                tracing::info!(job = %job_id, error = %e, "stopped following a job's output");
                            }
                        }));
                    }
                }
                Effect::SetTheme(name) => {
                    match Theme::load(&name, sources.themes_dir.as_deref()) {
                        Ok(theme) => {
                            state.theme = if sources.no_color {
                                theme.without_color()
                            } else {
                                theme
                            };
                            state.log(super::state::LogLevel::Info, format!("theme {name}"));
                        }
                        Err(e) => state.log(super::state::LogLevel::Error, e.to_string()),
                    }
                    changed = true;
                }
                Effect::Suspend => {
                    // Stop reading the terminal, give it back, stop ourselves; on `fg`
                    // take it again and redraw everything.
                    release_reader(events);
                    leave(sources.mouse);
                    // SAFETY: raising a signal on our own process.
                    unsafe {
                        libc::raise(libc::SIGTSTP);
                    }
                    terminal = retake(sources.mouse)?;
                    events = EventStream::new();
                    changed = true;
                }
                Effect::OpenRepl => {
                    // Exactly one reader of terminal events: the dashboard's stream is
                    // dropped before reedline starts, and made anew after it returns.
                    release_reader(events);
                    leave(sources.mouse);
                    if let Some(client) = sources.client.clone() {
                        let read_only = state.read_only;
                        let _ = tokio::task::spawn_blocking(move || {
                            crate::repl::run_blocking(client, read_only, true)
                        })
                        .await;
                    } else {
                        println!("no coordinator client here; press Enter");
                    }
                    terminal = retake(sources.mouse)?;
                    events = EventStream::new();
                    changed = true;
                    if let Some(client) = &sources.client {
                        spawn_refresh(client.clone(), tx.clone());
                    }
                }
            }
        }
        if changed {
            terminal.draw(|f| draw::draw(f, &state))?;
        }
        if state.should_quit {
            break;
        }
    }
    let _ = stop_tx.send(true);
    leave(sources.mouse);
    Ok(())
}

async fn recv_worker(rx: &mut Option<mpsc::UnboundedReceiver<WorkerEvent>>) -> Option<WorkerEvent> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Fetches everything the panes show and sends it as one snapshot.
fn spawn_refresh(client: ApiClient, tx: mpsc::UnboundedSender<Msg>) {
    tokio::spawn(async move {
        let recent = JobListQuery {
            limit: Some(200),
            ..JobListQuery::default()
        };
        let (jobs, workers, ledger, balance) = tokio::join!(
            client.jobs(&recent),
            client.workers(),
            client.ledger(100),
            client.balance()
        );
        match (jobs, workers, ledger) {
            (Ok(jobs), Ok(workers), Ok(ledger)) => {
                let _ = tx.send(Msg::Snapshot {
                    jobs: jobs.jobs,
                    workers: workers.workers,
                    ledger: ledger.entries,
                    balance: balance.ok().map(|b| (b.user.to_string(), b.balance)),
                });
            }
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                let _ = tx.send(Msg::CommandDone(Err(format!("reload failed: {e}"))));
            }
        }
    });
}
