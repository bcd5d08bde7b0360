//! The store is private (docs/operations.md, "Store design"): `gridx-server` creates
//! its data directory 0700 and the database, its WAL and shared memory, and backups
//! 0600 whatever the umask, and `serve` warns when an existing directory or file lets
//! group or others in. Process tests of the real binary.

#![cfg(unix)]
#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_gridx-server");

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// `gridx-server ARGS` under `umask 000`, the loosest there is: whatever the store
/// ends up with, it set itself.
fn under_open_umask(args: &[&str]) -> Command {
    let mut command = Command::new("sh");
    command
        .args(["-c", "umask 000 && exec \"$0\" \"$@\"", BIN])
        .args(args)
        .env_remove("GRIDX_DATA_DIR");
    command
}

/// `serve` on a port the system picks, its stderr into `log`; healthy when this returns.
async fn serve(dir: &Path, log: &Path) -> Child {
    let dir = dir.to_str().unwrap();
    let (child, addr) = gridx_e2e::spawn_server(
        under_open_umask(&["--data-dir", dir, "serve", "--listen", "127.0.0.1:0"])
            .env("GRIDX_LOG", "warn")
            .stderr(std::fs::File::create(log).unwrap()),
    )
    .await
    .unwrap_or_else(|why| panic!("{why}"));
    let log = log.to_owned();
    gridx_e2e::wait_healthy(
        &reqwest::Client::new(),
        &format!("http://{addr}"),
        10,
        &move || std::fs::read_to_string(&log).unwrap_or_default(),
    )
    .await;
    child
}

#[tokio::test]
async fn a_fresh_store_is_private_whatever_the_umask() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested").join("data");
    let log = tmp.path().join("serve.log");
    let mut server = serve(&dir, &log).await;
    let database = dir.join("gridx.db");
    assert_eq!(mode(&dir), 0o700, "the data directory");
    assert_eq!(mode(&database), 0o600, "the database");
    for suffix in ["-wal", "-shm"] {
        let path = dir.join(format!("gridx.db{suffix}"));
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    // An admin command while `serve` runs, then a backup: private too.
    let status = under_open_umask(&["--data-dir", dir.to_str().unwrap(), "user", "add", "a"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let backup = tmp.path().join("copy.db");
    let out = under_open_umask(&[
        "--data-dir",
        dir.to_str().unwrap(),
        "backup",
        backup.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode(&backup), 0o600, "the backup");
    // The copy is a real store with the user in it.
    let copy = rusqlite::Connection::open(&backup).unwrap();
    let users: i64 = copy
        .query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(users, 1);
    // A backup never overwrites a file.
    let again = under_open_umask(&[
        "--data-dir",
        dir.to_str().unwrap(),
        "backup",
        backup.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    gridx_e2e::terminate(&mut server, 20);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        !log.contains("warning:"),
        "no warning for a private store: {log}"
    );
}

#[tokio::test]
async fn serve_warns_about_a_store_others_can_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = tmp.path().join("serve.log");
    let mut server = serve(&dir, &log).await;
    gridx_e2e::terminate(&mut server, 20);
    // An existing directory is the operator's: warned about, not changed.
    assert_eq!(mode(&dir), 0o755);
    let log = std::fs::read_to_string(&log).unwrap();
    let plain = format!(
        "warning: {} has mode 755: group or others can reach the store; run `chmod 700 {}`",
        dir.display(),
        dir.display()
    );
    assert!(log.contains(&plain), "the plain stderr line: {log}");
    assert!(
        log.contains("WARN") && log.contains("the store is readable by group or others"),
        "the log line: {log}"
    );
    // The database it created in there is private all the same.
    assert_eq!(mode(&dir.join("gridx.db")), 0o600);

    // A loose database file is named too.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(dir.join("gridx.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let log2 = tmp.path().join("serve2.log");
    let mut server = serve(&dir, &log2).await;
    gridx_e2e::terminate(&mut server, 20);
    let log2 = std::fs::read_to_string(&log2).unwrap();
    assert!(
        log2.contains(&format!("{} has mode 644", dir.join("gridx.db").display())),
        "{log2}"
    );
    assert!(
        !log2.contains(&format!("{} has mode", dir.display())),
        "the directory is private now: {log2}"
    );
}
