//! The dashboard's state and the reducer that changes it. Keys and events go in,
//! state and effects come out; no terminal here, so all of it is tested headless.

use super::keymap::{KeyAction, Keymap};
use super::theme::Theme;
use crate::client::live::LiveEvent;
use crate::commands::{self, ConsoleCommand, Outcome};
use crate::worker::host::WorkerEvent;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use gridx_proto::api::{JobView, LedgerEntryView, WorkerStatus, WorkerView};
use gridx_proto::events::ServerEvent;
use gridx_proto::job::RunEnd;
use gridx_proto::metrics::HostMetrics;
use gridx_proto::protocol::ExecutorKind;
use gridx_proto::time_fmt::Timestamp;
use gridx_proto::{Credits, JobId, JobStatus, WorkerId};
use std::collections::{BTreeMap, VecDeque};

/// The five panes, in Tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Workers,
    Jobs,
    Gauges,
    Ledger,
    Console,
}

impl Pane {
    pub const ALL: [Pane; 5] = [
        Pane::Workers,
        Pane::Jobs,
        Pane::Gauges,
        Pane::Ledger,
        Pane::Console,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Pane::Workers => "Workers",
            Pane::Jobs => "Jobs",
            Pane::Gauges => "Gauges",
            Pane::Ledger => "Ledger",
            Pane::Console => "Console",
        }
    }

    fn index(self) -> usize {
        Pane::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }
}

/// What is on top of the panes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    None,
    Help,
    Detail(JobId),
    ConfirmCancel(JobId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobSort {
    Newest,
    Status,
    User,
    Duration,
}

impl JobSort {
    pub fn next(self) -> JobSort {
        match self {
            JobSort::Newest => JobSort::Status,
            JobSort::Status => JobSort::User,
            JobSort::User => JobSort::Duration,
            JobSort::Duration => JobSort::Newest,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            JobSort::Newest => "newest",
            JobSort::Status => "status",
            JobSort::User => "user",
            JobSort::Duration => "duration",
        }
    }
}

/// Whose dashboard this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// A client of a coordinator: every pane from the API and the event stream.
    Client,
    /// The worker host: gauges are this machine, jobs are this worker's.
    WorkerHost {
        executor: ExecutorKind,
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    Connecting,
    Online,
    Offline {
        reason: String,
        retry_in_s: Option<u64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Info,
    Output,
    Error,
}

/// A metric's recent history, for sparklines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub values: VecDeque<u64>,
}

impl History {
    const LEN: usize = 120;

    pub fn push(&mut self, value: f64) {
        if self.values.len() == Self::LEN {
            self.values.pop_front();
        }
        self.values
            .push_back(value.clamp(0.0, 100.0).round() as u64);
    }
}

/// What the runtime must do after an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Quit,
    Suspend,
    OpenRepl,
    Refresh,
    RunCommand(ConsoleCommand),
    SetTheme(String),
}

/// What can happen to the dashboard.
#[derive(Debug, Clone)]
pub enum Msg {
    Key(KeyEvent),
    Resize,
    Live(LiveEvent),
    /// A full reload: the jobs, workers, ledger and balance as fetched now.
    Snapshot {
        jobs: Vec<JobView>,
        workers: Vec<WorkerView>,
        ledger: Vec<LedgerEntryView>,
        balance: Option<(String, Credits)>,
    },
    CommandDone(Result<Outcome, String>),
    Worker(WorkerEvent),
    /// The clock, for ages and durations of running jobs.
    Now(Timestamp),
}

pub struct Console {
    pub log: VecDeque<(LogLevel, String)>,
    pub input: String,
    /// Cursor position in characters.
    pub cursor: usize,
    pub history: Vec<String>,
    history_pos: Option<usize>,
    pub editing: bool,
}

impl Console {
    const LOG_LEN: usize = 500;

    /// Appends a line; the same line again only counts up on the last one ("(x3)"),
    /// so a worker retrying an unreachable coordinator does not flood the console.
    fn push(&mut self, level: LogLevel, line: impl Into<String>) {
        let line = line.into();
        if let Some((last_level, last)) = self.log.back_mut()
            && *last_level == level
        {
            let (base, count) = split_repeat(last);
            if base == line {
                *last = format!("{line} (x{})", count + 1);
                return;
            }
        }
        if self.log.len() == Self::LOG_LEN {
            self.log.pop_front();
        }
        self.log.push_back((level, line));
    }

    fn byte_at(&self, chars: usize) -> usize {
        self.input
            .char_indices()
            .nth(chars)
            .map_or(self.input.len(), |(i, _)| i)
    }
}

