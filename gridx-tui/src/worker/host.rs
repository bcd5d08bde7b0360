//! The worker host engine: authenticate, then take jobs, run them in the executor,
//! report, heartbeat, reconnect with backoff, and shut down gracefully. It knows
//! nothing of the terminal: it reports what happens as [`WorkerEvent`]s.

use super::admission;
use super::exec::{Executor, JobRun, StopReason, StopToken};
use super::link::{self, Inbound, LinkError, Socket, Welcomed};
use super::monitor::Monitor;
use super::workspace::Workspace;
use crate::backoff::{Backoff, Retry, retry};
use gridx_proto::job::{RunEnd, RunOutcome};
use gridx_proto::metrics::HostMetrics;
use gridx_proto::protocol::Inadmissible;
use gridx_proto::protocol::{
    AdmissionCaps, AssignedJob, Capabilities, CoordinatorMessage, ExecutorKind, JobAttempt,
    PROTOCOL_VERSION, RejectCode, WorkerMessage,
};
use gridx_proto::{JobId, Language, WorkerId};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// What the worker host tells its face (the dashboard or the log).
#[derive(Debug, Clone)]
pub enum WorkerEvent {
    Connected {
        worker_id: WorkerId,
        heartbeat_s: u32,
        /// The coordinator's address, when there are several (the one that leads).
        coordinator: Option<String>,
    },
    Disconnected {
        reason: String,
        retry_in: Option<Duration>,
    },
    JobStarted {
        job_id: JobId,
        attempt: u32,
        language: Language,
        /// The limits the job runs under, from its spec (a worker is not told the
        /// job's owner or cost).
        timeout_s: u32,
        memory_mb: u32,
        priority: i32,
        /// The GPUs (NVML indices) it was given.
        gpus: Vec<u32>,
    },
    /// More of a running job's output, for this host's own dashboard (at most every
    /// `LIVE_FLUSH`).
    JobOutput {
        job_id: JobId,
        stream: gridx_proto::api::OutputStream,
        text: String,
    },
    JobFinished {
        job_id: JobId,
        attempt: u32,
        outcome: Box<RunOutcome>,
    },
    Metrics(Box<HostMetrics>),
    Draining {
        reason: String,
    },
    Stopped,
}

/// How the worker host is set up.
#[derive(Clone)]
pub struct HostOptions {
    /// The coordinators (one, or several of which one leads), with their TLS
    /// (`client/tls.rs`, `client/coordinators.rs`).
    pub coordinators: crate::client::Coordinators,
    pub token: String,
    pub name: String,
    pub slots: u32,
    pub work_dir: PathBuf,
    pub grace: Duration,
    pub max_backoff: Duration,
    /// The admission caps (`worker::admission`), the budget's default still open.
    pub admission: admission::Settings,
    /// The GPUs lent to jobs (`worker::gpus`); none by default.
    pub gpus: super::gpus::Loan,
}

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Link(#[from] LinkError),
    /// Another process keeps taking this worker's connection: two hosts share one
    /// token (docs/worker.md).
    #[error(
        "another process is using this worker token: the coordinator replaced this connection {count} times in {window_s} s ({last}); each worker host needs its own token: ask the operator for one (`gridx-server worker add`)"
    )]
    TokenShared {
        count: usize,
        window_s: u64,
        last: String,
    },
}

/// Replacements of this worker's connection by a newer one with the same token
/// within [`REPLACED_WINDOW`] that make the host give up: past a few, it is not a
/// reconnect of this host racing its own old connection but another host.
const REPLACED_LIMIT: usize = 3;
const REPLACED_WINDOW: Duration = Duration::from_secs(120);

/// Why the host stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostExit {
    /// The coordinator asked it to drain, and it did.
    Drained,
    /// A shutdown signal, handled gracefully.
    Shutdown,
}

enum JobUpdate {
    Started(JobAttempt),
    /// Bytes a running job printed (live output, `super::live`).
    Output(JobAttempt, gridx_proto::api::OutputStream, Vec<u8>),
    Finished(JobAttempt, RunOutcome),
}

/// How often a running job's new output goes to the coordinator: at most two
/// `output` messages per stream per second (the coordinator allows four).
const LIVE_FLUSH: Duration = Duration::from_millis(500);

/// Pieces of each stream sent per flush (of at most 64 KiB each): four a second, the
/// coordinator's limit, so a resend after a reconnect is spread out, not a burst
/// that would hold back the heartbeats behind it.
const LIVE_PIECES_PER_FLUSH: usize = 2;

