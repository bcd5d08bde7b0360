//! Errors that say what to do, from the real binaries: a listen address that is not
//! HOST:PORT, a broken config file reported once, a client left on the default
//! address while `server.listen` moved, and an address that answers but is not a
//! Grid-X coordinator.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

use gridx_e2e::binary;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};

/// A binary run with no `GRIDX_*` variable and no config file of the user's.
fn run(name: &str, home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(binary(name));
    for (key, _) in std::env::vars() {
        if key.starts_with("GRIDX_") {
            command.env_remove(key);
        }
    }
    command
        .env("XDG_CONFIG_HOME", home)
        .env("HOME", home)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn serve_refuses_a_listen_address_that_is_not_host_and_port() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let out = run(
        "gridx-server",
        dir.path(),
        &["--data-dir", data, "serve", "--listen", "0.0.0.0"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("\"0.0.0.0\" has no port; expected HOST:PORT, e.g. 0.0.0.0:8420"),
        "{}",
        stderr(&out)
    );
    let out = run(
        "gridx-server",
        dir.path(),
        &["--data-dir", data, "serve"],
        &[("GRIDX_LISTEN", "http://0.0.0.0:8420")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(text.contains("GRIDX_LISTEN"), "{text}");
    assert!(text.contains("is a URL; expected HOST:PORT"), "{text}");
}

#[test]
fn a_broken_config_file_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gridx.toml");
    std::fs::write(&file, "[server]\nlisten = 5\n").unwrap();
    let file = file.to_str().unwrap();
    for (name, args) in [
        ("gridx-server", ["--config", file, "user", "list"]),
        ("gridx-tui", ["--config", file, "balance", "--token=gxu_x"]),
    ] {
        let out = run(name, dir.path(), &args, &[]);
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {text}");
        assert!(
            text.starts_with(&format!("error: {file}: ")),
            "{name}: {text}"
        );
        assert_eq!(text.matches("invalid type").count(), 1, "{name}: {text}");
        assert_eq!(text.matches("listen = 5").count(), 1, "{name}: {text}");
        assert!(!text.contains("caused by"), "{name}: {text}");
    }
}

#[test]
fn a_client_on_the_default_address_is_warned_when_the_listener_moved() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gridx.toml");
    // The example config copied whole: [client] server still the default.
    std::fs::write(
        &file,
        "[server]\nlisten = \"0.0.0.0:18999\"\n[client]\nserver = \"http://127.0.0.1:8420\"\n",
    )
    .unwrap();
    let out = run(
        "gridx-tui",
        dir.path(),
        &[
            "--config",
            file.to_str().unwrap(),
            "--token",
            "gxu_x",
            "help",
        ],
        &[],
    );
    let text = stderr(&out);
    assert_eq!(
        text.matches("warning: connecting to http://127.0.0.1:8420, the default, but server.listen is 0.0.0.0:18999")
            .count(),
        1,
        "{text}"
    );
    // An address given: no warning.
    let out = run(
        "gridx-tui",
        dir.path(),
        &[
            "--config",
            file.to_str().unwrap(),
            "--server",
            "127.0.0.1:18999",
            "help",
        ],
        &[],
    );
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}

#[test]
fn an_address_that_is_not_a_coordinator_is_asked_about_not_pasted() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).unwrap();
        let body = "<!DOCTYPE html>\n<html><body><h1>Welcome to nginx!</h1></body></html>\n";
        let answer = format!(
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(answer.as_bytes()).unwrap();
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    });
    let dir = tempfile::tempdir().unwrap();
    // HOST:PORT without a scheme, as `worker` takes it: http://HOST:PORT.
    let out = run(
        "gridx-tui",
        dir.path(),
        &["job", "5"],
        &[
            ("GRIDX_SERVER", &addr.to_string()),
            ("GRIDX_TOKEN", "gxu_x"),
        ],
    );
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "HTTP 404 Not Found from http://{addr}/v1/jobs/5 ("
        )),
        "{text}"
    );
    assert!(text.contains("is this a Grid-X coordinator?"), "{text}");
    assert!(!text.contains("nginx"), "{text}");
    assert_eq!(server.join().unwrap(), "GET /v1/jobs/5 HTTP/1.1");
}
