//! contrib/prometheus/gridx-alerts.yml is valid (`promtool check rules`), and its unit
//! tests pass (`promtool test rules gridx-alerts.test.yml`: alerts fire on synthetic
//! series, and stay quiet where they should). Every gridx_ metric the rules name is one
//! the coordinator exports (docs/api.md) or the ledger script writes.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

use gridx_e2e::skip::skip;
use std::path::{Path, PathBuf};
use std::process::Command;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/prometheus")
}

fn promtool(args: &[&str]) -> Option<(bool, String)> {
    match Command::new("promtool")
        .args(args)
        .current_dir(dir())
        .output()
    {
        Ok(out) => Some((
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )),
        Err(e) => {
            skip(
                "promtool",
                format!("{e} (.ci/install-deps installs the Debian package prometheus)"),
            );
            None
        }
    }
}

#[test]
fn the_alert_rules_are_valid() {
    let Some((ok, out)) = promtool(&["check", "rules", "gridx-alerts.yml"]) else {
        return;
    };
    assert!(ok && out.contains("SUCCESS"), "{out}");
}

#[test]
fn the_alerts_fire_on_synthetic_series() {
    let Some((ok, out)) = promtool(&["test", "rules", "gridx-alerts.test.yml"]) else {
        return;
    };
    assert!(ok && out.contains("SUCCESS"), "{out}");
}

#[test]
fn the_rules_name_only_metrics_that_exist() {
    let rules = std::fs::read_to_string(dir().join("gridx-alerts.yml")).unwrap();
    let api =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api.md")).unwrap();
    let script = std::fs::read_to_string(dir().join("gridx-ledger-verify.sh")).unwrap();
    let mut named = 0;
    for word in rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if !word.starts_with("gridx_") || !word.chars().any(|c| c.is_ascii_lowercase()) {
            continue;
        }
        named += 1;
        assert!(
            api.contains(&format!("`{word}`")) || script.contains(&format!("{word} ")),
            "{word} is neither in docs/api.md's metric table nor written by the ledger script"
        );
    }
    assert!(named >= 10, "only {named} metric names found");
}
