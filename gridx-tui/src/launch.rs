//! What each subcommand does: the dashboard, the worker host (with or without its
//! dashboard), the REPL, the demo, one-shot commands, images and host info.

use crate::cli::{Global, WorkerArgs};
use crate::client::{ApiClient, Coordinators, Endpoint};
use crate::commands::{self, ConsoleCommand, Outcome, run::StdinSource};
use crate::inert::inert;
use crate::ui::keymap::Keymap;
use crate::ui::runtime::Sources;
use crate::ui::state::{AppState, LogLevel, Mode};
use crate::ui::theme::Theme;
use crate::worker::admission;
use crate::worker::exec::select_executor;
use crate::worker::host::{HostExit, HostOptions, WorkerEvent, WorkerHost, describe};
use color_eyre::eyre::{Context, Result, bail, eyre};
use gridx_proto::config::GridxConfig;
use std::process::ExitCode;
use std::time::Duration;

fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// The dashboard's state from the config: theme (NO_COLOR honoured), keymap file,
/// ASCII mode, read-only.
pub fn dashboard_state(config: &GridxConfig, mode: Mode) -> Result<AppState> {
    let d = &config.dashboard;
    let theme = Theme::load(&d.theme, d.themes_dir.as_deref())?;
    let theme = if no_color() {
        theme.without_color()
    } else {
        theme
    };
    let keymap = match &d.keymap {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading keymap {}", path.display()))?;
            Keymap::default().with_overrides(&text)?
        }
        None => Keymap::default(),
    };
    // The coordinator of this mode's section, as given; of several, the face shows
    // the one in use once connected (`Coordinators::label`).
    let server = match mode {
        Mode::Client => &config.client.server,
        Mode::WorkerHost { .. } => &config.worker.server,
    };
    let mut state = AppState::new(mode, theme, keymap, server.clone());
    // Plain http outside loopback (--insecure) shows in the header.
    state.insecure = crate::client::coordinators::any_insecure(&state.server);
    state.ascii = d.ascii;
    state.read_only = d.read_only;
    state.max_jobs = d.max_jobs as usize;
    Ok(state)
}

/// Where a dashboard's data comes from: the live stream in client mode, the worker
/// host's events in worker-host mode.
fn sources(
    config: &GridxConfig,
    client: Option<ApiClient>,
    worker: Option<tokio::sync::mpsc::UnboundedReceiver<WorkerEvent>>,
) -> Sources {
    Sources {
        live: worker.is_none(),
        client,
        worker,
        mouse: config.dashboard.mouse,
        themes_dir: config.dashboard.themes_dir.clone(),
        no_color: no_color(),
    }
}

/// The coordinators of the `[client]` section (one, or `URL,URL,…`): each address
/// checked (plain http only to loopback unless --insecure) and their TLS set up.
fn client_coordinators(config: &GridxConfig) -> Result<Coordinators> {
    let c = &config.client;
    Ok(Coordinators::new(
        &c.server,
        c.ca_cert.as_deref(),
        c.allow_insecure,
    )?)
}

fn client(config: &GridxConfig) -> Result<ApiClient> {
    let token = config
        .client
        .token
        .clone()
        .ok_or_else(|| eyre!(crate::client::ClientError::NoToken))?;
    Ok(ApiClient::new(client_coordinators(config)?, Some(token))?)
}

