//! The dashboard's model: what it knows about the grid and what the person is looking
//! at, with the read-only views the panes draw from. Changes come from the reducer.

use super::console::{Console, LogLevel};
use crate::inert::inert;
use crate::ui::keymap::Keymap;
use crate::ui::theme::Theme;
use gridx_proto::api::{JobSummary, JobValidation, LedgerEntryView, WorkerStatus, WorkerView};
use gridx_proto::metrics::HostMetrics;
use gridx_proto::protocol::ExecutorKind;
use gridx_proto::time_fmt::Timestamp;
use gridx_proto::{Credits, JobId, JobStatus, WorkerId};
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, HashMap, VecDeque};

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

    /// The pane's place in `Pane::ALL`, which is also its slot in `selected`.
    pub fn index(self) -> usize {
        Pane::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }
}

/// What is on top of the panes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    None,
    Help,
    Detail(JobId),
    /// A worker's card: owner, sandbox, languages, slots, metrics and its jobs here.
    Worker(WorkerId),
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

/// A search in a pager.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PagerSearch {
    pub query: String,
    /// The query is being typed (after `/`, until Enter or Esc).
    pub editing: bool,
}

impl PagerSearch {
    /// Whether `line` holds the query, ignoring ASCII case.
    pub fn matches(&self, line: &str) -> bool {
        !self.query.is_empty()
            && line
                .to_ascii_lowercase()
                .contains(&self.query.to_ascii_lowercase())
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
        /// What the sandbox cannot enforce on this host (`--allow-weak-sandbox`),
        /// in words; empty when every documented limit holds.
        weaknesses: Vec<String>,
        /// The GPUs it lends to jobs (NVML indices).
        lent_gpus: Vec<u32>,
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

/// A job's output as the details overlay has it. Lists and live events carry
/// summaries only, so a client fetches the output when the overlay opens; a worker
/// host has its own jobs' output from running them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutput {
    /// Asked for (`Effect::FetchOutput`), not here yet.
    Loading,
    Loaded {
        stdout: String,
        stderr: String,
        /// What the compiler printed (a compiled language).
        compile: Option<String>,
    },
    /// The fetch failed; reopening the details tries again.
    Failed(String),
}

/// How a job's result is checked, as the details overlay has it: only the job's view
/// (`GET /v1/jobs/{id}`) carries it, not lists or live events, so a client fetches it
/// when the details open, and again when the job's status moves on from `as_of` (a
/// run requeued for a replica, a job that ended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCheck {
    pub as_of: JobStatus,
    pub state: CheckState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckState {
    Loading,
    Loaded(JobValidation),
    /// The fetch failed; the job's next change asks again.
    Failed(String),
}

/// What the details overlay shows under its stdout and stderr headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputShown<'a> {
    Text {
        stdout: &'a str,
        stderr: &'a str,
        compile: Option<&'a str>,
    },
    /// A line in place of the text: loading, not ended yet, or why it failed.
    Note(&'a str),
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

pub struct AppState {
    pub mode: Mode,
    pub theme: Theme,
    pub keymap: Keymap,
    pub ascii: bool,
    pub read_only: bool,
    /// Plain http to a coordinator outside loopback (`--insecure`): shown in red.
    pub insecure: bool,
    pub server: String,
    pub user: Option<String>,
    pub balance: Option<Credits>,
    pub connection: Connection,
    pub focus: Pane,
    pub overlay: Overlay,
    /// First line shown of a scrolling overlay (help, job details).
    pub overlay_scroll: u16,
    /// The last line the overlay could start at when it was last drawn: drawing knows
    /// the geometry, the reducer clamps with it (so `G` then `k` moves at once).
    pub overlay_max_scroll: std::cell::Cell<u16>,
    /// Rows each list pane showed when last drawn, so a page key moves a screenful.
    pub page_rows: std::cell::Cell<[u16; 5]>,
    /// Job details wrap long lines (`w` toggles).
    pub detail_wrap: bool,
    pub jobs: BTreeMap<JobId, JobSummary>,
    pub max_jobs: usize,
    /// Output of jobs, by job: in client mode only the open details' job's (fetched
    /// on demand), in worker-host mode every job's this host ran and still lists.
    pub outputs: BTreeMap<JobId, JobOutput>,
    /// The open details' job's result check (client mode only; `JobCheck`).
    pub checks: BTreeMap<JobId, JobCheck>,
    /// The running job whose output the open details follow as it comes (client
    /// mode; `Effect::Follow`).
    pub following: Option<JobId>,
    /// Which follow that is: events of an earlier one, still queued, are dropped.
    pub follow_generation: u64,
    pub workers: BTreeMap<WorkerId, WorkerView>,
    pub ledger: VecDeque<LedgerEntryView>,
    pub selected: [usize; 5],
    pub filter: String,
    pub filter_editing: bool,
    pub sort: JobSort,
    /// `S` turns the jobs pane's order round (oldest first, shortest first, …).
    pub sort_reversed: bool,
    pub console: Console,
    /// `/` in a pager (help, job details, worker card): the text sought, `n`/`N` move
    /// between matches.
    pub search: PagerSearch,
    /// The lines the pager drew last, each with the row it starts on once wrapped:
    /// drawing knows the layout, the reducer finds matches in it.
    pub pager_lines: std::cell::RefCell<Vec<(u16, String)>>,
    /// Local machine metrics (worker-host mode) with their histories.
    pub local_metrics: Option<HostMetrics>,
    /// The GPUs each attempt running on this host holds (worker host): by attempt,
    /// so an old attempt's end does not clear a newer one's.
    pub local_gpus: HashMap<(JobId, u32), Vec<u32>>,
    pub cpu_history: History,
    pub memory_history: History,
    pub gpu_history: BTreeMap<u32, History>,
    pub now: Timestamp,
    pub should_quit: bool,
    /// Jobs submitted from this console: their end is announced in the console.
    pub watched: std::collections::HashSet<JobId>,
    /// The job the console announced last, which `o` opens.
    pub announced: Option<JobId>,
}

impl AppState {
    pub fn new(mode: Mode, theme: Theme, keymap: Keymap, server: String) -> Self {
        AppState {
            mode,
            theme,
            keymap,
            ascii: false,
            read_only: false,
            insecure: false,
            server,
            user: None,
            balance: None,
            connection: Connection::Connecting,
            focus: Pane::Jobs,
            overlay: Overlay::None,
            overlay_scroll: 0,
            overlay_max_scroll: std::cell::Cell::new(0),
            detail_wrap: true,
            page_rows: std::cell::Cell::new([10; 5]),
            jobs: BTreeMap::new(),
            max_jobs: 10_000,
            outputs: BTreeMap::new(),
            checks: BTreeMap::new(),
            following: None,
            follow_generation: 0,
            workers: BTreeMap::new(),
            ledger: VecDeque::new(),
            selected: [0; 5],
            filter: String::new(),
            filter_editing: false,
            sort: JobSort::Newest,
            sort_reversed: false,
            console: Console::new(),
            search: PagerSearch::default(),
            pager_lines: std::cell::RefCell::new(Vec::new()),
            local_metrics: None,
            local_gpus: HashMap::new(),
            cpu_history: History::default(),
            memory_history: History::default(),
            gpu_history: BTreeMap::new(),
            now: gridx_proto::time_fmt::from_unix_millis(0),
            should_quit: false,
            watched: std::collections::HashSet::new(),
            announced: None,
        }
    }

    pub fn log(&mut self, level: LogLevel, line: impl Into<String>) {
        self.console.push(level, line);
    }

    fn job_matches(&self, j: &JobSummary) -> bool {
        self.filter.is_empty() || {
            let hay = format!(
                "{} {} {} {} {}",
                j.job_id,
                j.user,
                j.status,
                j.language,
                j.worker_id
                    .map(|w| format!("{w} {}", self.worker_label(w)))
                    .unwrap_or_default()
            );
            hay.to_ascii_lowercase()
                .contains(&self.filter.to_ascii_lowercase())
        }
    }

    /// How a worker is named wherever one is shown: its name (inert, as all text a
    /// worker sent) when this dashboard knows it, else `#id`.
    pub fn worker_label(&self, id: WorkerId) -> String {
        self.workers
            .get(&id)
            .map_or_else(|| format!("#{id}"), |w| inert(&w.name).into_owned())
    }

    /// The jobs pane's order: the sort, then newest first, so it is total; `S`
    /// reverses all of it.
    fn job_order(&self, a: &JobSummary, b: &JobSummary) -> Ordering {
        let order = self.job_order_forward(a, b);
        if self.sort_reversed {
            order.reverse()
        } else {
            order
        }
    }

    fn job_order_forward(&self, a: &JobSummary, b: &JobSummary) -> Ordering {
        let newest = b.job_id.cmp(&a.job_id);
        match self.sort {
            JobSort::Newest => newest,
            JobSort::Status => status_rank(a.status)
                .cmp(&status_rank(b.status))
                .then(newest),
            JobSort::User => a.user.cmp(&b.user).then(newest),
            JobSort::Duration => Reverse(a.duration_ms.unwrap_or(0))
                .cmp(&Reverse(b.duration_ms.unwrap_or(0)))
                .then(newest),
        }
    }

    /// Jobs as the jobs pane shows them: filtered and sorted.
    pub fn visible_jobs(&self) -> Vec<&JobSummary> {
        let mut jobs: Vec<&JobSummary> =
            self.jobs.values().filter(|j| self.job_matches(j)).collect();
        jobs.sort_by(|a, b| self.job_order(a, b));
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

    /// The selected job, found without sorting (the reducer asks on every message).
    pub fn selected_job(&self) -> Option<JobId> {
        let mut jobs: Vec<&JobSummary> =
            self.jobs.values().filter(|j| self.job_matches(j)).collect();
        let at = self.selected[Pane::Jobs.index()];
        if at >= jobs.len() {
            return None;
        }
        let (_, nth, _) = jobs.select_nth_unstable_by(at, |a, b| self.job_order(a, b));
        Some(nth.job_id)
    }

    /// The output the details overlay shows for `job`.
    pub fn output_shown(&self, job: &JobSummary) -> OutputShown<'_> {
        match self.outputs.get(&job.job_id) {
            Some(JobOutput::Loaded {
                stdout,
                stderr,
                compile,
            }) => OutputShown::Text {
                stdout,
                stderr,
                compile: compile.as_deref(),
            },
            Some(JobOutput::Failed(why)) => OutputShown::Note(why),
            Some(JobOutput::Loading) => OutputShown::Note("loading…"),
            None if job.status.is_terminal() => OutputShown::Note("loading…"),
            None => OutputShown::Note("(when the job ends)"),
        }
    }

    pub fn selected_worker(&self) -> Option<&WorkerView> {
        self.visible_workers()
            .get(self.selected[Pane::Workers.index()])
            .copied()
    }

    /// The worker whose heartbeats the gauges show (client): the selected one, which
    /// is also the first listed when nothing is selected. Only a listed worker: a
    /// filter that hides every worker leaves the gauges empty too.
    pub fn gauge_worker(&self) -> Option<&WorkerView> {
        match self.mode {
            Mode::WorkerHost { .. } => None,
            Mode::Client => self.selected_worker(),
        }
    }

    /// The metrics the gauges show: this machine (worker host), or the selected
    /// worker's latest heartbeat (client).
    pub fn gauge_metrics(&self) -> Option<(String, &HostMetrics)> {
        match &self.mode {
            Mode::WorkerHost { name, .. } => self.local_metrics.as_ref().map(|m| (name.clone(), m)),
            Mode::Client => self
                .gauge_worker()
                .and_then(|w| w.metrics.as_ref().map(|m| (inert(&w.name).into_owned(), m))),
        }
    }

    /// Of the gauges' machine, each GPU lent to jobs with the job that holds it
    /// (`None`: free); a GPU not lent is absent.
    pub fn gpu_holders(&self) -> HashMap<u32, Option<JobId>> {
        match &self.mode {
            Mode::WorkerHost { lent_gpus, .. } => lent_gpus
                .iter()
                .map(|index| {
                    let holder = self
                        .local_gpus
                        .iter()
                        .find(|(_, held)| held.contains(index))
                        .map(|((job, _), _)| *job);
                    (*index, holder)
                })
                .collect(),
            Mode::Client => self
                .gauge_worker()
                .map(|w| w.gpus.iter().map(|g| (g.index, g.job_id)).collect())
                .unwrap_or_default(),
        }
    }

    /// Why the gauges may no longer be current, if they may not: `stale` while the
    /// link to the coordinator is down (client), `last report` of a worker offline.
    pub fn gauges_stale(&self) -> Option<&'static str> {
        let offline = matches!(self.connection, Connection::Offline { .. });
        match self.mode {
            Mode::WorkerHost { .. } => None,
            Mode::Client if offline => Some("stale"),
            Mode::Client => self
                .gauge_worker()
                .filter(|w| worker_is_down(w))
                .map(|_| "last report"),
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

    /// Records how many rows `pane` shows (drawing calls it).
    pub fn set_page_rows(&self, pane: Pane, rows: usize) {
        let mut all = self.page_rows.get();
        all[pane.index()] = u16::try_from(rows).unwrap_or(u16::MAX).max(1);
        self.page_rows.set(all);
    }

    /// What each pane's selected row is (a job, a worker, a ledger entry), so that the
    /// selection can stay on it when rows arrive, leave or are re-sorted.
    pub(super) fn selection_anchors(&self) -> [Option<RowKey>; 5] {
        let mut anchors = [None; 5];
        anchors[Pane::Jobs.index()] = self.selected_job().map(RowKey::Job);
        anchors[Pane::Workers.index()] =
            self.selected_worker().map(|w| RowKey::Worker(w.worker_id));
        anchors[Pane::Ledger.index()] = self
            .ledger
            .get(self.selected[Pane::Ledger.index()])
            .map(|e| RowKey::Ledger(e.id));
        anchors
    }

    /// Puts each pane's selection back on the row it was on (as k9s does), unless the
    /// message itself moved the selection (`before` differs) or the row is gone.
    pub(super) fn keep_selection(&mut self, before: [usize; 5], anchors: [Option<RowKey>; 5]) {
        for pane in Pane::ALL {
            let i = pane.index();
            if self.selected[i] != before[i] {
                continue;
            }
            let found = match anchors[i] {
                // Its rank in the pane's order, counted without sorting.
                Some(RowKey::Job(id)) => self
                    .jobs
                    .get(&id)
                    .filter(|anchor| self.job_matches(anchor))
                    .map(|anchor| {
                        self.jobs
                            .values()
                            .filter(|j| {
                                self.job_matches(j) && self.job_order(j, anchor) == Ordering::Less
                            })
                            .count()
                    }),
                Some(RowKey::Worker(id)) => self
                    .visible_workers()
                    .iter()
                    .position(|w| w.worker_id == id),
                Some(RowKey::Ledger(id)) => self.ledger.iter().position(|e| e.id == id),
                None => None,
            };
            if let Some(row) = found {
                self.selected[i] = row;
            }
        }
    }

    /// Keeps every pane's selection on a row that exists; the reducer calls it after
    /// each message, so key handlers may move past either end.
    pub(super) fn clamp_selection(&mut self) {
        for pane in Pane::ALL {
            let rows = self.rows_in(pane);
            let i = pane.index();
            self.selected[i] = self.selected[i].min(rows.saturating_sub(1));
        }
    }
}

/// The identity of a selected row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RowKey {
    Job(JobId),
    Worker(WorkerId),
    Ledger(u64),
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

/// Whether a worker is in a state worth highlighting as a problem.
pub fn worker_is_down(worker: &WorkerView) -> bool {
    matches!(worker.status, WorkerStatus::Offline | WorkerStatus::Revoked)
}
