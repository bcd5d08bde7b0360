//! The reducer: what each message (a key, a live event, a snapshot, a finished
//! command, a worker-host event, the clock) does to the model, and which effects the
//! runtime must carry out. Keys are handled in `keys`.

use super::console::LogLevel;
use super::model::{AppState, CheckState, Connection, JobCheck, JobOutput, Mode, Overlay};
use crate::client::live::LiveEvent;
use crate::commands::{ConsoleCommand, Outcome, render};
use crate::worker::host::WorkerEvent;
use crossterm::event::KeyEvent;
use gridx_proto::api::{JobSummary, JobView, LedgerEntryView, WorkerView};
use gridx_proto::events::ServerEvent;
use gridx_proto::job::RunEnd;
use gridx_proto::metrics::HostMetrics;
use gridx_proto::time_fmt::{Timestamp, from_unix_millis, to_unix_millis};
use gridx_proto::{Credits, JobId, JobStatus, Language, UserName};

/// What the runtime must do after an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Quit,
    Suspend,
    OpenRepl,
    Refresh,
    RunCommand(ConsoleCommand),
    SetTheme(String),
    /// Fetch this job's view (`GET /v1/jobs/{id}`) and answer with `Msg::Output`:
    /// the details overlay opened on it, for its result check and, once it has
    /// ended, its output.
    FetchOutput(JobId),
    /// Follow this running job's output as it comes (`GET /v1/jobs/{id}/output`),
    /// answering with `Msg::Followed` of this generation; `None`: stop following.
    /// One at a time.
    Follow(Option<JobId>, u64),
}

/// What can happen to the dashboard.
#[derive(Debug, Clone)]
pub enum Msg {
    Key(KeyEvent),
    Resize,
    Live(LiveEvent),
    /// A full reload: the jobs, workers, ledger and balance as fetched now.
    Snapshot {
        jobs: Vec<JobSummary>,
        workers: Vec<WorkerView>,
        ledger: Vec<LedgerEntryView>,
        balance: Option<(String, Credits)>,
    },
    CommandDone(Result<Outcome, String>),
    /// The answer to `Effect::FetchOutput`: the job with its output, or why not.
    Output {
        job_id: JobId,
        result: Result<Box<JobView>, String>,
    },
    /// An event of the followed job's output stream (`Effect::Follow`).
    Followed {
        job_id: JobId,
        /// Of which `Effect::Follow`.
        generation: u64,
        event: crate::client::follow::Followed,
    },
    Worker(WorkerEvent),
    /// The clock, for ages and durations of running jobs.
    Now(Timestamp),
}

/// Console-submitted jobs whose end is announced, at most.
const MAX_WATCHED: usize = 1024;

impl AppState {
    /// Applies one message. Returns what the runtime must do, and whether anything
    /// visible changed (the runtime redraws only then).
    pub fn update(&mut self, msg: Msg) -> (Vec<Effect>, bool) {
        let mut effects = Vec::new();
        // The selection follows its row, not its row number (updates, sorting).
        let (before, anchors) = (self.selected, self.selection_anchors());
        let changed = match msg {
            Msg::Key(key) => {
                self.on_key(key, &mut effects);
                true
            }
            Msg::Resize => true,
            Msg::Now(now) => {
                self.now = now;
                self.jobs.values().any(|j| j.status == JobStatus::Running)
            }
            Msg::Live(event) => self.on_live(event, &mut effects),
            Msg::Snapshot {
                jobs,
                workers,
                ledger,
                balance,
            } => {
                for job in jobs {
                    self.upsert_job(job);
                }
                self.workers = workers.into_iter().map(|w| (w.worker_id, w)).collect();
                self.ledger = ledger.into_iter().collect();
                if let Some((user, balance)) = balance {
                    self.user = Some(user);
                    self.balance = Some(balance);
                }
                true
            }
            Msg::CommandDone(result) => {
                self.on_command_done(result, &mut effects);
                true
            }
            Msg::Output { job_id, result } => self.on_output(job_id, result),
            Msg::Worker(event) => self.on_worker_event(event),
            Msg::Followed {
                job_id,
                generation,
                event,
            } => generation == self.follow_generation && self.on_followed(job_id, event),
        };
        let fetching = self.sync_output(&mut effects);
        self.keep_selection(before, anchors);
        self.clamp_selection();
        (effects, changed || fetching)
    }

