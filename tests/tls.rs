//! TLS end to end: a coordinator that terminates TLS itself (`serve --tls-cert
//! --tls-key`) with a CA made here, a worker and the one-shot commands over https/wss
//! with `--ca-cert`, certificate problems refused with their names, a certificate
//! renewed (files rewritten + SIGHUP) under a connected worker, `gridx-server tls
//! self-signed`, and plain http outside loopback refused without `--insecure`.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

use gridx_e2e::skip::Tool;
use gridx_e2e::tls::{GridTls, TestCa, Validity, served_certificate};
use gridx_e2e::{Grid, binary, terminate};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// `gridx-tui ARGS` with no GRIDX_* variables but `env`; its output.
fn gridx(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(binary("gridx-tui"));
    command.args(args);
    for var in [
        "GRIDX_TOKEN",
        "GRIDX_SERVER",
        "GRIDX_CA_CERT",
        "GRIDX_ALLOW_INSECURE",
    ] {
        command.env_remove(var);
    }
    command
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("gridx-tui runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// The worker's executor here: bubblewrap where it works, else unsandboxed (the
/// jobs are the test's own; TLS is what is tested).
fn executor() -> (&'static str, Option<&'static str>) {
    if Tool::Bubblewrap.probe().is_ok() {
        ("bubblewrap", None)
    } else {
        ("unsandboxed", Some("--allow-unsandboxed"))
    }
}

fn stderr_of(child: &mut std::process::Child) -> String {
    let mut text = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut text);
    }
    text
}

