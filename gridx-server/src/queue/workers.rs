//! The queue's workers, with an index of those that could take a job now.
//!
//! Dispatch wants "the ready worker with most free slots (then the lowest id) that may
//! take this job". A pass over every worker per job placed cost a fifth of the
//! coordinator's CPU with 1,000 workers (docs/benchmarks.md, "Round 2"), and grows
//! with the grid. So the workers that are online with a free slot are kept ordered by
//! free slots, and dispatch walks that order from the top, stopping at the first that
//! may take the job: usually the first.
//!
//! The index cannot drift from the workers: the map is private, and every change to a
//! worker goes through [`WorkerMut`], which puts the worker back in its place when it
//! is dropped.

use super::model::WorkerState;
use gridx_proto::WorkerId;
use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::ops::{Deref, DerefMut};

/// Online workers with a free slot, by (free slots, lowest id first).
type Key = (u32, Reverse<WorkerId>);

#[derive(Default)]
pub(super) struct Workers {
    map: HashMap<WorkerId, WorkerState>,
    ready: BTreeSet<Key>,
    /// Each indexed worker's key in `ready`.
    keys: HashMap<WorkerId, u32>,
}

impl Workers {
    pub(super) fn get(&self, id: &WorkerId) -> Option<&WorkerState> {
        self.map.get(id)
    }

    /// The worker, to change: it is re-indexed when the guard drops.
    pub(super) fn get_mut(&mut self, id: &WorkerId) -> Option<WorkerMut<'_>> {
        let worker = self.map.get_mut(id)?;
        Some(WorkerMut {
            id: *id,
            worker,
            ready: &mut self.ready,
            keys: &mut self.keys,
        })
    }

    /// The worker, to change, made by `make` when absent.
    pub(super) fn get_or_insert_with(
        &mut self,
        id: WorkerId,
        make: impl FnOnce() -> WorkerState,
    ) -> WorkerMut<'_> {
        let worker = self.map.entry(id).or_insert_with(make);
        WorkerMut {
            id,
            worker,
            ready: &mut self.ready,
            keys: &mut self.keys,
        }
    }

    pub(super) fn insert(&mut self, id: WorkerId, worker: WorkerState) {
        reindex(&mut self.ready, &mut self.keys, id, &worker);
        self.map.insert(id, worker);
    }

    /// Empties the map, handing back what it held.
    pub(super) fn take_all(&mut self) -> HashMap<WorkerId, WorkerState> {
        self.ready.clear();
        self.keys.clear();
        std::mem::take(&mut self.map)
    }

    pub(super) fn contains_key(&self, id: &WorkerId) -> bool {
        self.map.contains_key(id)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&WorkerId, &WorkerState)> {
        self.map.iter()
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &WorkerId> {
        self.map.keys()
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &WorkerState> {
        self.map.values()
    }

    /// Changes every worker, re-indexing each.
    pub(super) fn for_each_mut(&mut self, mut f: impl FnMut(WorkerId, &mut WorkerState)) {
        for (id, worker) in &mut self.map {
            f(*id, worker);
            reindex(&mut self.ready, &mut self.keys, *id, worker);
        }
    }

    /// The online workers with a free slot, most free slots first, then the lowest
    /// id: the order in which dispatch offers a job.
    pub(super) fn by_free_slots(&self) -> impl Iterator<Item = (&WorkerId, &WorkerState)> {
        self.ready.iter().rev().filter_map(|(_, Reverse(id))| {
            let (id, w) = self.map.get_key_value(id)?;
            Some((id, w))
        })
    }
}

impl std::ops::Index<&WorkerId> for Workers {
    type Output = WorkerState;
    /// Panics on an unknown id, as `HashMap`'s does: for tests.
    fn index(&self, id: &WorkerId) -> &WorkerState {
        &self.map[id]
    }
}

/// Where a worker belongs in the index: online with `n` free slots, or nowhere.
fn key_of(worker: &WorkerState) -> Option<u32> {
    let free = worker.free_slots();
    (free > 0 && worker.status() == gridx_proto::api::WorkerStatus::Online).then_some(free)
}

fn reindex(
    ready: &mut BTreeSet<Key>,
    keys: &mut HashMap<WorkerId, u32>,
    id: WorkerId,
    worker: &WorkerState,
) {
    let new = key_of(worker);
    let old = keys.get(&id).copied();
    if old == new {
        return;
    }
    if let Some(free) = old {
        ready.remove(&(free, Reverse(id)));
        keys.remove(&id);
    }
    if let Some(free) = new {
        ready.insert((free, Reverse(id)));
        keys.insert(id, free);
    }
}

/// A worker being changed; back in its place in the index when dropped.
pub(super) struct WorkerMut<'a> {
    id: WorkerId,
    worker: &'a mut WorkerState,
    ready: &'a mut BTreeSet<Key>,
    keys: &'a mut HashMap<WorkerId, u32>,
}

