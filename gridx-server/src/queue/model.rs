//! The queue thread's model: what it holds in memory about jobs and workers, and how
//! that is rebuilt from the store. The store is the truth; this is a cache of it that
//! the rules (`super::rules`) keep in step, changing memory only after their writes
//! succeeded.

use super::refusals::Refusals;
use super::scheduler::{QueuedJob, Scheduler};
use super::{Outbound, QueueError, QueueSettings, SessionTx};
use crate::events::{EventBus, WorkerBoard};
use crate::metrics::Metrics;
use crate::store::Db;
use crate::store::ledger::Posted;
use crate::store::trust::{self, Record, Subject};
use crate::store::{StoreError, jobs, users};
use crate::trust::{JobCheck, Policy};
use gridx_proto::api::WorkerGpu;
use gridx_proto::api::WorkerStatus;
use gridx_proto::gpu::{self, GpuDevice, GpuRequest};
use gridx_proto::metrics::HostMetrics;
use gridx_proto::protocol::{Capabilities, JobAttempt};
use gridx_proto::{Credits, JobId, JobStatus, Language, UserName, WorkerId};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How stale the languages a quorum could check may get (`refresh_quorum_languages`).
const QUORUM_RECHECK: Duration = Duration::from_millis(250);

/// Counts published after every batch, for `/healthz`, `/metrics` and shutdown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub queued: u64,
    pub running: u64,
    pub workers_online: u32,
    pub draining: bool,
}

/// A job leased to a worker.
pub(super) struct RunningJob {
    pub(super) user: UserName,
    pub(super) language: Language,
    pub(super) priority: i32,
    pub(super) cost: Credits,
    pub(super) worker: WorkerId,
    pub(super) attempt: u32,
    /// Of its attempts, how many workers refused (`QueuedJob::refusals`).
    pub(super) refusals: u32,
    pub(super) cancel_requested: bool,
    pub(super) memory_mb: u32,
    pub(super) timeout_s: u32,
    /// The GPUs it asks for (`QueuedJob::gpus`).
    pub(super) gpus: GpuRequest,
    /// The worker said `started`: the job's code runs, so the attempt can no longer
    /// be refused (a `refused` of it is a lost attempt, `rules::sessions`).
    pub(super) started: bool,
    /// Its result check (`QueuedJob::check`).
    pub(super) check: JobCheck,
    /// Bytes of live output stored for this attempt: `[stdout, stderr]`
    /// (`rules::live`).
    pub(super) live: [u64; 2],
}

impl RunningJob {
    pub(super) fn attempt(&self, job_id: JobId) -> JobAttempt {
        JobAttempt {
            job_id,
            attempt: self.attempt,
        }
    }
}

/// What a lease holds of its worker: the memory its job asked for and the GPUs it
/// was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Lease {
    pub(super) memory_mb: u32,
    pub(super) gpus: Vec<u32>,
}

pub(super) struct Session {
    pub(super) id: u64,
    pub(super) outbox: SessionTx,
    /// When its `hello` was accepted: in a run of replacements, a session younger
    /// than `rules::sessions::MIN_SESSION_AGE` is not replaced.
    pub(super) since: Instant,
}

/// What decides which queued jobs a worker may run (`WorkerState::reach`): whose, and
/// how large. `memory_room_mb` is the most memory one more job may ask for there: the
/// per-job cap or what the memory budget has left, whichever is less.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Reach<'a> {
    pub(super) only_user: Option<&'a UserName>,
    pub(super) memory_room_mb: Option<u64>,
    pub(super) max_timeout_s: Option<u32>,
    /// The GPUs it lends and those its leases hold: which GPU jobs it may take.
    pub(super) gpu_devices: &'a [GpuDevice],
    pub(super) gpus_busy: &'a BTreeSet<u32>,
    /// Result checks make whose worker it is matter (a replica must come from another
    /// owner, an owner's own jobs need none) and what its record allows.
    pub(super) owner: &'a UserName,
    pub(super) standing: Standing,
    /// Room for one more unconfirmed first run, and for one more check of another's.
    pub(super) doubt_room: (bool, bool),
}

