//! The rules on a real (in-memory) store, driven through the queue's own methods:
//! who gets which job (owner-only executors, admission caps) and what a refusal
//! does to a job, and for how long.

use crate::events::{Backlog, EventBus, WorkerBoard};
use crate::metrics::Metrics;
use crate::queue::model::{Effects, QueueStats, State};
use crate::queue::refusals::REFUSAL_HOLD;
use crate::queue::{HelloRequest, QueueSettings, SessionRx, outbox};
use crate::store::Db;
use crate::store::{jobs, testing};
use gridx_proto::api::JobView;
use gridx_proto::job::{FailureReason, RunEnd, RunOutcome};
use gridx_proto::protocol::{Capabilities, ExecutorKind, WorkerMessage};
use gridx_proto::{Credits, JobId, JobSpec, JobStatus, Language, UserName, WorkerId};
use std::time::Duration;

pub(super) struct Rig {
    pub(super) conn: Db,
    pub(super) state: State,
    settings: QueueSettings,
    /// The workers' outboxes, kept open.
    _outboxes: Vec<SessionRx>,
}

pub(super) fn name(n: &str) -> UserName {
    UserName::new(n).expect("a user name")
}

/// Docker, 4 slots, bash, no caps.
pub(super) fn caps() -> Capabilities {
    Capabilities {
        gpu_devices: Vec::new(),
        languages: vec![Language::Bash],
        slots: 4,
        executor: ExecutorKind::Docker,
        cpu_cores: 4,
        memory_mb: 8192,
        gpus: 0,
        max_job_memory_mb: None,
        memory_budget_mb: None,
        max_job_timeout_s: None,
    }
}

impl Rig {
    /// A store with these users and workers (id, owner), free jobs, and
    /// `max_attempts` attempts a job.
    /// The workers are trusted, so results are taken as reported (the result-check
    /// rules have their own rig, [`Rig::checked`]).
    fn new(users: &[&str], workers: &[(u64, &str)], max_attempts: u32) -> Rig {
        Rig::build(users, workers, max_attempts, true, Credits::ZERO)
    }

    /// Untrusted workers (every result checked by the default policy), jobs costing
    /// 1 credit, and 100 credits for every user.
    pub(super) fn checked(users: &[&str], workers: &[(u64, &str)]) -> Rig {
        let rig = Rig::build(users, workers, 3, false, Credits::from_whole(1));
        for user in users {
            let grant = crate::settlement::Movement::Grant {
                user: &name(user),
                amount: Credits::from_whole(100),
                reason: None,
            };
            crate::settlement::settle(&rig.conn, &grant, None, 0).expect("grant");
        }
        rig
    }

    fn build(
        users: &[&str],
        workers: &[(u64, &str)],
        max_attempts: u32,
        trusted: bool,
        job_cost: Credits,
    ) -> Rig {
        let conn = testing::memory_store(users, users[0]);
        for (id, owner) in workers {
            conn.execute(
                "INSERT OR REPLACE INTO workers (id, name, owner, token_hash, created_at, trusted)
                 VALUES (?1, ?2, ?3, ?4, 0, ?5)",
                crate::params![
                    *id as i64,
                    format!("w{id}"),
                    owner,
                    id.to_be_bytes(),
                    trusted
                ],
            )
            .expect("a worker row");
        }
        let settings = QueueSettings {
            gpu_cost: gridx_proto::Credits::from_whole(4),
            heartbeat: Duration::from_secs(5),
            heartbeat_s: 5,
            max_attempts,
            job_cost,
            reward_permille: 800,
            queue_capacity: 1000,
            max_queued_per_user: 1000,
            max_output_bytes: 1024,
            retention: Duration::from_secs(3600),
            policy: crate::trust::Policy::default(),
        };
        let state = Rig::load(&conn, settings.clone());
        Rig {
            conn,
            state,
            settings,
            _outboxes: Vec::new(),
        }
    }

    fn load(conn: &Db, settings: QueueSettings) -> State {
        let events = EventBus::new(Backlog {
            max_events: 16,
            max_bytes: 1 << 20,
        });
        let (stats, _) = tokio::sync::watch::channel(QueueStats::default());
        State::load(
            conn,
            settings,
            events,
            WorkerBoard::default(),
            Metrics::new(),
            stats,
        )
        .expect("the queue loads")
    }

