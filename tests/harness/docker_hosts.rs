//! Grid-X's own binaries as containers on a private Docker network, through the
//! `docker` CLI (the commands an operator would type).
//!
//! The host image is made without a registry, like the runtime images: its base is
//! the Debian root filesystem that `gridx-tui images build` makes with `mmdebstrap`
//! (the bash runtime image: Debian's essential set, which has the glibc the binaries
//! link against), and this build's `gridx-server` and `gridx-tui` are committed on
//! top. A label fingerprints the binaries, so the image is only remade when they
//! change.

use crate::binary;
use std::path::Path;
use std::process::Command;

/// The image every coordinator and worker container runs.
pub const HOST_IMAGE: &str = "gridx-host:e2e";
/// Base of the host image: built by `gridx-tui images build` from Debian packages.
const BASE_IMAGE: &str = "gridx-runtime/bash:local";
/// Label on the host image: which binaries it holds.
const BINARIES_LABEL: &str = "io.gridx.binaries";
/// Label on every container and network of one test cluster, for cleanup.
pub const CLUSTER_LABEL: &str = "io.gridx.e2e";

/// Runs `docker ARGS`; stdout trimmed, or the error with stderr.
pub fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| format!("docker {args:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Builds the host image unless it already holds these binaries.
pub fn ensure_host_image() -> Result<(), String> {
    let server = binary("gridx-server");
    let tui = binary("gridx-tui");
    let fingerprint = format!("{}-{}", fingerprint(&server)?, fingerprint(&tui)?);
    let current = docker(&[
        "image",
        "inspect",
        "--format",
        &format!("{{{{index .Config.Labels \"{BINARIES_LABEL}\"}}}}"),
        HOST_IMAGE,
    ]);
    if current.as_deref() == Ok(fingerprint.as_str()) {
        return Ok(());
    }
    let previous = docker(&["image", "inspect", "--format", "{{.Id}}", HOST_IMAGE]).ok();
    let scratch = format!("gridx-host-build-{}", std::process::id());
    let _ = docker(&["rm", "-f", &scratch]);
    docker(&["create", "--name", &scratch, BASE_IMAGE, "true"])?;
    let built = (|| {
        docker(&[
            "cp",
            &server.to_string_lossy(),
            &format!("{scratch}:/usr/local/bin/gridx-server"),
        ])?;
        docker(&[
            "cp",
            &tui.to_string_lossy(),
            &format!("{scratch}:/usr/local/bin/gridx-tui"),
        ])?;
        docker(&[
            "commit",
            "--change",
            "USER 0:0",
            "--change",
            "WORKDIR /",
            "--change",
            &format!("LABEL {BINARIES_LABEL}={fingerprint}"),
            "--change",
            "CMD [\"gridx-server\", \"--help\"]",
            &scratch,
            HOST_IMAGE,
        ])
    })();
    let _ = docker(&["rm", "-f", &scratch]);
    built?;
    // The image these binaries replaced is dead weight of a few hundred MB.
    if let Some(old) = previous {
        let _ = docker(&["image", "rm", &old]);
    }
    Ok(())
}

/// Size and modification time: enough to tell one build's binary from the next.
fn fingerprint(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    Ok(format!("{}.{modified}", meta.len()))
}

/// Exit code of a stopped container.
pub fn exit_code(name: &str) -> Result<i32, String> {
    docker(&["inspect", "--format", "{{.State.ExitCode}}", name])?
        .parse()
        .map_err(|e| format!("exit code of {name}: {e}"))
}

/// The host port Docker published a running container's `port` (TCP) on.
pub fn published_port(name: &str, port: u16) -> Result<u16, String> {
    let out = docker(&["port", name, &format!("{port}/tcp")])?;
    // One line per host address, e.g. `127.0.0.1:32768`.
    out.lines()
        .find_map(|line| line.rsplit_once(':')?.1.trim().parse().ok())
        .ok_or_else(|| format!("docker port {name} {port}: no host port in {out:?}"))
}

/// Whether the container is running.
pub fn is_running(name: &str) -> bool {
    docker(&["inspect", "--format", "{{.State.Running}}", name]).as_deref() == Ok("true")
}

/// The last lines a container logged, for a failing test's report.
pub fn log_tail(name: &str, lines: usize) -> String {
    let out = Command::new("docker")
        .args(["logs", "--tail", &lines.to_string(), name])
        .output();
    match out {
        Ok(o) => format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => e.to_string(),
    }
}

/// Removes what clusters of test processes that no longer exist left behind (a run
/// killed before its cleanup). A cluster's label value is `gx<pid>x<n>`.
pub fn remove_abandoned_clusters() {
    let Ok(labels) = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label={CLUSTER_LABEL}"),
        "--format",
        &format!("{{{{.Label \"{CLUSTER_LABEL}\"}}}}"),
    ]) else {
        return;
    };
    let mut runs: Vec<&str> = labels.lines().collect();
    runs.sort_unstable();
    runs.dedup();
    for run in runs {
        let pid = run
            .strip_prefix("gx")
            .and_then(|rest| rest.split('x').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        let alive = pid.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            // Its workers were named `<run>-w<n>`; their job containers carry that.
            let workers: Vec<String> = docker(&[
                "ps",
                "-a",
                "--filter",
                "label=io.gridx.worker",
                "--format",
                "{{.Label \"io.gridx.worker\"}}",
            ])
            .unwrap_or_default()
            .lines()
            .filter(|name| name.starts_with(&format!("{run}-")))
            .map(str::to_owned)
            .collect();
            remove_cluster(run, &format!("{run}-net"), &workers);
        }
    }
}

/// Removes every container and the network of one cluster, and the job containers
/// its workers left (labelled with their worker names).
pub fn remove_cluster(cluster: &str, network: &str, worker_names: &[String]) {
    let mut ids: Vec<String> = Vec::new();
    let mut filters = vec![format!("label={CLUSTER_LABEL}={cluster}")];
    filters.extend(
        worker_names
            .iter()
            .map(|n| format!("label=io.gridx.worker={n}")),
    );
    for filter in filters {
        if let Ok(out) = docker(&["ps", "-aq", "--filter", &filter]) {
            ids.extend(out.lines().map(str::to_owned));
        }
    }
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(ids.iter().map(String::as_str));
        let _ = docker(&args);
    }
    let _ = docker(&["network", "rm", network]);
}
