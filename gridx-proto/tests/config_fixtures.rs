//! Config fixtures: every file in `config/valid/` must load, and every file in
//! `config/invalid/` must be refused with the message its first line names
//! (`# error: <text the message must contain>`).

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

use gridx_proto::config::GridxConfig;
use std::path::PathBuf;

fn files(kind: &str) -> Vec<(PathBuf, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/config")
        .join(kind);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no fixtures in {}", dir.display());
    out
}

#[test]
fn valid_configs_load() {
    for (path, text) in files("valid") {
        if let Err(e) = GridxConfig::from_toml_str(&text) {
            panic!("{} should load: {e}", path.display());
        }
    }
}

#[test]
fn invalid_configs_are_refused_with_a_clear_error() {
    for (path, text) in files("invalid") {
        let expected = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# error: "))
            .unwrap_or_else(|| panic!("{} lacks its `# error:` line", path.display()));
        match GridxConfig::from_toml_str(&text) {
            Ok(_) => panic!("{} should be refused", path.display()),
            Err(e) => assert!(
                e.to_string().contains(expected),
                "{}: error {e:?} does not mention {expected:?}",
                path.display()
            ),
        }
    }
}
