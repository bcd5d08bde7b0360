//! Prometheus metrics, exposed as text at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountLabel {
    pub account: String,
}

/// What an overload limit shed (docs/operations.md, "What is limited").
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Shed {
    /// A WebSocket upgrade refused past a connection limit (429 or 503).
    Connection,
    /// A heartbeat past a session's rate, dropped.
    Heartbeat,
    /// A worker session closed because its outbox was full.
    Outbox,
    /// A peer dropped because one frame to it did not go out in time.
    SendTimeout,
    /// An event subscriber dropped for falling too far behind.
    Lagged,
}

impl Shed {
    pub fn as_str(self) -> &'static str {
        match self {
            Shed::Connection => "connection",
            Shed::Heartbeat => "heartbeat",
            Shed::Outbox => "outbox",
            Shed::SendTimeout => "send_timeout",
            Shed::Lagged => "lagged",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShedLabel {
    pub what: String,
}

pub struct Metrics {
    registry: Registry,
    pub jobs_submitted: Counter,
    pub jobs_finished: Family<StatusLabel, Counter>,
    pub jobs_by_state: Family<StatusLabel, Gauge>,
    pub queue_depth: Gauge,
    pub workers_by_state: Family<StatusLabel, Gauge>,
    pub dispatch_latency: Histogram,
    pub ledger_millicredits: Family<AccountLabel, Gauge>,
    pub store_errors: Counter,
    pub dispatch_errors: Counter,
    pub fenced_reports: Counter,
    pub requeued_jobs: Counter,
    pub rate_limited: Counter,
    pub shed: Family<ShedLabel, Counter>,
    /// Result checks (docs/trust.md): runs that reported a result, jobs accepted by
    /// how, verdicts on replicas, and quarantines.
    pub results_reported: Counter,
    pub jobs_accepted: Family<StatusLabel, Counter>,
    pub replica_verdicts: Family<StatusLabel, Counter>,
    pub quarantines: Counter,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("gridx");
        let m = Metrics {
            jobs_submitted: Counter::default(),
            jobs_finished: Family::default(),
            jobs_by_state: Family::default(),
            queue_depth: Gauge::default(),
            workers_by_state: Family::default(),
            // 50 µs .. ~1.6 s
            dispatch_latency: Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.00005, 2.0, 16),
            ),
            ledger_millicredits: Family::default(),
            store_errors: Counter::default(),
            dispatch_errors: Counter::default(),
            fenced_reports: Counter::default(),
            requeued_jobs: Counter::default(),
            rate_limited: Counter::default(),
            shed: Family::default(),
            results_reported: Counter::default(),
            jobs_accepted: Family::default(),
            replica_verdicts: Family::default(),
            quarantines: Counter::default(),
            registry: Registry::default(),
        };
        registry.register("jobs_submitted", "Jobs accepted", m.jobs_submitted.clone());
        registry.register(
            "jobs_finished",
            "Jobs that reached a terminal state",
            m.jobs_finished.clone(),
        );
        registry.register(
            "jobs",
            "Jobs by state (live states only)",
            m.jobs_by_state.clone(),
        );
        registry.register(
            "queue_depth",
            "Jobs waiting for a worker",
            m.queue_depth.clone(),
        );
        registry.register("workers", "Workers by state", m.workers_by_state.clone());
        registry.register(
            "dispatch_latency_seconds",
            "Time from submit (or requeue) to assignment",
            m.dispatch_latency.clone(),
        );
        registry.register(
            "ledger_millicredits",
            "Ledger totals in milli-credits (granted, escrow, platform)",
            m.ledger_millicredits.clone(),
        );
        registry.register(
            "store_errors",
            "Failed store writes",
            m.store_errors.clone(),
        );
        registry.register(
            "dispatch_errors",
            "Failed dispatches",
            m.dispatch_errors.clone(),
        );
        registry.register(
            "fenced_reports",
            "Worker reports refused because their attempt was superseded",
            m.fenced_reports.clone(),
        );
        registry.register(
            "requeued_jobs",
            "Jobs put back after a lost worker",
            m.requeued_jobs.clone(),
        );
        registry.register(
            "rate_limited_requests",
            "Requests refused with 429",
            m.rate_limited.clone(),
        );
        registry.register(
            "shed",
            "Connections, heartbeats, sessions and subscribers dropped by overload limits",
            m.shed.clone(),
        );
        registry.register(
            "results_reported",
            "Runs whose worker reported a result (every replica counts): divided by jobs_accepted, the replicas run per accepted job",
            m.results_reported.clone(),
        );
        registry.register(
            "jobs_accepted",
            "Jobs whose result was accepted, by how (status: quorum, trusted_worker, own_worker, not_spot_checked, proven_worker, unvalidated)",
            m.jobs_accepted.clone(),
        );
        registry.register(
            "replica_verdicts",
            "Replicas judged by a result check (status: valid, invalid = a mismatch with the accepted result, inconclusive)",
            m.replica_verdicts.clone(),
        );
        registry.register(
            "quarantines",
            "Workers and owners quarantined for invalid results",
            m.quarantines.clone(),
        );
        Arc::new(Metrics { registry, ..m })
    }

    /// Counts one thing an overload limit shed.
    pub fn shed(&self, what: Shed) {
        self.shed
            .get_or_create(&ShedLabel {
                what: what.as_str().to_owned(),
            })
            .inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn count(family: &Family<StatusLabel, Counter>, status: &str) {
        family
            .get_or_create(&StatusLabel {
                status: status.to_owned(),
            })
            .inc();
    }

    pub fn set_status_gauge(family: &Family<StatusLabel, Gauge>, status: &str, value: i64) {
        family
            .get_or_create(&StatusLabel {
                status: status.to_owned(),
            })
            .set(value);
    }
}
