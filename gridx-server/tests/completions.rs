//! `gridx-server completions` and `gridx-server man` from the real binary (the checks
//! are shared with gridx-tui's: `gridx_e2e::completions`).

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

use gridx_e2e::completions::Completions;

fn server() -> Completions {
    // The grammar lives in the binary, so its subcommands are listed here.
    let paths = [
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
        "tls",
        "tls self-signed",
        "completions",
        "man",
    ];
    Completions {
        bin: env!("CARGO_BIN_EXE_gridx-server"),
        name: "gridx-server",
        paths: paths
            .iter()
            .map(|p| p.split(' ').map(str::to_owned).collect())
            .collect(),
    }
}

#[test]
fn each_shell_gets_a_script_offering_every_subcommand() {
    server().assert_every_shell_offers_every_subcommand();
}

#[test]
fn bash_accepts_the_script_and_completes_nested_subcommands() {
    let server = server();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = server.checked_bash_script(dir.path());
    assert_eq!(server.bash_completes(&file, &["us"]), ["user"]);
    // Below the first subcommand: what clap-rs/clap#6421 broke for hyphenated names.
    assert_eq!(server.bash_completes(&file, &["user", "a"]), ["add"]);
    assert_eq!(server.bash_completes(&file, &["ledger", "v"]), ["verify"]);
    let options = server.bash_completes(&file, &["serve", "--l"]);
    assert!(options.contains(&"--listen".to_owned()), "{options:?}");
}

#[test]
fn the_man_page_is_roff_and_names_the_subcommands() {
    server().assert_man_page_names_the_subcommands();
}

#[test]
fn man_out_writes_one_page_per_command() {
    server().assert_man_out_writes_one_page_per_command();
}