/// Where a worker stands with result checks (docs/trust.md), from its trust mark and
/// its and its owner's records (`State::refresh_standing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(super) struct Standing {
    /// Marked trusted by the operator: its results need no replica and it is never
    /// quarantined automatically.
    pub(super) trusted: bool,
    /// It or its owner is quarantined: it gets no jobs.
    pub(super) quarantined: bool,
    /// Confirmed results in a row: the lower of its own and its owner's.
    pub(super) streak: u64,
    /// May run `validate: false` jobs (`Policy::proven`).
    pub(super) proven: bool,
    /// Jobs whose results are not yet confirmed it may hold at once
    /// (`Policy::allowance`).
    pub(super) allowance: u64,
}

pub(super) struct WorkerState {
    pub(super) name: String,
    pub(super) owner: UserName,
    pub(super) session: Option<Session>,
    pub(super) capabilities: Option<Capabilities>,
    /// The operator's cap on its slots (`worker add --max-slots`), read from the
    /// store at start-up and at each `hello`; `None`: no cap but the claim.
    pub(super) max_slots: Option<u32>,
    /// The jobs leased to this worker, with the memory each asked for and the GPUs
    /// each was given: through [`WorkerState::lease`] and [`WorkerState::release`]
    /// only, which keep `leased_memory_mb` their memory's sum and `gpus_busy` their
    /// GPUs.
    pub(super) running: HashMap<JobId, Lease>,
    leased_memory_mb: u64,
    gpus_busy: BTreeSet<u32>,
    /// Leased jobs missing from this worker's heartbeats, with how many heartbeats in a
    /// row they were missing (see `rules::sessions`, heartbeat reconciliation).
    pub(super) unreported: HashMap<JobId, u32>,
    /// Attempts this worker reports but does not hold a lease for, already told to
    /// stop: each gets one `cancel`, not one per heartbeat.
    pub(super) strays_cancelled: HashSet<JobAttempt>,
    /// The GPUs of attempts whose lease was dropped without the worker's word (lost:
    /// it was silent): while it reports one as a stray it may still run it, so those
    /// GPUs stay busy here. Forgotten once it no longer reports the attempt.
    lost_gpus: HashMap<JobAttempt, Vec<u32>>,
    /// Lease clock: the last time anything arrived from this worker.
    pub(super) last_seen: Instant,
    pub(super) last_seen_wall: Option<i64>,
    pub(super) metrics: Option<HostMetrics>,
    pub(super) draining: bool,
    pub(super) revoked: bool,
    pub(super) standing: Standing,
    /// Its results waiting for a replica to confirm them.
    pub(super) pending: u64,
    /// Connections with its token that replaced or tried to replace a live one since
    /// this was last logged, and when that was (logged once per
    /// `rules::sessions::REPLACEMENT_LOG_EVERY`, with the count).
    pub(super) replacements: u32,
    pub(super) replacements_logged_at: Option<Instant>,
    /// When a newer connection last replaced its session.
    pub(super) last_replaced_at: Option<Instant>,
}

impl WorkerState {
    pub(super) fn new(name: String, owner: UserName, last_seen_wall: Option<i64>) -> Self {
        WorkerState {
            name,
            owner,
            session: None,
            capabilities: None,
            max_slots: None,
            running: HashMap::new(),
            leased_memory_mb: 0,
            gpus_busy: BTreeSet::new(),
            unreported: HashMap::new(),
            strays_cancelled: HashSet::new(),
            lost_gpus: HashMap::new(),
            last_seen: Instant::now(),
            last_seen_wall,
            metrics: None,
            draining: false,
            revoked: false,
            standing: Standing::default(),
            pending: 0,
            replacements: 0,
            replacements_logged_at: None,
            last_replaced_at: None,
        }
    }

    pub(super) fn status(&self) -> WorkerStatus {
        if self.revoked {
            WorkerStatus::Revoked
        } else if self.session.is_none() {
            WorkerStatus::Offline
        } else if self.draining {
            WorkerStatus::Draining
        } else {
            WorkerStatus::Online
        }
    }