struct Running {
    stop: StopToken,
    task: JoinHandle<()>,
    /// The memory the job asked for, held against the memory budget until it ends.
    memory_mb: u32,
    /// The GPUs it was given, which no other job gets until it ends.
    gpus: Vec<u32>,
}

pub struct WorkerHost {
    options: HostOptions,
    executor: Arc<dyn Executor>,
    events: mpsc::UnboundedSender<WorkerEvent>,
    monitor: Monitor,
    /// The caps this host takes jobs under, advertised in every `hello`.
    admission: AdmissionCaps,
    running: HashMap<JobAttempt, Running>,
    /// Reports not yet delivered (bounded by the slots: no job starts while offline).
    unsent: Vec<WorkerMessage>,
    /// When newer connections with this token replaced this host's lately.
    replaced: Vec<tokio::time::Instant>,
    updates_tx: mpsc::UnboundedSender<JobUpdate>,
    updates_rx: mpsc::UnboundedReceiver<JobUpdate>,
    /// This host is shutting down: no new jobs, exit once the running ones report.
    draining: bool,
    /// The coordinator of the current session reads `refused`; to one that does not,
    /// an assignment past the caps is run all the same (`admission::judge`).
    coordinator_reads_refused: bool,
    /// The coordinator of the current session reads `output`: running jobs' output
    /// goes to it as it comes, not only with `finished`.
    coordinator_reads_output: bool,
    /// What each running job printed so far, and how much of it this session sent.
    live: HashMap<JobAttempt, super::live::LiveOutput>,
    /// The coordinator of the current session is shutting down: no new jobs, and once
    /// the running ones have reported, close and reconnect with backoff. A volunteer's
    /// worker must ride out a coordinator restart, not exit with it.
    coordinator_draining: bool,
}

/// Reconnecting after the link was lost: a round of handshakes (one per coordinator,
/// `link::connect`) per try, and while waiting between tries the host keeps
/// collecting finished jobs and honours shutdown.
struct Reconnect<'a> {
    host: &'a mut WorkerHost,
    shutdown: &'a mut watch::Receiver<bool>,
    shutdown_at: &'a mut Option<tokio::time::Instant>,
}

impl Retry for Reconnect<'_> {
    type Output = (Socket, Welcomed);
    type Error = LinkError;

    async fn attempt(&mut self) -> Result<Self::Output, LinkError> {
        // The hello is built for each try: it lists what runs now.
        let hello = self.host.hello();
        link::connect(&self.host.options.coordinators, &hello).await
    }

    async fn pause(&mut self, error: &LinkError, delay: Duration) -> bool {
        if !error.is_retryable() {
            return false;
        }
        self.host.emit(WorkerEvent::Disconnected {
            reason: error.to_string(),
            retry_in: Some(delay),
        });
        self.host
            .wait_offline(delay, self.shutdown, self.shutdown_at)
            .await;
        // A shutdown while offline ends the retries once the host has drained.
        !self.host.finished_draining()
    }
}

impl WorkerHost {
    pub fn new(
        options: HostOptions,
        executor: Arc<dyn Executor>,
        events: mpsc::UnboundedSender<WorkerEvent>,
    ) -> Self {
        let (updates_tx, updates_rx) = mpsc::unbounded_channel();
        let monitor = Monitor::new();
        let admission = options.admission.caps(monitor.memory_total_mb());
        tracing::info!(
            max_job_memory_mb = ?admission.max_job_memory_mb,
            memory_budget_mb = ?admission.memory_budget_mb,
            max_job_timeout_s = ?admission.max_job_timeout_s,
            "admission caps"
        );
        Self {
            options,
            executor,
            events,
            monitor,
            admission,
            running: HashMap::new(),
            unsent: Vec::new(),
            replaced: Vec::new(),
            updates_tx,
            updates_rx,
            draining: false,
            coordinator_reads_refused: false,
            coordinator_reads_output: false,
            live: HashMap::new(),
            coordinator_draining: false,
        }
    }

    fn emit(&self, event: WorkerEvent) {
        let _ = self.events.send(event);
    }