/// A console line without its repeat count, and the count (1 when it has none).
fn split_repeat(text: &str) -> (&str, u32) {
    text.strip_suffix(')')
        .and_then(|rest| rest.rsplit_once(" (x"))
        .and_then(|(base, n)| Some((base, n.parse().ok()?)))
        .unwrap_or((text, 1))
}

pub struct AppState {
    pub mode: Mode,
    pub theme: Theme,
    pub keymap: Keymap,
    pub ascii: bool,
    pub read_only: bool,
    pub server: String,
    pub user: Option<String>,
    pub balance: Option<Credits>,
    pub connection: Connection,
    pub focus: Pane,
    pub overlay: Overlay,
    pub jobs: BTreeMap<JobId, JobView>,
    pub max_jobs: usize,
    pub workers: BTreeMap<WorkerId, WorkerView>,
    pub ledger: VecDeque<LedgerEntryView>,
    pub selected: [usize; 5],
    pub filter: String,
    pub filter_editing: bool,
    pub sort: JobSort,
    pub console: Console,
    /// Local machine metrics (worker-host mode) with their histories.
    pub local_metrics: Option<HostMetrics>,
    pub cpu_history: History,
    pub memory_history: History,
    pub gpu_history: BTreeMap<u32, History>,
    pub now: Timestamp,
    pub should_quit: bool,
}

impl AppState {
    pub fn new(mode: Mode, theme: Theme, keymap: Keymap, server: String) -> Self {
        AppState {
            mode,
            theme,
            keymap,
            ascii: false,
            read_only: false,
            server,
            user: None,
            balance: None,
            connection: Connection::Connecting,
            focus: Pane::Jobs,
            overlay: Overlay::None,
            jobs: BTreeMap::new(),
            max_jobs: 10_000,
            workers: BTreeMap::new(),
            ledger: VecDeque::new(),
            selected: [0; 5],
            filter: String::new(),
            filter_editing: false,
            sort: JobSort::Newest,
            console: Console {
                log: VecDeque::new(),
                input: String::new(),
                cursor: 0,
                history: Vec::new(),
                history_pos: None,
                editing: false,
            },
            local_metrics: None,
            cpu_history: History::default(),
            memory_history: History::default(),
            gpu_history: BTreeMap::new(),
            now: gridx_proto::time_fmt::from_unix_millis(0),
            should_quit: false,
        }
    }

    pub fn log(&mut self, level: LogLevel, line: impl Into<String>) {
        self.console.push(level, line);
    }

    fn job_matches(&self, j: &JobView) -> bool {
        self.filter.is_empty() || {
            let hay = format!(
                "{} {} {} {} {}",
                j.job_id,
                j.user,
                j.status,
                j.language,
                j.worker_id.map(|w| w.to_string()).unwrap_or_default()
            );
            hay.to_ascii_lowercase()
                .contains(&self.filter.to_ascii_lowercase())
        }
    }

    /// Jobs as the jobs pane shows them: filtered and sorted.
    pub fn visible_jobs(&self) -> Vec<&JobView> {
        let mut jobs: Vec<&JobView> = self.jobs.values().filter(|j| self.job_matches(j)).collect();
        match self.sort {
            JobSort::Newest => jobs.sort_by_key(|j| std::cmp::Reverse(j.job_id)),
            JobSort::Status => {
                jobs.sort_by_key(|j| (status_rank(j.status), std::cmp::Reverse(j.job_id)))
            }
            JobSort::User => jobs.sort_by(|a, b| a.user.cmp(&b.user).then(b.job_id.cmp(&a.job_id))),
            JobSort::Duration => jobs.sort_by_key(|j| {
                (
                    std::cmp::Reverse(j.duration_ms.unwrap_or(0)),
                    std::cmp::Reverse(j.job_id),
                )
            }),
        }
        jobs
    }

    pub fn visible_workers(&self) -> Vec<&WorkerView> {
        let filter = self.filter.to_ascii_lowercase();
        self.workers
            .values()
            .filter(|w| {
                filter.is_empty()
                    || format!("{} {} {} {}", w.worker_id, w.name, w.owner, w.status)
                        .to_ascii_lowercase()
                        .contains(&filter)
            })
            .collect()
    }

    pub fn selected_job(&self) -> Option<JobId> {
        self.visible_jobs()
            .get(self.selected[Pane::Jobs.index()])
            .map(|j| j.job_id)
    }

    pub fn selected_worker(&self) -> Option<&WorkerView> {
        self.visible_workers()
            .get(self.selected[Pane::Workers.index()])
            .copied()
    }

