//! The sandbox-cost benchmark runs, on one pair: CI checks it works, not how fast.

#[test]
fn sandbox_cost_runs_on_one_pair() {
    let exe = std::env::current_exe().expect("test path");
    let Some(profile_dir) = exe.parent().and_then(|d| d.parent()) else {
        panic!("unexpected target layout");
    };
    let example = profile_dir.join("examples").join("sandbox_cost");
    assert!(
        example.exists(),
        "{} not built (cargo test builds examples)",
        example.display()
    );
    let out = std::process::Command::new(&example)
        .arg("1")
        .output()
        .expect("sandbox_cost runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each executor either measured or said why it skipped.
    assert!(
        stdout.contains("docker executor") || stdout.contains("docker: skipped"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bwrap executor") || stdout.contains("bubblewrap: skipped"),
        "{stdout}"
    );
}
