//! GPU jobs over real WebSockets with fake GPU inventories (docs/jobs.md, "GPU
//! jobs"): a job that asks for GPUs goes only to a worker lending free matching ones,
//! is named the devices it gets, waits (saying why) when none has them, costs
//! `job_cost + gpus × gpu_cost`, and keeps its devices across a coordinator restart.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

mod support;

use gridx_proto::gpu::GpuDevice;
use gridx_proto::protocol::{AssignedJob, Capabilities, CoordinatorMessage, JobAttempt};
use gridx_proto::{Credits, JobId};
use serde_json::json;
use std::time::Duration;
use support::{FakeWorker, TestServer, capabilities};

fn lending(devices: &[(u32, u64)]) -> Capabilities {
    Capabilities {
        gpus: devices.len() as u32,
        gpu_devices: devices
            .iter()
            .map(|(index, memory_mb)| GpuDevice {
                index: *index,
                name: format!("Fake GPU {index}"),
                memory_mb: *memory_mb,
            })
            .collect(),
        ..capabilities(4)
    }
}

/// The next `assign` within `ms`, if any (a heartbeat first keeps the lease).
async fn assignment(worker: &mut FakeWorker, ms: u64) -> Option<(AssignedJob, u32)> {
    assignment_running(worker, ms, vec![]).await
}

/// [`assignment`] by a worker whose heartbeat reports `running`.
async fn assignment_running(
    worker: &mut FakeWorker,
    ms: u64,
    running: Vec<JobAttempt>,
) -> Option<(AssignedJob, u32)> {
    worker.heartbeat(running).await;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
    loop {
        match worker.recv_until(deadline).await? {
            CoordinatorMessage::Assign { job, attempt } => return Some((job, attempt)),
            _ => continue,
        }
    }
}

async fn submit_gpu_job(server: &TestServer, token: &str, body: serde_json::Value) -> JobId {
    let response = server.submit(token, body).await;
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    let job: serde_json::Value = response.json().await.unwrap();
    JobId(job["job_id"].as_u64().unwrap())
}

#[tokio::test]
async fn gpu_jobs_go_to_free_matching_gpus_and_are_priced_per_gpu() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 100);
    server.add_user("bob", 0);
    let (_, bob_token) = server.add_worker("bob");
    server.add_user("carol", 0);
    let (carol_worker, carol_token) = server.add_worker("carol");
    // Bob lends none; carol a small and a large GPU.
    let mut cpu = FakeWorker::connect(&server, &bob_token, 4).await;
    let mut gpu = FakeWorker::connect_claiming(
        &server,
        &carol_token,
        vec![],
        lending(&[(0, 16_000), (3, 80_000)]),
    )
    .await
    .unwrap();

    let big = json!({"language": "python", "code": "print(1)", "gpus": 1, "gpu_memory_mb": 40000});
    let first = submit_gpu_job(&server, &alice, big.clone()).await;
    let (job, attempt) = assignment(&mut gpu, 5_000)
        .await
        .expect("the GPU worker gets it");
    assert_eq!(job.job_id, first);
    assert_eq!(job.gpus, vec![3], "the only GPU with 40000 MB");
    assert_eq!((job.spec.gpus, job.spec.gpu_memory_mb), (1, Some(40_000)));
    // The GPU worker's heartbeats report what it runs, so its leases hold.
    let mut held = vec![JobAttempt {
        job_id: first,
        attempt,
    }];
    assert!(
        assignment(&mut cpu, 300).await.is_none(),
        "a worker lending no GPU gets no GPU job"
    );
    // Priced job_cost + 1 × gpu_cost (defaults 1 and 4), held at submit.
    let view = server.job(&alice, first).await;
    assert_eq!(view["cost"], json!(5));
    assert_eq!(view["gpu_indices"], json!([3]));
    assert_eq!(server.balance(&alice).await, Credits::from_whole(95));

    // The worker list says which job holds which GPU.
    let (_, workers) = server.get_json(&alice, "/v1/workers").await;
    let carol = workers["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["worker_id"] == carol_worker.0)
        .unwrap()
        .clone();
    assert_eq!(carol["gpus"][0]["index"], 0);
    assert!(carol["gpus"][0].get("job_id").is_none(), "{carol}");
    assert_eq!(carol["gpus"][1]["job_id"], first.0);

    // A second big job waits for the busy GPU, and says so; the small GPU is no use.
    let second = submit_gpu_job(&server, &alice, big).await;
    assert!(
        assignment_running(&mut gpu, 300, held.clone())
            .await
            .is_none()
    );
    let waiting = server.job(&alice, second).await;
    let why = waiting["waiting"].as_str().unwrap_or_default().to_owned();
    assert!(why.contains("using them"), "{waiting}");
    // A job asking for any GPU takes the free small one meanwhile; a CPU job goes
    // to whichever worker, and never gets a GPU.
    let small = submit_gpu_job(
        &server,
        &alice,
        json!({"language": "python", "code": "print(2)", "gpus": 1}),
    )
    .await;
    let (job, small_attempt) = assignment_running(&mut gpu, 5_000, held.clone())
        .await
        .unwrap();
    assert_eq!((job.job_id, job.gpus.clone()), (small, vec![0]));
    held.push(JobAttempt {
        job_id: small,
        attempt: small_attempt,
    });
    let plain = server.submit_ok(&alice, "print(3)").await;
    let (job, _) = match assignment(&mut cpu, 3_000).await {
        Some(a) => a,
        None => assignment_running(&mut gpu, 3_000, held.clone())
            .await
            .unwrap(),
    };
    assert_eq!(job.job_id, plain);
    assert!(job.gpus.is_empty() && job.spec.gpus == 0);

    // The big GPU frees: the waiting job gets it.
    gpu.run_ok(first, attempt, "1\n").await;
    held.remove(0);
    let (job, _) = assignment_running(&mut gpu, 5_000, held).await.unwrap();
    assert_eq!((job.job_id, job.gpus), (second, vec![3]));
    server.wait_status(&alice, first, "succeeded", 5).await;
    server.assert_ledger_ok();
}