    /// How many attempts this worker may hold at once: what its `hello` claims,
    /// never more than the operator's cap. The worker's word alone decides nothing.
    pub(super) fn slots(&self) -> u32 {
        let claimed = self.capabilities.as_ref().map_or(0, |c| c.slots);
        self.max_slots.map_or(claimed, |cap| claimed.min(cap))
    }

    /// Slots neither leased nor still busy stopping an attempt it was told to cancel
    /// (a stray it reported), so a worker is not handed more attempts than its slots
    /// (a `running` list over twice them is refused: `check_running_within_slots`).
    pub(super) fn free_slots(&self) -> u32 {
        let busy = self.running.len() + self.strays_cancelled.len();
        self.slots()
            .saturating_sub(u32::try_from(busy).unwrap_or(u32::MAX))
    }

    pub(super) fn can_take(&self, language: Language) -> bool {
        self.status() == WorkerStatus::Online
            && self.free_slots() > 0
            && self
                .capabilities
                .as_ref()
                .is_some_and(|c| c.languages.contains(&language))
    }

    /// Whether this worker may run `job`, a queued job it has not refused: its
    /// owner's alone when its executor runs no stranger's jobs, and only what the
    /// admission caps it advertised admit beside the memory its leases hold (the rule
    /// the worker itself applies, `Capabilities::admits`).
    ///
    /// And only what result checks allow (docs/trust.md): never a job whose replica
    /// its owner already ran, nothing while quarantined; a worker the grid does not
    /// vouch for (neither trusted by the operator nor the job's owner's own) takes a
    /// `validate: false` job only with a proven record, holds no more unconfirmed
    /// jobs than its allowance (`doubt_room`), and takes a job's first run only where
    /// a quorum of owners could check it (`quorum_ok`, computed per language each
    /// round).
    pub(super) fn may_run(&self, job: &QueuedJob, quorum_ok: bool) -> bool {
        let Some(caps) = &self.capabilities else {
            return false;
        };
        (caps.executor.runs_strangers_jobs() || job.user == self.owner)
            && caps
                .admits(job.memory_mb, job.timeout_s, self.leased_memory_mb)
                .is_ok()
            && self.gpus_for(job.gpus).is_some()
            && self.checks_allow(job, quorum_ok)
    }

    /// The GPUs this worker would give a job asking for `request` now
    /// (`gpu::choose` over what it lends less what its leases hold); `None` when it
    /// cannot, an empty pick for a job that asks for none.
    pub(super) fn gpus_for(&self, request: GpuRequest) -> Option<Vec<u32>> {
        if request.count == 0 {
            return Some(Vec::new());
        }
        let caps = self.capabilities.as_ref()?;
        let mut busy: Vec<u32> = self.gpus_busy.iter().copied().collect();
        for stray in &self.strays_cancelled {
            busy.extend(self.lost_gpus.get(stray).into_iter().flatten());
        }
        gpu::choose(&caps.gpu_devices, &busy, request)
    }

    /// Keeps the GPUs of `attempt`, whose lease is about to be dropped as lost, in
    /// `lost_gpus`.
    pub(super) fn remember_lost_gpus(&mut self, attempt: JobAttempt) {
        if let Some(lease) = self.running.get(&attempt.job_id)
            && !lease.gpus.is_empty()
        {
            self.lost_gpus.insert(attempt, lease.gpus.clone());
        }
    }

    /// Forgets the lost attempts' GPUs that it no longer reports running.
    pub(super) fn forget_lost_gpus(&mut self, reported: &HashSet<JobAttempt>) {
        self.lost_gpus.retain(|a, _| reported.contains(a));
    }

    /// Which job holds each GPU it lends, for the worker list.
    pub(super) fn gpu_holders(&self) -> Vec<WorkerGpu> {
        let Some(caps) = &self.capabilities else {
            return Vec::new();
        };
        caps.gpu_devices
            .iter()
            .map(|d| WorkerGpu {
                index: d.index,
                name: d.name.clone(),
                memory_mb: d.memory_mb,
                job_id: self
                    .running
                    .iter()
                    .find(|(_, lease)| lease.gpus.contains(&d.index))
                    .map(|(id, _)| *id),
            })
            .collect()
    }

