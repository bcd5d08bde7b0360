//! Live events for `/v1/events` (a bounded backlog per subscriber) and the shared
//! board of worker views.

use gridx_proto::api::WorkerView;
use gridx_proto::events::ServerEvent;
use gridx_proto::{UserName, WorkerId};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::Notify;

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

/// Fan-out of events to every `/v1/events` subscriber. Each event is serialised once
/// and shared; each subscriber has its own backlog of the events it may see, bounded
/// in events and in bytes. A subscriber that falls further behind is dropped: its
/// backlog is freed at once, and its stream ends with a `lagged` event (it can
/// reconnect and refetch). The queue never waits for a subscriber.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<BusInner>,
}

struct BusInner {
    /// The viewers of running jobs' output (`crate::live_output`).
    live: crate::live_output::LiveHub,
    limits: Backlog,
    next_id: AtomicU64,
    subscribers: Mutex<Vec<Subscriber>>,
}

/// How far one subscriber may fall behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    pub max_events: usize,
    pub max_bytes: usize,
}

struct Subscriber {
    id: u64,
    user: UserName,
    is_admin: bool,
    queue: Arc<SubscriberQueue>,
}

#[derive(Default)]
struct SubscriberQueue {
    state: Mutex<Pending>,
    notify: Notify,
}

#[derive(Default)]
struct Pending {
    events: VecDeque<Arc<str>>,
    bytes: usize,
    /// Set once the subscriber fell too far behind: how many events it missed.
    lagged: Option<u64>,
}

impl Pending {
    /// Queues `text`, or marks the subscriber lagged (and frees its backlog) when it
    /// would go past `limits`. An event always fits an empty backlog, however large.
    fn push(&mut self, text: &Arc<str>, limits: Backlog) {
        if let Some(missed) = &mut self.lagged {
            *missed += 1;
            return;
        }
        let over = !self.events.is_empty()
            && (self.events.len() >= limits.max_events
                || self.bytes + text.len() > limits.max_bytes);
        if over {
            self.lagged = Some(self.events.len() as u64 + 1);
            self.events = VecDeque::new();
            self.bytes = 0;
        } else {
            self.bytes += text.len();
            self.events.push_back(text.clone());
        }
    }
}

/// What a subscriber gets next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// One event, as the JSON text of a frame.
    Event(Arc<str>),
    /// The subscriber fell too far behind and missed this many events: its
    /// subscription is over.
    Lagged { missed: u64 },
}

