//! The one rule for a test that needs something this machine may lack (the Docker
//! engine, bubblewrap, tmux, root): outside CI it skips, visibly; with `CI=true` it
//! fails, because a CI run in which it skipped would have proved nothing.
//!
//! Every test that needs such a tool goes through here: the end-to-end tests in
//! `tests/`, and (as a dev-dependency) gridx-tui's executor and sandbox tests.
//!
//! A skip is seen without `--nocapture`: its line is written straight to the
//! process's stderr (libtest captures only what `print!`/`eprint!` write) and
//! appended to `target/gridx-skipped.txt`, which `.ci/run` lists after the tests.

use std::fmt::Display;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Something a test may need from the machine it runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// The Docker engine, reachable through the `docker` CLI's default socket.
    Docker,
    /// `bwrap` on PATH, able to create its namespaces here.
    Bubblewrap,
    /// `tmux` on PATH.
    Tmux,
    /// Running as root (uid switching, RLIMIT_NPROC on job uids).
    Root,
    /// PostgreSQL's server programs (`initdb`, `postgres`), to start a throwaway
    /// cluster (`postgres::Cluster`).
    Postgres,
}

impl Display for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Tool::Docker => "the Docker engine",
            Tool::Bubblewrap => "bubblewrap",
            Tool::Tmux => "tmux",
            Tool::Root => "root",
            Tool::Postgres => "PostgreSQL's server",
        })
    }
}

impl Tool {
    /// Whether the tool is usable here; `Err` says why not. Records nothing.
    pub fn probe(self) -> Result<(), String> {
        match self {
            Tool::Docker => {
                let out = Command::new("docker")
                    .args(["version", "--format", "{{.Server.Version}}"])
                    .stdin(Stdio::null())
                    .output()
                    .map_err(|e| format!("no docker CLI: {e}"))?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(format!(
                        "no Docker engine: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ))
                }
            }
            Tool::Bubblewrap => {
                let bwrap = on_path("bwrap")
                    .ok_or("bwrap is not on PATH (.ci/install-deps installs bubblewrap)")?;
                // Installed is not enough: a container without user namespaces has
                // bwrap but cannot use it.
                let out = Command::new(&bwrap)
                    .args(["--unshare-all", "--ro-bind", "/", "/", "true"])
                    .stdin(Stdio::null())
                    .output()
                    .map_err(|e| format!("{} did not start: {e}", bwrap.display()))?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(format!(
                        "bwrap cannot create namespaces here: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ))
                }
            }
            Tool::Postgres => crate::postgres::bin_dir().map(|_| ()),
            Tool::Tmux => on_path("tmux")
                .map(|_| ())
                .ok_or_else(|| "tmux is not on PATH (.ci/install-deps installs it)".into()),
            Tool::Root => {
                // /proc/self belongs to the process's effective uid.
                let uid = std::fs::metadata("/proc/self")
                    .map_err(|e| format!("cannot read /proc/self: {e}"))?
                    .uid();
                if uid == 0 {
                    Ok(())
                } else {
                    Err(format!("running as uid {uid}, not root"))
                }
            }
        }
    }
}

/// Whether this is a CI run: `CI=true` (or `1`), as GitHub Actions, GitLab CI and
/// most others set it.
pub fn in_ci() -> bool {
    ci_value_means_ci(std::env::var("CI").ok().as_deref())
}

fn ci_value_means_ci(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Checks `tool` for the running test: `true` when it is here. When it is not, in CI
/// the test fails here; elsewhere the skip is reported (see [`skip`]) and `false`
/// returned, and the test must return.
#[must_use]
#[track_caller]
pub fn require(tool: Tool) -> bool {
    match tool.probe() {
        Ok(()) => true,
        Err(why) => {
            skip(tool, why);
            false
        }
    }
}

/// The running test (or a part of it) cannot run here for want of `what`. With
/// `CI=true` this panics; otherwise it reports the skip and returns, and the caller
/// returns (or leaves out the part).
#[track_caller]
pub fn skip(what: impl Display, why: impl Display) {
    let test = test_name();
    if in_ci() {
        panic!("{test} needs {what}, and CI=true forbids skipping: {why}");
    }
    let line = format!("SKIPPED {test}: needs {what}: {why}\n");
    // Straight to the file descriptor: libtest's capture only sees print!/eprint!.
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Some(path) = skipped_list() {
        // One write of a short line to a file opened for append: lines of tests
        // running at once do not interleave.
        if let Ok(mut file) = std::fs::File::options()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// Returns the value, or skips the running test (`return`s from it) with the error
/// as the reason; in CI the error fails the test.
/// `let executor = skip_unless!(Tool::Bubblewrap, BubblewrapExecutor::detect(l).await);`
#[macro_export]
macro_rules! skip_unless {
    ($tool:expr, $result:expr) => {
        match $result {
            Ok(value) => value,
            Err(why) => {
                $crate::skip::skip($tool, why);
                return;
            }
        }
    };
}

/// `require!(Tool::Tmux);` returns from the running test unless tmux is here (and
/// fails it in CI); see [`require`].
#[macro_export]
macro_rules! require {
    ($tool:expr) => {
        if !$crate::skip::require($tool) {
            return;
        }
    };
}

/// `<test binary>: <test path>`, e.g. `executors: on_docker::exit_codes_are_reported`.
/// libtest runs each test on a thread named after it.
fn test_name() -> String {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|stem| match stem.rsplit_once('-') {
            // Cargo names test binaries `<name>-<hash>`.
            Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_owned(),
            _ => stem,
        })
        .unwrap_or_else(|| "?".into());
    let thread = std::thread::current();
    format!("{binary}: {}", thread.name().unwrap_or("?"))
}

/// `target/gridx-skipped.txt`, found from the test binary's own path
/// (`target/<profile>/deps/<test>`), so that CARGO_TARGET_DIR is honoured.
pub fn skipped_list() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let target = exe.parent()?.parent()?.parent()?;
    Some(target.join("gridx-skipped.txt"))
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::{ci_value_means_ci, test_name};

    #[test]
    fn the_test_name_is_the_binary_and_the_thread() {
        let name = test_name();
        assert!(
            name.ends_with(": skip::tests::the_test_name_is_the_binary_and_the_thread"),
            "{name}"
        );
        assert!(!name.starts_with('?'), "{name}");
    }

    #[test]
    fn only_a_true_ci_variable_forbids_skipping() {
        for (value, ci) in [
            (Some("true"), true),
            (Some("TRUE"), true),
            (Some("1"), true),
            (Some("false"), false),
            (Some("0"), false),
            (Some(""), false),
            (None, false),
        ] {
            assert_eq!(ci_value_means_ci(value), ci, "CI={value:?}");
        }
    }
}
