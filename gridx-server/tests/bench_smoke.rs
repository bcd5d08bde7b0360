//! The load generator runs, on a small size: CI checks it works, not how fast.

#[test]
fn loadgen_runs_on_a_small_size() {
    let exe = std::env::current_exe().expect("test path");
    let Some(profile_dir) = exe.parent().and_then(|d| d.parent()) else {
        panic!("unexpected target layout");
    };
    let loadgen = profile_dir.join("examples").join("loadgen");
    assert!(
        loadgen.exists(),
        "{} not built (cargo test builds examples)",
        loadgen.display()
    );
    let out = std::process::Command::new(&loadgen)
        .args([
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
        ])
        .output()
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("jobs/s") && stdout.contains("submit->assign"),
        "{stdout}"
    );
    assert!(stdout.contains("ledger ok"), "{stdout}");
}