    fn checks_allow(&self, job: &QueuedJob, quorum_ok: bool) -> bool {
        let s = &self.standing;
        if s.quarantined || job.check.replica_owners.contains(&self.owner) {
            return false;
        }
        if s.trusted || job.user == self.owner {
            return true;
        }
        let checking = !job.check.replica_owners.is_empty();
        if !self.doubt_room(checking) {
            return false;
        }
        if !job.check.validate {
            return s.proven;
        }
        checking || quorum_ok
    }

    /// Whether it may take one more job whose result will not be confirmed at once:
    /// a first run only while its leases and its results waiting for a check stay
    /// within its allowance; a check of another owner's result whenever its leases
    /// do. Results waiting for a check must not stop a worker from checking: workers
    /// that each wait for the other's check (new ones, or honest ones whose checks
    /// contradicted a liar and wait for a third replica) would never give it, and no
    /// job would end. A check cannot be accepted on the checker's word alone, so a
    /// liar gains nothing by it, and its strikes come as fast as the checks end.
    fn doubt_room(&self, checking: bool) -> bool {
        let waiting = if checking { 0 } else { self.pending };
        (self.running.len() as u64).saturating_add(waiting) < self.standing.allowance
    }

    /// What decides which queued jobs this worker may run, but for the jobs it
    /// refused: two workers with the same reach may run the same jobs. `None` for a
    /// worker that has not said hello.
    pub(super) fn reach(&self) -> Option<Reach<'_>> {
        let caps = self.capabilities.as_ref()?;
        let room = match (caps.max_job_memory_mb, caps.memory_budget_mb) {
            (None, None) => None,
            (cap, budget) => Some(
                cap.map_or(u64::MAX, u64::from)
                    .min(budget.map_or(u64::MAX, |b| b.saturating_sub(self.leased_memory_mb))),
            ),
        };
        Some(Reach {
            only_user: self.only_user(),
            memory_room_mb: room,
            max_timeout_s: caps.max_job_timeout_s,
            gpu_devices: &caps.gpu_devices,
            gpus_busy: &self.gpus_busy,
            owner: &self.owner,
            standing: self.standing,
            doubt_room: (self.doubt_room(false), self.doubt_room(true)),
        })
    }

    /// Whose jobs alone this worker runs: its owner's when its executor runs no
    /// stranger's jobs (`ExecutorKind::runs_strangers_jobs`), else anyone's (`None`).
    pub(super) fn only_user(&self) -> Option<&UserName> {
        match &self.capabilities {
            Some(c) if !c.executor.runs_strangers_jobs() => Some(&self.owner),
            _ => None,
        }
    }

    /// Records a lease of a job that asked for `memory_mb` and was given `gpus`.
    pub(super) fn lease(&mut self, job_id: JobId, memory_mb: u32, gpus: Vec<u32>) {
        self.release_lease(job_id);
        self.leased_memory_mb += u64::from(memory_mb);
        self.gpus_busy.extend(gpus.iter().copied());
        self.running.insert(job_id, Lease { memory_mb, gpus });
    }

    fn release_lease(&mut self, job_id: JobId) {
        if let Some(old) = self.running.remove(&job_id) {
            self.leased_memory_mb = self
                .leased_memory_mb
                .saturating_sub(u64::from(old.memory_mb));
            for index in &old.gpus {
                self.gpus_busy.remove(index);
            }
        }
    }

    /// Forgets a job this worker no longer holds.
    pub(super) fn release(&mut self, job_id: JobId) {
        self.release_lease(job_id);
        self.unreported.remove(&job_id);
    }

    fn clear_leases(&mut self) {
        self.running.clear();
        self.leased_memory_mb = 0;
        self.gpus_busy.clear();
    }
}

/// A caller waiting for its command's answer. Called once the batch's fate is known:
/// with `None` when it committed (the prepared result is sent), with the store error
/// when it did not (the caller hears that instead).
pub(super) type Reply = Box<dyn FnOnce(Option<&StoreError>) + Send>;

