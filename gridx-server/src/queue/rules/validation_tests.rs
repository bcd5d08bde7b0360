//! Result checks on a real (in-memory) store, driven through the queue's own methods
//! with the default policy (quorum 2, at most 3 replicas, probation 10, quarantine
//! after 2 invalid results): who runs replicas, what is accepted, who is paid, and
//! how records and quarantine follow. Jobs cost 1 credit (800 reward, 200 fee).

use super::tests::{Rig, caps, name};
use crate::queue::model::Effects;
use crate::store::ledger;
use crate::store::trust::Subject;
use gridx_proto::api::{ValidationOutcome, Verdict};
use gridx_proto::job::{FailureReason, RunEnd, RunOutcome};
use gridx_proto::protocol::WorkerMessage;
use gridx_proto::{JobId, JobSpec, JobStatus, WorkerId};

fn finish(rig: &mut Rig, worker: u64, job: JobId, stdout: &str) {
    report(
        rig,
        worker,
        job,
        outcome(RunEnd::Exited, Some(0), stdout, None),
    );
}

/// A run that ended so, with nothing on stderr.
fn outcome(end: RunEnd, exit_code: Option<i32>, stdout: &str, compile: Option<&str>) -> RunOutcome {
    RunOutcome {
        end,
        exit_code,
        stdout: stdout.into(),
        stderr: String::new(),
        stdout_truncated: false,
        stderr_truncated: false,
        duration_ms: 1,
        message: None,
        compile_output: compile.map(str::to_owned),
    }
}

/// `worker`, which runs `job`, reports `outcome` of it.
fn report(rig: &mut Rig, worker: u64, job: JobId, outcome: RunOutcome) {
    let (holder, attempt) = rig.holder(job).expect("the job runs");
    assert_eq!(holder, worker, "job {job} runs on worker {holder}");
    rig.say(
        worker,
        WorkerMessage::Finished {
            job_id: job,
            attempt,
            outcome,
        },
    );
}

fn balance(rig: &Rig, user: &str) -> i64 {
    ledger::balance(&rig.conn, &ledger::user_account(user))
        .expect("balance")
        .millis()
}

fn verify(rig: &Rig) {
    let report = ledger::verify(&rig.conn).expect("verify runs");
    assert!(report.violations.is_empty(), "{:?}", report.violations);
}

fn verdicts(rig: &Rig, job: JobId) -> Vec<(u64, Verdict)> {
    rig.view(job)
        .validation
        .replicas
        .iter()
        .map(|r| (r.worker_id.0, r.verdict))
        .collect()
}

/// Runs `job` to its end: each worker that gets it answers as `answer` says.
fn run_to_end(rig: &mut Rig, job: JobId, answer: impl Fn(u64) -> &'static str) -> Vec<u64> {
    let mut ran_by = Vec::new();
    loop {
        rig.dispatch();
        let Some((worker, _)) = rig.holder(job) else {
            return ran_by;
        };
        assert!(ran_by.len() < 3, "more than max_replicas runs: {ran_by:?}");
        ran_by.push(worker);
        finish(rig, worker, job, answer(worker));
    }
}