/// A TLS grid whose certificate `issued` is in `dir`, reached as `https://HOST:PORT`.
async fn tls_grid(dir: &Path, ca: &TestCa, hosts: &[&str], validity: Validity) -> Grid {
    let (cert, key) = ca.issue(hosts, 1, validity).write(dir);
    Grid::start_tls(GridTls {
        host: "localhost".into(),
        cert,
        key,
        ca_pem: ca.pem.clone(),
        unverified: validity == Validity::Expired,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_and_the_one_shot_commands_work_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("gridx test CA");
    let ca_path = ca.write(dir.path());
    let grid = tls_grid(
        dir.path(),
        &ca,
        &["localhost", "127.0.0.1"],
        Validity::Current,
    )
    .await;
    assert!(grid.url.starts_with("https://localhost:"), "{}", grid.url);
    let alice = grid.user("alice", "10");
    let token = grid.worker_token("alice", "tls-w1");
    let work_dir = tempfile::tempdir().unwrap();
    let (executor, unsandboxed) = executor();
    let mut extra = vec!["--ca-cert", path(&ca_path)];
    extra.extend(unsandboxed);
    let mut worker = grid.spawn_worker(&token, "tls-w1", executor, work_dir.path(), &extra);
    grid.wait_online(&alice, "tls-w1").await;

    let out = tokio::task::block_in_place(|| {
        gridx(
            &[
                "--server",
                &grid.url,
                "--ca-cert",
                path(&ca_path),
                "--token",
                &alice,
                "submit",
                "--lang",
                "bash",
                "--code",
                "echo over tls",
                "--wait",
            ],
            &[],
        )
    });
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "over tls\n");

    // The CA from the environment; `jobs` lists what the worker ran.
    let out = tokio::task::block_in_place(|| {
        gridx(
            &["--server", &grid.url, "--token", &alice, "--json", "jobs"],
            &[("GRIDX_CA_CERT", path(&ca_path))],
        )
    });
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(list["jobs"][0]["status"], "succeeded", "{list}");

    // The certificate's IP address works as well as its name.
    let by_ip = format!("https://127.0.0.1:{}", grid.port);
    let out = tokio::task::block_in_place(|| {
        gridx(
            &[
                "--server",
                &by_ip,
                "--ca-cert",
                path(&ca_path),
                "--token",
                &alice,
                "balance",
            ],
            &[],
        )
    });
    assert!(
        text(&out.stdout).starts_with("alice: "),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    let status = tokio::task::block_in_place(|| terminate(&mut worker, 20));
    assert!(
        status.is_some_and(|s| s.success()),
        "worker exit {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_problems_are_refused_with_their_names() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("gridx test CA");
    let ca_path = ca.write(dir.path());
    // Valid for `localhost` only, not for 127.0.0.1.
    let grid = tls_grid(dir.path(), &ca, &["localhost"], Validity::Current).await;
    let alice = grid.user("alice", "1");
    let balance = |server: &str, ca: Option<&Path>| {
        let mut args = vec!["--server", server, "--token", &alice];
        if let Some(ca) = ca {
            args.extend(["--ca-cert", path(ca)]);
        }
        args.push("balance");
        let out = tokio::task::block_in_place(|| gridx(&args, &[]));
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
        text(&out.stderr)
    };

    // No --ca-cert: the system does not know the test CA.
    let stderr = balance(&grid.url, None);
    assert!(
        stderr.contains("the coordinator's certificate is signed by an unknown authority")
            && stderr.contains("--ca-cert FILE"),
        "{stderr}"
    );
    // Another CA than the one that signed it.
    let other_dir = tempfile::tempdir().unwrap();
    let other = TestCa::new("another CA").write(other_dir.path());
    let stderr = balance(&grid.url, Some(&other));
    assert!(stderr.contains("unknown authority"), "{stderr}");
    // The right CA, the wrong name.
    let by_ip = format!("https://127.0.0.1:{}", grid.port);
    let stderr = balance(&by_ip, Some(&ca_path));
    assert!(
        stderr.contains("the coordinator's certificate is not valid for host 127.0.0.1"),
        "{stderr}"
    );

    // Plain http to the TLS port is answered with what to use instead.
    let plain = format!("http://localhost:{}", grid.port);
    let stderr = balance(&plain, None);
    assert!(
        stderr.contains("this coordinator speaks TLS only: use https://"),
        "{stderr}"
    );

    // The worker refuses it too, and says why.
    let token = grid.worker_token("alice", "w");
    let work_dir = tempfile::tempdir().unwrap();
    let (executor, unsandboxed) = executor();
    let extra: Vec<&str> = unsandboxed.into_iter().collect();
    let mut worker = grid.spawn_worker(&token, "w", executor, work_dir.path(), &extra);
    let (status, stderr) = tokio::task::spawn_blocking(move || {
        let status = worker.wait();
        (status, stderr_of(&mut worker))
    })
    .await
    .unwrap();
    assert!(!status.unwrap().success());
    assert!(
        stderr.contains("worker authentication failed") && stderr.contains("unknown authority"),
        "{stderr}"
    );

    // An expired certificate, named with its date.
    let expired_dir = tempfile::tempdir().unwrap();
    let expired = tls_grid(
        expired_dir.path(),
        &ca,
        &["localhost", "127.0.0.1"],
        Validity::Expired,
    )
    .await;
    let stderr = balance(&expired.url, Some(&ca_path));
    assert!(
        stderr.contains("the coordinator's certificate expired on 2021-12-31"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_to_new_connections_and_workers_stay() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("gridx test CA");
    let ca_path = ca.write(dir.path());
    let first = ca.issue(&["localhost"], 1, Validity::Current);
    let (cert, key) = first.write(dir.path());
    let grid = Grid::start_tls(GridTls {
        host: "localhost".into(),
        cert: cert.clone(),
        key,
        ca_pem: ca.pem.clone(),
        unverified: false,
    })
    .await;
    let alice = grid.user("alice", "10");
    let token = grid.worker_token("alice", "steady");
    let work_dir = tempfile::tempdir().unwrap();
    let (executor, unsandboxed) = executor();
    let mut extra = vec!["--ca-cert", path(&ca_path)];
    extra.extend(unsandboxed);
    let mut worker = grid.spawn_worker(&token, "steady", executor, work_dir.path(), &extra);
    grid.wait_online(&alice, "steady").await;
    assert_eq!(
        served_certificate(grid.tls.as_ref().unwrap(), &grid.url).await,
        Ok(first.sha256())
    );

    // Renewal: a new key and serial in the same files, then SIGHUP.
    let second = ca.issue(&["localhost"], 2, Validity::Current);
    second.write(dir.path());
    let hup = |grid: &Grid| {
        let pid = grid.server_pid().expect("the coordinator runs");
        let status = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    };
    hup(&grid);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let served = served_certificate(grid.tls.as_ref().unwrap(), &grid.url).await;
        if served == Ok(second.sha256()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still served {served:?} 10 s after SIGHUP\n{}",
            grid.server_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A broken renewal keeps the current certificate, and the log says why.
    std::fs::write(&cert, "not a certificate").unwrap();
    hup(&grid);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !grid.server_log().contains("still serving the old one") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no warning about the bad certificate:\n{}",
            grid.server_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = grid.server_log();
    assert!(log.contains("holds no PEM certificate"), "{log}");
    assert_eq!(
        served_certificate(grid.tls.as_ref().unwrap(), &grid.url).await,
        Ok(second.sha256())
    );

    // The worker kept its session throughout: it still takes jobs, and connected once.
    let job = grid
        .submit(
            &alice,
            serde_json::json!({"language": "bash", "code": "echo still here"}),
        )
        .await;
    let job = grid
        .wait_terminal(&alice, job["job_id"].as_u64().unwrap(), 60)
        .await;
    assert_eq!(job["stdout"], "still here\n", "{job}");
    let status = tokio::task::block_in_place(|| terminate(&mut worker, 20));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let log = stderr_of(&mut worker);
    assert_eq!(
        log.matches("authenticated; taking jobs").count(),
        1,
        "the worker reconnected:\n{log}"
    );
    assert!(!log.contains("disconnected"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_files_serve_tls_with_the_printed_flags() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tls");
    let make = |force: bool| {
        let mut command = Command::new(binary("gridx-server"));
        command.args([
            "tls",
            "self-signed",
            "--host",
            "localhost",
            "--host",
            "127.0.0.1",
        ]);
        command.arg("--out").arg(&out);
        if force {
            command.arg("--force");
        }
        command.env_remove("GRIDX_LISTEN").output().expect("runs")
    };
    let made = tokio::task::block_in_place(|| make(false));
    assert!(made.status.success(), "{}", text(&made.stderr));
    let stdout = text(&made.stdout);
    let ca_path = out.join("ca.pem");
    assert!(
        stdout.contains(&format!(
            "--server https://localhost:8420 --ca-cert {}",
            ca_path.display()
        )),
        "{stdout}"
    );
    let fingerprint = stdout
        .lines()
        .find_map(|l| l.strip_prefix("CA SHA-256 fingerprint: "))
        .expect("the fingerprint line");
    assert_eq!(fingerprint.len(), 95, "{fingerprint}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = tokio::task::block_in_place(|| make(false));
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("--force"),
        "{}",
        text(&again.stderr)
    );

    let grid = Grid::start_tls(GridTls {
        host: "127.0.0.1".into(),
        cert: out.join("cert.pem"),
        key: out.join("key.pem"),
        ca_pem: std::fs::read_to_string(&ca_path).unwrap(),
        unverified: false,
    })
    .await;
    let alice = grid.user("alice", "5");
    let out = tokio::task::block_in_place(|| {
        gridx(
            &[
                "--server",
                &grid.url,
                "--ca-cert",
                path(&ca_path),
                "--token",
                &alice,
                "balance",
            ],
            &[],
        )
    });
    assert!(
        text(&out.stdout).starts_with("alice: "),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn plain_http_outside_loopback_is_refused_without_insecure() {
    // 192.0.2.1 is TEST-NET-1: the refusal comes before any connection is tried.
    let out = gridx(
        &[
            "--server",
            "http://192.0.2.1:8420",
            "--token",
            "gxu_x",
            "balance",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("refusing plain http://192.0.2.1:8420")
            && stderr.contains("--insecure")
            && stderr.contains("https://"),
        "{stderr}"
    );
    let out = gridx(
        &[
            "worker",
            "--headless",
            "--server",
            "http://192.0.2.1:8420",
            "--token",
            "gxw_x",
            "--executor",
            "unsandboxed",
            "--allow-unsandboxed",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("refusing plain http://192.0.2.1:8420"),
        "{}",
        text(&out.stderr)
    );
}