/// The one way to answer a caller.
pub(super) fn answer<T: Send + 'static>(
    tx: tokio::sync::oneshot::Sender<Result<T, QueueError>>,
    result: Result<T, QueueError>,
) -> Reply {
    Box::new(move |failed| {
        let _ = tx.send(match failed {
            None => result,
            Some(e) => Err(QueueError::Store(e.to_string())),
        });
    })
}

/// What a batch will do once its transaction committed.
#[derive(Default)]
pub(super) struct Effects {
    pub(super) replies: Vec<Reply>,
    pub(super) outbound: Vec<(SessionTx, Outbound)>,
    pub(super) changed_jobs: Vec<JobId>,
    pub(super) posted: Vec<Posted>,
    pub(super) changed_workers: Vec<WorkerId>,
    pub(super) dispatch_latencies: Vec<f64>,
    pub(super) finished: Vec<JobStatus>,
    pub(super) submitted: u64,
    /// Pieces of live output stored in this batch, for the jobs' viewers.
    pub(super) live: Vec<(JobId, crate::live_output::LiveEvent)>,
}

pub(super) type Step<T> = Result<T, StepError>;

/// A command's failure: either a refusal for the caller, or a store error that aborts
/// the batch.
pub(super) enum StepError {
    Refused(QueueError),
    Store(StoreError),
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> Self {
        StepError::Store(e)
    }
}

impl From<rusqlite::Error> for StepError {
    fn from(e: rusqlite::Error) -> Self {
        StepError::Store(StoreError::Sqlite(e))
    }
}

/// The queue thread's state. Only the queue thread touches it.
pub(super) struct State {
    pub(super) settings: QueueSettings,
    pub(super) scheduler: Scheduler,
    pub(super) enqueued_at: HashMap<JobId, Instant>,
    pub(super) running: HashMap<JobId, RunningJob>,
    pub(super) workers: super::workers::Workers,
    /// The workers that refused each live job lately, so that it is not handed
    /// straight back to them (for `refusals::REFUSAL_HOLD`, in memory only).
    pub(super) refusals: Refusals,
    pub(super) draining: bool,
    pub(super) events: EventBus,
    pub(super) board: WorkerBoard,
    pub(super) metrics: Arc<Metrics>,
    pub(super) stats: watch::Sender<QueueStats>,
    pub(super) last_housekeeping: Instant,
    pub(super) last_prune: Instant,
    /// Result checks: the policy, every reliability record (workers' and owners'),
    /// the operator's change counter last read, and the languages a quorum of owners
    /// could check this dispatch round.
    pub(super) policy: Policy,
    pub(super) records: HashMap<Subject, Record>,
    pub(super) trust_version: i64,
    /// The `users_version` counter last read: when it grows, the queued jobs of
    /// disabled accounts are cancelled (`rules::accounts`). -1 until the first pass.
    pub(super) users_version: i64,
    /// What a quorum could check: see `refresh_quorum_languages`.
    pub(super) quorum: Quorum,
    /// When `quorum` was worked out; `None`: now (a worker said hello or
    /// its standing changed).
    pub(super) quorum_checked_at: Option<Instant>,
}

impl State {
    /// Rebuilds the queue from the store: queued jobs go back in the scheduler, running
    /// jobs stay leased to their worker until it reconnects or its lease runs out.
    pub(super) fn load(
        conn: &Db,
        settings: QueueSettings,
        events: EventBus,
        board: WorkerBoard,
        metrics: Arc<Metrics>,
        stats: watch::Sender<QueueStats>,
    ) -> Result<Self, StoreError> {
        let mut state = State {
            settings,
            scheduler: Scheduler::default(),
            enqueued_at: HashMap::new(),
            running: HashMap::new(),
            workers: super::workers::Workers::default(),
            refusals: Refusals::default(),
            draining: false,
            events,
            board,
            metrics,
            stats,
            last_housekeeping: Instant::now(),
            last_prune: Instant::now() - Duration::from_secs(3600),
            policy: Policy::default(),
            records: HashMap::new(),
            trust_version: 0,
            users_version: -1,
            quorum: Quorum::default(),
            quorum_checked_at: None,
        };
        state.policy = state.settings.policy.clone();
        state.reload(conn)?;
        Ok(state)
    }