#[tokio::test]
async fn a_gpu_job_no_worker_can_take_waits_and_says_why() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 100);
    server.add_user("bob", 0);
    let (_, bob_token) = server.add_worker("bob");
    let mut cpu = FakeWorker::connect(&server, &bob_token, 4).await;
    let id = submit_gpu_job(
        &server,
        &alice,
        json!({"language": "python", "code": "print(1)", "gpus": 2}),
    )
    .await;
    assert!(assignment(&mut cpu, 500).await.is_none());
    let view = server.job(&alice, id).await;
    assert_eq!(view["status"], "queued");
    let why = view["waiting"].as_str().unwrap();
    assert!(
        why.contains("2 GPUs") && why.contains("no online worker that runs python lends"),
        "{why}"
    );
    // A worker lending one GPU is not enough; one lending two is.
    server.add_user("carol", 0);
    let (_, one_token) = server.add_worker("carol");
    let mut one = FakeWorker::connect_claiming(&server, &one_token, vec![], lending(&[(0, 1000)]))
        .await
        .unwrap();
    assert!(assignment(&mut one, 500).await.is_none());
    assert!(
        server.job(&alice, id).await["waiting"]
            .as_str()
            .unwrap()
            .contains("the most one lends is 1")
    );
    server.add_user("dave", 0);
    let (_, two_token) = server.add_worker("dave");
    let mut two = FakeWorker::connect_claiming(
        &server,
        &two_token,
        vec![],
        lending(&[(0, 1000), (1, 1000)]),
    )
    .await
    .unwrap();
    let (job, _) = assignment(&mut two, 5_000).await.unwrap();
    assert_eq!((job.job_id, job.gpus), (id, vec![0, 1]));
    assert!(server.job(&alice, id).await.get("waiting").is_none());
}

