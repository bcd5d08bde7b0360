//! The details' result check in the reducer: fetched with the job's view when the
//! details open, asked again when the job moves on, dropped when they close.

use super::fixtures::{client_state, job, waiting_for_quorum};
use super::reducer_tests::view_with_output;
use super::state::{CheckState, Effect, JobCheck, Msg, Overlay};
use crate::client::live::LiveEvent;
use gridx_proto::events::ServerEvent;
use gridx_proto::{JobId, JobStatus, Language};

fn live_job(id: u64, status: JobStatus) -> Msg {
    let job = job(id, "bob", Language::Python, status);
    Msg::Live(LiveEvent::Event(Box::new(ServerEvent::Job { job })))
}

#[test]
fn a_queued_jobs_details_show_why_it_waits_and_ask_again_when_it_moves_on() {
    let mut s = client_state();
    // Job 1 is queued: no output to fetch, but its view says why it waits.
    s.overlay = Overlay::Detail(JobId(1));
    assert_eq!(s.update(Msg::Resize).0, vec![Effect::FetchOutput(JobId(1))]);
    assert_eq!(
        s.checks.get(&JobId(1)).map(|c| &c.state),
        Some(&CheckState::Loading)
    );
    assert!(s.outputs.is_empty(), "a live job has no output to load");
    assert!(s.update(Msg::Resize).0.is_empty(), "one fetch at a time");
    let mut view = view_with_output(1, JobStatus::Queued, "");
    view.validation = waiting_for_quorum();
    s.update(Msg::Output {
        job_id: JobId(1),
        result: Ok(Box::new(view)),
    });
    let loaded = JobCheck {
        as_of: JobStatus::Queued,
        state: CheckState::Loaded(waiting_for_quorum()),
    };
    assert_eq!(s.checks.get(&JobId(1)), Some(&loaded));
    assert!(
        s.outputs.is_empty(),
        "its empty output is not taken as final"
    );
    assert!(s.update(Msg::Resize).0.is_empty());
    // It starts: what held it may have changed, so the view is asked again, and
    // its output is followed.
    let (effects, _) = s.update(live_job(1, JobStatus::Running));
    assert_eq!(
        effects,
        vec![
            Effect::Follow(Some(JobId(1)), 1),
            Effect::FetchOutput(JobId(1))
        ]
    );
    // Closed: the check goes with the details.
    s.overlay = Overlay::None;
    s.update(Msg::Resize);
    assert!(s.checks.is_empty());
}

#[test]
fn a_late_answer_from_while_the_job_ran_does_not_revive_it() {
    let mut s = client_state();
    s.overlay = Overlay::Detail(JobId(2));
    s.update(Msg::Resize);
    // The job ends before the answer to the first fetch comes.
    let (effects, _) = s.update(live_job(2, JobStatus::Succeeded));
    assert_eq!(
        effects,
        vec![Effect::Follow(None, 2), Effect::FetchOutput(JobId(2))]
    );
    s.update(Msg::Output {
        job_id: JobId(2),
        result: Ok(Box::new(view_with_output(2, JobStatus::Running, ""))),
    });
    assert_eq!(s.jobs[&JobId(2)].status, JobStatus::Succeeded);
    s.update(Msg::Output {
        job_id: JobId(2),
        result: Ok(Box::new(view_with_output(2, JobStatus::Succeeded, "hi\n"))),
    });
    assert!(matches!(
        s.checks.get(&JobId(2)),
        Some(JobCheck {
            as_of: JobStatus::Succeeded,
            state: CheckState::Loaded(_)
        })
    ));
    assert!(s.update(Msg::Resize).0.is_empty(), "nothing left to ask");
}

#[test]
fn a_failed_fetch_says_so_without_asking_again_and_again() {
    let mut s = client_state();
    s.overlay = Overlay::Detail(JobId(1));
    s.update(Msg::Resize);
    s.update(Msg::Output {
        job_id: JobId(1),
        result: Err("cannot reach the coordinator".into()),
    });
    assert_eq!(
        s.checks.get(&JobId(1)).map(|c| &c.state),
        Some(&CheckState::Failed(
            "could not load the check: cannot reach the coordinator".into()
        ))
    );
    assert!(s.outputs.is_empty());
    assert!(s.update(Msg::Resize).0.is_empty(), "no retry loop");
}

#[test]
fn a_worker_host_fetches_no_check() {
    let mut s = super::fixtures::worker_state(gridx_proto::protocol::ExecutorKind::Docker);
    s.overlay = Overlay::Detail(JobId(42));
    assert!(s.update(Msg::Resize).0.is_empty());
    assert!(s.checks.is_empty());
}

#[test]
fn a_gpu_jobs_wait_for_gpus_shows_in_the_same_line_as_a_wait_for_checks() {
    let mut s = client_state();
    s.overlay = Overlay::Detail(JobId(1));
    let _ = s.update(Msg::Resize);
    let mut view = view_with_output(1, JobStatus::Queued, "");
    view.gpus = 2;
    view.waiting = Some("it asks for 2 GPUs, and no online worker lends that many".into());
    s.update(Msg::Output {
        job_id: JobId(1),
        result: Ok(Box::new(view.clone())),
    });
    let waiting = |s: &super::state::AppState| match s.checks.get(&JobId(1)).map(|c| &c.state) {
        Some(CheckState::Loaded(v)) => v.waiting.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        waiting(&s).as_deref(),
        Some("it asks for 2 GPUs, and no online worker lends that many")
    );
    view.validation = waiting_for_quorum();
    s.update(Msg::Output {
        job_id: JobId(1),
        result: Ok(Box::new(view)),
    });
    let both = waiting(&s).unwrap_or_default();
    assert!(
        both.starts_with("it asks for 2 GPUs") && both.contains("; and waiting for a quorum"),
        "{both}"
    );
}