    /// Replaces memory with what the store holds (at start, and after a failed batch).
    /// Open sessions are kept: their workers are still connected.
    pub(super) fn reload(&mut self, conn: &Db) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut sessions: HashMap<WorkerId, WorkerState> = self.workers.take_all();
        self.scheduler = Scheduler::default();
        self.running.clear();
        self.records = trust::all_records(conn)?;
        self.trust_version = trust::trust_version(conn)?;
        let trusted = trust::trusted_workers(conn)?;
        let pending = trust::pending_by_worker(conn)?;
        let mut replica_owners = trust::live_replica_owners(conn)?;
        for (record, last_seen) in users::all_workers(conn)? {
            let state = match sessions.remove(&record.id) {
                Some(mut w) => {
                    w.clear_leases();
                    w.unreported.clear();
                    w.revoked = record.revoked;
                    w.max_slots = record.max_slots;
                    w
                }
                None => {
                    // A restarted coordinator gives every worker a full lease from now.
                    let mut w = WorkerState::new(record.name, record.owner, last_seen);
                    w.last_seen = now;
                    w.revoked = record.revoked;
                    w.max_slots = record.max_slots;
                    w
                }
            };
            let mut state = state;
            state.standing.trusted = trusted.get(&record.id).copied().unwrap_or(false);
            state.pending = pending.get(&record.id).copied().unwrap_or(0);
            self.workers.insert(record.id, state);
        }
        let ids: Vec<WorkerId> = self.workers.keys().copied().collect();
        for id in ids {
            self.refresh_standing(id);
        }
        let mut live = crate::store::live_output::lengths(conn)?;
        for job in jobs::live_jobs(conn)? {
            let check = JobCheck {
                validate: job.validate,
                replica_owners: replica_owners.remove(&job.id).unwrap_or_default(),
            };
            match (job.status, job.worker) {
                (JobStatus::Running, Some(worker)) if self.workers.contains_key(&worker) => {
                    if let Some(mut w) = self.workers.get_mut(&worker) {
                        w.lease(job.id, job.memory_mb, job.gpu_indices.clone());
                    }
                    self.running.insert(
                        job.id,
                        RunningJob {
                            user: job.user,
                            language: job.language,
                            priority: job.priority,
                            cost: job.cost,
                            worker,
                            attempt: job.attempts,
                            refusals: job.refusals,
                            cancel_requested: job.cancel_requested,
                            memory_mb: job.memory_mb,
                            timeout_s: job.timeout_s,
                            gpus: GpuRequest {
                                count: job.gpus,
                                min_memory_mb: job.gpu_memory_mb,
                            },
                            started: job.started,
                            check,
                            live: live.remove(&job.id).unwrap_or_default(),
                        },
                    );
                }
                _ => {
                    self.enqueued_at.entry(job.id).or_insert(now);
                    self.scheduler.push(QueuedJob {
                        id: job.id,
                        user: job.user,
                        language: job.language,
                        priority: job.priority,
                        attempts: job.attempts,
                        refusals: job.refusals,
                        cost: job.cost,
                        memory_mb: job.memory_mb,
                        timeout_s: job.timeout_s,
                        gpus: GpuRequest {
                            count: job.gpus,
                            min_memory_mb: job.gpu_memory_mb,
                        },
                        check,
                    });
                }
            }
        }
        for id in self.workers.keys().copied().collect::<Vec<_>>() {
            self.publish_worker(id);
        }
        self.publish_stats();
        Ok(())
    }

    /// A worker's record, or an owner's (empty until its first checked result).
    pub(super) fn record(&self, subject: &Subject) -> Record {
        self.records.get(subject).cloned().unwrap_or_default()
    }

    /// Recomputes where a worker stands from its trust mark and its and its owner's
    /// records. A trusted worker is never quarantined automatically, not even with
    /// its owner. Says whether it changed.
    pub(super) fn refresh_standing(&mut self, id: WorkerId) -> bool {
        let Some(w) = self.workers.get(&id) else {
            return false;
        };
        let own = self.record(&Subject::Worker(id));
        let owner = self.record(&Subject::Owner(w.owner.clone()));
        let streak = own.streak.min(owner.streak);
        let trusted = w.standing.trusted;
        let standing = Standing {
            trusted,
            quarantined: !trusted && (own.quarantined.is_some() || owner.quarantined.is_some()),
            streak,
            proven: !self.policy.enabled() || self.policy.proven(streak),
            allowance: if self.policy.enabled() {
                self.policy.allowance(streak)
            } else {
                u64::MAX
            },
        };
        let changed = w.standing != standing;
        if let Some(mut w) = self.workers.get_mut(&id) {
            w.standing = standing;
        }
        if changed {
            self.quorum_checked_at = None;
        }
        changed
    }

    /// What a quorum could check (`Quorum`): online workers of at least `quorum`
    /// different owners, none quarantined, run the language (and, for a GPU job,
    /// lend enough GPUs that fit it). One pass over the workers, so not every
    /// dispatch round: at once after a `hello` or a change of standing (so a newly
    /// possible quorum is used at once), else at most every [`QUORUM_RECHECK`] (a
    /// worker that left is noticed that much later: a first run may then go out and
    /// its check wait, which the job view explains).
    pub(super) fn refresh_quorum_languages(&mut self) {
        let now = Instant::now();
        if self
            .quorum_checked_at
            .is_some_and(|at| now.duration_since(at) < QUORUM_RECHECK)
        {
            return;
        }
        self.quorum_checked_at = Some(now);
        let mut quorum = Quorum {
            off: !self.policy.enabled(),
            quorum: self.policy.quorum as usize,
            ..Quorum::default()
        };
        let mut owners: HashMap<Language, HashSet<&UserName>> = HashMap::new();
        for w in self.workers.values() {
            if w.status() != WorkerStatus::Online || w.standing.quarantined {
                continue;
            }
            if let Some(caps) = &w.capabilities {
                for language in &caps.languages {
                    owners.entry(*language).or_default().insert(&w.owner);
                }
                // A GPU job's check needs workers that lend GPUs that fit it.
                if !caps.gpu_devices.is_empty() {
                    quorum.gpu_lenders.push(GpuLender {
                        owner: w.owner.clone(),
                        languages: caps.languages.clone(),
                        devices: caps.gpu_devices.clone(),
                    });
                }
            }
        }
        quorum.languages = owners
            .into_iter()
            .filter(|(_, o)| o.len() >= quorum.quorum)
            .map(|(l, _)| l)
            .collect();
        self.quorum = quorum;
    }
}

