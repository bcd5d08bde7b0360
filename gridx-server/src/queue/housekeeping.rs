//! Housekeeping on the queue's tick: leases, revoked tokens, `last_seen`, the ledger
//! gauges and output retention; and publishing what changed (worker views, stats).

use super::model::{Effects, State, Step, WorkerState};
use crate::events::Audience;
use crate::metrics::{AccountLabel, Metrics};
use crate::store::Db;
use crate::store::ledger::{ESCROW, PLATFORM};
use crate::store::trust::{self, Subject};
use crate::store::{jobs, ledger, now_millis};
use gridx_proto::api::{Reliability, WorkerStatus, WorkerView};
use gridx_proto::events::ServerEvent;
use gridx_proto::time_fmt::from_unix_millis;
use gridx_proto::{Credits, WorkerId};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often the once-a-second work runs (revocations, `last_seen`, gauges).
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(1);
/// How often finished jobs past retention lose their output.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

impl State {
    pub(super) fn tick(&mut self, conn: &Db, fx: &mut Effects) -> Step<()> {
        self.expire_leases(conn, fx)?;
        let now = Instant::now();
        if now.duration_since(self.last_housekeeping) >= HOUSEKEEPING_EVERY {
            self.last_housekeeping = now;
            self.drop_revoked(conn, fx)?;
            self.reload_trust_if_changed(conn, fx)?;
            self.apply_account_changes(conn, fx)?;
            self.persist_last_seen(conn)?;
            self.refresh_ledger_gauges(conn)?;
        }
        if !self.settings.retention.is_zero() && now.duration_since(self.last_prune) >= PRUNE_EVERY
        {
            self.last_prune = now;
            let cutoff = now_millis() - self.settings.retention.as_millis() as i64;
            let pruned = jobs::prune_output(conn, cutoff)?;
            if pruned > 0 {
                tracing::info!(pruned, "dropped the output of jobs past retention");
            }
        }
        Ok(())
    }

    fn persist_last_seen(&self, conn: &Db) -> Step<()> {
        let mut stmt = conn.prepare_cached("UPDATE workers SET last_seen = ?2 WHERE id = ?1")?;
        for (id, w) in self.workers.iter() {
            if w.session.is_some()
                && let Some(at) = w.last_seen_wall
            {
                stmt.execute(crate::params![id.0 as i64, at])?;
            }
        }
        Ok(())
    }

    fn refresh_ledger_gauges(&self, conn: &Db) -> Step<()> {
        let totals = [
            ("escrow", ledger::balance(conn, ESCROW)?),
            ("platform", ledger::balance(conn, PLATFORM)?),
            (
                "granted",
                Credits::from_millis(-ledger::balance(conn, ledger::MINT)?.millis()),
            ),
        ];
        for (account, amount) in totals {
            self.metrics
                .ledger_millicredits
                .get_or_create(&AccountLabel {
                    account: account.into(),
                })
                .set(amount.millis());
        }
        Ok(())
    }

    pub(super) fn publish_worker(&self, id: WorkerId) {
        let Some(w) = self.workers.get(&id) else {
            return;
        };
        let caps = w.capabilities.as_ref();
        let view = WorkerView {
            worker_id: id,
            name: w.name.clone(),
            owner: w.owner.clone(),
            status: w.status(),
            languages: caps.map(|c| c.languages.clone()).unwrap_or_default(),
            slots: w.slots(),
            running: w.running.len() as u32,
            executor: caps.map(|c| c.executor),
            metrics: w.metrics.clone(),
            last_seen: w.last_seen_wall.map(from_unix_millis),
            reliability: self.reliability(id, w),
            gpus: w.gpu_holders(),
        };
        self.board.upsert(view.clone());
        if self.events.has_subscribers() {
            self.events
                .publish(Audience::Everyone, ServerEvent::Worker { worker: view });
        }
    }

    /// A worker's record as the worker list shows it: its own counts, the streak and
    /// quarantine that decide where it stands (its owner's included).
    fn reliability(&self, id: WorkerId, w: &WorkerState) -> Reliability {
        let own = self.record(&Subject::Worker(id));
        let owner = self.record(&Subject::Owner(w.owner.clone()));
        let quarantined = if w.standing.trusted {
            None
        } else {
            own.quarantined.clone().or_else(|| {
                owner
                    .quarantined
                    .as_ref()
                    .map(|r| format!("its owner {} is quarantined: {r}", w.owner))
            })
        };
        Reliability {
            trusted: w.standing.trusted,
            validated: own.validated,
            invalid: own.invalid,
            errors: own.errors,
            lost: own.lost,
            streak: w.standing.streak,
            spot_check_permille: if w.standing.trusted {
                0
            } else {
                self.policy.spot_check_permille(w.standing.streak)
            },
            pending: w.pending,
            quarantined,
        }
    }

    /// Trust marks and records an operator changed (`worker trust`, `worker restore`)
    /// take effect within a second: the change counter is read on each housekeeping
    /// pass and everything is reloaded when it grew.
    fn reload_trust_if_changed(&mut self, conn: &Db, fx: &mut Effects) -> Step<()> {
        let version = trust::trust_version(conn)?;
        if version == self.trust_version {
            return Ok(());
        }
        self.trust_version = version;
        self.records = trust::all_records(conn)?;
        let marks = trust::trusted_workers(conn)?;
        let ids: Vec<WorkerId> = self.workers.keys().copied().collect();
        for id in ids {
            if let Some(mut w) = self.workers.get_mut(&id) {
                w.standing.trusted = marks.get(&id).copied().unwrap_or(false);
            }
            self.refresh_standing(id);
            fx.changed_workers.push(id);
        }
        Ok(())
    }

    pub(super) fn publish_stats(&self) {
        let mut by_status: HashMap<WorkerStatus, i64> = HashMap::new();
        for w in self.workers.values() {
            *by_status.entry(w.status()).or_default() += 1;
        }
        for status in [
            WorkerStatus::Online,
            WorkerStatus::Draining,
            WorkerStatus::Offline,
            WorkerStatus::Revoked,
        ] {
            Metrics::set_status_gauge(
                &self.metrics.workers_by_state,
                status.as_str(),
                by_status.get(&status).copied().unwrap_or(0),
            );
        }
        let queued = self.scheduler.len() as u64;
        let running = self.running.len() as u64;
        self.metrics.queue_depth.set(queued as i64);
        Metrics::set_status_gauge(&self.metrics.jobs_by_state, "queued", queued as i64);
        Metrics::set_status_gauge(&self.metrics.jobs_by_state, "running", running as i64);
        let stats = super::QueueStats {
            queued,
            running,
            workers_online: by_status.get(&WorkerStatus::Online).copied().unwrap_or(0) as u32,
            draining: self.draining,
        };
        self.stats.send_if_modified(|old| {
            let changed = *old != stats;
            *old = stats;
            changed
        });
    }
}