#[tokio::test]
async fn gpu_requests_are_checked_at_submit() {
    let server = TestServer::start_with(|c| c.limits.max_gpus = 2).await;
    let alice = server.add_user("alice", 100);
    for (body, needle) in [
        (
            json!({"language": "python", "code": "1", "gpus": 3}),
            "gpus must be between 0 and 2",
        ),
        (
            json!({"language": "python", "code": "1", "gpu_memory_mb": 1000}),
            "gpu_memory_mb needs gpus",
        ),
        (
            json!({"language": "python", "code": "1", "gpus": 1, "gpu_memory_mb": 0}),
            "gpu_memory_mb",
        ),
        (
            json!({"language": "python", "code": "1", "gpus": -1}),
            "gpus",
        ),
    ] {
        let response = server.submit(&alice, body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
        let text = response.text().await.unwrap();
        assert!(text.contains(needle), "{body}: {text}");
    }
    assert_eq!(server.balance(&alice).await, Credits::from_whole(100));
    // An operator that allows none refuses every GPU job.
    let none = TestServer::start_with(|c| c.limits.max_gpus = 0).await;
    let bob = none.add_user("bob", 100);
    let response = none
        .submit(&bob, json!({"language": "python", "code": "1", "gpus": 1}))
        .await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn a_restarted_coordinator_keeps_a_running_jobs_gpus_leased() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 100);
    server.add_user("carol", 0);
    let (_, token) = server.add_worker("carol");
    let caps = lending(&[(0, 1000), (1, 1000)]);
    let mut gpu = FakeWorker::connect_claiming(&server, &token, vec![], caps.clone())
        .await
        .unwrap();
    let body = json!({"language": "python", "code": "print(1)", "gpus": 1});
    let first = submit_gpu_job(&server, &alice, body.clone()).await;
    let (job, attempt) = assignment(&mut gpu, 5_000).await.unwrap();
    assert_eq!(job.gpus, vec![0]);

    drop(gpu);
    let server = server.restart().await;
    let running = vec![JobAttempt {
        job_id: first,
        attempt,
    }];
    let mut gpu = FakeWorker::connect_claiming(&server, &token, running.clone(), caps)
        .await
        .unwrap();
    // GPU 0 is still the first job's: the next job gets GPU 1, then none is free.
    let second = submit_gpu_job(&server, &alice, body.clone()).await;
    let (job, second_attempt) = assignment_running(&mut gpu, 5_000, running.clone())
        .await
        .unwrap();
    assert_eq!((job.job_id, job.gpus), (second, vec![1]));
    let both = vec![
        running[0],
        JobAttempt {
            job_id: second,
            attempt: second_attempt,
        },
    ];
    let third = submit_gpu_job(&server, &alice, body).await;
    assert!(assignment_running(&mut gpu, 500, both).await.is_none());
    assert_eq!(server.job(&alice, third).await["status"], "queued");
    gpu.run_ok(first, attempt, "1\n").await;
    let (job, _) = assignment(&mut gpu, 5_000).await.unwrap();
    assert_eq!((job.job_id, job.gpus), (third, vec![0]));
}

/// A worker that went silent may still be running its lost attempt on its GPU when
/// it comes back: while it reports that attempt the GPU stays busy, so the requeued
/// job is not given the same GPU there (the worker would refuse it as in use).
#[tokio::test]
async fn a_lost_attempt_still_running_keeps_its_gpu_busy() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 100);
    server.add_user("carol", 0);
    let (_, token) = server.add_worker("carol");
    let caps = lending(&[(0, 1000)]);
    let mut gpu = FakeWorker::connect_claiming(&server, &token, vec![], caps.clone())
        .await
        .unwrap();
    let id = submit_gpu_job(
        &server,
        &alice,
        json!({"language": "python", "code": "print(1)", "gpus": 1}),
    )
    .await;
    let (job, attempt) = assignment(&mut gpu, 5_000).await.unwrap();
    assert_eq!(job.gpus, vec![0]);
    // Silent past its lease (three 1 s heartbeats): the attempt is lost, the job
    // requeued.
    drop(gpu);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while server.job(&alice, id).await["status"] != "queued" {
        assert!(tokio::time::Instant::now() < deadline, "never requeued");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let old = vec![JobAttempt {
        job_id: id,
        attempt,
    }];
    let mut gpu = FakeWorker::connect_claiming(&server, &token, old.clone(), caps)
        .await
        .unwrap();
    // Told to stop the stray; no assignment while it still reports it.
    let mut cancelled = false;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1_500);
    while tokio::time::Instant::now() < deadline {
        gpu.heartbeat(old.clone()).await;
        match gpu.recv_within(300).await {
            Some(CoordinatorMessage::Cancel { job_id, attempt: a }) => {
                assert_eq!((job_id, a), (id, attempt));
                cancelled = true;
            }
            Some(CoordinatorMessage::Assign { job, .. }) => {
                panic!("assigned {:?} on a GPU the stray still holds", job.gpus)
            }
            _ => {}
        }
    }
    assert!(cancelled, "the stray was told to stop");
    // It stopped: the GPU is free again and the job gets it, as a new attempt.
    let (job, next) = assignment(&mut gpu, 5_000).await.unwrap();
    assert_eq!((job.job_id, job.gpus, next), (id, vec![0], attempt + 1));
}
