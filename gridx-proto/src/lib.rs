//! Every type that crosses a Grid-X process boundary.
//!
//! The coordinator (`gridx-server`), the dashboard and the worker host (`gridx-tui`)
//! all speak through these types, so a change here is a change of the wire format:
//! the golden fixtures under `tests/fixtures/` make such a change visible in review.
//! This crate does no I/O of its own: it parses and validates text handed to it.

pub mod admin;
pub mod api;
pub mod config;
pub mod credits;
pub mod events;
pub mod gpu;
pub mod ids;
pub mod job;
pub mod language;
pub mod limits;
pub mod metrics;
pub mod protocol;
pub mod report;
pub mod time_fmt;

pub use credits::Credits;
pub use ids::{JobId, UserName, WorkerId};
pub use job::{FailureReason, IllegalTransition, JobStatus};
pub use language::Language;
pub use limits::{JobLimits, JobSpec};
pub use metrics::{GpuMetrics, HostMetrics};
pub use protocol::PROTOCOL_VERSION;
