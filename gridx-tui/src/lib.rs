//! Grid-X for people: the worker host, and (as they land) the dashboard, console,
//! REPL, one-shot commands and demo.

pub mod cli;
pub mod worker;