/// The cheater (worker 1, so first in line among equally free workers) answers at
/// once with a fake result. Its answer is outvoted: the job runs on two more owners'
/// workers, the honest result is accepted, both honest owners share the reward, the
/// cheater earns nothing and takes a strike. Its second invalid result quarantines
/// it and its owner: then neither it nor a new worker of that owner gets a job.
#[test]
fn a_cheater_is_outvoted_unpaid_and_quarantined_on_its_second_invalid_result() {
    let users = ["alice", "mallory", "bob", "carol"];
    let mut rig = Rig::checked(
        &users,
        &[(1, "mallory"), (2, "bob"), (3, "carol"), (4, "mallory")],
    );
    for id in 1..=3 {
        rig.hello(id, caps());
    }
    let cheat = |w: u64| if w == 1 { "fake" } else { "42" };
    for round in 1..=2 {
        let job = rig.submit("alice", 256, 30);
        let ran_by = run_to_end(&mut rig, job, cheat);
        assert_eq!(ran_by, vec![1, 2, 3], "round {round}");
        let view = rig.view(job);
        assert_eq!(view.status, JobStatus::Succeeded, "round {round}");
        assert_eq!(view.stdout, "42", "the honest answer, round {round}");
        assert_eq!(view.validation.outcome, Some(ValidationOutcome::Quorum));
        assert_eq!(
            verdicts(&rig, job),
            vec![
                (1, Verdict::Invalid),
                (2, Verdict::Valid),
                (3, Verdict::Valid)
            ]
        );
        verify(&rig);
    }
    assert_eq!(
        balance(&rig, "mallory"),
        100_000,
        "the cheater earned nothing"
    );
    assert_eq!(
        balance(&rig, "bob"),
        100_000 + 2 * 400,
        "half of each reward"
    );
    assert_eq!(balance(&rig, "carol"), 100_000 + 2 * 400);
    assert_eq!(balance(&rig, "alice"), 100_000 - 2 * 1_000);

    let worker = rig.state.record(&Subject::Worker(WorkerId(1)));
    let owner = rig.state.record(&Subject::Owner(name("mallory")));
    assert_eq!((worker.invalid, worker.strikes, worker.streak), (2, 2, 0));
    assert!(worker.quarantined.is_some() && owner.quarantined.is_some());
    assert_eq!(rig.state.record(&Subject::Worker(WorkerId(2))).streak, 2);
    // A new token of the same owner starts where the owner stands.
    rig.hello(4, caps());
    assert!(rig.state.workers[&WorkerId(4)].standing.quarantined);
    let job = rig.submit("alice", 256, 30);
    let ran_by = run_to_end(&mut rig, job, cheat);
    assert_eq!(ran_by, vec![2, 3], "only the honest owners' workers run it");
    assert_eq!(rig.view(job).stdout, "42");
    verify(&rig);

    // The records are the store's, not the session's: after a coordinator restart
    // the cheater, its owner and a brand-new token of that owner are still
    // quarantined, and the honest workers keep their streaks.
    let before = (
        rig.state.record(&Subject::Worker(WorkerId(1))),
        rig.state.record(&Subject::Owner(name("mallory"))),
        rig.state.record(&Subject::Worker(WorkerId(2))),
    );
    rig.restart();
    let after = (
        rig.state.record(&Subject::Worker(WorkerId(1))),
        rig.state.record(&Subject::Owner(name("mallory"))),
        rig.state.record(&Subject::Worker(WorkerId(2))),
    );
    assert_eq!(before, after, "the records survive a restart");
    for id in [1, 4] {
        rig.hello(id, caps());
        assert!(
            rig.state.workers[&WorkerId(id)].standing.quarantined,
            "{id}"
        );
    }
    rig.hello(2, caps());
    rig.hello(3, caps());
    let job = rig.submit("alice", 256, 30);
    let ran_by = run_to_end(&mut rig, job, cheat);
    assert!(!ran_by.contains(&1) && !ran_by.contains(&4), "{ran_by:?}");
    verify(&rig);
}

/// Three owners, three different answers: no quorum at the maximum of 3 replicas.
/// The job ends `error` (no_quorum), the user is refunded, nobody is paid, and no
/// worker takes a strike (nobody was shown wrong).
#[test]
fn no_quorum_at_the_maximum_refunds_and_pays_nobody() {
    let users = ["alice", "bob", "carol", "dave"];
    let mut rig = Rig::checked(&users, &[(1, "bob"), (2, "carol"), (3, "dave")]);
    for id in 1..=3 {
        rig.hello(id, caps());
    }
    let job = rig.submit("alice", 256, 30);
    let mut answers = vec!["one", "two", "three"].into_iter();
    loop {
        rig.dispatch();
        let Some((worker, _)) = rig.holder(job) else {
            break;
        };
        finish(
            &mut rig,
            worker,
            job,
            answers.next().expect("three runs at most"),
        );
    }
    let view = rig.view(job);
    assert_eq!(view.status, JobStatus::Error);
    assert_eq!(view.reason, Some(FailureReason::NoQuorum));
    assert_eq!(view.validation.outcome, Some(ValidationOutcome::NoQuorum));
    assert!(
        view.validation
            .replicas
            .iter()
            .all(|r| r.verdict == Verdict::Inconclusive)
    );
    assert_eq!(view.validation.replicas.len(), 3);
    assert_eq!(balance(&rig, "alice"), 100_000, "refunded");
    for owner in ["bob", "carol", "dave"] {
        assert_eq!(balance(&rig, owner), 100_000, "{owner} unpaid");
        assert_eq!(
            rig.state.record(&Subject::Owner(name(owner))).strikes,
            0,
            "{owner}"
        );
    }
    verify(&rig);
}