pub async fn dashboard(config: GridxConfig) -> Result<ExitCode> {
    let client = client(&config)?;
    // Fail early, before the full screen, when the coordinator or token is wrong.
    let balance = client
        .balance()
        .await
        .context("checking the coordinator and token")?;
    init_file_logging();
    let mut state = dashboard_state(&config, Mode::Client)?;
    let coordinators = client.coordinators();
    if let Some(leader) = coordinators.label(coordinators.leader()) {
        state.server = leader;
    }
    state.user = Some(balance.user.to_string());
    state.balance = Some(balance.balance);
    let sources = sources(&config, Some(client), None);
    crate::ui::runtime::run(state, sources).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn repl(config: GridxConfig) -> Result<ExitCode> {
    let client = client(&config)?;
    let read_only = config.dashboard.read_only;
    tokio::task::spawn_blocking(move || crate::repl::run_blocking(client, read_only, false))
        .await
        .map_err(|e| eyre!("the REPL failed: {e}"))??;
    Ok(ExitCode::SUCCESS)
}

pub async fn demo(config: GridxConfig) -> Result<ExitCode> {
    init_file_logging();
    eprintln!("starting the demo grid (coordinator, worker, sample jobs)...");
    let grid = crate::demo::DemoGrid::start(&config).await?;
    let submitted = grid.submit_samples().await?;
    let mut config = config;
    config.client.server = grid.url.clone();
    let client = ApiClient::new(
        Endpoint::new(&grid.url, None, false)?,
        Some(grid.token.clone()),
    )?;
    let mut state = dashboard_state(&config, Mode::Client)?;
    state.log(LogLevel::Info, grid.describe());
    state.log(LogLevel::Info, grid.reach_hint());
    if grid.executor == gridx_proto::protocol::ExecutorKind::Unsandboxed {
        state.log(LogLevel::Error, "no sandbox (Docker or bubblewrap) here: the demo worker runs its own sample jobs UNSANDBOXED");
    } else if !grid.weaknesses.is_empty() {
        state.log(
            LogLevel::Error,
            format!(
                "the demo worker's {} sandbox is WEAK here: {}",
                grid.executor,
                grid.weaknesses.join("; ")
            ),
        );
    }
    state.log(LogLevel::Info, format!("submitted {submitted} sample jobs as user demo; press : and try `submit --lang python --code 'print(6*7)'`"));
    let sources = sources(&config, Some(client), None);
    let result = crate::ui::runtime::run(state, sources).await;
    grid.stop().await;
    result?;
    Ok(ExitCode::SUCCESS)
}

/// `gridx-tui jobs`, `submit`, ...: the console's commands, once.
pub async fn one_shot(
    config: GridxConfig,
    command: ConsoleCommand,
    json: bool,
) -> Result<ExitCode> {
    if let ConsoleCommand::Help { command } = &command {
        println!("{}", commands::grammar::help_text(command.as_deref()));
        return Ok(ExitCode::SUCCESS);
    }
    let client = client(&config)?;
    if !json {
        // Output as the job prints it (docs/cli.md, `logs`).
        if let ConsoleCommand::Logs { id, follow: true } = &command {
            let end = stream_output(&client, *id).await?;
            return Ok(end_code(*id, end.as_ref()));
        }
        // `submit --wait` follows the output live for a person at a terminal. Into a
        // pipe or a file it writes the job's accepted output once it ended, as
        // before: a run that a result check outvotes must not reach a script.
        if let ConsoleCommand::Submit(args) = &command
            && args.wait
            && args.files.len() <= 1
            && std::io::IsTerminal::is_terminal(&std::io::stdout())
        {
            let mut submit = args.clone();
            submit.wait = false;
            let outcome = commands::run(
                ConsoleCommand::Submit(submit),
                &client,
                config.dashboard.read_only,
                StdinSource::Process,
            )
            .await?;
            if let Outcome::Submitted(job) = outcome {
                return submit_and_follow(&client, job.job_id).await;
            }
        }
    }
    let wait = matches!(&command, ConsoleCommand::Submit(args) if args.wait);
    let outcome = commands::run(
        command,
        &client,
        config.dashboard.read_only,
        StdinSource::Process,
    )
    .await?;
    if json {
        println!("{}", commands::render::to_json_text(&outcome));
    } else {
        use std::io::IsTerminal;
        match &outcome {
            // The id alone, so scripts can capture it.
            Outcome::Submitted(job) => println!("{}", job.job_id),
            // One id per accepted file on stdout, in order; refusals on stderr.
            Outcome::Batch(items) => {
                for (file, item) in items {
                    match (&item.job, &item.error) {
                        (Some(job), _) => println!("{}", job.job_id),
                        (None, Some(e)) => eprintln!(
                            "gridx-tui: {}: not submitted: {} ({})",
                            inert(file),
                            inert(&e.message),
                            e.code.as_str()
                        ),
                        (None, None) => eprintln!("gridx-tui: {}: no answer", inert(file)),
                    }
                }
            }
            // Into a pipe or a file, exactly the stored bytes, nothing added
            // (`gridx-tui output 7 > out.txt`); on a terminal shown inert unless --raw.
            Outcome::Output { bytes, raw, .. } => {
                if *raw || !std::io::stdout().is_terminal() {
                    write_stdout(bytes)?;
                } else {
                    write_stdout(inert(&String::from_utf8_lossy(bytes)).as_bytes())?;
                }
            }
            // The job's own streams to ours: raw into pipes, inert on terminals.
            Outcome::Job(job) if wait => print_ended(job, true)?,
            other => {
                for line in commands::render::to_lines(other) {
                    println!("{line}");
                }
            }
        }
    }
    if let Outcome::Job(job) = &outcome
        && wait
    {
        return Ok(process_exit(commands::run::exit_code_of(job)));
    }
    // A batch in which a file was refused fails, after the others were submitted.
    if let Outcome::Batch(items) = &outcome
        && items.iter().any(|(_, item)| item.job.is_none())
    {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a job's output as it comes until it ends (`logs -f`, `submit --wait`): its
/// stdout to ours and its stderr to ours, each inert on a terminal. How it ended, or
/// `None` if the stream closed first.
async fn stream_output(
    client: &ApiClient,
    id: gridx_proto::JobId,
) -> Result<Option<gridx_proto::api::OutputEnd>> {
    use crate::client::follow::{Followed, follow_output};
    use gridx_proto::api::OutputStream;
    use std::io::{IsTerminal, Write};
    let (out_tty, err_tty) = (
        std::io::stdout().is_terminal(),
        std::io::stderr().is_terminal(),
    );
    let mut end = None;
    let mut failed = None;
    follow_output(client, id, true, |event| match event {
        Followed::Output(chunk) => match chunk.stream {
            OutputStream::Stdout => {
                if let Err(e) = write_stdout(shown_on(&chunk.text, out_tty).as_bytes()) {
                    failed.get_or_insert(e);
                }
            }
            OutputStream::Stderr => {
                let mut err = std::io::stderr().lock();
                let _ = err
                    .write_all(shown_on(&chunk.text, err_tty).as_bytes())
                    .and_then(|()| err.flush());
            }
        },
        Followed::Reset => eprintln!(
            "gridx-tui: job {id} runs again (its worker was lost, or its result is checked on another worker); its output starts over"
        ),
        Followed::End(e) => end = Some(e),
    })
    .await?;
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(end)
}

/// The exit code of `logs -f`: the job's, as `submit --wait` gives it.
fn end_code(id: gridx_proto::JobId, end: Option<&gridx_proto::api::OutputEnd>) -> ExitCode {
    let Some(end) = end else {
        eprintln!("gridx-tui: the output stream of job {id} closed before the job ended");
        return ExitCode::FAILURE;
    };
    if end.exit_code.is_none() || end.status != gridx_proto::JobStatus::Succeeded {
        eprintln!("[job {id} {}]", inert(&commands::render::end_words(end)));
    }
    process_exit(commands::run::exit_code_for(end.status, end.exit_code))
}

/// Our exit status for a job's code (a code past 255 wraps as a shell's does).
fn process_exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code.rem_euclid(256)).unwrap_or(1))
}

