//! `gridx.example.toml` documents every option with its default. These tests keep the
//! file and the code from drifting apart: the file must parse, and with its optional
//! lines uncommented it must equal the built-in defaults plus those examples.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

use gridx_proto::config::GridxConfig;
use std::path::PathBuf;

fn example_text() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../gridx.example.toml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn example_file_states_exactly_the_defaults() {
    let parsed = GridxConfig::from_toml_str(&example_text()).unwrap();
    assert_eq!(parsed, GridxConfig::default());
}

#[test]
fn every_option_is_in_the_example_file() {
    // Serialise the defaults, and check that every key appears in the example, either
    // set or as a commented-out example.
    let defaults = toml::to_string(&GridxConfig::default()).unwrap();
    let text = example_text();
    let mut section = String::new();
    for line in defaults.lines() {
        if let Some(name) = line.strip_prefix('[') {
            section = name.trim_end_matches(']').to_owned();
            assert!(text.contains(line), "section [{section}] is missing");
            continue;
        }
        let Some((key, _)) = line.split_once(" = ") else {
            continue;
        };
        let set = format!("\n{key} = ");
        let commented = format!("\n# {key} = ");
        assert!(
            text.contains(&set) || text.contains(&commented),
            "[{section}] {key} is not documented in gridx.example.toml"
        );
    }
    // Options that default to unset are not serialised; check those by name.
    for key in [
        "data_dir",
        "token",
        "name",
        "slots",
        "memory_budget_mb",
        "work_dir",
        "themes_dir",
        "keymap",
        "cert",
        "key",
        "ca_cert",
        "docker_runtime",
    ] {
        assert!(
            text.contains(&format!("# {key} = ")),
            "{key} is not documented"
        );
    }
}

#[test]
fn commented_examples_parse_too() {
    let uncommented: String = example_text()
        .lines()
        .map(
            |l| match l.strip_prefix("# ").and_then(|r| r.split_once(" = ")) {
                Some((key, _)) if key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => {
                    &l[2..]
                }
                _ => l,
            },
        )
        .collect::<Vec<_>>()
        .join("\n");
    let parsed = GridxConfig::from_toml_str(&uncommented).unwrap();
    assert_eq!(parsed.worker.slots, Some(4));
    assert_eq!(parsed.worker.name.as_deref(), Some("lab-box-1"));
    assert_eq!(parsed.worker.docker_runtime.as_deref(), Some("runsc"));
}