/// With untrusted workers of one owner only, a stranger's job cannot be checked: it
/// waits (the job view says why) and runs once a second owner's worker is online.
/// On a grid of one owner, the submitter's own worker takes their job unchecked.
#[test]
fn a_job_waits_for_a_quorum_of_owners_and_an_own_worker_needs_none() {
    let users = ["alice", "bob", "carol"];
    let mut rig = Rig::checked(&users, &[(1, "bob"), (2, "carol"), (3, "alice")]);
    rig.hello(1, caps());
    let job = rig.submit("alice", 256, 30);
    rig.dispatch();
    assert_eq!(
        rig.holder(job),
        None,
        "one owner online: no quorum possible"
    );
    rig.state.publish_worker(WorkerId(1));
    let policy = crate::trust::Policy::default();
    let why = crate::trust::waiting_reason(&rig.view(job), &rig.state.board.snapshot(), &policy)
        .expect("the view says why it waits");
    assert!(why.contains("quorum") && why.contains("bob"), "{why}");
    rig.hello(2, caps());
    rig.dispatch();
    assert_eq!(
        rig.holder(job).map(|h| h.0),
        Some(1),
        "two owners online: it runs"
    );

    let mut rig = Rig::checked(&users, &[(3, "alice")]);
    rig.hello(3, caps());
    let own = rig.submit("alice", 256, 30);
    assert_eq!(run_to_end(&mut rig, own, |_| "mine"), vec![3]);
    let view = rig.view(own);
    assert_eq!(view.validation.outcome, Some(ValidationOutcome::OwnWorker));
    assert!(view.validation.replicas.is_empty());
    assert_eq!(
        balance(&rig, "alice"),
        100_000 - 1_000 + 800,
        "paid to herself"
    );
    verify(&rig);
}

/// A new worker claiming 1,024 slots holds one unconfirmed first run at a time. A
/// check of another owner's result counts only its leases against that allowance,
/// not its own results waiting for a check (else two new workers, each waiting for
/// the other to confirm its first result, would wait forever). Once a result is
/// confirmed, the allowance grows.
#[test]
fn a_new_worker_holds_one_unconfirmed_job_at_a_time() {
    let users = ["alice", "bob", "carol"];
    let mut rig = Rig::checked(&users, &[(1, "bob"), (2, "carol")]);
    let many = gridx_proto::protocol::Capabilities {
        slots: 1024,
        ..caps()
    };
    rig.hello(1, many.clone());
    rig.hello(2, many);
    let jobs: Vec<JobId> = (0..4).map(|_| rig.submit("alice", 256, 30)).collect();
    rig.dispatch();
    let running = |rig: &Rig, w: u64| rig.state.workers[&WorkerId(w)].running.len();
    assert_eq!((running(&rig, 1), running(&rig, 2)), (1, 1));
    assert_eq!(rig.holder(jobs[0]).map(|h| h.0), Some(1));
    assert_eq!(rig.holder(jobs[1]).map(|h| h.0), Some(2));
    // Both report: each result waits for the other's check, and still counts.
    finish(&mut rig, 1, jobs[0], "ok");
    finish(&mut rig, 2, jobs[1], "ok");
    assert_eq!(rig.state.workers[&WorkerId(1)].pending, 1);
    rig.dispatch();
    // Each checks the other's; neither takes a new first run.
    assert_eq!(rig.holder(jobs[0]).map(|h| h.0), Some(2), "the checks run");
    assert_eq!(rig.holder(jobs[1]).map(|h| h.0), Some(1));
    assert_eq!((rig.holder(jobs[2]), rig.holder(jobs[3])), (None, None));
    finish(&mut rig, 2, jobs[0], "ok");
    finish(&mut rig, 1, jobs[1], "ok");
    for job in &jobs[..2] {
        let view = rig.view(*job);
        assert_eq!(view.validation.outcome, Some(ValidationOutcome::Quorum));
    }
    assert_eq!(balance(&rig, "bob"), 100_000 + 2 * 400);
    for w in [1, 2] {
        let standing = rig.state.workers[&WorkerId(w)].standing;
        assert_eq!((standing.streak, standing.allowance), (2, 3), "worker {w}");
        assert_eq!(rig.state.workers[&WorkerId(w)].pending, 0);
    }
    rig.dispatch();
    assert_eq!(running(&rig, 1) + running(&rig, 2), 2, "the last two run");
    verify(&rig);
}

