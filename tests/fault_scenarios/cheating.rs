//! Result checks under attack (docs/trust.md): honest workers of several owners, all
//! on probation, and workers that lie about results (`gridx_e2e::cheater`). Users
//! must get only honest results, cheaters earn nothing and are quarantined within a
//! stated number of jobs, one owner's workers never confirm each other, and a worker
//! that turns to cheating after an honest start is caught by spot checks within the
//! delay the policy predicts. The ledger verifies after each.

use super::REWARD;
use gridx_e2e::cheater::{Answer, Cheater};
use gridx_e2e::cluster::Cluster;
use gridx_e2e::record_figures;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// What every cheater prints instead of running the job. Two cheaters of one owner
/// print the same, so only the rule on owners keeps them from agreeing.
const FAKE: &str = "42\n";

/// The quarantine threshold of the default policy (`quarantine_after`).
const QUARANTINE_AFTER: usize = 2;

/// The most jobs one cheater runs before its quarantine in scenario 7: its own first
/// run and the second strike's, and the checks of the two honest workers' first runs
/// open meanwhile (at most 2 each: one waiting and one being checked after it).
const CHEATER_JOBS_BOUND: usize = 6;

/// Job `i`: a deterministic one-liner whose honest answer differs from [`FAKE`].
fn arithmetic_job(i: usize) -> (Value, String) {
    (
        json!({"language": "bash", "code": format!("echo check-{i} $(({i}*7))")}),
        format!("check-{i} {}\n", i * 7),
    )
}

/// Submits `count` arithmetic jobs as `token`; each job id with its honest stdout.
async fn submit_arithmetic(
    c: &Cluster,
    token: &str,
    from: usize,
    count: usize,
) -> HashMap<u64, String> {
    let mut honest = HashMap::new();
    for i in from..from + count {
        let (body, answer) = arithmetic_job(i);
        let job = c
            .submit(token, &body)
            .await
            .unwrap_or_else(|e| panic!("submit job {i}: {e:?}"));
        honest.insert(job["job_id"].as_u64().expect("job id"), answer);
    }
    honest
}

/// Honest workers of `owners` (users with no credits, each one worker of 2 slots on
/// probation): each owner's token.
async fn honest_workers(c: &mut Cluster, owners: &[&str]) -> HashMap<String, String> {
    let mut tokens = HashMap::new();
    for owner in owners {
        tokens.insert((*owner).to_owned(), c.user(owner, "0"));
        c.add_untrusted_worker(owner, 2).await;
    }
    tokens
}

/// A cheater of `owner`, registered through the admin command and connected.
async fn cheater(c: &Cluster, owner: &str, name: &str, honest_jobs: usize) -> Cheater {
    let token = c.untrusted_worker_token(owner, name);
    Cheater::sleeper(&c.url(), &token, FAKE, honest_jobs).await
}

/// Each worker's owner, as the coordinator lists them.
async fn owner_of_workers(c: &Cluster) -> HashMap<u64, String> {
    c.workers_view()
        .await
        .expect("list workers")
        .iter()
        .filter_map(|w| Some((w["worker_id"].as_u64()?, w["owner"].as_str()?.to_owned())))
        .collect()
}

/// `gridx-server worker list --json`, by worker id.
fn worker_records(c: &Cluster) -> HashMap<u64, Value> {
    let out = c.admin(&["--json", "worker", "list"]);
    let rows: Vec<Value> = serde_json::from_str(&out).expect("worker list --json");
    rows.into_iter()
        .filter_map(|r| Some((r["worker_id"].as_u64()?, r)))
        .collect()
}

