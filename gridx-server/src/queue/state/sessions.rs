//! Worker rules: handshake and adoption, reports and fencing, leases and revocation.

use super::*;

impl State {
    pub(super) fn hello(
        &mut self,
        conn: &Connection,
        hello: HelloRequest,
        fx: &mut Effects,
    ) -> Step<u32> {
        if self.draining {
            return Err(StepError::Refused(QueueError::Rejected(
                RejectCode::ShuttingDown,
                "the coordinator is shutting down".into(),
            )));
        }
        let worker_id = hello.worker_id;
        let revoked = users::revoked_among(conn, &[worker_id])?;
        if !revoked.is_empty() {
            return Err(StepError::Refused(QueueError::Rejected(
                RejectCode::Revoked,
                "this worker's token was revoked".into(),
            )));
        }
        // Jobs leased to this worker that it no longer reports are lost now.
        let reported: HashSet<JobAttempt> = hello.running.iter().copied().collect();
        let leased: Vec<JobId> = self
            .workers
            .get(&worker_id)
            .map(|w| w.running.iter().copied().collect())
            .unwrap_or_default();
        for job_id in leased {
            let keep = self.running.get(&job_id).is_some_and(|j| {
                reported.contains(&JobAttempt {
                    job_id,
                    attempt: j.attempt,
                })
            });
            if !keep {
                self.lose_job(conn, job_id, "the worker reconnected without it", fx)?;
            }
        }
        let worker = self
            .workers
            .entry(worker_id)
            .or_insert_with(|| WorkerState {
                name: hello.name.clone(),
                owner: hello.owner.clone(),
                session: None,
                capabilities: None,
                running: HashSet::new(),
                last_seen: Instant::now(),
                last_seen_wall: None,
                metrics: None,
                draining: false,
                revoked: false,
            });
        if let Some(old) = worker.session.take() {
            fx.outbound.push((
                old.outbox,
                Outbound::Close(Some((
                    RejectCode::Replaced,
                    "a newer connection of this worker replaced this one".into(),
                ))),
            ));
        }
        worker.name = hello.name;
        worker.capabilities = Some(hello.capabilities);
        worker.session = Some(Session {
            id: hello.session_id,
            outbox: hello.outbox.clone(),
        });
        worker.last_seen = Instant::now();
        worker.last_seen_wall = Some(now_millis());
        worker.draining = false;
        // Superseded attempts the worker still runs: tell it to stop them. Adopted
        // ones whose cancel was requested meanwhile get their cancel again.
        for attempt in &hello.running {
            let current = self
                .running
                .get(&attempt.job_id)
                .filter(|j| j.worker == worker_id && j.attempt == attempt.attempt);
            let cancel = match current {
                Some(job) => job.cancel_requested,
                None => true,
            };
            if cancel {
                fx.outbound.push((
                    hello.outbox.clone(),
                    Outbound::Send(CoordinatorMessage::Cancel {
                        job_id: attempt.job_id,
                        attempt: attempt.attempt,
                    }),
                ));
            }
        }
        fx.changed_workers.push(worker_id);
        Ok(self.settings.heartbeat_s)
    }

    pub(super) fn on_worker_message(
        &mut self,
        conn: &Connection,
        worker_id: WorkerId,
        session_id: u64,
        message: WorkerMessage,
        fx: &mut Effects,
    ) -> Step<()> {
        let Some(worker) = self.workers.get_mut(&worker_id) else {
            return Ok(());
        };
        if worker.session.as_ref().is_none_or(|s| s.id != session_id) {
            // A replaced or closed session: its words no longer count.
            return Ok(());
        }
        worker.last_seen = Instant::now();
        worker.last_seen_wall = Some(now_millis());
        match message {
            WorkerMessage::Hello { .. } => Err(StepError::Refused(QueueError::Rejected(
                RejectCode::Malformed,
                "hello sent twice".into(),
            ))),
            WorkerMessage::Heartbeat {
                metrics,
                running,
                draining,
            } => {
                worker.metrics = Some(metrics);
                // A worker that says it is stopping gets nothing more this session.
                worker.draining |= draining;
                let outbox = worker.session.as_ref().map(|s| s.outbox.clone());
                for attempt in running {
                    let current = self
                        .running
                        .get(&attempt.job_id)
                        .is_some_and(|j| j.worker == worker_id && j.attempt == attempt.attempt);
                    if !current && let Some(outbox) = &outbox {
                        fx.outbound.push((
                            outbox.clone(),
                            Outbound::Send(CoordinatorMessage::Cancel {
                                job_id: attempt.job_id,
                                attempt: attempt.attempt,
                            }),
                        ));
                    }
                }
                fx.changed_workers.push(worker_id);
                Ok(())
            }
            WorkerMessage::Started { job_id, attempt } => {
                if !self.is_current(job_id, attempt, worker_id) {
                    self.metrics.fenced_reports.inc();
                    tracing::info!(job = %job_id, attempt, worker = %worker_id, "refused `started` of a superseded attempt");
                    return Ok(());
                }
                jobs::mark_started(conn, job_id, now_millis())?;
                fx.changed_jobs.push(job_id);
                Ok(())
            }
            WorkerMessage::Finished {
                job_id,
                attempt,
                outcome,
            } => {
                if !self.is_current(job_id, attempt, worker_id) {
                    self.metrics.fenced_reports.inc();
                    tracing::info!(job = %job_id, attempt, worker = %worker_id, "refused `finished` of a superseded attempt");
                    return Ok(());
                }
                self.finish_running(conn, job_id, outcome, fx)
            }
        }
    }

