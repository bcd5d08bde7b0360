//! The benchmarks run, on a small size: CI checks they work, not how fast
//! (docs/benchmarks.md has the real runs).

use gridx_e2e::example;
use std::process::Command;

fn run(name: &str, args: &[&str]) -> String {
    let out = Command::new(example(name))
        .args(args)
        .output()
        .expect("the example runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn loadgen_runs_on_a_small_size() {
    let out = run(
        "loadgen",
        &[
            "--workers",
            "3",
            "--slots",
            "2",
            "--jobs",
            "60",
            "--users",
            "2",
            "--concurrency",
            "4",
        ],
    );
    assert!(
        out.contains("jobs/s") && out.contains("submit->assign"),
        "{out}"
    );
    assert!(out.contains("ledger ok"), "{out}");
}

#[test]
fn sandbox_cost_runs_on_one_pair() {
    let out = run("sandbox_cost", &["1"]);
    // Each executor either measured or said why it skipped.
    assert!(
        out.contains("docker executor") || out.contains("docker: skipped"),
        "{out}"
    );
    assert!(
        out.contains("bwrap executor") || out.contains("bubblewrap: skipped"),
        "{out}"
    );
}