fn replicas(job: &Value) -> Vec<Value> {
    job["validation"]["replicas"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// What each owner earned by the rules of docs/trust.md: an accepted job's reward is
/// shared in equal milli-credit shares by the owners of its `valid` replicas and,
/// when the accepted result was not itself a replica (a result taken without a
/// check), the owner of the worker that reported it. A job that ended without an
/// accepted result pays nobody.
fn expected_earnings(jobs: &[Value], owner_of: &HashMap<u64, String>) -> HashMap<String, i64> {
    let mut earned: HashMap<String, i64> = HashMap::new();
    for job in jobs {
        if !matches!(job["status"].as_str(), Some("succeeded" | "failed")) {
            continue;
        }
        let reps = replicas(job);
        let mut paid: Vec<String> = reps
            .iter()
            .filter(|r| r["verdict"] == "valid")
            .filter_map(|r| r["owner"].as_str().map(str::to_owned))
            .collect();
        let last = job["attempts"].as_u64();
        if !reps.iter().any(|r| r["attempt"].as_u64() == last) {
            let worker = job["worker_id"].as_u64().expect("an ended job's worker");
            paid.push(owner_of[&worker].clone());
        }
        let share = REWARD / paid.len() as i64;
        for owner in paid {
            *earned.entry(owner).or_insert(0) += share;
        }
    }
    earned
}

/// Every job succeeded with its honest stdout: no user got a lie.
fn assert_only_honest_results(jobs: &[Value], honest: &HashMap<u64, String>) {
    assert_eq!(jobs.len(), honest.len(), "job count");
    for job in jobs {
        let id = job["job_id"].as_u64().expect("job id");
        assert_eq!(
            (job["status"].as_str(), job["stdout"].as_str()),
            (Some("succeeded"), Some(honest[&id].as_str())),
            "job {id} was not given its honest result: {job}"
        );
    }
}

/// Every owner holds exactly what [`expected_earnings`] says (owners start at 0).
async fn assert_earnings(
    c: &Cluster,
    owners: &HashMap<String, String>,
    jobs: &[Value],
) -> HashMap<String, i64> {
    let expected = expected_earnings(jobs, &owner_of_workers(c).await);
    for (owner, token) in owners {
        assert_eq!(
            c.balance_millis(token).await,
            expected.get(owner).copied().unwrap_or(0),
            "{owner}'s earnings"
        );
    }
    expected
}

/// Polls until worker `id` is quarantined; its reason.
async fn wait_quarantined(c: &Cluster, id: u64, secs: u64) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let views = c.workers_view().await.expect("list workers");
        if let Some(reason) = views
            .iter()
            .find(|w| w["worker_id"] == id)
            .and_then(|w| w["reliability"]["quarantined"].as_str())
        {
            return reason.to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "worker {id} was never quarantined: {views:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Jobs whose check involved worker `id` (a replica of it), and jobs it settled.
fn jobs_touched_by(jobs: &[Value], id: u64) -> (usize, usize) {
    let replicated = jobs
        .iter()
        .filter(|j| replicas(j).iter().any(|r| r["worker_id"] == id))
        .count();
    let settled = jobs.iter().filter(|j| j["worker_id"] == id).count();
    (replicated, settled)
}

/// What became of one answer of a cheater: caught by a replica (and its verdict),
/// or accepted without a check.
#[derive(Debug, PartialEq, Eq)]
enum Fate {
    Replica(String),
    AcceptedUnchecked,
}

fn fate(jobs: &HashMap<u64, Value>, cheater: u64, answer: &Answer) -> Fate {
    let job = &jobs[&answer.job_id];
    if let Some(r) = replicas(job)
        .iter()
        .find(|r| r["attempt"] == answer.attempt && r["worker_id"] == cheater)
    {
        return Fate::Replica(r["verdict"].as_str().unwrap_or_default().to_owned());
    }
    assert!(
        job["worker_id"] == cheater && job["attempts"] == answer.attempt,
        "answer {answer:?} is neither a replica nor the accepted result: {job}"
    );
    assert_eq!(job["validation"]["outcome"], "not_spot_checked", "{job}");
    Fate::AcceptedUnchecked
}

/// Scenario 7: one cheater (instant fake output, 1,024 slots) among honest workers of
/// two other owners, all on probation; 20 jobs.
///
/// Expected, from the default policy: every result of a worker on probation is
/// checked, each lie is outvoted by the two honest owners (a strike), and
/// `quarantine_after` = 2 strikes quarantine it. A new worker holds at most 1 + streak
/// = 1 first run whose result is unconfirmed; checks of others' results it may take
/// one at a time (docs/trust.md: they are compared anyway). So it runs at most 2 +
/// the checks it takes before its second verdict: with two honest workers on
/// probation each offering at most one unconfirmed first run at a time, at most
/// [`CHEATER_JOBS_BOUND`] jobs.
pub async fn a_cheater_among_honest_workers_earns_nothing_and_is_quarantined(mut c: Cluster) {
    let alice = c.user("alice", "20");
    let mut owners = honest_workers(&mut c, &["honest1", "honest2"]).await;
    owners.insert("mallory".into(), c.user("mallory", "0"));
    let cheat = cheater(&c, "mallory", "cheater", 0).await;
    let honest = submit_arithmetic(&c, &alice, 0, 20).await;
    c.wait_all_settled(&[&alice], 600).await;
    let reason = wait_quarantined(&c, cheat.worker_id, 10).await;

    let jobs = c.all_jobs_with_output(&alice).await;
    assert_only_honest_results(&jobs, &honest);
    let (replicated, settled) = jobs_touched_by(&jobs, cheat.worker_id);
    assert_eq!(settled, 0, "no job was settled by the cheater");
    assert!(
        (QUARANTINE_AFTER..=CHEATER_JOBS_BOUND).contains(&replicated),
        "the cheater ran {replicated} jobs; quarantine_after = 2 strikes quarantine it \
         within {CHEATER_JOBS_BOUND}"
    );
    assert_eq!(cheat.answers().len(), replicated, "{:?}", cheat.answers());
    for job in &jobs {
        for r in replicas(job) {
            if r["worker_id"] == cheat.worker_id {
                assert_eq!(r["verdict"], "invalid", "{job}");
            }
        }
    }
    let earned = assert_earnings(&c, &owners, &jobs).await;
    assert_eq!(
        c.balance_millis(&owners["mallory"]).await,
        0,
        "the cheater earned nothing"
    );
    assert_eq!(
        c.balance_millis(&alice).await,
        0,
        "20 jobs at 1 credit, none refunded"
    );
    let record = &worker_records(&c)[&cheat.worker_id];
    assert_eq!(
        (record["invalid"].as_u64(), record["validated"].as_u64()),
        (Some(replicated as u64), Some(0)),
        "{record}"
    );
    assert!(!record["quarantined"].is_null(), "{record}");
    assert!(c.metric("gridx_quarantines_total").await >= 1.0);
    assert!(
        c.metric("gridx_replica_verdicts_total{status=\"invalid\"}")
            .await
            >= 2.0
    );
    c.assert_ledger_verifies("after a cheater was quarantined");
    record_figures(&format!(
        "FIGURES scenario=7 kind={:?} jobs=20 cheater_jobs={replicated} quarantined=\"{reason}\" earned={earned:?}",
        c.kind
    ));
}

/// Scenario 8: two cheaters under one owner, both printing the same lie, among
/// honest workers of two other owners; 20 jobs, then 5 more after the owner's
/// quarantine with a third token of the same owner online.
///
/// A job's replicas come from distinct owners, so the two never confirm each other;
/// strikes count on the owner too, so its second invalid result quarantines the
/// owner, every worker of it, and any new one. Each cheater holds at most one
/// unconfirmed first run and takes checks one at a time, so the owner runs at most
/// twice scenario 7's bound.
pub async fn two_cheaters_of_one_owner_cannot_confirm_each_other(mut c: Cluster) {
    let alice = c.user("alice", "25");
    let mut owners = honest_workers(&mut c, &["honest1", "honest2"]).await;
    owners.insert("mallory".into(), c.user("mallory", "0"));
    let first = cheater(&c, "mallory", "cheater-a", 0).await;
    let second = cheater(&c, "mallory", "cheater-b", 0).await;
    let mut honest = submit_arithmetic(&c, &alice, 0, 20).await;
    c.wait_all_settled(&[&alice], 600).await;
    for id in [first.worker_id, second.worker_id] {
        wait_quarantined(&c, id, 10).await;
    }
    // A new token of the quarantined owner gets nothing either.
    let third = cheater(&c, "mallory", "cheater-c", 0).await;
    let third_reason = wait_quarantined(&c, third.worker_id, 10).await;
    assert!(third_reason.contains("mallory"), "{third_reason}");
    honest.extend(submit_arithmetic(&c, &alice, 20, 5).await);
    c.wait_all_settled(&[&alice], 300).await;
    assert!(third.answers().is_empty(), "{:?}", third.answers());

    let jobs = c.all_jobs_with_output(&alice).await;
    assert_only_honest_results(&jobs, &honest);
    let cheaters: HashSet<u64> = [first.worker_id, second.worker_id, third.worker_id].into();
    let mut mallory_jobs = 0;
    for job in &jobs {
        let reps = replicas(job);
        let owners_of_replicas: Vec<&str> =
            reps.iter().filter_map(|r| r["owner"].as_str()).collect();
        let distinct: HashSet<&str> = owners_of_replicas.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            owners_of_replicas.len(),
            "a replica came from an owner already in the job's replicas: {job}"
        );
        for r in &reps {
            if r["owner"] == "mallory" {
                mallory_jobs += 1;
                assert_eq!(r["verdict"], "invalid", "{job}");
            }
        }
        let settler = job["worker_id"].as_u64().expect("worker");
        assert!(!cheaters.contains(&settler), "a cheater settled {job}");
    }
    assert!(
        (QUARANTINE_AFTER..=2 * CHEATER_JOBS_BOUND).contains(&mallory_jobs),
        "mallory's workers ran {mallory_jobs} jobs before the owner's quarantine"
    );
    assert_eq!(
        first.answers().len() + second.answers().len(),
        mallory_jobs,
        "every lie is on record as a replica"
    );
    assert_earnings(&c, &owners, &jobs).await;
    assert_eq!(c.balance_millis(&owners["mallory"]).await, 0);
    assert_eq!(c.balance_millis(&alice).await, 0);
    let records = worker_records(&c);
    for id in &cheaters {
        let q = records[id]["quarantined"].as_str().unwrap_or_default();
        assert!(!q.is_empty(), "worker {id} quarantined: {}", records[id]);
    }
    c.assert_ledger_verifies("after two cheaters of one owner");
    record_figures(&format!(
        "FIGURES scenario=8 kind={:?} jobs=25 cheater_jobs={mallory_jobs} per_cheater=[{}, {}, {}]",
        c.kind,
        first.answers().len(),
        second.answers().len(),
        third.answers().len()
    ));
}

/// The policy of the sleeper scenarios: probation ends after 2 confirmed results and
/// the spot-check floor is 500‰, so the numbers stay small.
pub const SLEEPER_POLICY: &str = "\
[server.validation]
probation = 2
min_spot_check_permille = 500
";

/// Runs `jobs` arithmetic jobs with a sleeper honest for its first `honest_jobs`
/// answers among honest workers of two owners; returns what the scenario checks
/// further: the sleeper's lies in order with their fates, and how many results
/// users got that were lies (all of them the sleeper's, accepted unchecked).
async fn run_sleeper(c: &mut Cluster, honest_jobs: usize, jobs: usize) -> (Vec<Fate>, usize) {
    let alice = c.user("alice", &jobs.to_string());
    let mut owners = honest_workers(c, &["honest1", "honest2"]).await;
    owners.insert("sleepy".into(), c.user("sleepy", "0"));
    let sleeper = cheater(c, "sleepy", "sleeper", honest_jobs).await;
    let honest = submit_arithmetic(c, &alice, 0, jobs).await;
    c.wait_all_settled(&[&alice], 900).await;
    wait_quarantined(c, sleeper.worker_id, 10).await;

    let views = c.all_jobs_with_output(&alice).await;
    let by_id: HashMap<u64, Value> = views
        .iter()
        .map(|j| (j["job_id"].as_u64().expect("id"), j.clone()))
        .collect();
    // Its honest answers were honest, and confirmed where checked.
    let answers = sleeper.answers();
    assert_eq!(
        answers.iter().filter(|a| a.honest).count(),
        honest_jobs,
        "{answers:?}"
    );
    for a in answers.iter().filter(|a| a.honest) {
        let f = fate(&by_id, sleeper.worker_id, a);
        assert!(
            matches!(&f, Fate::AcceptedUnchecked) || f == Fate::Replica("valid".into()),
            "honest answer {a:?}: {f:?}"
        );
    }
    let fates: Vec<Fate> = sleeper
        .lies()
        .iter()
        .map(|a| fate(&by_id, sleeper.worker_id, a))
        .collect();
    for f in &fates {
        assert!(
            matches!(f, Fate::AcceptedUnchecked) || *f == Fate::Replica("invalid".into()),
            "a lie is accepted unchecked or judged invalid: {f:?}"
        );
    }
    // Users got the honest result of every job but the sleeper's unchecked lies.
    let mut lies_accepted = 0;
    for job in &views {
        let id = job["job_id"].as_u64().expect("id");
        assert_eq!(job["status"], "succeeded", "{job}");
        if job["stdout"].as_str() != Some(honest[&id].as_str()) {
            assert_eq!(
                (job["stdout"].as_str(), job["worker_id"].as_u64()),
                (Some(FAKE), Some(sleeper.worker_id)),
                "{job}"
            );
            lies_accepted += 1;
        }
    }
    assert_eq!(
        lies_accepted,
        fates
            .iter()
            .filter(|f| **f == Fate::AcceptedUnchecked)
            .count()
    );
    assert_earnings(c, &owners, &views).await;
    assert_eq!(c.balance_millis(&alice).await, 0);
    c.assert_ledger_verifies("after the sleeper");
    (fates, lies_accepted)
}

/// Lies accepted before the first one a replica checked (the detection delay).
fn detection_delay(fates: &[Fate]) -> usize {
    fates
        .iter()
        .position(|f| matches!(f, Fate::Replica(_)))
        .unwrap_or_else(|| panic!("no lie was ever checked: {fates:?}"))
}

/// Scenario 9: a sleeper honest for its first job (fewer than `probation` = 2), then
/// lying.
///
/// Expected: while its streak is below probation every result is checked (rate
/// 1000‰), and one honest job gives a streak of at most 1, so its first lie is
/// checked (a lie that checks another's result is always compared): detection delay
/// 0 lies, deterministic, and no user ever gets a lie. Its next lies (streak 0 after
/// the first strike) are checked too, and the second quarantines it.
pub async fn a_sleeper_still_on_probation_is_caught_at_its_first_lie(mut c: Cluster) {
    let (fates, lies_accepted) = run_sleeper(&mut c, 1, 20).await;
    assert_eq!(detection_delay(&fates), 0, "{fates:?}");
    assert_eq!(lies_accepted, 0, "no user got a lie");
    assert!(
        fates.len() >= QUARANTINE_AFTER
            && fates.iter().all(|f| *f == Fate::Replica("invalid".into())),
        "every lie checked and judged invalid: {fates:?}"
    );
    record_figures(&format!(
        "FIGURES scenario=9 kind={:?} honest_first=1 lies={} detection_delay_lies=0 lies_accepted=0",
        c.kind,
        fates.len()
    ));
}

/// Scenario 10: a sleeper honest for its first 8 jobs (past probation = 2), then
/// lying.
///
/// Expected: past probation a result that is its job's first is checked at rate
/// max(floor, probation / streak) >= 500‰ here (a result checking another's is
/// always compared), drawn by the coordinator per result. So the lies accepted
/// before the first checked one are geometric with p >= 1/2: expected delay <= 1
/// lie, and more than 20 has probability <= 2^-20 (the bound asserted). (With the
/// default policy, a sleeper that waited for a streak of 200 meets the 50‰ floor:
/// expected delay 19 lies.) After the first strike its streak is 0, so its next lie
/// is checked and quarantines it; lies handed out before that verdict may still pass
/// unchecked, so `lies_accepted` can exceed the delay.
pub async fn a_sleeper_past_probation_is_caught_by_spot_checks(mut c: Cluster) {
    let (fates, lies_accepted) = run_sleeper(&mut c, 8, 60).await;
    let delay = detection_delay(&fates);
    assert!(
        delay <= 20,
        "caught within 20 lies (failure odds 2^-20): {fates:?}"
    );
    let invalid = fates
        .iter()
        .filter(|f| matches!(f, Fate::Replica(_)))
        .count();
    assert!(invalid >= QUARANTINE_AFTER, "{fates:?}");
    record_figures(&format!(
        "FIGURES scenario=10 kind={:?} honest_first=8 lies={} detection_delay_lies={delay} lies_checked={invalid} lies_accepted={lies_accepted}",
        c.kind,
        fates.len()
    ));
}
