//! Grid-X for people: the dashboard, console, REPL, one-shot commands, the worker host
//! and the demo. The worker, client and command layers know nothing of the terminal;
//! `ui` draws and dispatches.

pub mod backoff;
pub mod built_in_themes;
pub mod cli;
pub mod client;
pub mod commands;
pub mod demo;
pub mod inert;
pub mod launch;
pub mod repl;
pub mod token_file;
pub mod ui;
pub mod worker;
