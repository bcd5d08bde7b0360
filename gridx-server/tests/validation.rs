//! Result checks through the API (docs/trust.md): replicas by workers of other owners
//! and their verdicts in the job view, why a job waits, `validate: false`, the
//! submitter's own worker, no quorum, the operator's `worker trust` and `worker
//! restore` on a running coordinator, and the counters on /metrics.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

mod support;

use futures_util::StreamExt;
use gridx_proto::JobId;
use gridx_proto::protocol::{CoordinatorMessage, JobAttempt, decode_coordinator_message};
use std::process::Command;
use std::time::Duration;
use support::{FakeWorker, TestServer};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_gridx-server");

/// What arrived at one of several fake workers.
enum Arrival {
    Assign {
        worker: usize,
        job: JobId,
        attempt: u32,
    },
    Nothing,
}

/// Heartbeats every worker; `held` lists the attempts some of them hold (a worker
/// must list them, or the coordinator takes them back).
async fn beat(workers: &mut [&mut FakeWorker], held: &[(usize, JobAttempt)]) {
    for (index, worker) in workers.iter_mut().enumerate() {
        let running = held
            .iter()
            .filter(|(w, _)| *w == index)
            .map(|(_, a)| *a)
            .collect();
        worker.heartbeat(running).await;
    }
}

/// Waits up to `secs` for an `assign` at any of `workers`, heartbeating all of them
/// meanwhile (the coordinator expects one a second); which worker got which attempt.
async fn next_assign(workers: &mut [&mut FakeWorker], secs: f64) -> Arrival {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut last_beat = Instant::now();
    loop {
        for (index, worker) in workers.iter_mut().enumerate() {
            let frame = tokio::time::timeout(Duration::from_millis(20), worker.socket.next()).await;
            if let Ok(Some(Ok(Message::Text(text)))) = frame {
                let message = decode_coordinator_message(&text, usize::MAX).unwrap();
                if let CoordinatorMessage::Assign { job, attempt } = message {
                    return Arrival::Assign {
                        worker: index,
                        job: job.job_id,
                        attempt,
                    };
                }
            }
        }
        if last_beat.elapsed() > Duration::from_millis(400) {
            beat(workers, &[]).await;
            last_beat = Instant::now();
        }
        if Instant::now() > deadline {
            return Arrival::Nothing;
        }
    }
}

/// The next assign among `workers`, or a panic after 10 s.
async fn expect_assign(workers: &mut [&mut FakeWorker]) -> (usize, JobId, u32) {
    match next_assign(workers, 10.0).await {
        Arrival::Assign {
            worker,
            job,
            attempt,
        } => (worker, job, attempt),
        Arrival::Nothing => panic!("no worker got a job within 10 s"),
    }
}

async fn expect_no_assign(workers: &mut [&mut FakeWorker], secs: f64, why: &str) {
    if let Arrival::Assign {
        worker,
        job,
        attempt,
    } = next_assign(workers, secs).await
    {
        panic!("{why}: worker {worker} got job {job} attempt {attempt}");
    }
}

/// `gridx-server --store STORE ARGS` against the running coordinator's store.
fn admin(server: &TestServer, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(server.store_flag())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gridx-server {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A counter from /metrics, by its full name with labels (0 when absent).
async fn metric(server: &TestServer, key: &str) -> f64 {
    let text = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            (k == key).then(|| v.parse().ok())?
        })
        .unwrap_or(0.0)
}

