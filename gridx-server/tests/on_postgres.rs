//! The coordinator's suites again, on PostgreSQL: the same tests as the files named
//! below, each coordinator leading a database of its own on one throwaway cluster
//! (`support::engine_is_postgres` reads this file's module path). Issue 16: both
//! stores pass the same suites.
//!
//! Not here, because they reach into SQLite itself, not through the store boundary:
//! `accounts.rs` and `operator_limits.rs` (admin commands and `open_writer` on the
//! data directory), `reconcile.rs` (a failing SQLite trigger), `store_guard.rs` and
//! `store_privacy.rs` (the data directory's lock and file modes), `process.rs` and
//! `service.rs` (the binary on a data directory).

#![allow(clippy::unwrap_used)]
// a test: a failing unwrap is a failing test
// Each suite brings its own copy of `support`, as it does in its own binary.
#![allow(clippy::duplicate_mod)]

#[path = "admission.rs"]
mod admission;
#[path = "api.rs"]
mod api;
#[path = "batch.rs"]
mod batch;
#[path = "gpus.rs"]
mod gpus;
#[path = "job_output.rs"]
mod job_output;
#[path = "judge0.rs"]
mod judge0;
#[path = "live_output.rs"]
mod live_output;
#[path = "overload.rs"]
mod overload;
#[path = "protocol_errors.rs"]
mod protocol_errors;
#[path = "validation.rs"]
mod validation;
#[path = "workers.rs"]
mod workers;