    pub(super) fn is_current(&self, job_id: JobId, attempt: u32, worker: WorkerId) -> bool {
        self.running
            .get(&job_id)
            .is_some_and(|j| j.attempt == attempt && j.worker == worker)
    }

    pub(super) fn send_to_worker(
        &self,
        worker: WorkerId,
        message: CoordinatorMessage,
        fx: &mut Effects,
    ) {
        if let Some(s) = self.workers.get(&worker).and_then(|w| w.session.as_ref()) {
            fx.outbound
                .push((s.outbox.clone(), Outbound::Send(message)));
        }
    }

    pub(super) fn tick(&mut self, conn: &Connection, fx: &mut Effects) -> Step<()> {
        let lease = self.settings.heartbeat * gridx_proto::protocol::SILENT_HEARTBEATS;
        let now = Instant::now();
        let expired: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, w)| {
                (w.session.is_some() || !w.running.is_empty())
                    && now.duration_since(w.last_seen) > lease
            })
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            tracing::warn!(worker = %id, "worker lost: silent for too many heartbeats");
            self.lose_worker(conn, id, "its worker was lost (no heartbeat)", None, fx)?;
        }
        if now.duration_since(self.last_housekeeping) >= Duration::from_secs(1) {
            self.last_housekeeping = now;
            let connected: Vec<WorkerId> = self
                .workers
                .iter()
                .filter(|(_, w)| w.session.is_some())
                .map(|(id, _)| *id)
                .collect();
            for id in users::revoked_among(conn, &connected)? {
                tracing::warn!(worker = %id, "worker token revoked; dropping its session");
                self.lose_worker(
                    conn,
                    id,
                    "its worker's token was revoked",
                    Some((
                        RejectCode::Revoked,
                        "this worker's token was revoked".into(),
                    )),
                    fx,
                )?;
                if let Some(w) = self.workers.get_mut(&id) {
                    w.revoked = true;
                }
            }
            let mut stmt =
                conn.prepare_cached("UPDATE workers SET last_seen = ?2 WHERE id = ?1")?;
            for (id, w) in &self.workers {
                if w.session.is_some()
                    && let Some(at) = w.last_seen_wall
                {
                    stmt.execute(rusqlite::params![id.0 as i64, at])?;
                }
            }
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
        }
        if !self.settings.retention.is_zero()
            && now.duration_since(self.last_prune) >= Duration::from_secs(600)
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

    /// A worker is gone for good (lease expired, revoked): close its session and end
    /// or requeue every job it held.
    pub(super) fn lose_worker(
        &mut self,
        conn: &Connection,
        worker_id: WorkerId,
        why: &str,
        reject: Option<(RejectCode, String)>,
        fx: &mut Effects,
    ) -> Step<()> {
        let held: Vec<JobId> = self
            .workers
            .get(&worker_id)
            .map(|w| w.running.iter().copied().collect())
            .unwrap_or_default();
        for job_id in held {
            self.lose_job(conn, job_id, why, fx)?;
        }
        if let Some(w) = self.workers.get_mut(&worker_id) {
            if let Some(s) = w.session.take() {
                fx.outbound.push((s.outbox, Outbound::Close(reject)));
            }
            // Reset the lease clock so an idle, disconnected worker is not lost again.
            w.last_seen = Instant::now();
        }
        fx.changed_workers.push(worker_id);
        Ok(())
    }
}
