//! Grid-X coordinator. [`app::launch`] runs it. The `gridx-server` command line (serve
//! and the admin commands) lives in the binary (`main.rs`, `cli/`), not here.

pub mod admin;
pub mod api;
pub mod app;
pub mod auth;
pub mod error;
pub mod events;
pub mod gpu_wait;
pub mod http;
pub mod judge0;
pub mod leadership;
pub mod live_output;
pub mod metrics;
pub mod queue;
pub mod replicated;
pub mod settings;
pub mod settlement;
pub mod signals;
pub mod store;
pub mod tls;
pub mod tokens;
pub mod trust;
pub mod worker_session;

pub use app::{AppState, launch};