    fn hello(&self) -> WorkerMessage {
        let mut running: Vec<JobAttempt> = self.running.keys().copied().collect();
        for message in &self.unsent {
            if let WorkerMessage::Finished {
                job_id, attempt, ..
            } = message
            {
                running.push(JobAttempt {
                    job_id: *job_id,
                    attempt: *attempt,
                });
            }
        }
        WorkerMessage::Hello {
            protocol: PROTOCOL_VERSION,
            token: self.options.token.clone(),
            name: self.options.name.clone(),
            capabilities: Capabilities {
                gpu_devices: self.options.gpus.devices(),
                languages: self.executor.languages(),
                slots: self.options.slots,
                executor: self.executor.kind(),
                cpu_cores: self.monitor.cpu_cores(),
                memory_mb: self.monitor.memory_total_mb(),
                gpus: self.monitor.gpu_count(),
                max_job_memory_mb: None,
                memory_budget_mb: None,
                max_job_timeout_s: None,
            }
            .with_admission(self.admission),
            running,
        }
    }

    /// Authenticates once: the caller starts its face only after this succeeded.
    pub async fn authenticate(&mut self) -> Result<(Socket, Welcomed), HostError> {
        Ok(link::connect(&self.options.coordinators, &self.hello()).await?)
    }

    /// Runs until drained or shut down, starting from an authenticated socket.
    pub async fn run(
        mut self,
        first: (Socket, Welcomed),
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<HostExit, HostError> {
        let removed = self.executor.remove_orphans().await;
        let leftovers = super::workspace::remove_leftovers(&self.options.work_dir);
        if removed + leftovers > 0 {
            tracing::info!(
                containers = removed,
                workspaces = leftovers,
                "removed what a previous run left behind"
            );
        }
        let mut backoff = Backoff::new(Duration::from_millis(500), self.options.max_backoff);
        let mut connection = Some(first);
        let mut shutdown_at: Option<tokio::time::Instant> = None;
        loop {
            let (socket, welcomed) = match connection.take() {
                Some(c) => c,
                None => {
                    if self.finished_draining() {
                        return Ok(self.exit(shutdown_at.is_some()).await);
                    }
                    let mut reconnect = Reconnect {
                        host: &mut self,
                        shutdown: &mut shutdown,
                        shutdown_at: &mut shutdown_at,
                    };
                    let reconnected = retry(&mut backoff, &mut reconnect).await;
                    match reconnected {
                        Ok(c) => c,
                        Err(e) if e.is_retryable() => {
                            return Ok(self.exit(shutdown_at.is_some()).await);
                        }
                        Err(e) => {
                            self.stop_all(StopReason::Shutdown).await;
                            return Err(e.into());
                        }
                    }
                }
            };
            let Welcomed {
                worker_id,
                heartbeat_s,
                reads_refused,
                reads_output,
                coordinator,
            } = welcomed;
            self.coordinator_reads_refused = reads_refused;
            self.coordinator_reads_output = reads_output;
            // A new session: the coordinator keeps what it had, and takes only what is
            // new from a resend from the start.
            for live in self.live.values_mut() {
                live.resend();
            }
            self.emit(WorkerEvent::Connected {
                worker_id,
                heartbeat_s,
                coordinator: self.options.coordinators.label(coordinator),
            });
            tracing::info!(worker = %worker_id, executor = %self.executor.kind(), "connected to the coordinator");
            match self
                .session(socket, heartbeat_s, &mut shutdown, &mut shutdown_at)
                .await
            {
                SessionEnd::Done => return Ok(self.exit(shutdown_at.is_some()).await),
                SessionEnd::Fatal(e) => {
                    self.stop_all(StopReason::Shutdown).await;
                    return Err(e.into());
                }
                SessionEnd::Replaced(message) => {
                    let now = tokio::time::Instant::now();
                    self.replaced
                        .retain(|at| now.duration_since(*at) < REPLACED_WINDOW);
                    self.replaced.push(now);
                    let count = self.replaced.len();
                    if count >= REPLACED_LIMIT {
                        self.stop_all(StopReason::Shutdown).await;
                        return Err(HostError::TokenShared {
                            count,
                            window_s: REPLACED_WINDOW.as_secs(),
                            last: message,
                        });
                    }
                    // Back off harder each time: the other host keeps its connection
                    // meanwhile, instead of the two taking it from each other
                    // thousands of times a second.
                    let delay = Duration::from_secs(1 << (count - 1).min(5));
                    tracing::warn!(%message, count, retry_in_s = delay.as_secs(), "this connection was replaced by another with the same token");
                    self.emit(WorkerEvent::Disconnected {
                        reason: message,
                        retry_in: Some(delay),
                    });
                    self.wait_offline(delay, &mut shutdown, &mut shutdown_at)
                        .await;
                }
                SessionEnd::Lost(reason) => {
                    // A leader that loses the leadership exits: the next round starts
                    // with the coordinator after it.
                    self.options.coordinators.lost(coordinator);
                    tracing::warn!(%reason, "lost the coordinator; reconnecting");
                    self.emit(WorkerEvent::Disconnected {
                        reason,
                        retry_in: None,
                    });
                }
            }
        }
    }

    fn finished_draining(&self) -> bool {
        self.draining && self.running.is_empty() && self.unsent.is_empty()
    }

    async fn exit(&mut self, by_signal: bool) -> HostExit {
        self.stop_all(StopReason::Shutdown).await;
        self.emit(WorkerEvent::Stopped);
        if by_signal {
            HostExit::Shutdown
        } else {
            HostExit::Drained
        }
    }

    /// While disconnected: keep collecting finished jobs and honour shutdown.
    async fn wait_offline(
        &mut self,
        delay: Duration,
        shutdown: &mut watch::Receiver<bool>,
        shutdown_at: &mut Option<tokio::time::Instant>,
    ) {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return,
                Some(update) = self.updates_rx.recv() => self.record_offline(update),
                _ = signalled(shutdown), if shutdown_at.is_none() => {
                    self.begin_drain("shutdown signal", shutdown_at);
                }
                _ = grace_over(*shutdown_at) => {
                    self.stop_all(StopReason::Shutdown).await;
                    // Results of killed jobs cannot be delivered offline; give up on them.
                    self.unsent.clear();
                    return;
                }
            }
        }
    }

    fn record_offline(&mut self, update: JobUpdate) {
        if let JobUpdate::Output(attempt, stream, bytes) = &update
            && let Some(live) = self.live.get_mut(attempt)
        {
            live.push(*stream, bytes);
        }
        if let JobUpdate::Finished(attempt, outcome) = update {
            self.running.remove(&attempt);
            self.live.remove(&attempt);
            self.emit(WorkerEvent::JobFinished {
                job_id: attempt.job_id,
                attempt: attempt.attempt,
                outcome: Box::new(outcome.clone()),
            });
            self.unsent.push(WorkerMessage::Finished {
                job_id: attempt.job_id,
                attempt: attempt.attempt,
                outcome,
            });
        }
    }

    fn begin_drain(&mut self, reason: &str, shutdown_at: &mut Option<tokio::time::Instant>) {
        self.draining = true;
        *shutdown_at = Some(tokio::time::Instant::now() + self.options.grace);
        tracing::info!(
            reason,
            running = self.running.len(),
            grace_s = self.options.grace.as_secs(),
            "draining"
        );
        self.emit(WorkerEvent::Draining {
            reason: reason.into(),
        });
    }

    async fn session(
        &mut self,
        mut socket: Socket,
        heartbeat_s: u32,
        shutdown: &mut watch::Receiver<bool>,
        shutdown_at: &mut Option<tokio::time::Instant>,
    ) -> SessionEnd {
        for message in std::mem::take(&mut self.unsent) {
            if link::send(&mut socket, &message).await.is_err() {
                self.unsent.push(message);
                return SessionEnd::Lost("the connection broke while resending results".into());
            }
        }
        let period = Duration::from_secs(u64::from(heartbeat_s));
        let mut heartbeat = tokio::time::interval(period);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The coordinator answers every heartbeat's ping; silence for as long as it
        // waits before calling a worker lost means the link is dead (a partition sends
        // no FIN), so reconnect instead of waiting for TCP to give up.
        let silence_limit = period * gridx_proto::protocol::SILENT_HEARTBEATS;
        let mut live_flush = tokio::time::interval(LIVE_FLUSH);
        live_flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = tokio::time::Instant::now();
        self.coordinator_draining = false;
        loop {
            if self.finished_draining() {
                let _ = socket.close(None).await;
                return SessionEnd::Done;
            }
            if self.coordinator_draining && self.running.is_empty() && self.unsent.is_empty() {
                let _ = socket.close(None).await;
                return SessionEnd::Lost(
                    "the coordinator drained this worker for its shutdown".into(),
                );
            }
            tokio::select! {
                frame = link::recv_inbound(&mut socket) => match frame {
                    None => return SessionEnd::Lost("the coordinator closed the connection".into()),
                    Some(Err(e)) => return SessionEnd::Lost(e.to_string()),
                    Some(Ok(Inbound::Alive)) => last_heard = tokio::time::Instant::now(),
                    Some(Ok(Inbound::Message(message))) => {
                        last_heard = tokio::time::Instant::now();
                        if let Some(end) = self.on_message(message, &mut socket).await {
                            return end;
                        }
                    }
                },
                _ = tokio::time::sleep_until(last_heard + silence_limit) => {
                    return SessionEnd::Lost(format!(
                        "the coordinator was silent for {} s",
                        silence_limit.as_secs()
                    ));
                }
                _ = live_flush.tick(), if !self.live.is_empty() => {
                    self.show_live_output();
                    if self.coordinator_reads_output
                        && let Err(e) = self.send_live_output(&mut socket).await
                    {
                        return SessionEnd::Lost(e.to_string());
                    }
                }
                Some(update) = self.updates_rx.recv() => {
                    let message = match update {
                        JobUpdate::Started(a) => WorkerMessage::Started { job_id: a.job_id, attempt: a.attempt },
                        JobUpdate::Output(a, stream, bytes) => {
                            if let Some(live) = self.live.get_mut(&a) {
                                live.push(stream, &bytes);
                            }
                            continue;
                        }
                        JobUpdate::Finished(a, outcome) => {
                            self.running.remove(&a);
                            // The result carries the whole output.
                            self.live.remove(&a);
                            self.emit(WorkerEvent::JobFinished { job_id: a.job_id, attempt: a.attempt, outcome: Box::new(outcome.clone()) });
                            WorkerMessage::Finished { job_id: a.job_id, attempt: a.attempt, outcome }
                        }
                    };
                    if let Err(e) = link::send(&mut socket, &message).await {
                        if matches!(message, WorkerMessage::Finished { .. }) {
                            self.unsent.push(message);
                        }
                        return SessionEnd::Lost(e.to_string());
                    }
                }
                _ = heartbeat.tick() => {
                    if let Err(e) = self.send_heartbeat(&mut socket).await {
                        return SessionEnd::Lost(e.to_string());
                    }
                    if let Err(e) = link::ping(&mut socket).await {
                        return SessionEnd::Lost(e.to_string());
                    }
                }
                _ = signalled(shutdown), if shutdown_at.is_none() => {
                    self.begin_drain("shutdown signal", shutdown_at);
                    // Tell the coordinator now, not at the next tick, so that it stops
                    // assigning before an assignment races the drain.
                    if let Err(e) = self.send_heartbeat(&mut socket).await {
                        return SessionEnd::Lost(e.to_string());
                    }
                }
                _ = grace_over(*shutdown_at) => {
                    tracing::warn!(running = self.running.len(), "grace period over; stopping the remaining jobs");
                    for job in self.running.values() {
                        job.stop.stop(StopReason::Shutdown);
                    }
                    // Their `finished` reports arrive through the update channel.
                    *shutdown_at = Some(tokio::time::Instant::now() + Duration::from_secs(3600));
                }
            }
        }
    }

    /// Running jobs' new output, for this host's own dashboard.
    fn show_live_output(&mut self) {
        for (attempt, live) in &mut self.live {
            for (stream, text) in live.unshown() {
                let _ = self.events.send(WorkerEvent::JobOutput {
                    job_id: attempt.job_id,
                    stream,
                    text,
                });
            }
        }
    }

    /// Every running job's output that this session has not sent yet.
    async fn send_live_output(&mut self, socket: &mut Socket) -> Result<(), LinkError> {
        for (attempt, live) in &mut self.live {
            for piece in live.unsent(LIVE_PIECES_PER_FLUSH) {
                let message = WorkerMessage::Output {
                    job_id: attempt.job_id,
                    attempt: attempt.attempt,
                    stream: piece.stream,
                    offset: piece.offset,
                    text: piece.text,
                };
                link::send(socket, &message).await?;
            }
        }
        Ok(())
    }

    /// A heartbeat with a fresh metrics sample, the attempts held, and whether this
    /// host is draining.
    async fn send_heartbeat(&mut self, socket: &mut Socket) -> Result<(), LinkError> {
        let metrics = self.monitor.sample();
        self.emit(WorkerEvent::Metrics(Box::new(metrics.clone())));
        let running = self.running.keys().copied().collect();
        let heartbeat = WorkerMessage::Heartbeat {
            metrics,
            running,
            draining: self.draining,
        };
        link::send(socket, &heartbeat).await
    }

    async fn on_message(
        &mut self,
        message: CoordinatorMessage,
        socket: &mut Socket,
    ) -> Option<SessionEnd> {
        match message {
            CoordinatorMessage::Assign { job, attempt } => {
                let key = JobAttempt {
                    job_id: job.job_id,
                    attempt,
                };
                if self.running.contains_key(&key) {
                    // A repeat of an attempt already running here: it is taken.
                    return None;
                }
                let running_mb = self.running.values().map(|r| r.memory_mb);
                let mut verdict = admission::judge(
                    &self.admission,
                    &job.spec,
                    running_mb,
                    self.coordinator_reads_refused,
                );
                // The GPUs the coordinator picked, checked by the same rule: a job
                // never starts without the GPUs it asked for, or with one another
                // job holds. Refused even past the caps' leniency to an old
                // coordinator, which never assigns GPUs anyway.
                let in_use: Vec<u32> = self.running.values().flat_map(|r| r.gpus.clone()).collect();
                let grant =
                    match self
                        .options
                        .gpus
                        .grant(job.spec.gpu_request(), &job.gpus, &in_use)
                    {
                        Ok(grant) => grant,
                        Err(why) => {
                            verdict = admission::Verdict::Refuse(Inadmissible::Gpus(why));
                            super::gpus::GpuGrant::default()
                        }
                    };
                if self.draining || self.coordinator_draining {
                    // Raced with a drain: hand it straight back, refunded.
                    let outcome = shutdown_outcome("the worker is shutting down");
                    let reply = WorkerMessage::Finished {
                        job_id: job.job_id,
                        attempt,
                        outcome,
                    };
                    if let Err(e) = link::send(socket, &reply).await {
                        return Some(SessionEnd::Lost(e.to_string()));
                    }
                } else if let admission::Verdict::Refuse(why) = verdict {
                    // Past this host's caps: not started, and the coordinator puts it
                    // back in the queue for another worker, charging nobody.
                    tracing::warn!(job = %job.job_id, attempt, reason = %why, "refused an assignment past this worker's caps");
                    let reply = if self.coordinator_reads_refused {
                        WorkerMessage::Refused {
                            job_id: job.job_id,
                            attempt,
                            reason: why.to_string(),
                        }
                    } else {
                        WorkerMessage::Finished {
                            job_id: job.job_id,
                            attempt,
                            outcome: super::exec::sandbox_error(
                                format!("this worker does not run it: {why}"),
                                0,
                            ),
                        }
                    };
                    if let Err(e) = link::send(socket, &reply).await {
                        return Some(SessionEnd::Lost(e.to_string()));
                    }
                } else {
                    if let admission::Verdict::RunPastCaps(why) = &verdict {
                        tracing::warn!(job = %job.job_id, attempt, reason = %why, "running an assignment past this worker's caps: the coordinator does not read `refused`, so it could not run the job elsewhere");
                    }
                    self.start_job(job, attempt, grant);
                }
                None
            }
            CoordinatorMessage::Cancel { job_id, attempt } => {
                match self.running.get(&JobAttempt { job_id, attempt }) {
                    Some(job) => job.stop.stop(StopReason::Cancelled),
                    None => {
                        tracing::debug!(job = %job_id, attempt, "cancel for an attempt not running here")
                    }
                }
                None
            }
            CoordinatorMessage::Drain {} => {
                if !self.draining && !self.coordinator_draining {
                    self.coordinator_draining = true;
                    tracing::info!(
                        running = self.running.len(),
                        "the coordinator is draining; finishing running jobs, then reconnecting"
                    );
                    self.emit(WorkerEvent::Draining {
                        reason: "the coordinator is shutting down".into(),
                    });
                }
                None
            }
            CoordinatorMessage::Reject { code, message } => {
                if code == RejectCode::Replaced {
                    return Some(SessionEnd::Replaced(message));
                }
                let error = LinkError::Rejected { code, message };
                if error.is_retryable() {
                    Some(SessionEnd::Lost(error.to_string()))
                } else {
                    Some(SessionEnd::Fatal(error))
                }
            }
            CoordinatorMessage::Welcome { .. } => None,
        }
    }

    fn start_job(&mut self, job: AssignedJob, attempt: u32, gpus: super::gpus::GpuGrant) {
        let key = JobAttempt {
            job_id: job.job_id,
            attempt,
        };
        if self.running.contains_key(&key) {
            return;
        }
        let stop = StopToken::new();
        let executor = self.executor.clone();
        let updates = self.updates_tx.clone();
        let work_dir = self.options.work_dir.clone();
        let events = self.events.clone();
        let language = job.spec.language;
        let (timeout_s, memory_mb, priority) =
            (job.spec.timeout_s, job.spec.memory_mb, job.spec.priority);
        let held_mb = memory_mb;
        let held_gpus = gpus.indices.clone();
        let started_gpus = held_gpus.clone();
        let token = stop.clone();
        // The job's output as it is read, in order with its other updates.
        let sink = {
            let updates = updates.clone();
            super::exec::output::LiveSink(Arc::new(move |stream, bytes: &[u8]| {
                let _ = updates.send(JobUpdate::Output(key, stream, bytes.to_vec()));
            }))
        };
        self.live.insert(key, super::live::LiveOutput::default());
        let task = tokio::spawn(async move {
            let workspace = match Workspace::create(&work_dir, job.job_id.0, attempt) {
                Ok(ws) => ws,
                Err(e) => {
                    let outcome = super::exec::sandbox_error(
                        format!("could not create the job's workspace: {e}"),
                        0,
                    );
                    let _ = updates.send(JobUpdate::Finished(key, outcome));
                    return;
                }
            };
            let _ = updates.send(JobUpdate::Started(key));
            let _ = events.send(WorkerEvent::JobStarted {
                job_id: key.job_id,
                attempt,
                language,
                timeout_s,
                memory_mb,
                priority,
                gpus: started_gpus,
            });
            let run = JobRun {
                job_id: job.job_id,
                attempt,
                spec: job.spec,
                workspace: workspace.path().to_owned(),
                live: Some(sink),
                gpus,
            };
            let outcome = executor.run(run, token).await;
            drop(workspace);
            let _ = updates.send(JobUpdate::Finished(key, outcome));
        });
        self.running.insert(
            key,
            Running {
                stop,
                task,
                memory_mb: held_mb,
                gpus: held_gpus,
            },
        );
    }

    /// Stops every job and waits for each to clean up (containers, workspaces).
    async fn stop_all(&mut self, reason: StopReason) {
        for job in self.running.values() {
            job.stop.stop(reason);
        }
        for (_, job) in self.running.drain() {
            let _ = tokio::time::timeout(Duration::from_secs(30), job.task).await;
        }
    }
}

