//! The console grammar: one set of commands, one parser, for the dashboard's console,
//! the REPL and the one-shot commands (`gridx-tui jobs`, ...), and the completion
//! both the console and the REPL offer.

pub mod completion;
pub mod grammar;
pub mod render;
pub mod result_checks;
pub mod run;

pub use grammar::{ConsoleCommand, parse_line};
pub use run::{CommandError, Outcome, run};