    /// The coordinator restarts on the same store: the queue is loaded afresh and
    /// every worker's session is gone.
    pub(super) fn restart(&mut self) {
        self.state = Rig::load(&self.conn, self.settings.clone());
        self._outboxes.clear();
    }

    pub(super) fn hello(&mut self, id: u64, capabilities: Capabilities) {
        let (tx, rx) = outbox(1024);
        self._outboxes.push(rx);
        let owner = self
            .state
            .workers
            .get(&WorkerId(id))
            .map(|w| w.owner.clone())
            .expect("a registered worker");
        let hello = HelloRequest {
            worker_id: WorkerId(id),
            name: format!("w{id}"),
            owner,
            capabilities,
            running: vec![],
            session_id: id,
            outbox: tx,
        };
        let mut fx = Effects::default();
        assert!(self.state.hello(&self.conn, hello, &mut fx).is_ok());
    }

    pub(super) fn submit(&mut self, user: &str, memory_mb: u32, timeout_s: u32) -> JobId {
        self.submit_spec(
            user,
            JobSpec {
                memory_mb,
                timeout_s,
                ..testing::spec()
            },
        )
    }

    pub(super) fn submit_spec(&mut self, user: &str, spec: JobSpec) -> JobId {
        let mut fx = Effects::default();
        match self.state.submit(
            &self.conn,
            name(user),
            crate::queue::NewJob::new(spec, true),
            &mut fx,
        ) {
            Ok(submitted) => submitted.view.job_id,
            Err(_) => panic!("submit refused"),
        }
    }

    pub(super) fn dispatch(&mut self) {
        let mut fx = Effects::default();
        self.state.dispatch(&self.conn, &mut fx);
    }

    /// The worker and attempt holding a job, if it runs.
    pub(super) fn holder(&self, job: JobId) -> Option<(u64, u32)> {
        self.state
            .running
            .get(&job)
            .map(|j| (j.worker.0, j.attempt))
    }

    pub(super) fn say(&mut self, worker: u64, message: WorkerMessage) {
        let mut fx = Effects::default();
        let result =
            self.state
                .on_worker_message(&self.conn, WorkerId(worker), worker, message, &mut fx);
        assert!(result.is_ok());
    }

    fn refuse(&mut self, worker: u64, job_id: JobId, attempt: u32, reason: &str) {
        self.say(
            worker,
            WorkerMessage::Refused {
                job_id,
                attempt,
                reason: reason.into(),
            },
        );
    }

    pub(super) fn view(&self, job: JobId) -> JobView {
        jobs::job_view(&self.conn, job)
            .expect("read")
            .expect("the job")
    }
}

#[test]
fn a_refused_attempt_runs_elsewhere_uncounted_and_does_not_go_back_at_once() {
    let mut rig = Rig::new(&["a"], &[(1, "a"), (2, "a")], 2);
    rig.hello(1, caps());
    let job = rig.submit("a", 256, 30);
    rig.dispatch();
    assert_eq!(rig.holder(job), Some((1, 1)));

    // Not the holder: ignored.
    rig.hello(2, caps());
    rig.refuse(2, job, 1, "not mine");
    assert_eq!(rig.holder(job), Some((1, 1)));

    rig.refuse(1, job, 1, "too big\n\x1b[31mfor me");
    let view = rig.view(job);
    assert_eq!(view.status, JobStatus::Queued);
    assert_eq!(view.refusals, 1);
    assert_eq!(
        view.refusal.as_deref(),
        Some("refused by worker w1 (#1): too big  [31mfor me")
    );
    assert!(
        rig.state.workers[&WorkerId(1)].running.is_empty(),
        "slot freed"
    );

    // Worker 1 is as free as worker 2 and has the lower id, but refused it.
    rig.dispatch();
    assert_eq!(rig.holder(job), Some((2, 2)));
    // A late refusal of the old attempt changes nothing.
    rig.refuse(1, job, 1, "again");
    assert_eq!(rig.holder(job), Some((2, 2)));

    // Lost on worker 2: its first failed attempt of two, so it is requeued (had the
    // refusal counted, this would have been the last). Worker 1 still does not get it.
    let mut fx = Effects::default();
    assert!(
        rig.state
            .lose_job(&rig.conn, job, "its worker was lost", &mut fx)
            .is_ok()
    );
    assert_eq!(rig.view(job).status, JobStatus::Queued);
    rig.dispatch();
    assert_eq!(rig.holder(job), Some((2, 3)));
    rig.say(
        2,
        WorkerMessage::Finished {
            job_id: job,
            attempt: 3,
            outcome: RunOutcome {
                end: RunEnd::Exited,
                exit_code: Some(0),
                stdout: String::new(),
                stderr: String::new(),
                stdout_truncated: false,
                stderr_truncated: false,
                duration_ms: 1,
                message: None,
                compile_output: None,
            },
        },
    );
    let view = rig.view(job);
    assert_eq!(
        (view.status, view.attempts, view.refusals),
        (JobStatus::Succeeded, 3, 1)
    );
    assert!(view.refusal.is_some(), "the refusal stays on the job");
    assert!(rig.state.refusals.is_empty(), "forgotten once it ended");
}