/// What `submit --wait` prints of an ended job: the compiler's words first, as a
/// local build prints them; with `output`, its stdout and stderr to ours (raw into
/// pipes, inert on terminals); then why our exit code is not the job's own, if it is
/// not (124: the timeout, not the program), or the coordinator's message.
fn print_ended(job: &gridx_proto::api::JobView, output: bool) -> Result<()> {
    use std::io::{IsTerminal, Write};
    let err_tty = std::io::stderr().is_terminal();
    if let Some(compiled) = job.compile_output.as_deref().filter(|c| !c.is_empty()) {
        let _ = std::io::stderr().write_all(shown_on(compiled, err_tty).as_bytes());
    }
    if output {
        write_stdout(shown_on(&job.stdout, std::io::stdout().is_terminal()).as_bytes())?;
        let _ = std::io::stderr().write_all(shown_on(&job.stderr, err_tty).as_bytes());
    }
    if let Some(ending) = commands::run::wait_ending(job) {
        eprintln!("gridx-tui: {ending}");
    } else if let Some(message) = &job.message {
        // A note for a person, whoever wrote it: inert, pipe or not.
        eprintln!("[{}: {}]", job.status, inert(message));
    }
    Ok(())
}

/// `submit --wait`: the output as it comes, then the compiler's words and why the
/// job ended the way it did, and the job's code.
async fn submit_and_follow(client: &ApiClient, id: gridx_proto::JobId) -> Result<ExitCode> {
    // The job is submitted: whatever happens to the stream (a coordinator without it,
    // its limits, a proxy in the way), the wait goes on by polling.
    let end = match stream_output(client, id).await {
        Ok(end) => end,
        Err(e) => {
            eprintln!("gridx-tui: cannot follow job {id}'s output ({e}); waiting for its end");
            None
        }
    };
    // The whole view for what the stream does not carry: the reason's message, and
    // all of the output when the stream failed.
    let job = if end.is_some() {
        client.job(id).await?
    } else {
        client.wait(id).await?
    };
    if end.is_none() {
        eprintln!("gridx-tui: job {id} ended; its whole output:");
    }
    print_ended(&job, end.is_none())?;
    Ok(process_exit(commands::run::exit_code_of(&job)))
}

