//! The `gridx-tui` binary: parses the command line (`gridx_tui::cli`), runs it on a
//! multi-threaded runtime, and reports a failure as `error: …` with one `caused by: …`
//! line per cause, exit 1. Usage errors are clap's (exit 2).

use clap::Parser;
use gridx_tui::cli::{self, Cli};
use std::process::ExitCode;

fn main() -> ExitCode {
    // color-eyre's panic hook: a panic reports its message and location plainly
    // (backtraces with RUST_BACKTRACE=1); the dashboard's terminal guard restores the
    // screen before it prints. Errors are printed by hand below, in the documented
    // format.
    if let Err(e) = color_eyre::install() {
        eprintln!("warning: could not install the error report handler: {e}");
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(code) => code,
        Err(err) => {
            // An error may quote the coordinator or a job's message: shown inert.
            let inert = |text: String| gridx_tui::inert::inert_string(text);
            let lines = gridx_proto::report::chain_lines(err.chain().map(|e| e.to_string()));
            for (i, line) in lines.into_iter().enumerate() {
                if i == 0 {
                    eprintln!("error: {}", inert(line));
                } else {
                    eprintln!("  caused by: {}", inert(line));
                }
            }
            ExitCode::FAILURE
        }
    }
}