    /// In client mode the details overlay's job is the only one whose output and
    /// result check are kept: when it opens, its view is fetched for the check, and
    /// for the output once the job has ended (shown as loading meanwhile); when the
    /// job's status moves on, the check is asked again; when it closes, both are
    /// dropped. A worker host keeps the output of the jobs it ran and fetches
    /// nothing. Returns whether a fetch started.
    fn sync_output(&mut self, effects: &mut Vec<Effect>) -> bool {
        if self.mode != Mode::Client {
            return false;
        }
        let open = match self.overlay {
            Overlay::Detail(id) => Some(id),
            _ => None,
        };
        self.outputs.retain(|id, _| Some(*id) == open);
        self.checks.retain(|id, _| Some(*id) == open);
        // The open details of a running job follow its output as it comes.
        let follow = open.filter(|id| {
            self.jobs
                .get(id)
                .is_some_and(|j| j.status == JobStatus::Running)
        });
        if follow != self.following {
            // What came live gives way to the stored output once the job ended.
            if let Some(old) = self.following {
                self.outputs.remove(&old);
            }
            self.following = follow;
            self.follow_generation += 1;
            effects.push(Effect::Follow(follow, self.follow_generation));
            if let Some(id) = follow {
                self.outputs.insert(
                    id,
                    JobOutput::Loaded {
                        stdout: String::new(),
                        stderr: String::new(),
                        compile: None,
                    },
                );
            }
        }
        let Some((id, status)) = open.and_then(|id| self.jobs.get(&id).map(|j| (id, j.status)))
        else {
            return false;
        };
        let want_output = status.is_terminal() && !self.outputs.contains_key(&id);
        let want_check = self.checks.get(&id).is_none_or(|c| c.as_of != status);
        if want_output {
            self.outputs.insert(id, JobOutput::Loading);
        }
        if want_check {
            let state = CheckState::Loading;
            self.checks.insert(
                id,
                JobCheck {
                    as_of: status,
                    state,
                },
            );
        }
        if want_output || want_check {
            effects.push(Effect::FetchOutput(id));
        }
        want_output || want_check
    }

    /// A piece of the followed job's output: appended where it continues what is
    /// shown; a reset clears it; at the end the job's whole view is fetched, for its
    /// compile output and anything the stream did not carry.
    fn on_followed(&mut self, job_id: JobId, event: crate::client::follow::Followed) -> bool {
        use crate::client::follow::Followed;
        if self.overlay != Overlay::Detail(job_id) {
            return false;
        }
        match event {
            Followed::Output(chunk) => {
                if let Some(JobOutput::Loaded { stdout, stderr, .. }) =
                    self.outputs.get_mut(&job_id)
                {
                    let text = match chunk.stream {
                        gridx_proto::api::OutputStream::Stdout => stdout,
                        gridx_proto::api::OutputStream::Stderr => stderr,
                    };
                    if chunk.offset as usize == text.len() {
                        text.push_str(&chunk.text);
                        return true;
                    }
                }
                false
            }
            Followed::Reset => {
                self.outputs.insert(
                    job_id,
                    JobOutput::Loaded {
                        stdout: String::new(),
                        stderr: String::new(),
                        compile: None,
                    },
                );
                true
            }
            Followed::End(_) => {
                // The ended job's own view is fetched as for any ended job.
                self.outputs.remove(&job_id);
                true
            }
        }
    }