/// What a quorum of owners could check now (`State::refresh_quorum_languages`):
/// whether a job's first run may go to a worker nobody vouches for.
#[derive(Debug, Default)]
pub(super) struct Quorum {
    /// Result checks are off: every first run may go out.
    off: bool,
    quorum: usize,
    /// Languages that online workers of at least `quorum` owners run.
    languages: HashSet<Language>,
    /// The online, unquarantined workers that lend GPUs.
    gpu_lenders: Vec<GpuLender>,
}

#[derive(Debug)]
struct GpuLender {
    owner: UserName,
    languages: Vec<Language>,
    devices: Vec<GpuDevice>,
}

impl Quorum {
    /// Whether workers of `quorum` different owners could run `job`: its language,
    /// and for a GPU job enough GPUs that fit it on one worker.
    pub(super) fn could_check(&self, job: &QueuedJob) -> bool {
        if self.off {
            return true;
        }
        if job.gpus.count == 0 {
            return self.languages.contains(&job.language);
        }
        let mut owners: Vec<&UserName> = self
            .gpu_lenders
            .iter()
            .filter(|l| {
                l.languages.contains(&job.language)
                    && job.gpus.matching(&l.devices) >= job.gpus.count as usize
            })
            .map(|l| &l.owner)
            .collect();
        owners.sort_unstable();
        owners.dedup();
        owners.len() >= self.quorum
    }
}
