//! `gridx-server man [--out DIR]`: roff man pages generated from the grammar in
//! `args.rs`. Without `--out`, the top page goes to stdout (`gridx-server man | man
//! -l -`); with it, one page per command and subcommand (`gridx-server.1`,
//! `gridx-server-user.1`, `gridx-server-user-add.1`, ...) is written into DIR.

use super::args::Cli;
use super::output::write_stdout;
use clap::CommandFactory;
use color_eyre::eyre::{Context, Result};
use std::path::Path;
use std::process::ExitCode;

pub fn write(out: Option<&Path>) -> Result<ExitCode> {
    let command = Cli::command();
    match out {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .context("rendering the man page")?;
            write_stdout(&page)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))?;
            eprintln!("wrote the man pages into {}", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