impl EventBus {
    pub fn new(limits: Backlog) -> Self {
        Self {
            inner: Arc::new(BusInner {
                live: crate::live_output::LiveHub::default(),
                limits,
                next_id: AtomicU64::new(1),
                subscribers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The viewers of running jobs' output.
    pub fn live(&self) -> &crate::live_output::LiveHub {
        &self.inner.live
    }

    pub fn has_subscribers(&self) -> bool {
        self.inner
            .subscribers
            .lock()
            .is_ok_and(|subscribers| !subscribers.is_empty())
    }

    /// Queues the event for every subscriber allowed to see it. Never waits.
    pub fn publish(&self, audience: Audience, event: ServerEvent) {
        let envelope = Envelope { audience, event };
        let Ok(subscribers) = self.inner.subscribers.lock() else {
            return;
        };
        let mut text: Option<Arc<str>> = None;
        for subscriber in subscribers.iter() {
            if !envelope.visible_to(&subscriber.user, subscriber.is_admin) {
                continue;
            }
            let text = match &text {
                Some(text) => text,
                None => match serde_json::to_string(&envelope.event) {
                    Ok(json) => text.insert(Arc::from(json)),
                    // Serialising these types cannot fail; nobody would be told anyway.
                    Err(_) => return,
                },
            };
            if let Ok(mut pending) = subscriber.queue.state.lock() {
                pending.push(text, self.inner.limits);
            }
            subscriber.queue.notify.notify_one();
        }
    }

    /// A new subscription for `user`: the events it may see from now on.
    pub fn subscribe(&self, user: UserName, is_admin: bool) -> Subscription {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let queue = Arc::new(SubscriberQueue::default());
        if let Ok(mut subscribers) = self.inner.subscribers.lock() {
            subscribers.push(Subscriber {
                id,
                user,
                is_admin,
                queue: queue.clone(),
            });
        }
        Subscription {
            bus: self.inner.clone(),
            id,
            queue,
        }
    }
}

/// One subscriber's end; dropping it unsubscribes.
pub struct Subscription {
    bus: Arc<BusInner>,
    id: u64,
    queue: Arc<SubscriberQueue>,
}

impl Subscription {
    /// The next event, waiting for one. After `Lagged` there is nothing more.
    pub async fn next(&mut self) -> Next {
        loop {
            let notified = self.queue.notify.notified();
            if let Ok(mut pending) = self.queue.state.lock() {
                if let Some(missed) = pending.lagged {
                    return Next::Lagged { missed };
                }
                if let Some(text) = pending.events.pop_front() {
                    pending.bytes -= text.len();
                    return Next::Event(text);
                }
            }
            notified.await;
        }
    }

    /// Events and bytes waiting for this subscriber.
    pub fn backlog(&self) -> (usize, usize) {
        self.queue
            .state
            .lock()
            .map_or((0, 0), |p| (p.events.len(), p.bytes))
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Ok(mut subscribers) = self.bus.subscribers.lock() {
            subscribers.retain(|s| s.id != self.id);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn bus(max_events: usize, max_bytes: usize) -> EventBus {
        EventBus::new(Backlog {
            max_events,
            max_bytes,
        })
    }

    fn name(n: &str) -> UserName {
        UserName::new(n).expect("a name")
    }

    fn lagged(missed: u64) -> ServerEvent {
        ServerEvent::Lagged { missed }
    }

    #[tokio::test]
    async fn subscribers_get_what_they_may_see_serialised_once_in_order() {
        let bus = bus(100, 1 << 20);
        assert!(!bus.has_subscribers());
        let mut alice = bus.subscribe(name("alice"), false);
        let mut admin = bus.subscribe(name("root"), true);
        assert!(bus.has_subscribers());
        bus.publish(Audience::User(name("bob")), lagged(1));
        bus.publish(Audience::Everyone, lagged(2));
        bus.publish(Audience::OwnerOnly(name("root")), lagged(3));
        let event = |n: u64| Next::Event(Arc::from(serde_json::to_string(&lagged(n)).unwrap()));
        assert_eq!(alice.next().await, event(2));
        assert_eq!(alice.backlog(), (0, 0));
        assert_eq!(admin.next().await, event(1));
        assert_eq!(admin.next().await, event(2));
        assert_eq!(admin.next().await, event(3));
        drop(alice);
        drop(admin);
        assert!(!bus.has_subscribers());
    }

    #[tokio::test]
    async fn a_subscriber_past_its_bytes_is_dropped_its_backlog_freed_and_told_what_it_missed() {
        let one = serde_json::to_string(&lagged(1)).unwrap().len();
        let bus = bus(1000, 3 * one);
        let mut slow = bus.subscribe(name("alice"), false);
        let mut fast = bus.subscribe(name("bob"), false);
        for _ in 0..3 {
            bus.publish(Audience::Everyone, lagged(1));
            assert!(matches!(fast.next().await, Next::Event(_)));
        }
        assert_eq!(slow.backlog(), (3, 3 * one));
        // The fourth event would pass the bound: the slow one is cut off...
        bus.publish(Audience::Everyone, lagged(1));
        assert_eq!(slow.backlog(), (0, 0), "its backlog is freed at once");
        bus.publish(Audience::Everyone, lagged(1));
        assert_eq!(slow.next().await, Next::Lagged { missed: 5 });
        assert_eq!(slow.next().await, Next::Lagged { missed: 5 });
        // ...and the fast one goes on.
        assert!(matches!(fast.next().await, Next::Event(_)));
        assert!(matches!(fast.next().await, Next::Event(_)));
    }

    #[tokio::test]
    async fn the_event_count_is_bounded_too_and_a_large_event_fits_an_empty_backlog() {
        let counted = bus(2, 1 << 20);
        let mut slow = counted.subscribe(name("alice"), false);
        for _ in 0..3 {
            counted.publish(Audience::Everyone, lagged(7));
        }
        assert_eq!(slow.next().await, Next::Lagged { missed: 3 });
        let tiny = bus(10, 1);
        let mut reader = tiny.subscribe(name("alice"), false);
        tiny.publish(Audience::Everyone, lagged(u64::MAX));
        assert!(matches!(reader.next().await, Next::Event(_)));
    }

    #[tokio::test]
    async fn a_waiting_subscriber_is_woken_by_a_publish() {
        let bus = bus(10, 1 << 20);
        let mut sub = bus.subscribe(name("alice"), false);
        let waiting = tokio::spawn(async move { sub.next().await });
        tokio::task::yield_now().await;
        bus.publish(Audience::Everyone, lagged(9));
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .expect("no panic");
        assert!(matches!(got, Next::Event(_)));
    }
}
