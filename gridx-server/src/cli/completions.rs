//! `gridx-server completions SHELL`: a completion script generated from the grammar in
//! `args.rs`, so it never drifts from what the binary accepts. gridx-tui's
//! `launch::completions` is the same for the other binary.

use super::args::Cli;
use super::output::write_stdout;
use clap::CommandFactory;
use clap_complete::Shell;
use color_eyre::eyre::Result;
use std::process::ExitCode;

pub fn print(shell: Shell) -> Result<ExitCode> {
    let mut command = Cli::command();
    let name = command.get_name().to_owned();
    // Rendered into memory first: clap_complete panics when its writer fails, and a
    // closed stdout is an error to report.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, &name, &mut script);
    if shell == Shell::Bash {
        script = fix_hyphenated_bash(&script, &name);
    }
    write_stdout(&script)?;
    Ok(ExitCode::SUCCESS)
}

/// clap_complete (4.6.12) spells a hyphenated binary's state `gridx__server__subcmd__user`
/// where it walks the words but `gridx__subcmd__server__subcmd__user` in the `case` arms,
/// so nothing after the first subcommand completes in bash (clap-rs/clap#6421). The arms
/// are respelled the way the walk spells them; once clap_complete is fixed the broken
/// spelling no longer occurs and this changes nothing.
fn fix_hyphenated_bash(script: &[u8], bin_name: &str) -> Vec<u8> {
    let broken = bin_name.replace('-', "__subcmd__");
    let walked = bin_name.replace('-', "__");
    String::from_utf8_lossy(script)
        .replace(&broken, &walked)
        .into_bytes()
}