    fn on_output(&mut self, job_id: JobId, result: Result<Box<JobView>, String>) -> bool {
        // An answer for details closed meanwhile is dropped (`sync_output` would).
        if self.overlay != Overlay::Detail(job_id) {
            return false;
        }
        match result {
            Ok(view) => {
                // A view asked for while the job ran may answer after its end was
                // announced: an ended job does not come back to life.
                let ended = self
                    .jobs
                    .get(&job_id)
                    .is_some_and(|j| j.status.is_terminal());
                if !ended || view.status.is_terminal() {
                    self.upsert_job(view.summary());
                }
                let JobView {
                    status,
                    stdout,
                    stderr,
                    mut validation,
                    compile_output,
                    waiting,
                    ..
                } = *view;
                // Why a queued job waits shows as one line, whatever holds it: the
                // GPUs it asks for, or its result check.
                validation.waiting = match (waiting, validation.waiting.take()) {
                    (Some(gpus), Some(check)) => Some(format!("{gpus}; and {check}")),
                    (gpus, check) => gpus.or(check),
                };
                let state = CheckState::Loaded(validation);
                self.checks.insert(
                    job_id,
                    JobCheck {
                        as_of: status,
                        state,
                    },
                );
                // A live job's view has no output yet: it is fetched when it ends.
                if status.is_terminal() {
                    self.outputs.insert(
                        job_id,
                        JobOutput::Loaded {
                            stdout,
                            stderr,
                            compile: compile_output,
                        },
                    );
                }
            }
            Err(why) => {
                let state = CheckState::Failed(format!("could not load the check: {why}"));
                if let Some(check) = self.checks.get_mut(&job_id) {
                    check.state = state;
                }
                if self.outputs.contains_key(&job_id) {
                    let why = format!("could not load the output: {why}");
                    self.outputs.insert(job_id, JobOutput::Failed(why));
                }
            }
        }
        true
    }

    fn upsert_job(&mut self, job: JobSummary) {
        self.jobs.insert(job.job_id, job);
        while self.jobs.len() > self.max_jobs {
            // Drop the oldest finished job first, else the oldest.
            let victim = self
                .jobs
                .values()
                .find(|j| j.status.is_terminal())
                .or_else(|| self.jobs.values().next())
                .map(|j| j.job_id);
            match victim {
                Some(id) => {
                    self.jobs.remove(&id);
                    self.outputs.remove(&id);
                }
                None => break,
            };
        }
    }

    fn on_live(&mut self, event: LiveEvent, effects: &mut Vec<Effect>) -> bool {
        match event {
            LiveEvent::Connected { coordinator } => {
                // Reload what happened while offline (and on first connect).
                self.connection = Connection::Online;
                // Of several coordinators, the one that leads now.
                if let Some(coordinator) = coordinator {
                    self.server = coordinator;
                }
                effects.push(Effect::Refresh);
                true
            }
            LiveEvent::Disconnected { reason, retry_in } => {
                self.connection = Connection::Offline {
                    reason,
                    retry_in_s: (retry_in.as_secs() < 3600).then(|| retry_in.as_secs().max(1)),
                };
                true
            }
            LiveEvent::Event(event) => match *event {
                ServerEvent::Job { job } => {
                    if job.status.is_terminal() && self.watched.remove(&job.job_id) {
                        // As the REPL does: a job typed here says when it is done.
                        let level = if job.status == JobStatus::Succeeded {
                            LogLevel::Info
                        } else {
                            LogLevel::Error
                        };
                        let line = format!("⟫ {} · o opens it", render::job_line(&job));
                        self.log(level, line);
                        self.announced = Some(job.job_id);
                    }
                    self.upsert_job(job);
                    true
                }
                ServerEvent::Worker { worker } => {
                    let id = worker.worker_id;
                    self.workers.insert(id, worker);
                    let shown = self.gauge_worker().map(|w| w.worker_id);
                    if shown == Some(id) {
                        self.record_gauge_history();
                    }
                    true
                }
                ServerEvent::WorkerRemoved { worker_id } => {
                    self.workers.remove(&worker_id).is_some()
                }
                ServerEvent::Ledger { entry } => {
                    // Ledger events are the caller's own account only, so the newest
                    // entry's balance is the balance.
                    if self
                        .ledger
                        .front()
                        .is_none_or(|newest| entry.id > newest.id)
                    {
                        self.balance = Some(entry.balance_after);
                    }
                    self.ledger.push_front(entry);
                    self.ledger.truncate(500);
                    true
                }
                ServerEvent::Lagged { missed } => {
                    self.log(
                        LogLevel::Info,
                        format!("missed {missed} live events; reloading"),
                    );
                    effects.push(Effect::Refresh);
                    true
                }
            },
        }
    }