async fn worker_view(server: &TestServer, token: &str, id: u64) -> serde_json::Value {
    let (_, body) = server.get_json(token, "/v1/workers").await;
    body["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["worker_id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no worker {id}: {body}"))
}

/// Polls worker `id`'s view until `test` holds, keeping `fakes` alive with the
/// attempts they hold; how long it took. Panics after `secs`.
async fn wait_worker(
    server: &TestServer,
    (token, id): (&str, u64),
    fakes: (&mut [&mut FakeWorker], &[(usize, JobAttempt)]),
    secs: u64,
    what: &str,
    test: impl Fn(&serde_json::Value) -> bool,
) -> Duration {
    let started = Instant::now();
    let (fakes, held) = fakes;
    loop {
        beat(fakes, held).await;
        let view = worker_view(server, token, id).await;
        if test(&view) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "worker {id}: {what} within {secs} s: {view}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checked_job_waits_for_a_second_owner_then_a_quorum_accepts_it() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    let bob = server.add_user("bob", 0);
    let carol = server.add_user("carol", 0);
    let (bob_id, bob_token) = server.add_untrusted_worker("bob");
    let (carol_id, carol_token) = server.add_untrusted_worker("carol");
    let mut bob_worker = FakeWorker::connect(&server, &bob_token, 2).await;
    let id = server.submit_ok(&alice, "print(6*7)").await;

    // One owner's workers cannot check each other: the job waits, and says why.
    expect_no_assign(&mut [&mut bob_worker], 1.5, "only bob's worker is online").await;
    let job = server.job(&alice, id).await;
    assert_eq!(job["status"], "queued");
    assert_eq!(job["validation"]["required"], true);
    let waiting = job["validation"]["waiting"].as_str().unwrap_or_default();
    assert!(
        waiting.contains("waiting for a quorum") && waiting.contains("bob"),
        "{job}"
    );

    // A second owner's worker comes: the first run goes out (to bob's, with more free
    // slots), then its replica to carol's.
    let mut carol_worker = FakeWorker::connect(&server, &carol_token, 1).await;
    let mut both = [&mut bob_worker, &mut carol_worker];
    let (first, job_id, attempt) = expect_assign(&mut both).await;
    assert_eq!((first, job_id, attempt), (0, id, 1));
    both[0].run_ok(id, 1, "42\n").await;
    let (second, job_id, attempt) = expect_assign(&mut both).await;
    assert_eq!(
        (second, job_id, attempt),
        (1, id, 2),
        "the replica goes to carol"
    );
    let job = server.job(&alice, id).await;
    assert_eq!(job["status"], "running", "requeued for its replica: {job}");
    let replicas = job["validation"]["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 1, "{job}");
    assert_eq!(
        (
            &replicas[0]["worker_id"],
            &replicas[0]["owner"],
            &replicas[0]["verdict"]
        ),
        (&bob_id.0.into(), &"bob".into(), &"pending".into())
    );
    let bob_view = worker_view(&server, &alice, bob_id.0).await;
    assert_eq!(bob_view["reliability"]["pending"], 1, "{bob_view}");
    both[1].run_ok(id, 2, "42\n").await;

    let job = server.wait_status(&alice, id, "succeeded", 5).await;
    assert_eq!(job["stdout"], "42\n");
    assert_eq!(job["worker_id"], carol_id.0);
    assert_eq!(job["validation"]["outcome"], "quorum", "{job}");
    let verdicts: Vec<(u64, &str, &str)> = job["validation"]["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["attempt"].as_u64().unwrap(),
                r["owner"].as_str().unwrap(),
                r["verdict"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(verdicts, [(1, "bob", "valid"), (2, "carol", "valid")]);
    assert!(job["validation"]["waiting"].is_null(), "{job}");
    // The reward is shared by the two agreeing owners; the user paid once.
    assert_eq!(server.balance(&alice).await.millis(), 9_000);
    assert_eq!(server.balance(&bob).await.millis(), 400);
    assert_eq!(server.balance(&carol).await.millis(), 400);
    let bob_view = worker_view(&server, &alice, bob_id.0).await;
    let r = &bob_view["reliability"];
    assert_eq!(
        (&r["validated"], &r["streak"], &r["pending"], &r["trusted"]),
        (&1.into(), &1.into(), &0.into(), &false.into()),
        "{bob_view}"
    );
    assert_eq!(
        metric(&server, "gridx_jobs_accepted_total{status=\"quorum\"}").await,
        1.0
    );
    assert_eq!(
        metric(&server, "gridx_replica_verdicts_total{status=\"valid\"}").await,
        2.0
    );
    assert_eq!(metric(&server, "gridx_results_reported_total").await, 2.0);
    server.assert_ledger_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disagreeing_replica_is_outvoted_and_three_different_answers_are_no_quorum() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    let mut owners = Vec::new();
    let mut workers = Vec::new();
    for name in ["bob", "carol", "dave"] {
        owners.push(server.add_user(name, 0));
        let (id, token) = server.add_untrusted_worker(name);
        workers.push((id, FakeWorker::connect(&server, &token, 1).await));
    }
    let ids: Vec<u64> = workers.iter().map(|(id, _)| id.0).collect();
    let mut fakes: Vec<&mut FakeWorker> = workers.iter_mut().map(|(_, w)| w).collect();

    // Job 1: the first answer is a lie; the next two agree and outvote it.
    let outvoted = server.submit_ok(&alice, "print(1)").await;
    let mut ran = Vec::new();
    for n in 0..3 {
        let (w, job, attempt) = expect_assign(&mut fakes).await;
        assert_eq!((job, attempt), (outvoted, n + 1));
        assert!(!ran.contains(&w), "one owner ran two replicas of a job");
        let stdout = if n == 0 { "lie\n" } else { "1\n" };
        fakes[w].run_ok(job, attempt, stdout).await;
        ran.push(w);
    }
    let job = server.wait_status(&alice, outvoted, "succeeded", 5).await;
    assert_eq!(job["stdout"], "1\n");
    assert_eq!(job["validation"]["outcome"], "quorum");
    let verdicts: Vec<&str> = job["validation"]["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["invalid", "valid", "valid"], "{job}");
    let liar = ran[0];
    for (w, token) in owners.iter().enumerate() {
        let want = if w == liar { 0 } else { 400 };
        assert_eq!(server.balance(token).await.millis(), want, "owner {w}");
    }
    let view = worker_view(&server, &alice, ids[liar]).await;
    assert_eq!(
        (
            &view["reliability"]["invalid"],
            &view["reliability"]["streak"]
        ),
        (&1.into(), &0.into()),
        "{view}"
    );
    assert!(
        view["reliability"]["quarantined"].is_null(),
        "one strike of 2"
    );

    // Job 2: three owners, three answers: no quorum, refunded, nobody paid.
    let before: Vec<i64> = {
        let mut b = Vec::new();
        for token in &owners {
            b.push(server.balance(token).await.millis());
        }
        b
    };
    let split = server
        .submit_ok(&alice, "import random; print(random.random())")
        .await;
    let mut ran = Vec::new();
    for n in 0..3 {
        let (w, job, attempt) = expect_assign(&mut fakes).await;
        assert_eq!((job, attempt), (split, n + 1));
        assert!(!ran.contains(&w), "one owner ran two replicas of a job");
        fakes[w].run_ok(job, attempt, &format!("{w}\n")).await;
        ran.push(w);
    }
    let job = server.wait_status(&alice, split, "error", 5).await;
    assert_eq!(job["reason"], "no_quorum", "{job}");
    assert_eq!(job["validation"]["outcome"], "no_quorum");
    assert!(
        job["validation"]["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["verdict"] == "inconclusive"),
        "{job}"
    );
    assert!(
        job["message"]
            .as_str()
            .unwrap_or_default()
            .contains("refunded")
    );
    // Alice paid for the first job only; nobody earned anything for the second.
    assert_eq!(server.balance(&alice).await.millis(), 9_000);
    for (w, token) in owners.iter().enumerate() {
        assert_eq!(server.balance(token).await.millis(), before[w], "owner {w}");
    }
    assert_eq!(
        metric(&server, "gridx_replica_verdicts_total{status=\"invalid\"}").await,
        1.0
    );
    assert_eq!(
        metric(&server, "gridx_replica_verdicts_total{status=\"valid\"}").await,
        2.0
    );
    assert_eq!(
        metric(
            &server,
            "gridx_replica_verdicts_total{status=\"inconclusive\"}"
        )
        .await,
        3.0
    );
    assert_eq!(
        metric(&server, "gridx_jobs_accepted_total{status=\"quorum\"}").await,
        1.0
    );
    assert_eq!(metric(&server, "gridx_results_reported_total").await, 6.0);
    server.assert_ledger_ok();
}

async fn submit_unchecked(server: &TestServer, token: &str, code: &str) -> JobId {
    let response = server
        .submit(
            token,
            serde_json::json!({"language": "python", "code": code, "validate": false}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let view: serde_json::Value = response.json().await.unwrap();
    JobId(view["job_id"].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchecked_job_waits_for_a_worker_the_grid_trusts_and_an_own_worker_needs_no_check() {
    // One confirmed result proves a worker here, so the test can earn it.
    let server = TestServer::start_with(|c| c.validation.trusted_streak = 1).await;
    let alice = server.add_user("alice", 10);
    server.add_user("bob", 0);
    server.add_user("carol", 0);
    let dave = server.add_user("dave", 0);
    let (_, bob_token) = server.add_untrusted_worker("bob");
    let (_, carol_token) = server.add_untrusted_worker("carol");
    let mut bob_worker = FakeWorker::connect(&server, &bob_token, 2).await;
    let mut carol_worker = FakeWorker::connect(&server, &carol_token, 1).await;

    let unchecked = submit_unchecked(&server, &alice, "print(1)").await;
    expect_no_assign(
        &mut [&mut bob_worker, &mut carol_worker],
        1.5,
        "a validate:false job goes to no worker on probation",
    )
    .await;
    let job = server.job(&alice, unchecked).await;
    assert_eq!(job["validation"]["required"], false);
    let waiting = job["validation"]["waiting"].as_str().unwrap_or_default();
    assert!(waiting.contains("validate: false"), "{job}");

    // A trusted worker comes and takes it; the result is taken as reported.
    let (dave_id, dave_token) = server.add_worker("dave");
    let mut dave_worker = FakeWorker::connect(&server, &dave_token, 1).await;
    let mut all = [&mut bob_worker, &mut carol_worker, &mut dave_worker];
    let (w, job_id, attempt) = expect_assign(&mut all).await;
    assert_eq!((w, job_id, attempt), (2, unchecked, 1));
    all[2].run_ok(unchecked, 1, "1\n").await;
    let job = server.wait_status(&alice, unchecked, "succeeded", 5).await;
    assert_eq!(job["worker_id"], dave_id.0);
    // The operator's mark is why it needed no replica (it is checked first).
    assert_eq!(job["validation"]["outcome"], "trusted_worker", "{job}");
    assert!(job["validation"]["replicas"].is_null(), "{job}");
    assert_eq!(server.balance(&dave).await.millis(), 800);
    drop(dave_worker);

    // Bob's and carol's workers confirm one checked job together: proven now
    // (trusted_streak = 1), bob's may run validate:false jobs: proven_worker.
    let checked = server.submit_ok(&alice, "print(2)").await;
    let mut pair = [&mut bob_worker, &mut carol_worker];
    for attempt in 1..=2 {
        let (w, job_id, a) = expect_assign(&mut pair).await;
        assert_eq!((job_id, a), (checked, attempt));
        pair[w].run_ok(checked, attempt, "2\n").await;
    }
    let job = server.wait_status(&alice, checked, "succeeded", 5).await;
    assert_eq!(job["validation"]["outcome"], "quorum", "{job}");
    let unchecked = submit_unchecked(&server, &alice, "print(3)").await;
    let (w, job_id, attempt) = expect_assign(&mut pair).await;
    assert_eq!((job_id, attempt), (unchecked, 1));
    pair[w].run_ok(unchecked, 1, "3\n").await;
    let job = server.wait_status(&alice, unchecked, "succeeded", 5).await;
    assert_eq!(job["validation"]["outcome"], "proven_worker", "{job}");
    assert!(job["validation"]["replicas"].is_null(), "{job}");
    drop(bob_worker);
    drop(carol_worker);

    // Alice's own worker on probation, alone: her job runs there unchecked, with no
    // quorum of owners online.
    let (alice_worker_id, alice_worker_token) = server.add_untrusted_worker("alice");
    let mut own = FakeWorker::connect(&server, &alice_worker_token, 1).await;
    let mine = server.submit_ok(&alice, "print(4)").await;
    let (_, job_id, attempt) = expect_assign(&mut [&mut own]).await;
    assert_eq!((job_id, attempt), (mine, 1));
    own.run_ok(mine, 1, "4\n").await;
    let job = server.wait_status(&alice, mine, "succeeded", 5).await;
    assert_eq!(job["worker_id"], alice_worker_id.0);
    assert_eq!(job["validation"]["outcome"], "own_worker", "{job}");
    // 10 credits - 4 jobs + her own worker's reward for the last.
    assert_eq!(server.balance(&alice).await.millis(), 6_800);
    for (outcome, count) in [
        ("trusted_worker", 1.0),
        ("quorum", 1.0),
        ("proven_worker", 1.0),
        ("own_worker", 1.0),
    ] {
        let key = format!("gridx_jobs_accepted_total{{status=\"{outcome}\"}}");
        assert_eq!(metric(&server, &key).await, count, "{key}");
    }
    server.assert_ledger_ok();
}

/// One job the liar (worker 0, with the most slots) answers first, outvoted by the
/// two honest workers.
async fn outvote_once(server: &TestServer, alice: &str, fakes: &mut [&mut FakeWorker]) -> JobId {
    let id = server.submit_ok(alice, "print(3)").await;
    for n in 1..=3 {
        let (w, job, attempt) = expect_assign(fakes).await;
        assert_eq!((job, attempt), (id, n));
        assert_eq!(w == 0, n == 1, "the liar runs the first replica only");
        let stdout = if w == 0 { "lie\n" } else { "3\n" };
        fakes[w].run_ok(job, attempt, stdout).await;
    }
    let job = server.wait_status(alice, id, "succeeded", 5).await;
    assert_eq!(job["stdout"], "3\n", "{job}");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_restore_and_trust_take_effect_on_a_running_coordinator() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 20);
    let mut workers = Vec::new();
    for name in ["mallory", "carol", "dave"] {
        server.add_user(name, 0);
        let (id, token) = server.add_untrusted_worker(name);
        // The liar has the most slots, so it gets each job's first run.
        let slots = if name == "mallory" { 8 } else { 1 };
        workers.push((id, FakeWorker::connect(&server, &token, slots).await));
    }
    let mallory = (alice.as_str(), workers[0].0.0);
    let mallory_id = mallory.1.to_string();
    let mut fakes: Vec<&mut FakeWorker> = workers.iter_mut().map(|(_, w)| w).collect();

    // Two lies: quarantine_after = 2.
    outvote_once(&server, &alice, &mut fakes).await;
    outvote_once(&server, &alice, &mut fakes).await;
    let view = worker_view(&server, &alice, mallory.1).await;
    let reason = view["reliability"]["quarantined"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("2 invalid results"), "{view}");
    assert_eq!(view["reliability"]["invalid"], 2);
    assert_eq!(
        metric(&server, "gridx_quarantines_total").await,
        2.0,
        "the worker and its owner"
    );
    let listed = admin(&server, &["--json", "worker", "list"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    let row = rows.iter().find(|r| r["worker_id"] == mallory.1).unwrap();
    assert!(row["quarantined"].is_string(), "{row}");

    // Quarantined: the next job goes to the others only.
    let id = server.submit_ok(&alice, "print(4)").await;
    for n in 1..=2 {
        let (w, job, attempt) = expect_assign(&mut fakes).await;
        assert!(w != 0, "the quarantined worker got job {job}");
        assert_eq!((job, attempt), (id, n));
        fakes[w].run_ok(job, attempt, "4\n").await;
    }
    server.wait_status(&alice, id, "succeeded", 5).await;

    // `worker restore` lifts it within a second or so (3 s allowed here, for a busy
    // machine): on probation again, every result checked.
    admin(&server, &["worker", "restore", &mallory_id]);
    let restored_after = wait_worker(&server, mallory, (&mut fakes, &[]), 3, "restored", |v| {
        v["reliability"]["quarantined"].is_null()
    })
    .await;
    let view = worker_view(&server, &alice, mallory.1).await;
    assert_eq!(view["reliability"]["streak"], 0, "{view}");
    assert_eq!(view["reliability"]["spot_check_permille"], 1000, "{view}");
    let id = server.submit_ok(&alice, "print(5)").await;
    let (w, job, attempt) = expect_assign(&mut fakes).await;
    assert_eq!(
        (w, job, attempt),
        (0, id, 1),
        "the restored worker takes jobs again"
    );

    // `worker trust`, while it holds that attempt: its result is taken as reported.
    admin(&server, &["worker", "trust", &mallory_id]);
    let held = [(
        0,
        JobAttempt {
            job_id: id,
            attempt: 1,
        },
    )];
    let trusted_after = wait_worker(&server, mallory, (&mut fakes, &held), 3, "trusted", |v| {
        v["reliability"]["trusted"] == true
    })
    .await;
    fakes[0].run_ok(id, 1, "5\n").await;
    let job = server.wait_status(&alice, id, "succeeded", 5).await;
    assert_eq!(job["validation"]["outcome"], "trusted_worker", "{job}");
    assert_eq!(job["worker_id"], mallory.1);
    // And `--off` takes the mark back.
    admin(&server, &["worker", "trust", "--off", &mallory_id]);
    wait_worker(&server, mallory, (&mut fakes, &[]), 3, "untrusted", |v| {
        v["reliability"]["trusted"] == false
    })
    .await;
    println!("restore took effect after {restored_after:?}, trust after {trusted_after:?}");
    server.assert_ledger_ok();
}

/// New workers of two owners, each holding its own first result while it waits for
/// the other's check: each must still be able to check the other's, or neither job
/// ever ends (a worker's allowance of unconfirmed results keeps one place for
/// checking others: a check counts only while leased).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_workers_that_each_wait_for_a_check_still_check_each_other() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    let mut workers = Vec::new();
    for name in ["bob", "carol"] {
        server.add_user(name, 0);
        let (_, token) = server.add_untrusted_worker(name);
        workers.push(FakeWorker::connect(&server, &token, 4).await);
    }
    let mut fakes: Vec<&mut FakeWorker> = workers.iter_mut().collect();
    let jobs = [
        server.submit_ok(&alice, "print(1)").await,
        server.submit_ok(&alice, "print(2)").await,
    ];
    // Both first runs go out, one to each (each may hold one unconfirmed result).
    let mut first = Vec::new();
    for _ in 0..2 {
        let (w, job, attempt) = expect_assign(&mut fakes).await;
        assert_eq!(attempt, 1);
        first.push((w, job));
    }
    assert_ne!(first[0].0, first[1].0, "one first run each: {first:?}");
    for (w, job) in &first {
        fakes[*w].run_ok(*job, 1, "same\n").await;
    }
    // Each checks the other's.
    for _ in 0..2 {
        let (w, job, attempt) = expect_assign(&mut fakes).await;
        assert_eq!(attempt, 2);
        assert!(first.contains(&(1 - w, job)), "{w} checks {job}: {first:?}");
        fakes[w].run_ok(job, 2, "same\n").await;
    }
    for job in jobs {
        let view = server.wait_status(&alice, job, "succeeded", 5).await;
        assert_eq!(view["validation"]["outcome"], "quorum", "{view}");
    }
    server.assert_ledger_ok();
}