    /// The metrics the gauges show: this machine (worker host), or the selected
    /// worker's latest heartbeat (client).
    pub fn gauge_metrics(&self) -> Option<(String, &HostMetrics)> {
        match &self.mode {
            Mode::WorkerHost { name, .. } => self.local_metrics.as_ref().map(|m| (name.clone(), m)),
            Mode::Client => self
                .selected_worker()
                .or_else(|| self.workers.values().next())
                .and_then(|w| w.metrics.as_ref().map(|m| (w.name.clone(), m))),
        }
    }

    fn rows_in(&self, pane: Pane) -> usize {
        match pane {
            Pane::Workers => self.visible_workers().len(),
            // Counting needs no sort: this runs on every message.
            Pane::Jobs => self.jobs.values().filter(|j| self.job_matches(j)).count(),
            Pane::Ledger => self.ledger.len(),
            Pane::Console => self.console.log.len(),
            Pane::Gauges => 0,
        }
    }

    fn clamp_selection(&mut self) {
        for pane in Pane::ALL {
            let rows = self.rows_in(pane);
            let i = pane.index();
            self.selected[i] = self.selected[i].min(rows.saturating_sub(1));
        }
    }

    fn upsert_job(&mut self, job: JobView) {
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
                Some(id) => self.jobs.remove(&id),
                None => break,
            };
        }
    }

    /// Applies one message. Returns what the runtime must do, and whether anything
    /// visible changed (the runtime redraws only then).
    pub fn update(&mut self, msg: Msg) -> (Vec<Effect>, bool) {
        let mut effects = Vec::new();
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
            Msg::Worker(event) => self.on_worker_event(event),
        };
        self.clamp_selection();
        (effects, changed)
    }

    fn on_live(&mut self, event: LiveEvent, effects: &mut Vec<Effect>) -> bool {
        match event {
            LiveEvent::Connected => {
                // Reload what happened while offline (and on first connect).
                self.connection = Connection::Online;
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
                    self.upsert_job(job);
                    true
                }
                ServerEvent::Worker { worker } => {
                    let id = worker.worker_id;
                    self.workers.insert(id, worker);
                    let shown = self
                        .selected_worker()
                        .or_else(|| self.workers.values().next())
                        .map(|w| w.worker_id);
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
            WorkerEvent::Connected { worker_id, .. } => {
                self.connection = Connection::Online;
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
            } => {
                let view = local_job_view(job_id, attempt, language, self.now);
                self.upsert_job(view);
                self.log(
                    LogLevel::Info,
                    format!("job {job_id} attempt {attempt} started ({language})"),
                );
            }
            WorkerEvent::JobFinished {
                job_id,
                attempt,
                outcome,
            } => {
                let (status, reason) = outcome.final_status();
                if let Some(job) = self.jobs.get_mut(&job_id) {
                    job.status = status;
                    job.reason = reason;
                    job.exit_code = outcome.exit_code;
                    job.duration_ms = Some(outcome.duration_ms);
                    job.finished_at = Some(self.now);
                    job.stdout = outcome.stdout.clone();
                    job.stderr = outcome.stderr.clone();
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
    pub fn record_gauge_history(&mut self) {
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
                    Outcome::Submitted(job) | Outcome::Job(job) | Outcome::Cancelled(job) => {
                        self.upsert_job((**job).clone());
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
                for line in commands::render::to_lines(&outcome) {
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

    fn on_key(&mut self, key: KeyEvent, effects: &mut Vec<Effect>) {
        if key.kind == crossterm::event::KeyEventKind::Release {
            return;
        }
        // Typing modes take every key first.
        if self.console.editing {
            self.console_key(key, effects);
            return;
        }
        if self.filter_editing {
            match key.code {
                KeyCode::Esc => {
                    self.filter.clear();
                    self.filter_editing = false;
                }
                KeyCode::Enter => self.filter_editing = false,
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                    self.filter.push(c)
                }
                _ => {}
            }
            return;
        }
        match self.overlay.clone() {
            Overlay::Help | Overlay::Detail(_) => {
                if matches!(
                    key.code,
                    KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q') | KeyCode::Char('?')
                ) {
                    self.overlay = Overlay::None;
                }
                return;
            }
            Overlay::ConfirmCancel(id) => {
                match key.code {
                    KeyCode::Char('y') | KeyCode::Char('Y') => {
                        effects.push(Effect::RunCommand(ConsoleCommand::Cancel { id }));
                        self.log(LogLevel::Info, format!("> cancel {id}"));
                    }
                    _ => self.log(LogLevel::Info, format!("kept job {id}")),
                }
                self.overlay = Overlay::None;
                return;
            }
            Overlay::None => {}
        }
        if key.code == KeyCode::Esc {
            self.filter.clear();
            return;
        }
        let Some(action) = self.keymap.action(&key) else {
            return;
        };
        let focus = self.focus.index();
        match action {
            KeyAction::Quit => {
                self.should_quit = true;
                effects.push(Effect::Quit);
            }
            KeyAction::Help => self.overlay = Overlay::Help,
            KeyAction::NextPane => self.focus = Pane::ALL[(focus + 1) % 5],
            KeyAction::PrevPane => self.focus = Pane::ALL[(focus + 4) % 5],
            KeyAction::FocusWorkers => self.focus = Pane::Workers,
            KeyAction::FocusJobs => self.focus = Pane::Jobs,
            KeyAction::FocusGauges => self.focus = Pane::Gauges,
            KeyAction::FocusLedger => self.focus = Pane::Ledger,
            KeyAction::FocusConsole => self.focus = Pane::Console,
            KeyAction::Up => self.selected[focus] = self.selected[focus].saturating_sub(1),
            KeyAction::Down => self.selected[focus] = self.selected[focus].saturating_add(1),
            KeyAction::Top => self.selected[focus] = 0,
            KeyAction::Bottom => self.selected[focus] = usize::MAX,
            KeyAction::Open => {
                if self.focus == Pane::Jobs
                    && let Some(id) = self.selected_job()
                {
                    self.overlay = Overlay::Detail(id);
                }
            }
            KeyAction::Cancel => {
                if self.read_only {
                    self.log(LogLevel::Error, "read-only: cancelling is disabled");
                } else if let Mode::WorkerHost { .. } = self.mode {
                    self.log(
                        LogLevel::Error,
                        "the worker host cannot cancel jobs; their owners can",
                    );
                } else if let Some(id) = self.selected_job() {
                    let live = self.jobs.get(&id).is_some_and(|j| !j.status.is_terminal());
                    if live {
                        self.overlay = Overlay::ConfirmCancel(id);
                    } else {
                        self.log(LogLevel::Error, format!("job {id} already finished"));
                    }
                }
            }
            KeyAction::Filter => self.filter_editing = true,
            KeyAction::Sort => self.sort = self.sort.next(),
            KeyAction::Console => {
                self.focus = Pane::Console;
                self.console.editing = true;
            }
            KeyAction::Repl => effects.push(Effect::OpenRepl),
            KeyAction::Suspend => effects.push(Effect::Suspend),
            KeyAction::Refresh => effects.push(Effect::Refresh),
        }
    }

    fn console_key(&mut self, key: KeyEvent, effects: &mut Vec<Effect>) {
        let c = &mut self.console;
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc => c.editing = false,
            KeyCode::Char('c') if ctrl => {
                c.input.clear();
                c.cursor = 0;
                c.editing = false;
            }
            KeyCode::Enter => {
                let line = std::mem::take(&mut c.input);
                c.cursor = 0;
                c.history_pos = None;
                self.run_line(line, effects);
            }
            KeyCode::Backspace if c.cursor > 0 => {
                let at = c.byte_at(c.cursor - 1);
                c.input.remove(at);
                c.cursor -= 1;
            }
            KeyCode::Delete if c.cursor < c.input.chars().count() => {
                let at = c.byte_at(c.cursor);
                c.input.remove(at);
            }
            KeyCode::Left => c.cursor = c.cursor.saturating_sub(1),
            KeyCode::Right => c.cursor = (c.cursor + 1).min(c.input.chars().count()),
            KeyCode::Home => c.cursor = 0,
            KeyCode::End => c.cursor = c.input.chars().count(),
            KeyCode::Char('a') if ctrl => c.cursor = 0,
            KeyCode::Char('e') if ctrl => c.cursor = c.input.chars().count(),
            KeyCode::Char('u') if ctrl => {
                c.input.clear();
                c.cursor = 0;
            }
            KeyCode::Up => {
                if c.history.is_empty() {
                    return;
                }
                let pos = c
                    .history_pos
                    .map_or(c.history.len() - 1, |p| p.saturating_sub(1));
                c.history_pos = Some(pos);
                c.input = c.history[pos].clone();
                c.cursor = c.input.chars().count();
            }
            KeyCode::Down => match c.history_pos {
                Some(p) if p + 1 < c.history.len() => {
                    c.history_pos = Some(p + 1);
                    c.input = c.history[p + 1].clone();
                    c.cursor = c.input.chars().count();
                }
                _ => {
                    c.history_pos = None;
                    c.input.clear();
                    c.cursor = 0;
                }
            },
            KeyCode::Tab => {
                let completed = complete(&c.input);
                if let Some(line) = completed.first().filter(|_| completed.len() == 1) {
                    c.input = line.clone();
                    c.cursor = c.input.chars().count();
                } else if completed.len() > 1 {
                    let shown: Vec<String> = completed
                        .iter()
                        .map(|l| l.rsplit(' ').next().unwrap_or(l).to_owned())
                        .collect();
                    self.log(LogLevel::Info, shown.join("  "));
                }
            }
            KeyCode::Char(ch) if !ctrl => {
                let at = c.byte_at(c.cursor);
                c.input.insert(at, ch);
                c.cursor += 1;
            }
            _ => {}
        }
    }

    /// Runs a console line: parse, echo, and hand the command to the runtime.
    pub fn run_line(&mut self, line: String, effects: &mut Vec<Effect>) {
        let trimmed = line.trim().to_owned();
        if trimmed.is_empty() {
            return;
        }
        if self.console.history.last() != Some(&trimmed) {
            self.console.history.push(trimmed.clone());
        }
        self.log(LogLevel::Info, format!("> {trimmed}"));
        match commands::parse_line(&trimmed) {
            Ok(None) => {}
            Ok(Some(command)) => {
                if self.read_only
                    && matches!(
                        command,
                        ConsoleCommand::Submit(_) | ConsoleCommand::Cancel { .. }
                    )
                {
                    self.log(
                        LogLevel::Error,
                        "read-only: this command would change something",
                    );
                    return;
                }
                effects.push(Effect::RunCommand(command));
            }
            Err(e) => {
                for l in e.to_string().lines() {
                    self.log(LogLevel::Error, l.to_owned());
                }
            }
        }
    }
}

fn status_rank(status: JobStatus) -> u8 {
    match status {
        JobStatus::Running => 0,
        JobStatus::Queued => 1,
        JobStatus::Failed => 2,
        JobStatus::Error => 3,
        JobStatus::TimedOut => 4,
        JobStatus::Cancelled => 5,
        JobStatus::Succeeded => 6,
    }
}

/// Completions of a partial console line: whole lines that could follow.
pub fn complete(input: &str) -> Vec<String> {
    let words: Vec<&str> = input.split_whitespace().collect();
    let ends_with_space = input.ends_with(' ');
    match (words.len(), ends_with_space) {
        (0, _) => commands::grammar::command_names(),
        (1, false) => commands::grammar::command_names()
            .into_iter()
            .filter(|n| n.starts_with(words[0]))
            .collect(),
        _ => {
            let prefix = if ends_with_space {
                ""
            } else {
                words.last().copied().unwrap_or("")
            };
            if !prefix.is_empty() && !prefix.starts_with('-') {
                return Vec::new();
            }
            let keep = if ends_with_space {
                input.to_owned()
            } else {
                input[..input.len() - prefix.len()].to_owned()
            };
            commands::grammar::flags_of(words[0])
                .into_iter()
                .filter(|f| f.starts_with(prefix) && !words.contains(&f.as_str()))
                .map(|f| format!("{keep}{f}"))
                .collect()
        }
    }
}

/// A job view for the worker host's own pane, built from what the worker knows.
fn local_job_view(
    job_id: JobId,
    attempt: u32,
    language: gridx_proto::Language,
    now: Timestamp,
) -> JobView {
    JobView {
        job_id,
        user: gridx_proto::UserName::new("-").unwrap_or_else(|_| placeholder_user()),
        status: JobStatus::Running,
        language,
        priority: 0,
        timeout_s: 0,
        memory_mb: 0,
        submitted_at: now,
        started_at: Some(now),
        finished_at: None,
        worker_id: None,
        attempts: attempt,
        exit_code: None,
        stdout: String::new(),
        stderr: String::new(),
        stdout_truncated: false,
        stderr_truncated: false,
        duration_ms: None,
        reason: None,
        message: None,
        cost: Credits::ZERO,
    }
}

fn placeholder_user() -> gridx_proto::UserName {
    // "-" is a valid name; this is only reached if the name rules ever change.
    gridx_proto::UserName::new("unknown").unwrap_or_else(|_| unreachable!("a fixed valid name"))
}

/// Whether a worker is in a state worth highlighting as a problem.
pub fn worker_is_down(worker: &WorkerView) -> bool {
    matches!(worker.status, WorkerStatus::Offline | WorkerStatus::Revoked)
}
