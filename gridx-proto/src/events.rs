//! Live events pushed to clients on `GET /v1/events` (one JSON object per text frame).

use crate::api::{JobSummary, LedgerEntryView, WorkerView};
use crate::ids::WorkerId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An event the caller is allowed to see: its own jobs and ledger rows, and every
/// worker (workers are public so users can see the grid's capacity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    /// A job was created or changed state. A summary: the output's lengths and
    /// truncation flags once it ended, never the output (`GET /v1/jobs/{id}`).
    Job { job: JobSummary },
    /// A worker connected, changed state or sent a heartbeat.
    Worker { worker: WorkerView },
    /// A worker was removed (revoked).
    WorkerRemoved { worker_id: WorkerId },
    /// A ledger row was written on the caller's account.
    Ledger { entry: LedgerEntryView },
    /// The client read too slowly and `missed` events were dropped; refetch state.
    Lagged { missed: u64 },
}
