//! Why a queued GPU job waits, for the job view (`JobView::waiting`): the user sees
//! whether no online worker lends the GPUs it asks for, or whether they are all busy.

use gridx_proto::JobStatus;
use gridx_proto::api::{JobView, WorkerStatus, WorkerView};
use gridx_proto::gpu::{GpuDevice, GpuRequest};

/// The sentence for a queued job asking for GPUs; `None` for any other job.
pub fn waiting_reason(job: &JobView, workers: &[WorkerView]) -> Option<String> {
    if job.status != JobStatus::Queued || job.gpus == 0 {
        return None;
    }
    let request = GpuRequest {
        count: job.gpus,
        min_memory_mb: job.gpu_memory_mb,
    };
    let online = workers
        .iter()
        .filter(|w| w.status == WorkerStatus::Online && w.languages.contains(&job.language));
    let (mut able, mut free, mut most) = (0, 0, 0);
    for w in online {
        let devices: Vec<GpuDevice> = w
            .gpus
            .iter()
            .map(|g| GpuDevice {
                index: g.index,
                name: g.name.clone(),
                memory_mb: g.memory_mb,
            })
            .collect();
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
        return Some(format!(
            "it asks for {request}, and no online worker that runs {} lends that many (the most one lends is {most}); it waits until one does",
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
            executor: None,
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
    }
}