#[test]
fn a_refused_attempt_whose_cancel_was_requested_ends_cancelled() {
    let mut rig = Rig::new(&["a"], &[(1, "a")], 3);
    rig.hello(1, caps());
    let job = rig.submit("a", 256, 30);
    rig.dispatch();
    let mut fx = Effects::default();
    assert!(
        rig.state
            .cancel(&rig.conn, &name("a"), false, job, &mut fx)
            .is_ok()
    );
    rig.refuse(1, job, 1, "no room");
    let view = rig.view(job);
    assert_eq!(view.status, JobStatus::Cancelled);
    assert_eq!(view.reason, Some(FailureReason::CancelledByUser));
    assert!(rig.state.refusals.is_empty());
}

#[test]
fn owner_only_workers_get_their_owners_jobs_and_nobody_elses() {
    let mut rig = Rig::new(&["a", "b"], &[(1, "a"), (2, "a"), (3, "b")], 3);
    let noop = Capabilities {
        executor: ExecutorKind::Noop,
        ..caps()
    };
    rig.hello(1, noop);
    let theirs = rig.submit("b", 256, 30);
    let mine = rig.submit("a", 256, 30);
    rig.dispatch();
    // b's job came first, but only a's job may go to a's noop worker.
    assert_eq!(rig.holder(theirs), None);
    assert_eq!(rig.holder(mine), Some((1, 1)));
    rig.dispatch();
    assert_eq!(rig.holder(theirs), None, "b's job waits");
    rig.hello(
        2,
        Capabilities {
            executor: ExecutorKind::Unsandboxed,
            ..caps()
        },
    );
    rig.dispatch();
    assert_eq!(rig.holder(theirs), None, "nor to a's unsandboxed worker");
    // b's own unsandboxed worker may, and so may any sandboxed worker.
    rig.hello(
        3,
        Capabilities {
            executor: ExecutorKind::Unsandboxed,
            ..caps()
        },
    );
    rig.dispatch();
    assert_eq!(rig.holder(theirs), Some((3, 1)));
}

#[test]
fn dispatch_stays_within_the_advertised_caps() {
    let mut rig = Rig::new(&["a"], &[(1, "a")], 3);
    rig.hello(
        1,
        Capabilities {
            max_job_memory_mb: Some(512),
            memory_budget_mb: Some(1024),
            max_job_timeout_s: Some(60),
            ..caps()
        },
    );
    let too_big = rig.submit("a", 1024, 30);
    let too_long = rig.submit("a", 64, 61);
    let fits: Vec<JobId> = (0..4).map(|_| rig.submit("a", 300, 60)).collect();
    rig.dispatch();
    assert_eq!(rig.holder(too_big), None);
    assert_eq!(rig.holder(too_long), None);
    // 3 x 300 MB fit the 1024 MB budget, a fourth does not, though a slot is free.
    let running: Vec<bool> = fits.iter().map(|j| rig.holder(*j).is_some()).collect();
    assert_eq!(running, [true, true, true, false]);
    // One ends: the fourth takes its room.
    let mut fx = Effects::default();
    assert!(
        rig.state
            .lose_job(&rig.conn, fits[0], "lost", &mut fx)
            .is_ok()
    );
    // The lost job went back to the front, so it takes the room again.
    rig.dispatch();
    assert_eq!(rig.holder(fits[0]).map(|h| h.0), Some(1));
    assert_eq!(rig.holder(fits[3]), None);
    assert_eq!(rig.view(too_big).status, JobStatus::Queued);
}

