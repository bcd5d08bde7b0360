//! Shared helpers of the end-to-end tests in `tests/`: finding the built binaries.

use std::path::PathBuf;

/// Path of a workspace binary built by the same `cargo test` run's profile.
///
/// The end-to-end tests drive the real binaries; `cargo test --workspace` builds them
/// because the `gridx-server` and `gridx-tui` packages are in the same invocation.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    // target/<profile>/deps/<test-binary> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binaries live in target/<profile>/deps");
    dir.join(name)
}
