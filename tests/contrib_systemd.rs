//! The systemd units in contrib/systemd parse: `systemd-analyze verify` accepts them
//! without a single warning. verify exits 0 even on an unknown key or a bad value (it
//! only warns), so any line that names the unit fails the test, and a unit with a typo
//! shows that the check catches one.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

use gridx_e2e::skip::skip;
use std::path::{Path, PathBuf};
use std::process::Command;

const UNITS: [&str; 2] = ["gridx-server.service", "gridx-worker.service"];

fn systemd_analyze() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("systemd-analyze"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        skip(
            "systemd-analyze",
            "it is not on PATH (.ci/install-deps installs the Debian package systemd)",
        );
    }
    found
}

/// The unit as installed, but with its binaries' directory replaced by one that
/// exists here: verify refuses an ExecStart whose program is missing, and
/// /usr/local/bin/gridx-* are not installed on a build machine. The test binary
/// itself stands in (verify checks only that the program is an executable file).
fn staged(dir: &Path, name: &str, text: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let stand_in = exe.to_str().unwrap();
    let text = text
        .replace("/usr/local/bin/gridx-server", stand_in)
        .replace("/usr/local/bin/gridx-tui", stand_in);
    assert!(
        !text
            .lines()
            .any(|l| !l.starts_with('#') && l.contains("/usr/local/bin/")),
        "{name}: another binary"
    );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// verify's complaints about `unit`: exit status, and every output line naming it.
fn complaints(analyze: &Path, unit: &Path) -> (bool, Vec<String>) {
    let out = Command::new(analyze)
        .arg("verify")
        // The units name man pages that a build machine has not installed.
        .arg("--man=no")
        .arg(unit)
        .output()
        .unwrap();
    let name = unit.file_name().unwrap().to_str().unwrap();
    let lines = String::from_utf8_lossy(&out.stderr)
        .lines()
        .chain(String::from_utf8_lossy(&out.stdout).lines())
        .filter(|l| l.contains(name))
        .map(str::to_owned)
        .collect();
    (out.status.success(), lines)
}

#[test]
fn the_shipped_units_verify_without_a_warning() {
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd");
    let dir = tempfile::tempdir().unwrap();
    for name in UNITS {
        let text = std::fs::read_to_string(root.join(name)).unwrap();
        let unit = staged(dir.path(), name, &text);
        let (ok, lines) = complaints(&analyze, &unit);
        assert!(ok && lines.is_empty(), "{name}: {lines:#?}");
    }
}

#[test]
fn a_unit_with_a_mistake_is_caught() {
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd");
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root.join("gridx-worker.service")).unwrap();
    for (mistake, says) in [
        ("KillMode=mixed", "KillMode=mixd"),
        ("Delegate=yes", "Delegat=yes"),
    ] {
        assert!(text.contains(mistake), "{mistake} is no longer in the unit");
        let unit = staged(
            dir.path(),
            "gridx-worker.service",
            &text.replace(mistake, says),
        );
        let (_, lines) = complaints(&analyze, &unit);
        assert!(!lines.is_empty(), "{says} passed verify");
    }
}

/// The settings the documentation promises are in the units (docs/operations.md and
/// docs/worker.md, "Running as a service").
#[test]
fn the_units_hold_what_the_documentation_promises() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd");
    let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap();
    let settings = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with('#') && l.contains('='))
            .map(str::to_owned)
            .collect()
    };
    let server = settings(&read("gridx-server.service"));
    for line in [
        "User=gridx",
        "StateDirectory=gridx",
        "StateDirectoryMode=0700",
        "ExecStart=/usr/local/bin/gridx-server --data-dir /var/lib/gridx serve",
        "Restart=on-failure",
        "KillSignal=SIGTERM",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(
            server.iter().any(|l| l == line),
            "gridx-server.service: {line}"
        );
    }
    // Longer than shutdown_grace_s (10 s) plus the 5 s given to HTTP requests.
    let stop: u32 = server
        .iter()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(stop > 15, "TimeoutStopSec={stop}");

    let worker = settings(&read("gridx-worker.service"));
    for line in [
        "User=gridx-worker",
        "EnvironmentFile=/etc/gridx/worker.env",
        "ExecStart=/usr/local/bin/gridx-tui worker --headless",
        "Delegate=yes",
        "KillMode=mixed",
        "Restart=on-failure",
    ] {
        assert!(
            worker.iter().any(|l| l == line),
            "gridx-worker.service: {line}"
        );
    }
    // No token on a command line, and nothing that breaks bubblewrap.
    for bad in [
        "--token ",
        "RestrictNamespaces",
        "ProtectControlGroups",
        "PrivateUsers",
    ] {
        assert!(
            !worker.iter().any(|l| l.contains(bad)),
            "gridx-worker.service: {bad}"
        );
    }
}
