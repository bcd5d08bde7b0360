//! `gridx-server completions` and `gridx-server man` from the real binary: every
//! shell's script offers the subcommands, bash accepts its script and completes nested
//! subcommands with it, and the man pages are roff naming every command.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_gridx-server");
const NAME: &str = "gridx-server";
/// Every subcommand, nested ones as `parent child`.
const COMMANDS: &[&str] = &[
    "serve",
    "user",
    "user add",
    "user list",
    "user token",
    "worker",
    "worker add",
    "worker revoke",
    "worker list",
    "backup",
    "ledger",
    "ledger verify",
    "completions",
    "man",
];

/// Runs the binary with a config file that does not exist: an explicit `--config` must
/// exist, so this fails if the command reads the config (these must not need one).
fn stdout_of(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/gridx.toml"])
        .args(args)
        .output()
        .expect("run gridx-server");
    assert!(
        out.status.success(),
        "gridx-server {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Whether `word` appears as a whole word (not inside `commands` for `man`).
fn mentions(text: &str, word: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .any(|token| token == word)
}

#[test]
fn each_shell_gets_a_script_offering_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_of(&["completions", shell]);
        assert!(!script.trim().is_empty(), "{shell}: empty script");
        for command in COMMANDS {
            let last = command.rsplit(' ').next().unwrap_or(command);
            assert!(mentions(&script, last), "{shell}: {command} missing");
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
    let file = dir.path().join("gridx-server.bash");
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
    assert_eq!(bash_completes(&file, &[NAME, "us"]), ["user"]);
    // Below the first subcommand: what clap-rs/clap#6421 broke for hyphenated names.
    assert_eq!(bash_completes(&file, &[NAME, "user", "a"]), ["add"]);
    assert_eq!(bash_completes(&file, &[NAME, "ledger", "v"]), ["verify"]);
    let options = bash_completes(&file, &[NAME, "serve", "--l"]);
    assert!(options.contains(&"--listen".to_owned()), "{options:?}");
}

/// The escaped form roff uses for a page name in text: `gridx\-server\-user`.
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
    for command in COMMANDS.iter().filter(|c| !c.contains(' ')) {
        let reference = roff(&format!("{NAME}-{command}(1)"));
        assert!(page.contains(&reference), "{reference} missing");
    }
}

#[test]
fn man_out_writes_one_page_per_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("man1");
    stdout_of(&["man", "--out", out.to_str().expect("UTF-8 temp path")]);
    let pages = std::iter::once(NAME.to_owned()).chain(
        COMMANDS
            .iter()
            .map(|c| format!("{NAME}-{}", c.replace(' ', "-"))),
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
