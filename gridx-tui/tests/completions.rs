//! `gridx-tui completions` and `gridx-tui man` from the real binary: every shell's
//! script offers every subcommand of the grammar (console commands included), bash
//! accepts its script and completes nested subcommands with it, and the man pages are
//! roff naming every command.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

use clap::CommandFactory;
use gridx_e2e::completions::Completions;
use gridx_tui::cli::Cli;

/// Every subcommand path of the grammar (`["images", "build"]`), hidden ones excepted,
/// so a command added later is covered without touching this test.
fn command_paths() -> Vec<Vec<String>> {
    fn walk(command: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
            let mut path = prefix.to_vec();
            path.push(sub.get_name().to_owned());
            walk(sub, &path, out);
            out.push(path);
        }
    }
    let mut out = Vec::new();
    walk(&Cli::command(), &[], &mut out);
    assert!(out.len() > 10, "too few subcommands found: {out:?}");
    out
}

fn tui() -> Completions {
    Completions {
        bin: env!("CARGO_BIN_EXE_gridx-tui"),
        name: "gridx-tui",
        paths: command_paths(),
    }
}

#[test]
fn each_shell_gets_a_script_offering_every_subcommand() {
    tui().assert_every_shell_offers_every_subcommand();
}

#[test]
fn bash_accepts_the_script_and_completes_nested_subcommands() {
    let tui = tui();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = tui.checked_bash_script(dir.path());
    assert_eq!(tui.bash_completes(&file, &["host-"]), ["host-info"]);
    // Below the first subcommand: what clap-rs/clap#6421 broke for hyphenated names.
    assert_eq!(tui.bash_completes(&file, &["images", "b"]), ["build"]);
    assert_eq!(
        tui.bash_completes(&file, &["worker", "--exe"]),
        ["--executor"]
    );
    assert_eq!(tui.bash_completes(&file, &["submit", "--la"]), ["--lang"]);
}

#[test]
fn the_man_page_is_roff_and_names_the_subcommands() {
    tui().assert_man_page_names_the_subcommands();
}

#[test]
fn man_out_writes_one_page_per_command() {
    tui().assert_man_out_writes_one_page_per_command();
}
