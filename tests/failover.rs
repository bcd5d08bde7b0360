//! Coordinators in failover on PostgreSQL (issue 16, docs/operations.md "Several
//! coordinators"): three `gridx-server serve --store postgres://…` processes, real
//! bubblewrap workers given all three addresses, and a load generator that also
//! knows all three.
//!
//! 1. The leader is killed (`kill -9`) five times under a 2,000-job load: each time
//!    another coordinator leads within the bound (5 s), and at the end every
//!    submission made exactly one job, each ran to success, and the ledger verifies.
//! 2. The leader is cut off from the database (a frozen relay, no FIN or RST): it
//!    stops serving and exits before the standby starts leading, with the next epoch,
//!    and what it left (a queued job) is intact.

use gridx_e2e::coordinators::Coordinators;
use gridx_e2e::record_figures;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The takeover bound the issue sets: a standby leads within 5 s of the leader's end.
const TAKEOVER_BOUND: Duration = Duration::from_secs(5);

#[derive(Default)]
struct LoadOutcome {
    /// job id -> the tag it was submitted with (its Idempotency-Key).
    acked: HashMap<u64, String>,
    /// Submits a standby refused, or whose coordinator could not be reached: sent on
    /// to the next address.
    moved_on: u64,
    /// Submits whose answer was lost, sent again with the same key.
    resent: u64,
}

