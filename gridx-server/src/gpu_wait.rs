//! Why a queued GPU job waits, for the job view (`JobView::waiting`): the user sees
//! whether no online worker lends the GPUs it asks for, or whether they are all busy.

use gridx_proto::JobStatus;
use gridx_proto::api::{JobView, WorkerStatus, WorkerView};
use gridx_proto::gpu::{GpuDevice, GpuRequest};

/// What `job` asks of GPUs.
fn request(job: &JobView) -> GpuRequest {
    GpuRequest {
        count: job.gpus,
        min_memory_mb: job.gpu_memory_mb,
    }
}

/// `worker`'s GPUs as the matching rule reads them.
fn devices(worker: &WorkerView) -> Vec<GpuDevice> {
    worker
        .gpus
        .iter()
        .map(|g| GpuDevice {
            index: g.index,
            name: g.name.clone(),
            memory_mb: g.memory_mb,
        })
        .collect()
}

/// Whether `worker` lends enough GPUs that fit `job` (all of them free or not);
/// true for a job without GPUs. Result checks count only such workers for a GPU job.
pub fn lends_enough(worker: &WorkerView, job: &JobView) -> bool {
    job.gpus == 0 || request(job).matching(&devices(worker)) >= job.gpus as usize
}

/// The sentence for a queued job asking for GPUs; `None` for any other job.
pub fn waiting_reason(job: &JobView, workers: &[WorkerView]) -> Option<String> {
    if job.status != JobStatus::Queued || job.gpus == 0 {
        return None;
    }
    let request = request(job);
    // Workers that may run this user's job at all: online, its language, and a
    // sandbox unless the worker is the user's own.
    let online = workers.iter().filter(|w| {
        w.status == WorkerStatus::Online
            && w.languages.contains(&job.language)
            && (w.executor.is_some_and(|e| e.runs_strangers_jobs()) || w.owner == job.user)
    });
    let (mut able, mut free, mut most) = (0, 0, 0);
    for w in online {
        let devices = devices(w);
        let matching = request.matching(&devices);
        most = most.max(matching);
        if matching >= request.count as usize {
            able += 1;
            let busy: Vec<u32> = w
                .gpus
                .iter()
                .filter(|g| g.job_id.is_some())
                .map(|g| g.index)
                .collect();
            if gridx_proto::gpu::choose(&devices, &busy, request).is_some() {
                free += 1;
            }
        }
    }
    if able == 0 {
        let fitting = if request.min_memory_mb.is_some() {
            " with enough memory"
        } else {
            ""
        };
        return Some(format!(
            "it asks for {request}, and no online worker that runs {} lends that many (the most one lends{fitting} is {most}); it waits until one does",
            job.language
        ));
    }
    if free == 0 {
        let plural = if able == 1 { "worker" } else { "workers" };
        return Some(format!(
            "it asks for {request}; the {able} online {plural} that lend them are using them for other jobs, and it runs when one is free"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use gridx_proto::api::WorkerGpu;
    use gridx_proto::{JobId, Language, UserName, WorkerId};

    fn worker(gpus: &[(u32, u64, Option<u64>)]) -> WorkerView {
        WorkerView {
            worker_id: WorkerId(1),
            name: "w".into(),
            owner: UserName::new("bob").unwrap(),
            status: WorkerStatus::Online,
            languages: vec![Language::Python],
            slots: 4,
            running: 0,
            executor: Some(gridx_proto::protocol::ExecutorKind::Docker),
            metrics: None,
            last_seen: None,
            reliability: Default::default(),
            gpus: gpus
                .iter()
                .map(|(index, memory_mb, job)| WorkerGpu {
                    index: *index,
                    name: "G".into(),
                    memory_mb: *memory_mb,
                    job_id: job.map(JobId),
                })
                .collect(),
        }
    }

    fn job(gpus: u32, min: Option<u32>) -> JobView {
        let mut view: JobView = serde_json::from_str(include_str!(
            "../../gridx-proto/tests/fixtures/job_view.json"
        ))
        .unwrap();
        view.status = JobStatus::Queued;
        view.language = Language::Python;
        view.gpus = gpus;
        view.gpu_memory_mb = min;
        view
    }

    #[test]
    fn says_whether_no_worker_lends_the_gpus_or_all_are_busy() {
        assert_eq!(waiting_reason(&job(0, None), &[worker(&[])]), None);
        let none = waiting_reason(&job(1, None), &[worker(&[])]).unwrap();
        assert!(
            none.contains("no online worker that runs python lends"),
            "{none}"
        );
        let small = waiting_reason(&job(1, Some(40_000)), &[worker(&[(0, 16_000, None)])]);
        assert!(small.unwrap().contains("at least 40000 MB"));
        let busy = waiting_reason(&job(1, None), &[worker(&[(0, 16_000, Some(9))])]).unwrap();
        assert!(busy.contains("using them"), "{busy}");
        assert_eq!(
            waiting_reason(
                &job(1, None),
                &[worker(&[(0, 16_000, Some(9)), (1, 16_000, None)])]
            ),
            None
        );
        let mut offline = worker(&[(0, 16_000, None)]);
        offline.status = WorkerStatus::Offline;
        assert!(waiting_reason(&job(1, None), &[offline]).is_some());
        // Another user's owner-only worker cannot run it; its owner's can.
        let mut own = worker(&[(0, 16_000, None)]);
        own.executor = Some(gridx_proto::protocol::ExecutorKind::Unsandboxed);
        assert!(waiting_reason(&job(1, None), std::slice::from_ref(&own)).is_some());
        own.owner = job(1, None).user;
        assert_eq!(waiting_reason(&job(1, None), &[own]), None);
        let small = waiting_reason(&job(1, Some(40_000)), &[worker(&[(0, 16_000, None)])]);
        assert!(
            small
                .unwrap()
                .contains("the most one lends with enough memory is 0")
        );
    }
}