enum SessionEnd {
    Done,
    Lost(String),
    /// A newer connection with this worker's token replaced this one.
    Replaced(String),
    Fatal(LinkError),
}

fn shutdown_outcome(message: &str) -> RunOutcome {
    RunOutcome {
        end: RunEnd::WorkerShutdown,
        exit_code: None,
        stdout: String::new(),
        stderr: String::new(),
        stdout_truncated: false,
        stderr_truncated: false,
        duration_ms: 0,
        message: Some(message.into()),
        compile_output: None,
    }
}

async fn signalled(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|s| *s).await;
}

async fn grace_over(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The executor kind a hello will advertise, for the dashboard before connecting.
pub fn describe(kind: ExecutorKind) -> &'static str {
    match kind {
        ExecutorKind::Docker => "Docker (hardened containers)",
        ExecutorKind::Bubblewrap => "bubblewrap (namespaces, no Docker)",
        ExecutorKind::Unsandboxed => "UNSANDBOXED: trusted jobs only",
        ExecutorKind::Noop => "noop (test executor)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::exec::noop::NoopExecutor;
    use futures_util::{SinkExt, StreamExt};
    use gridx_proto::protocol::{decode_worker_message, encode};
    use gridx_proto::{JobSpec, Language};
    use tokio_tungstenite::tungstenite::Message;

    type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

    async fn next(ws: &mut Ws) -> WorkerMessage {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .expect("a frame in time")
                .expect("the worker is connected")
                .expect("a frame");
            if let Message::Text(text) = frame {
                return decode_worker_message(&text, usize::MAX).expect("a valid frame");
            }
        }
    }

    /// The next message that is not a heartbeat.
    async fn report(ws: &mut Ws) -> WorkerMessage {
        loop {
            match next(ws).await {
                WorkerMessage::Heartbeat { .. } => continue,
                other => return other,
            }
        }
    }

    async fn send(ws: &mut Ws, message: &CoordinatorMessage) {
        let text = encode(message).expect("encode");
        ws.send(Message::Text(text.into())).await.expect("send");
    }

    fn assign(job_id: u64, memory_mb: u32) -> CoordinatorMessage {
        CoordinatorMessage::Assign {
            job: AssignedJob {
                gpus: Vec::new(),
                job_id: JobId(job_id),
                spec: JobSpec {
                    gpu_memory_mb: None,
                    gpus: 0,
                    language: Language::Bash,
                    code: "true".into(),
                    stdin: String::new(),
                    timeout_s: 30,
                    memory_mb,
                    priority: 0,
                    max_output_bytes: 1024,
                },
            },
            attempt: 1,
        }
    }

    /// Against a scripted coordinator: the host advertises its caps in `hello`,
    /// answers an assignment past them with `refused` (and does not start it), and
    /// runs one within them.
    #[tokio::test]
    async fn an_assignment_past_the_caps_is_refused_and_one_within_them_runs() {
        past_the_caps(true).await;
    }

    /// A coordinator that does not say it reads `refused` would end the session on
    /// it, and could not run the job elsewhere: the host runs an assignment past its
    /// caps all the same, but never one without memory (a sandbox error).
    #[tokio::test]
    async fn a_coordinator_without_refused_gets_its_job_run_past_the_caps() {
        past_the_caps(false).await;
    }

    /// The next report, which is `started` and then `finished` of this attempt.
    async fn ran(ws: &mut Ws, id: u64) {
        assert!(matches!(
            report(ws).await,
            WorkerMessage::Started { job_id, attempt: 1 } if job_id == JobId(id)
        ));
        match report(ws).await {
            WorkerMessage::Finished {
                job_id,
                attempt: 1,
                outcome,
            } if job_id == JobId(id) => assert_eq!(outcome.end, RunEnd::Exited),
            other => panic!("expected job {id} finished, got {other:?}"),
        }
    }

    /// The reason the next report gives for not running attempt 1 of job `id`:
    /// `refused`, or to an older coordinator a sandbox error.
    async fn not_run(ws: &mut Ws, id: u64, reads_refused: bool) -> String {
        match report(ws).await {
            WorkerMessage::Refused {
                job_id,
                attempt,
                reason,
            } if reads_refused => {
                assert_eq!((job_id, attempt), (JobId(id), 1));
                reason
            }
            WorkerMessage::Finished {
                job_id,
                attempt,
                outcome,
            } if !reads_refused => {
                assert_eq!((job_id, attempt), (JobId(id), 1));
                assert_eq!(outcome.end, RunEnd::SandboxError);
                outcome.message.unwrap_or_default()
            }
            other => panic!("reads_refused {reads_refused}: got {other:?}"),
        }
    }

    async fn past_the_caps(reads_refused: bool) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let work_dir = tempfile::tempdir().expect("a work dir");
        let options = HostOptions {
            coordinators: crate::client::Endpoint::new(&format!("http://{addr}"), None, false)
                .expect("an endpoint")
                .into(),
            token: "gxw_test".into(),
            name: "small".into(),
            slots: 2,
            work_dir: work_dir.path().to_owned(),
            grace: Duration::from_secs(1),
            max_backoff: Duration::from_secs(1),
            admission: admission::Settings {
                max_job_memory_mb: 512,
                memory_budget_mb: Some(1024),
                max_job_timeout_s: 60,
            },
            gpus: crate::worker::gpus::Loan::none(),
        };
        let (events, _events_rx) = mpsc::unbounded_channel();
        let mut host = WorkerHost::new(options, Arc::new(NoopExecutor), events);
        let coordinator = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
            match next(&mut ws).await {
                WorkerMessage::Hello { capabilities, .. } => {
                    assert_eq!(capabilities.max_job_memory_mb, Some(512));
                    assert_eq!(capabilities.memory_budget_mb, Some(1024));
                    assert_eq!(capabilities.max_job_timeout_s, Some(60));
                }
                other => panic!("expected hello, got {other:?}"),
            }
            let welcome = CoordinatorMessage::Welcome {
                worker_id: WorkerId(1),
                heartbeat_s: 1,
                reads_refused,
                reads_output: false,
            };
            send(&mut ws, &welcome).await;
            send(&mut ws, &assign(7, 513)).await;
            if reads_refused {
                let reason = not_run(&mut ws, 7, true).await;
                assert!(
                    reason.contains("513 MB") && reason.contains("512 MB per job"),
                    "{reason}"
                );
            } else {
                ran(&mut ws, 7).await;
            }
            send(&mut ws, &assign(9, 0)).await;
            let reason = not_run(&mut ws, 9, reads_refused).await;
            assert!(reason.contains("no memory"), "{reason}");
            send(&mut ws, &assign(8, 512)).await;
            ran(&mut ws, 8).await;
            ws
        });
        let first = host.authenticate().await.expect("welcomed");
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let run = tokio::spawn(host.run(first, shutdown_rx));
        let ws = coordinator.await.expect("the coordinator's script");
        let _ = shutdown_tx.send(true);
        let exit = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the host stops in time")
            .expect("the host task");
        assert!(matches!(exit, Ok(HostExit::Shutdown)), "{exit:?}");
        drop(ws);
    }
}