impl Deref for WorkerMut<'_> {
    type Target = WorkerState;
    fn deref(&self) -> &WorkerState {
        self.worker
    }
}

impl DerefMut for WorkerMut<'_> {
    fn deref_mut(&mut self) -> &mut WorkerState {
        self.worker
    }
}

impl Drop for WorkerMut<'_> {
    fn drop(&mut self) {
        reindex(self.ready, self.keys, self.id, self.worker);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use gridx_proto::UserName;

    fn worker() -> WorkerState {
        WorkerState::new("w".into(), UserName::new("o").unwrap(), None)
    }

    /// Online with `slots` slots; the outbox's receiver is kept so it stays open.
    fn go_online(w: &mut WorkerState, slots: u32, keep: &mut Vec<crate::queue::outbox::SessionRx>) {
        let (tx, rx) = crate::queue::outbox::outbox(16);
        keep.push(rx);
        w.session = Some(crate::queue::model::Session {
            id: 1,
            outbox: tx,
            since: std::time::Instant::now(),
        });
        w.capabilities = Some(gridx_proto::protocol::Capabilities {
            gpu_devices: Vec::new(),
            languages: vec![gridx_proto::Language::Bash],
            slots,
            executor: gridx_proto::protocol::ExecutorKind::Docker,
            cpu_cores: 4,
            memory_mb: 8192,
            gpus: 0,
            max_job_memory_mb: None,
            memory_budget_mb: None,
            max_job_timeout_s: None,
        });
    }

    fn order(workers: &Workers) -> Vec<u64> {
        workers.by_free_slots().map(|(id, _)| id.0).collect()
    }

    #[test]
    fn only_online_workers_with_free_slots_are_offered_most_free_first() {
        let mut workers = Workers::default();
        for id in 1..=3 {
            workers.insert(WorkerId(id), worker());
        }
        // No session and no capabilities: offline, nothing free.
        assert!(order(&workers).is_empty());
        let mut outboxes = Vec::new();
        for (id, slots) in [(1, 2), (2, 4), (3, 2)] {
            let mut w = workers.get_mut(&WorkerId(id)).unwrap();
            go_online(&mut w, slots, &mut outboxes);
        }
        assert_eq!(order(&workers), vec![2, 1, 3], "most free, then lowest id");
        {
            let mut w = workers.get_mut(&WorkerId(2)).unwrap();
            for job in 1..=3 {
                w.lease(gridx_proto::JobId(job), 0, Vec::new());
            }
        }
        assert_eq!(order(&workers), vec![1, 3, 2]);
        workers
            .get_mut(&WorkerId(2))
            .unwrap()
            .lease(gridx_proto::JobId(4), 0, Vec::new());
        assert_eq!(order(&workers), vec![1, 3], "a full worker is not offered");
        workers
            .get_mut(&WorkerId(2))
            .unwrap()
            .release(gridx_proto::JobId(4));
        workers.get_mut(&WorkerId(1)).unwrap().draining = true;
        assert_eq!(
            order(&workers),
            vec![3, 2],
            "a draining worker is not offered"
        );
        workers.for_each_mut(|_, w| w.session = None);
        assert!(order(&workers).is_empty());
        assert_eq!(workers.take_all().len(), 3);
        assert!(order(&workers).is_empty());
    }
}
