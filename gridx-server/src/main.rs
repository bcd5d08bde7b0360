//! The `gridx-server` binary: parses the command line (`cli/`), runs it, and reports a
//! failure as `error: …` with one `caused by: …` line per cause, exit 1. Usage errors
//! are clap's (exit 2).

mod cli;

use clap::Parser;
use cli::args::Cli;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
