//! `gridx-tui completions` and `gridx-tui man` from the real binary: every shell's
//! script offers every subcommand of the grammar (console commands included), bash
//! accepts its script and completes nested subcommands with it, and the man pages are
//! roff naming every command.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

use clap::CommandFactory;
use gridx_tui::cli::Cli;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_gridx-tui");
const NAME: &str = "gridx-tui";

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

/// Runs the binary with a config file that does not exist: an explicit `--config` must
/// exist, so this fails if the command reads the config (these must not need one).
fn stdout_of(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/gridx.toml"])
        .args(args)
        .output()
        .expect("run gridx-tui");
    assert!(
        out.status.success(),
        "gridx-tui {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Whether `word` appears as a whole word (not inside `command` for `man`).
fn mentions(text: &str, word: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .any(|token| token == word)
}

#[test]
fn each_shell_gets_a_script_offering_every_subcommand() {
    let paths = command_paths();
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_of(&["completions", shell]);
        assert!(!script.trim().is_empty(), "{shell}: empty script");
        for path in &paths {
            let last = path.last().map(String::as_str).unwrap_or_default();
            assert!(mentions(&script, last), "{shell}: {path:?} missing");
        }
    }
}

/// What bash offers for `words` (the last one being completed), by sourcing the script
/// and calling the function it registered with `complete -F`.
fn bash_completes(script: &Path, words: &[&str]) -> Vec<String> {
    let line = words.join(" ");
    let program = format!(
        r#"source "$1" || exit 1
spec=$(complete -p {NAME}) || exit 1
fn=${{spec#*-F }}; fn=${{fn%% *}}
COMP_WORDS=({line}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="{line}"; COMP_POINT=${{#COMP_LINE}}
"$fn" {NAME} "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#
    );
    let out = Command::new("bash")
        .args(["-c", &program, "bash"])
        .arg(script)
        .output()
        .expect("run bash (needed to test bash completion)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_accepts_the_script_and_completes_nested_subcommands() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("gridx-tui.bash");
    std::fs::write(&file, stdout_of(&["completions", "bash"])).expect("write script");
    let check = Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .expect("run bash -n");
    assert!(
        check.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(bash_completes(&file, &[NAME, "host-"]), ["host-info"]);
    // Below the first subcommand: what clap-rs/clap#6421 broke for hyphenated names.
    assert_eq!(bash_completes(&file, &[NAME, "images", "b"]), ["build"]);
    let options = bash_completes(&file, &[NAME, "worker", "--exe"]);
    assert_eq!(options, ["--executor"]);
    let options = bash_completes(&file, &[NAME, "submit", "--la"]);
    assert_eq!(options, ["--lang"]);
}

/// The escaped form roff uses for a page name in text: `gridx\-tui\-worker`.
fn roff(name: &str) -> String {
    name.replace('-', "\\-")
}

#[test]
fn the_man_page_is_roff_and_names_the_subcommands() {
    let page = stdout_of(&["man"]);
    assert!(
        page.starts_with('.'),
        "not roff: {:?}",
        &page[..page.len().min(80)]
    );
    assert!(page.contains(&format!(".TH {NAME} 1")), "no .TH header");
    for path in command_paths().iter().filter(|p| p.len() == 1) {
        let reference = roff(&format!("{NAME}-{}(1)", path[0]));
        assert!(page.contains(&reference), "{reference} missing");
    }
}

#[test]
fn man_out_writes_one_page_per_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("man1");
    stdout_of(&["man", "--out", out.to_str().expect("UTF-8 temp path")]);
    let pages = std::iter::once(NAME.to_owned()).chain(
        command_paths()
            .into_iter()
            .map(|p| format!("{NAME}-{}", p.join("-"))),
    );
    for page in pages {
        let path = out.join(format!("{page}.1"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            text.contains(&format!(".TH {page} 1")),
            "{page}: no .TH header"
        );
    }
}