/// A `validate: false` job goes only to a worker the grid trusts (here its
/// submitter's own, or an operator-trusted one), never to a stranger on probation.
#[test]
fn an_unvalidated_job_goes_only_to_a_trusted_worker() {
    let users = ["alice", "bob", "carol"];
    let mut rig = Rig::checked(&users, &[(1, "bob"), (2, "carol")]);
    rig.hello(1, caps());
    rig.hello(2, caps());
    let mut fx = Effects::default();
    let spec = JobSpec {
        ..crate::store::testing::spec()
    };
    let job = match rig.state.submit(
        &rig.conn,
        name("alice"),
        crate::queue::NewJob::new(spec, false),
        &mut fx,
    ) {
        Ok(s) => s.view.job_id,
        Err(_) => panic!("submit refused"),
    };
    rig.dispatch();
    assert_eq!(rig.holder(job), None, "no worker the grid trusts");
    crate::store::trust::set_trusted(&rig.conn, WorkerId(2), true).expect("trust");
    let mut fx = Effects::default();
    assert!(rig.state.tick(&rig.conn, &mut fx).is_ok());
    // The tick reloads trust marks once a second; force the pass.
    rig.state.last_housekeeping = std::time::Instant::now() - std::time::Duration::from_secs(2);
    let mut fx = Effects::default();
    assert!(rig.state.tick(&rig.conn, &mut fx).is_ok());
    rig.dispatch();
    assert_eq!(rig.holder(job).map(|h| h.0), Some(2));
    finish(&mut rig, 2, job, "random 7");
    let view = rig.view(job);
    assert_eq!(
        view.validation.outcome,
        Some(ValidationOutcome::TrustedWorker)
    );
    assert!(!view.validation.required);
    assert_eq!(balance(&rig, "carol"), 100_000 + 800);
    verify(&rig);
}

/// A compiled job: a worker that claims a compile error the others did not see is
/// outvoted like any other lie. The compiler's words are not compared (honest
/// workers with other compiler versions word warnings differently): the two honest
/// replicas agree though their warnings differ. Each replica's digest is recorded.
#[test]
fn a_false_compile_error_is_outvoted() {
    let users = ["alice", "mallory", "bob", "carol"];
    let mut rig = Rig::checked(&users, &[(1, "mallory"), (2, "bob"), (3, "carol")]);
    let mut c_caps = caps();
    c_caps.languages = vec![gridx_proto::Language::C];
    for id in 1..=3 {
        rig.hello(id, c_caps.clone());
    }
    let job = rig.submit_spec(
        "alice",
        JobSpec {
            language: gridx_proto::Language::C,
            ..crate::store::testing::spec()
        },
    );
    let mut ran_by = Vec::new();
    loop {
        rig.dispatch();
        let Some((worker, _)) = rig.holder(job) else {
            break;
        };
        assert!(ran_by.len() < 3, "{ran_by:?}");
        ran_by.push(worker);
        let outcome = match worker {
            1 => outcome(
                RunEnd::CompileError,
                None,
                "",
                Some("main.c:1: error: made up"),
            ),
            // Another compiler version warns where the first says nothing.
            3 => outcome(
                RunEnd::Exited,
                Some(0),
                "42",
                Some("main.c:1: warning: unused variable"),
            ),
            _ => outcome(RunEnd::Exited, Some(0), "42", Some("")),
        };
        report(&mut rig, worker, job, outcome);
    }
    assert_eq!(ran_by, vec![1, 2, 3]);
    let view = rig.view(job);
    assert_eq!(view.status, JobStatus::Succeeded);
    assert!(view.compile_output.is_some(), "an honest compile's words");
    assert_eq!(
        verdicts(&rig, job),
        vec![
            (1, Verdict::Invalid),
            (2, Verdict::Valid),
            (3, Verdict::Valid)
        ]
    );
    let digests: Vec<Option<String>> = view
        .validation
        .replicas
        .iter()
        .map(|r| r.compile_output_sha256.clone())
        .collect();
    assert_ne!(digests[1], digests[2], "different words, the same result");
    assert_ne!(digests[0], digests[1]);
    assert_eq!(balance(&rig, "mallory"), 100_000, "the liar earned nothing");
    verify(&rig);
}

