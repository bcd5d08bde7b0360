//! The worker host: what `gridx-tui worker` runs. Executors, the link to the
//! coordinator, monitoring and workspaces; no terminal drawing here.

pub mod admission;
pub mod exec;
pub mod gpus;
pub mod host;
pub mod images;
pub mod link;
pub mod live;
pub mod monitor;
pub mod workspace;
