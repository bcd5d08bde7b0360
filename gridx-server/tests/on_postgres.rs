//! The coordinator's API and worker-session suites again, on PostgreSQL: the same
//! tests as `api.rs` and `workers.rs`, each coordinator leading a database of its own
//! on one throwaway cluster (`support::engine_is_postgres` reads this file's module
//! path). Issue 16: both stores pass the same suites.

#![allow(clippy::unwrap_used)]
// a test: a failing unwrap is a failing test
// Each suite brings its own copy of `support`, as it does in its own binary.
#![allow(clippy::duplicate_mod)]

#[path = "api.rs"]
mod api;
#[path = "workers.rs"]
mod workers;