/// Submits `count` jobs through `lanes` lanes, each job's tag as its Idempotency-Key,
/// moving to the next coordinator on a refused connection or a standby's 503, and
/// sending again (same key) when an answer was lost.
async fn load(urls: Vec<String>, token: String, count: usize, lanes: usize) -> LoadOutcome {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let work = Arc::new(Mutex::new((0..count).map(|i| format!("job-{i}"))));
    let outcome = Arc::new(Mutex::new(LoadOutcome::default()));
    let mut running = tokio::task::JoinSet::new();
    for lane in 0..lanes {
        let (http, urls, token, work, outcome) = (
            http.clone(),
            urls.clone(),
            token.clone(),
            work.clone(),
            outcome.clone(),
        );
        running.spawn(async move {
            let mut at = lane % urls.len();
            loop {
                let next = work.lock().map(|mut w| w.next()).unwrap_or(None);
                let Some(tag) = next else { return };
                loop {
                    let sent = http
                        .post(format!("{}/v1/jobs", urls[at]))
                        .bearer_auth(&token)
                        .header("Idempotency-Key", &tag)
                        .json(&json!({"language": "bash", "code": format!("echo {tag}")}))
                        .send()
                        .await;
                    let answer = match sent {
                        Ok(r) => Ok((r.status().as_u16(), r.text().await.unwrap_or_default())),
                        Err(e) => Err(e),
                    };
                    let done = {
                        let mut o = outcome.lock().unwrap_or_else(|p| p.into_inner());
                        match answer {
                            Ok((200 | 201, text)) => {
                                let job: Value = serde_json::from_str(&text).expect("job view");
                                o.acked
                                    .insert(job["job_id"].as_u64().expect("id"), tag.clone());
                                true
                            }
                            Ok((503, _)) => {
                                o.moved_on += 1;
                                false
                            }
                            Ok((status, body)) => panic!("submit {tag}: {status} {body}"),
                            Err(e) if e.is_connect() => {
                                o.moved_on += 1;
                                false
                            }
                            // Sent, but no answer: maybe stored. The key makes a resend safe.
                            Err(_) => {
                                o.resent += 1;
                                false
                            }
                        }
                    };
                    if done {
                        break;
                    }
                    at = (at + 1) % urls.len();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
    }
    while running.join_next().await.is_some() {}
    Arc::try_unwrap(outcome)
        .ok()
        .and_then(|m| m.into_inner().ok())
        .unwrap_or_default()
}

/// Every job of the user, read from whichever coordinator leads.
async fn all_jobs(c: &Coordinators, token: &str) -> Vec<Value> {
    let (leader, _) = c.wait_leader(None, 0, 10).await;
    let url = c.url(leader.0);
    let mut jobs = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let path = match before {
            Some(b) => format!("{url}/v1/jobs?limit=500&before={b}"),
            None => format!("{url}/v1/jobs?limit=500"),
        };
        let page: Value = c
            .http
            .get(path)
            .bearer_auth(token)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("page");
        jobs.extend(page["jobs"].as_array().cloned().unwrap_or_default());
        match page["next"].as_u64() {
            Some(next) => before = Some(next),
            None => return jobs,
        }
    }
}

async fn job(c: &Coordinators, token: &str, id: u64) -> Value {
    let (leader, _) = c.wait_leader(None, 0, 10).await;
    c.http
        .get(format!("{}/v1/jobs/{id}", c.url(leader.0)))
        .bearer_auth(token)
        .send()
        .await
        .expect("get job")
        .json()
        .await
        .expect("job")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_killed_five_times_under_load_loses_nothing() {
    const JOBS: usize = 2000;
    let Some(mut c) = Coordinators::new() else {
        return;
    };
    let alice = c.user("alice", &JOBS.to_string());
    c.user("bob", "0");
    for i in 0..3 {
        c.start(i, None).await;
    }
    let (mut leader, _) = c.wait_leader(None, 0, 20).await;
    for i in 0..3 {
        let name = format!("w{i}");
        let token = c.admin(&[
            "worker",
            "add",
            "--owner",
            "bob",
            "--name",
            &name,
            "--trusted",
        ]);
        let token = token.lines().last().unwrap_or_default().to_owned();
        c.start_worker(&name, &token, 4);
    }
    let started = Instant::now();
    let loader = tokio::spawn(load(c.urls(), alice.clone(), JOBS, 8));

    let mut takeovers = Vec::new();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for kill in 1..=5 {
        // Under load: a moment between 1 and 3 s after the last takeover.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(1000 + seed % 2000)).await;
        let (victim, epoch) = leader;
        c.kill(victim);
        let killed = Instant::now();
        let (next, seen) = c.wait_leader(Some(victim), epoch, 20).await;
        let took = seen - killed;
        assert!(
            took <= TAKEOVER_BOUND,
            "kill {kill}: coordinator {} led {took:?} after the leader's death (bound {TAKEOVER_BOUND:?})\n{}",
            next.0,
            c.logs()
        );
        assert!(next.1 > epoch, "the epoch grows at each takeover");
        takeovers.push(took);
        c.assert_ledger_verifies(&format!("after kill {kill}"));
        // The dead one comes back, as a standby, on its address.
        c.start(victim, None).await;
        leader = next;
    }
    let outcome = loader.await.expect("the load generator");

    // Every job settles.
    let deadline = Instant::now() + Duration::from_secs(600);
    let jobs = loop {
        let jobs = all_jobs(&c, &alice).await;
        let open = jobs
            .iter()
            .filter(|j| j["status"] == "queued" || j["status"] == "running")
            .count();
        if open == 0 {
            break jobs;
        }
        assert!(
            Instant::now() < deadline,
            "{open} jobs still open after 600 s\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let wall = started.elapsed();
    // Exactly one job per submission: none lost, none doubled by a resend.
    assert_eq!(jobs.len(), JOBS, "jobs stored");
    assert_eq!(outcome.acked.len(), JOBS, "submissions answered");
    for summary in &jobs {
        assert_eq!(summary["status"], "succeeded", "{summary}");
    }
    // Each ran its own code: read a sample of outputs (all would take minutes).
    let mut seen = HashSet::new();
    for summary in jobs.iter().step_by(40) {
        let id = summary["job_id"].as_u64().expect("id");
        let view = job(&c, &alice, id).await;
        let tag = view["stdout"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_owned();
        assert_eq!(outcome.acked.get(&id), Some(&tag), "job {id}: {view}");
        assert!(seen.insert(tag));
    }
    c.assert_ledger_verifies("after the load");
    let ms: Vec<u128> = takeovers.iter().map(Duration::as_millis).collect();
    record_figures(&format!(
        "FIGURES failover kills=5 takeover_ms={ms:?} max_ms={} bound_ms={} jobs={} moved_on={} resent={} wall_s={:.1}",
        ms.iter().max().copied().unwrap_or(0),
        TAKEOVER_BOUND.as_millis(),
        jobs.len(),
        outcome.moved_on,
        outcome.resent,
        wall.as_secs_f64()
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_database_stops_before_another_leads() {
    let Some(mut c) = Coordinators::new() else {
        return;
    };
    let alice = c.user("alice", "10");
    let (relay, through_relay) = c.relay_to_database();
    c.start(0, Some(through_relay)).await;
    let ((first, epoch), _) = c.wait_leader(None, 0, 20).await;
    assert_eq!(first, 0);
    c.start(1, None).await;
    // A job the first leader stores (no worker: it stays queued).
    let stored: Value = c
        .http
        .post(format!("{}/v1/jobs", c.url(0)))
        .bearer_auth(&alice)
        .json(&json!({"language": "bash", "code": "echo kept"}))
        .send()
        .await
        .expect("submit")
        .json()
        .await
        .expect("job");
    let id = stored["job_id"].as_u64().expect("id");

    relay.cut();
    let cut = Instant::now();
    // The first leader must stop (exit) before the standby leads.
    let mut stopped = None;
    let mut led = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while stopped.is_none() || led.is_none() {
        assert!(
            Instant::now() < deadline,
            "after the cut: stopped {stopped:?}, led {led:?}\n{}",
            c.logs()
        );
        // Stopped acting as leader: it answers as a standby, or its port is closed
        // (it exited). A slow answer says nothing (its leader's /healthz reads the
        // database it was cut off from), so it does not count.
        if stopped.is_none() {
            let asked = c
                .http
                .get(format!("{}/healthz", c.url(0)))
                .timeout(Duration::from_millis(300))
                .send()
                .await;
            let answered_as_standby = match asked {
                Ok(r) => {
                    r.status() == 503 && r.text().await.unwrap_or_default().contains("standby")
                }
                Err(e) => e.is_connect(),
            };
            if answered_as_standby {
                stopped = Some(cut.elapsed());
            }
        }
        if led.is_none()
            && let Some((200, body)) = c.health(1).await
            && body["role"] == "leader"
        {
            led = Some((cut.elapsed(), body["epoch"].as_i64().unwrap_or(0)));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (stopped, (led, new_epoch)) = (stopped.unwrap_or_default(), led.unwrap_or_default());
    assert!(
        stopped < led,
        "the cut-off leader stopped {stopped:?} after the cut, the standby led at {led:?}\n{}",
        c.logs()
    );
    assert_eq!(
        new_epoch,
        epoch + 1,
        "the standby leads with the next epoch"
    );
    // And it exits, with an error, for its service manager to restart it as a standby.
    let exited = loop {
        if let Some(child) = c.coordinators[0].child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the deposed leader never exited\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!exited.success(), "a deposed leader exits with an error");
    let log = c.log_of("c0");
    assert!(
        log.contains(&format!("lost the leadership (epoch {epoch})")),
        "the deposed leader says why it stopped:\n{log}"
    );
    // What the first leader stored is the new leader's, unchanged.
    let view = job(&c, &alice, id).await;
    assert_eq!(view["status"], "queued", "{view}");
    c.assert_ledger_verifies("after the takeover");
    relay.heal();
    record_figures(&format!(
        "FIGURES failover cut_off epoch={epoch} stopped_ms={} new_epoch={new_epoch} led_ms={}",
        stopped.as_millis(),
        led.as_millis()
    ));
}