    fn on_worker_event(&mut self, event: WorkerEvent) -> bool {
        match event {
            WorkerEvent::Connected {
                worker_id,
                coordinator,
                ..
            } => {
                self.connection = Connection::Online;
                if let Some(coordinator) = coordinator {
                    self.server = coordinator;
                }
                self.log(LogLevel::Info, format!("connected as worker {worker_id}"));
            }
            WorkerEvent::Disconnected { reason, retry_in } => {
                self.connection = Connection::Offline {
                    reason: reason.clone(),
                    retry_in_s: retry_in.map(|d| d.as_secs().max(1)),
                };
                self.log(LogLevel::Error, format!("disconnected: {reason}"));
            }
            WorkerEvent::JobStarted {
                job_id,
                attempt,
                language,
                timeout_s,
                memory_mb,
                priority,
                gpus,
            } => {
                let limits = (timeout_s, memory_mb, priority);
                let mut job = local_job(job_id, attempt, language, limits, self.now);
                job.gpus = gpus.len() as u32;
                self.upsert_job(job);
                if !gpus.is_empty() {
                    self.local_gpus.insert((job_id, attempt), gpus);
                }
                self.log(
                    LogLevel::Info,
                    format!("job {job_id} attempt {attempt} started ({language})"),
                );
            }
            WorkerEvent::JobOutput {
                job_id,
                stream,
                text,
            } => {
                // A job this host runs: its output shows as it comes; the result's
                // replaces it at the end.
                let entry = self.outputs.entry(job_id).or_insert(JobOutput::Loaded {
                    stdout: String::new(),
                    stderr: String::new(),
                    compile: None,
                });
                if let JobOutput::Loaded { stdout, stderr, .. } = entry {
                    match stream {
                        gridx_proto::api::OutputStream::Stdout => stdout.push_str(&text),
                        gridx_proto::api::OutputStream::Stderr => stderr.push_str(&text),
                    }
                }
                return self.overlay == Overlay::Detail(job_id);
            }
            WorkerEvent::JobFinished {
                job_id,
                attempt,
                outcome,
            } => {
                self.local_gpus.remove(&(job_id, attempt));
                let (status, reason) = outcome.final_status();
                if let Some(job) = self.jobs.get_mut(&job_id) {
                    job.status = status;
                    job.reason = reason;
                    job.exit_code = outcome.exit_code;
                    job.duration_ms = Some(outcome.duration_ms);
                    job.finished_at = Some(from_unix_millis(to_unix_millis(self.now)));
                    job.stdout_bytes = outcome.stdout.len() as u64;
                    job.stderr_bytes = outcome.stderr.len() as u64;
                    job.stdout_truncated = outcome.stdout_truncated;
                    job.stderr_truncated = outcome.stderr_truncated;
                    // The worker host ran it: its output is here, nothing to fetch.
                    self.outputs.insert(
                        job_id,
                        JobOutput::Loaded {
                            stdout: outcome.stdout.clone(),
                            stderr: outcome.stderr.clone(),
                            compile: outcome.compile_output.clone(),
                        },
                    );
                }
                let end = match outcome.end {
                    RunEnd::Exited => format!("exit {}", outcome.exit_code.unwrap_or(-1)),
                    other => format!("{other:?}").to_ascii_lowercase(),
                };
                self.log(
                    LogLevel::Info,
                    format!(
                        "job {job_id} attempt {attempt} finished: {end} in {} ms",
                        outcome.duration_ms
                    ),
                );
            }
            WorkerEvent::Metrics(metrics) => {
                self.push_history(&metrics);
                self.local_metrics = Some(*metrics);
            }
            WorkerEvent::Draining { reason } => {
                self.log(LogLevel::Info, format!("draining: {reason}"));
            }
            WorkerEvent::Stopped => {
                self.log(LogLevel::Info, "worker stopped");
                self.should_quit = true;
            }
        }
        true
    }