/// A job's output for one of our streams: inert on a terminal, the text as it is
/// into a pipe or a file, for whatever reads it next.
fn shown_on(text: &str, terminal: bool) -> std::borrow::Cow<'_, str> {
    if terminal {
        inert(text)
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Logs of full-screen modes go to a file: nothing may print over the dashboard.
fn init_file_logging() {
    let Some(dirs) = directories::ProjectDirs::from("", "", "gridx") else {
        return;
    };
    let dir = dirs.cache_dir().to_owned();
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("gridx-tui.log"))
    else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("GRIDX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
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

pub async fn worker(
    mut config: GridxConfig,
    global: &Global,
    args: WorkerArgs,
) -> Result<ExitCode> {
    if args.headless {
        init_logging();
    } else {
        init_file_logging();
    }
    let w = &mut config.worker;
    match (&global.token, &args.token_file) {
        (Some(_), Some(_)) => {
            bail!("give the worker token once: --token or --token-file, not both")
        }
        (Some(token), None) => w.token = Some(token.clone()),
        (None, Some(path)) => w.token = Some(crate::token_file::read_token_file(path)?),
        (None, None) => {}
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
    w.allow_weak_sandbox |= args.allow_weak_sandbox;
    if let Some(parent) = args.cgroup_parent {
        w.cgroup_parent = Some(parent);
    }
    if let Some(dir) = args.work_dir {
        w.work_dir = Some(dir);
    }
    if let Some(gpus) = args.gpus {
        w.gpus = gpus;
    }
    if let Some(runtime) = args.docker_runtime {
        gridx_proto::config::check_docker_runtime(&runtime)
            .map_err(|e| eyre!("--docker-runtime: {e}"))?;
        w.docker_runtime = Some(runtime);
    }
    // The caps travel in `hello`: held to the same bounds as in the config file.
    let max_mb = gridx_proto::protocol::MAX_MEMORY_MB;
    if let Some(mb) = args.max_job_memory_mb {
        if mb == 0 || u64::from(mb) > max_mb {
            bail!("--max-job-memory-mb must be between 1 and {max_mb}");
        }
        w.max_job_memory_mb = mb;
    }
    if let Some(mb) = args.memory_budget_mb {
        if mb == 0 || mb > max_mb {
            bail!("--memory-budget-mb must be between 1 and {max_mb}");
        }
        w.memory_budget_mb = Some(mb);
    }
    if let Some(s) = args.max_job_timeout_s {
        if s == 0 {
            bail!("--max-job-timeout-s must be at least 1");
        }
        w.max_job_timeout_s = s;
    }
    // Checked before the sandbox is probed: a refused address fails at once.
    let coordinators = Coordinators::new(&w.server, w.ca_cert.as_deref(), w.allow_insecure)?;
    let Some(token) = w.token.clone() else {
        bail!(
            "no worker token: pass --token-file FILE or set GRIDX_WORKER_TOKEN (an operator issues one with `gridx-server worker add --owner YOU`)"
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
    let kind = executor.kind();
    let weaknesses = executor.weaknesses();
    let host_name = name.clone();
    let languages: Vec<String> = executor.languages().iter().map(|l| l.to_string()).collect();
    if languages.is_empty() {
        bail!(
            "the {} executor can run no language here (for Docker, run `gridx-tui images build`)",
            executor.kind()
        );
    }
    tracing::info!(executor = describe(executor.kind()), languages = %languages.join(","), "sandbox ready");
    // GPUs are lent only when asked (NVML is asked only then), and only where the
    // sandbox can hand them over.
    let gpus = if w.gpus.is_none() {
        crate::worker::gpus::Loan::none()
    } else {
        let inventory = crate::worker::monitor::Monitor::new().gpu_inventory();
        crate::worker::gpus::Loan::choose(&w.gpus, inventory).map_err(|e| eyre!(e))?
    };
    if !gpus.is_empty() {
        executor
            .gpu_support(&gpus)
            .map_err(|e| eyre!("--gpus {}: {e}", w.gpus))?;
        let lent: Vec<String> = gpus
            .devices()
            .iter()
            .map(|d| format!("{} {} ({} MB)", d.index, d.name, d.memory_mb))
            .collect();
        tracing::info!(gpus = %lent.join("; "), "lending GPUs to jobs");
    }
    let slots = w
        .slots
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    let lent_gpus: Vec<u32> = gpus.devices().iter().map(|d| d.index).collect();
    let options = HostOptions {
        coordinators: coordinators.clone(),
        token,
        name,
        slots,
        work_dir,
        grace: Duration::from_secs(u64::from(w.shutdown_grace_s)),
        max_backoff: Duration::from_secs(u64::from(w.reconnect_max_backoff_s.max(1))),
        admission: admission::Settings::from_config(w),
        gpus,
    };
    let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut host = WorkerHost::new(options, executor, events_tx);
    // Nothing starts before the coordinator accepted us.
    let first = host
        .authenticate()
        .await
        .context("worker authentication failed")?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let shutdown_trigger = shutdown_tx.clone();
    tokio::spawn(async move {
        gridx_server::signals::shutdown_signal().await;
        let _ = shutdown_tx.send(true);
    });
    if !args.headless {
        // The dashboard appears only now, after the coordinator accepted us.
        let welcomed_by = coordinators.label(first.1.coordinator);
        let host_task = tokio::spawn(host.run(first, shutdown_rx));
        let mut state = dashboard_state(
            &config,
            Mode::WorkerHost {
                executor: kind,
                name: host_name.clone(),
                weaknesses: weaknesses.clone(),
                lent_gpus,
            },
        )?;
        if let Some(coordinator) = welcomed_by {
            state.server = coordinator;
        }
        // The host reports the first connection itself (WorkerEvent::Connected), as it
        // does every reconnect; logging it here as well printed it twice.
        let client = match config.client.token.clone() {
            Some(t) => Some(ApiClient::new(client_coordinators(&config)?, Some(t))?),
            None => None,
        };
        let sources = sources(&config, client, Some(events_rx));
        crate::ui::runtime::run(state, sources).await?;
        // Leaving the dashboard shuts the worker down gracefully.
        let _ = shutdown_trigger.send(true);
        return match host_task.await {
            Ok(Ok(_)) => Ok(ExitCode::SUCCESS),
            Ok(Err(e)) => Err(e).context("the worker stopped"),
            Err(e) => Err(eyre!("the worker task failed: {e}")),
        };
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
            coordinator,
        } => {
            // The coordinator's address only when there are several.
            tracing::info!(worker = %worker_id, heartbeat_s, coordinator = coordinator.as_deref(), "authenticated; taking jobs")
        }
        WorkerEvent::Disconnected { reason, retry_in } => {
            tracing::warn!(%reason, retry_in_ms = retry_in.map(|d| d.as_millis() as u64), "disconnected")
        }
        WorkerEvent::JobStarted {
            job_id,
            attempt,
            language,
            ..
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
        WorkerEvent::Metrics(_) | WorkerEvent::JobOutput { .. } => {}
        WorkerEvent::Draining { reason } => tracing::info!(%reason, "draining"),
        WorkerEvent::Stopped => tracing::info!("stopped"),
    }
}

pub async fn host_info(config: &GridxConfig, json: bool) -> Result<ExitCode> {
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
    let (executor, languages, weaknesses, problem) =
        match crate::worker::exec::inspect_executor(&config.worker, &name).await {
            Ok(e) => (
                Some(e.kind().to_string()),
                e.languages().iter().map(|l| l.to_string()).collect(),
                e.weaknesses(),
                None,
            ),
            Err(e) => (None, Vec::new(), Vec::new(), Some(e.to_string())),
        };
    if json {
        let value = serde_json::json!({
            "name": name,
            "executor": executor,
            "languages": languages,
            "executor_problem": problem,
            "sandbox_weaknesses": weaknesses,
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
        if executor.is_some() {
            match weaknesses.as_slice() {
                [] => println!("sandbox       every documented limit holds (docs/worker.md)"),
                weak => println!("sandbox       WEAK: {}", weak.join("; ")),
            }
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

pub async fn images_build(config: &GridxConfig, force: bool) -> Result<ExitCode> {
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

/// `gridx-tui completions SHELL`: a completion script from the grammar in `cli.rs`
/// (console commands included), so it never drifts from what the binary accepts. The
/// same as gridx-server's `cli/completions.rs`, for this binary.
pub fn completions(shell: clap_complete::Shell) -> Result<ExitCode> {
    use clap::CommandFactory;
    let mut command = crate::cli::Cli::command();
    let name = command.get_name().to_owned();
    // Rendered into memory first: clap_complete panics when its writer fails, and a
    // closed stdout is an error to report.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, &name, &mut script);
    if shell == clap_complete::Shell::Bash {
        // clap_complete (4.6.12) spells a hyphenated binary's state `gridx__tui__subcmd__images`
        // where it walks the words but `gridx__subcmd__tui__subcmd__images` in the `case`
        // arms, so nothing after the first subcommand completes (clap-rs/clap#6421).
        // Respelling the arms is a no-op once clap_complete is fixed.
        let broken = name.replace('-', "__subcmd__");
        let walked = name.replace('-', "__");
        script = String::from_utf8_lossy(&script)
            .replace(&broken, &walked)
            .into_bytes();
    }
    write_stdout(&script)?;
    Ok(ExitCode::SUCCESS)
}

/// `gridx-tui man [--out DIR]`: without DIR the top page on stdout (`gridx-tui man |
/// man -l -`); with it one page per command and subcommand (`gridx-tui.1`,
/// `gridx-tui-worker.1`, `gridx-tui-images-build.1`, ...) written into DIR.
pub fn man_pages(out: Option<&std::path::Path>) -> Result<ExitCode> {
    use clap::CommandFactory;
    let command = crate::cli::Cli::command();
    match out {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .context("rendering the man page")?;
            write_stdout(&page)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))?;
            eprintln!("wrote the man pages into {}", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .context("writing to stdout")
}