fn noop() -> Capabilities {
    Capabilities {
        executor: ExecutorKind::Noop,
        ..caps()
    }
}

/// A refusal keeps the job from that worker for a while only: a job that only that
/// worker may take (here its owner's owner-only worker) gets it again once the hold
/// has passed, instead of waiting for a coordinator restart.
#[test]
fn a_refusal_lapses_and_the_only_worker_that_may_take_the_job_gets_it_again() {
    let mut rig = Rig::new(&["a"], &[(1, "a")], 3);
    rig.hello(1, noop());
    let job = rig.submit("a", 256, 30);
    rig.dispatch();
    assert_eq!(rig.holder(job), Some((1, 1)));
    rig.refuse(1, job, 1, "the memory budget is full");
    rig.dispatch();
    assert_eq!(rig.holder(job), None, "not straight back");
    rig.state
        .refusals
        .age(job, REFUSAL_HOLD - Duration::from_secs(1));
    rig.dispatch();
    assert_eq!(rig.holder(job), None, "nor within the hold");
    rig.state.refusals.age(job, Duration::from_secs(1));
    rig.dispatch();
    assert_eq!(rig.holder(job), Some((1, 2)));
    let view = rig.view(job);
    assert_eq!((view.status, view.refusals), (JobStatus::Running, 1));
}

/// A worker that said `started` cannot refuse the attempt any more: its `refused`
/// is a lost attempt, counted toward `max_attempts`, not a free hand-back. The
/// coordinator knows an attempt started across a restart too (from the store).
#[test]
fn refusing_a_started_attempt_loses_it() {
    let mut rig = Rig::new(&["a"], &[(1, "a")], 2);
    rig.hello(1, caps());
    let job = rig.submit("a", 256, 30);
    rig.dispatch();
    assert_eq!(rig.holder(job), Some((1, 1)));
    rig.say(
        1,
        WorkerMessage::Started {
            job_id: job,
            attempt: 1,
        },
    );
    rig.refuse(1, job, 1, "changed my mind");
    let view = rig.view(job);
    assert_eq!(view.status, JobStatus::Queued);
    assert_eq!((view.attempts, view.refusals), (1, 0));
    assert_eq!(view.refusal, None);
    assert!(rig.state.refusals.is_empty(), "a lost attempt bars nobody");

    // The second attempt, started, and the coordinator restarted meanwhile.
    rig.dispatch();
    assert_eq!(rig.holder(job), Some((1, 2)));
    rig.say(
        1,
        WorkerMessage::Started {
            job_id: job,
            attempt: 2,
        },
    );
    assert!(rig.state.reload(&rig.conn).is_ok());
    rig.refuse(1, job, 2, "changed my mind again");
    let view = rig.view(job);
    assert_eq!(view.status, JobStatus::Error);
    assert_eq!(view.reason, Some(FailureReason::RetriesExhausted));
    assert_eq!(view.refusals, 0);
    assert!(
        view.message
            .as_deref()
            .is_some_and(|m| m.contains("refused it after starting it")),
        "{:?}",
        view.message
    );
}

/// The dispatch fallback (no ready worker may take the head job): workers alike in
/// what they may run share one look, and one of them that refused the job that look
/// found takes the next job it may instead.
#[test]
fn in_the_fallback_a_worker_that_refused_the_job_its_kind_found_takes_the_next() {
    let mut rig = Rig::new(&["a", "b"], &[(1, "a"), (2, "a")], 3);
    rig.hello(1, noop());
    // b's job heads the queue and no worker here may take it.
    let theirs = rig.submit("b", 256, 30);
    let first = rig.submit("a", 256, 30);
    rig.dispatch();
    assert_eq!(rig.holder(first), Some((1, 1)));
    rig.refuse(1, first, 1, "the memory budget is full");
    rig.dispatch();
    assert_eq!(rig.holder(first), None);
    rig.hello(2, noop());
    let second = rig.submit("a", 256, 30);
    rig.dispatch();
    assert_eq!(rig.holder(first), Some((2, 2)));
    assert_eq!(rig.holder(second), Some((1, 1)));
    assert_eq!(rig.holder(theirs), None);
}
