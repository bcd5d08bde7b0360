//! Live events for `/v1/events` and the shared board of worker views.

use gridx_proto::api::WorkerView;
use gridx_proto::events::ServerEvent;
use gridx_proto::{UserName, WorkerId};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use tokio::sync::broadcast;

/// Who may see an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// The job's owner (and admins).
    User(UserName),
    /// The account's owner alone: a ledger is personal, even to admins, so a
    /// client can trust that every ledger event is its own account's.
    OwnerOnly(UserName),
    /// Everyone: worker events.
    Everyone,
}

#[derive(Debug, Clone)]
pub struct Envelope {
    pub audience: Audience,
    pub event: ServerEvent,
}

impl Envelope {
    pub fn visible_to(&self, user: &UserName, is_admin: bool) -> bool {
        match &self.audience {
            Audience::Everyone => true,
            Audience::User(owner) => is_admin || owner == user,
            Audience::OwnerOnly(owner) => owner == user,
        }
    }
}

/// Fan-out of events to every `/v1/events` subscriber. A slow subscriber loses events
/// (and is told how many) instead of slowing the queue down.
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<Envelope>>,
}

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity).0,
        }
    }

    pub fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    pub fn publish(&self, audience: Audience, event: ServerEvent) {
        // No subscriber is not an error: nobody is watching.
        let _ = self.tx.send(Arc::new(Envelope { audience, event }));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.tx.subscribe()
    }
}

/// The current view of every known worker, written by the queue, read by the API.
#[derive(Clone, Default)]
pub struct WorkerBoard {
    inner: Arc<RwLock<BTreeMap<WorkerId, WorkerView>>>,
}

impl WorkerBoard {
    pub fn upsert(&self, view: WorkerView) {
        if let Ok(mut map) = self.inner.write() {
            map.insert(view.worker_id, view);
        }
    }

    pub fn snapshot(&self) -> Vec<WorkerView> {
        self.inner
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}