    /// In client mode, worker heartbeats feed the gauges' history of the shown worker.
    fn record_gauge_history(&mut self) {
        if let Mode::Client = self.mode
            && let Some((_, metrics)) = self.gauge_metrics()
        {
            let metrics = metrics.clone();
            self.push_history(&metrics);
        }
    }

    fn push_history(&mut self, metrics: &HostMetrics) {
        self.cpu_history.push(f64::from(metrics.cpu_percent));
        self.memory_history
            .push(f64::from(metrics.memory_percent()));
        for gpu in &metrics.gpus {
            self.gpu_history
                .entry(gpu.index)
                .or_default()
                .push(f64::from(gpu.utilization_percent.unwrap_or(0)));
        }
    }

    fn on_command_done(&mut self, result: Result<Outcome, String>, effects: &mut Vec<Effect>) {
        match result {
            Ok(outcome) => {
                match &outcome {
                    Outcome::Quit => {
                        effects.push(Effect::Quit);
                        self.should_quit = true;
                    }
                    Outcome::Theme(Some(name)) => effects.push(Effect::SetTheme(name.clone())),
                    Outcome::Submitted(job) => {
                        // Bounded like everything else; past it, jobs go unannounced.
                        if self.watched.len() < MAX_WATCHED {
                            self.watched.insert(job.job_id);
                        }
                        self.upsert_job(job.summary());
                    }
                    Outcome::Batch(items) => {
                        for job in items.iter().filter_map(|(_, item)| item.job.as_ref()) {
                            if self.watched.len() < MAX_WATCHED {
                                self.watched.insert(job.job_id);
                            }
                            self.upsert_job(job.summary());
                        }
                    }
                    Outcome::Job(job) | Outcome::Cancelled(job) => {
                        self.upsert_job(job.summary());
                    }
                    Outcome::Balance(b) => {
                        self.balance = Some(b.balance);
                        self.user = Some(b.user.to_string());
                    }
                    Outcome::Workers(w) => {
                        self.workers = w.workers.iter().map(|w| (w.worker_id, w.clone())).collect();
                    }
                    _ => {}
                }
                for line in render::to_lines(&outcome) {
                    self.log(LogLevel::Output, line);
                }
            }
            Err(message) => {
                for line in message.lines() {
                    self.log(LogLevel::Error, line.to_owned());
                }
            }
        }
    }
}

/// A job for the worker host's own pane, built from what the worker knows: its
/// spec's `(timeout_s, memory_mb, priority)`.
fn local_job(
    job_id: JobId,
    attempt: u32,
    language: Language,
    (timeout_s, memory_mb, priority): (u32, u32, i32),
    now: Timestamp,
) -> JobSummary {
    // Milliseconds, as the coordinator stores them (not the clock's nanoseconds).
    let now = from_unix_millis(to_unix_millis(now));
    JobSummary {
        gpus: 0,
        job_id,
        user: UserName::new("-").unwrap_or_else(|_| placeholder_user()),
        status: JobStatus::Running,
        language,
        priority,
        timeout_s,
        memory_mb,
        submitted_at: now,
        started_at: Some(now),
        finished_at: None,
        worker_id: None,
        attempts: attempt,
        exit_code: None,
        stdout_bytes: 0,
        stderr_bytes: 0,
        stdout_truncated: false,
        stderr_truncated: false,
        duration_ms: None,
        reason: None,
        message: None,
        refusals: 0,
        refusal: None,
        cost: Credits::ZERO,
    }
}

fn placeholder_user() -> UserName {
    // "-" is a valid name; this is only reached if the name rules ever change.
    UserName::new("unknown").unwrap_or_else(|_| unreachable!("a fixed valid name"))
}