/// `ledger verify` catches a breach of the result-check invariants (docs/jobs.md,
/// 9-11), not only passes a healthy store: a replica left pending on a finished job,
/// and a reward paid on a job that ended without an accepted result.
#[test]
fn verify_catches_a_pending_replica_and_a_reward_without_a_result() {
    let users = ["alice", "bob", "carol"];
    let mut rig = Rig::checked(&users, &[(1, "bob"), (2, "carol")]);
    for id in 1..=2 {
        rig.hello(id, caps());
    }
    let job = rig.submit("alice", 256, 30);
    run_to_end(&mut rig, job, |_| "42");
    verify(&rig);
    rig.conn
        .execute(
            "UPDATE replicas SET verdict = 'pending' WHERE job_id = ?1 AND attempt = 1",
            [job.0 as i64],
        )
        .expect("tamper");
    let report = ledger::verify(&rig.conn).expect("verify runs");
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.contains("still wait for a verdict")),
        "{:?}",
        report.violations
    );
    rig.conn
        .execute_batch(
            "UPDATE replicas SET verdict = 'valid';
             UPDATE jobs SET status = 'error', validation = 'no_quorum';",
        )
        .expect("tamper");
    let report = ledger::verify(&rig.conn).expect("verify runs");
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.contains("without an accepted result but paid")),
        "{:?}",
        report.violations
    );
}

/// Only a compiled language has a compile step: a `compile_error` for a bash job is
/// the worker's failure, not the job's. Nobody is paid and the user is refunded.
#[test]
fn a_compile_error_for_an_interpreted_language_is_the_workers_failure() {
    let users = ["alice", "bob", "carol"];
    let mut rig = Rig::checked(&users, &[(1, "bob"), (2, "carol")]);
    for id in 1..=2 {
        rig.hello(id, caps());
    }
    let job = rig.submit("alice", 256, 30);
    rig.dispatch();
    let (worker, _) = rig.holder(job).expect("the job runs");
    report(
        &mut rig,
        worker,
        job,
        outcome(RunEnd::CompileError, None, "", Some("nonsense")),
    );
    let view = rig.view(job);
    assert_eq!(view.status, JobStatus::Error, "{view:?}");
    assert_eq!(view.reason, Some(FailureReason::SandboxError));
    assert_eq!(view.compile_output, None, "dropped for bash");
    assert_eq!(balance(&rig, "alice"), 100_000, "refunded");
    assert_eq!(balance(&rig, "bob") + balance(&rig, "carol"), 200_000);
    verify(&rig);
}

/// A GPU job's check needs GPUs that fit it: its first run goes to a worker nobody
/// vouches for only where workers of a quorum of owners each lend enough of them,
/// and the job view says why it waits otherwise. CPU workers of other owners do not
/// count.
#[test]
fn a_gpu_jobs_quorum_counts_only_workers_lending_gpus_that_fit() {
    use gridx_proto::gpu::GpuDevice;
    let users = ["alice", "bob", "carol", "dave"];
    let mut rig = Rig::checked(&users, &[(1, "bob"), (2, "carol"), (3, "dave")]);
    let lending = |n: u32| gridx_proto::protocol::Capabilities {
        gpus: n,
        gpu_devices: (0..n)
            .map(|index| GpuDevice {
                index,
                name: "G".into(),
                memory_mb: 16_000,
            })
            .collect(),
        ..caps()
    };
    rig.hello(1, lending(2));
    rig.hello(2, lending(1));
    rig.hello(3, caps());
    let two = rig.submit_spec(
        "alice",
        JobSpec {
            gpus: 2,
            ..crate::store::testing::spec()
        },
    );
    rig.dispatch();
    assert_eq!(
        rig.holder(two),
        None,
        "only bob lends two GPUs: no quorum of owners could check it"
    );
    for id in [1, 2, 3] {
        rig.state.publish_worker(WorkerId(id));
    }
    let policy = crate::trust::Policy::default();
    let why = crate::trust::waiting_reason(&rig.view(two), &rig.state.board.snapshot(), &policy)
        .expect("the view says why it waits");
    assert!(why.contains("quorum") && why.contains("(bob)"), "{why}");
    let one = rig.submit_spec(
        "alice",
        JobSpec {
            gpus: 1,
            ..crate::store::testing::spec()
        },
    );
    rig.dispatch();
    assert!(
        rig.holder(one).is_some_and(|(w, _)| w == 1 || w == 2),
        "bob and carol each lend one: its first run goes out"
    );
}
