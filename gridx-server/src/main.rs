//! The `gridx-server` binary: parses the command line (`cli/`), runs it, and reports a
//! failure as `error: …` with one `caused by: …` line per cause, exit 1. Usage errors
//! are clap's (exit 2).

mod cli;

use clap::Parser;
use cli::args::Cli;
use std::process::ExitCode;

fn main() -> ExitCode {
    // color-eyre's panic hook: a panic reports its message and location plainly
    // (backtraces with RUST_BACKTRACE=1). Errors are printed by hand below, in the
    // documented format.
    if let Err(e) = color_eyre::install() {
        eprintln!("warning: could not install the error report handler: {e}");
    }
    let cli = Cli::parse();
    match cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            let lines = gridx_proto::report::chain_lines(err.chain().map(|e| e.to_string()));
            for (i, line) in lines.iter().enumerate() {
                if i == 0 {
                    eprintln!("error: {line}");
                } else {
                    eprintln!("  caused by: {line}");
                }
            }
            ExitCode::FAILURE
        }
    }
}
