//! Sandbox start cost: the Docker executor running `print(1)` in Python against
//! `docker run --rm` of the same image from the CLI, and the bubblewrap executor
//! against the bare interpreter, paired run by run (alternating, so drift hits both).
//!
//! ```sh
//! cargo run --release -p gridx-tui --example sandbox_cost -- 20
//! ```

use gridx_proto::{JobId, JobSpec, Language};
use gridx_tui::worker::exec::bubblewrap::BubblewrapExecutor;
use gridx_tui::worker::exec::docker::{self, DockerExecutor};
use gridx_tui::worker::exec::{Executor, JobRun, SandboxLimits, StopToken};
use gridx_tui::worker::workspace::Workspace;
use std::process::Command;
use std::time::{Duration, Instant};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

async fn executor_ms(executor: &dyn Executor, base: &std::path::Path, i: u64) -> f64 {
    let workspace = Workspace::create(base, i, 1).expect("workspace");
    let job = JobRun {
        gpus: Default::default(),
        job_id: JobId(i),
        attempt: 1,
        spec: JobSpec {
            gpu_memory_mb: None,
            gpus: 0,
            language: Language::Python,
            code: "print(1)".into(),
            stdin: String::new(),
            timeout_s: 30,
            memory_mb: 256,
            priority: 0,
            max_output_bytes: 1 << 20,
        },
        workspace: workspace.path().to_owned(),
        live: None,
    };
    let t = Instant::now();
    let outcome = executor.run(job, StopToken::new()).await;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(outcome.stdout, "1\n", "{outcome:?}");
    ms
}

fn command_ms(program: &str, args: &[&str]) -> f64 {
    let t = Instant::now();
    let out = Command::new(program).args(args).output().expect("runs");
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ms
}

#[tokio::main]
async fn main() {
    let runs: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let base = tempfile::tempdir().expect("temp dir");
    let image = gridx_proto::config::RuntimeImages::default().python;

    match docker::connect(Duration::from_secs(2)).await {
        Err(e) => println!("docker: skipped ({e})"),
        Ok(engine) => {
            let executor = DockerExecutor::new(
                engine,
                Default::default(),
                SandboxLimits::default(),
                "bench".into(),
            )
            .await;
            if !executor.languages().contains(&Language::Python) {
                println!("docker: skipped (no python image; run `gridx-tui images build`)");
            } else {
                let (mut ours, mut cli, mut create) = (Vec::new(), Vec::new(), Vec::new());
                // Warm both paths once.
                // The baseline: what an operator's `docker run --rm` costs.
                let docker_run = [
                    "run",
                    "--rm",
                    "--network",
                    "none",
                    &image,
                    "python3",
                    "-c",
                    "print(1)",
                ];
                executor_ms(&executor, base.path(), 0).await;
                command_ms("docker", &docker_run);
                for i in 1..=runs {
                    ours.push(executor_ms(&executor, base.path(), i).await);
                    cli.push(command_ms("docker", &docker_run));
                    // What a pool of pre-created containers would take off the path.
                    let t = Instant::now();
                    let out = Command::new("docker")
                        .args(["create", "--network", "none", &image, "true"])
                        .output()
                        .expect("create");
                    create.push(t.elapsed().as_secs_f64() * 1000.0);
                    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                    let _ = Command::new("docker").args(["rm", "-f", &id]).output();
                }
                // The pool experiment: the same jobs with containers created ahead.
                let engine = docker::connect(Duration::from_secs(2))
                    .await
                    .expect("engine");
                let pooled = DockerExecutor::new(
                    engine,
                    Default::default(),
                    SandboxLimits::default(),
                    "bench-pool".into(),
                )
                .await
                .with_pool(2)
                .await;
                let mut with_pool = Vec::new();
                for i in 1..=runs {
                    with_pool.push(executor_ms(&pooled, base.path(), 500 + i).await);
                    // Let the background refill finish, as it would between jobs.
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
                let removed = pooled.remove_orphans().await;
                let p = median(with_pool);
                let (o, c, k) = (median(ours), median(cli), median(create));
                println!(
                    "docker pooled    median {p:.0} ms ({:.0}% of the unpooled executor; {removed} pooled containers removed)",
                    100.0 * p / o
                );
                println!(
                    "docker executor  median {o:.0} ms · docker run --rm median {c:.0} ms · ratio {:.2} ({runs} pairs)",
                    o / c
                );
                println!(
                    "docker create    median {k:.0} ms: the most a pool of pre-created containers could save per job"
                );
            }
        }
    }

    match BubblewrapExecutor::detect(SandboxLimits::default()).await {
        Err(e) => println!("bubblewrap: skipped ({e})"),
        Ok(executor) => {
            let (mut ours, mut bare) = (Vec::new(), Vec::new());
            executor_ms(&executor, base.path(), 0).await;
            for i in 1..=runs {
                ours.push(executor_ms(&executor, base.path(), 1000 + i).await);
                bare.push(command_ms("/usr/bin/python3", &["-c", "print(1)"]));
            }
            let (o, b) = (median(ours), median(bare));
            println!(
                "bwrap executor   median {o:.1} ms · bare python3 median {b:.1} ms · ratio {:.2} ({runs} pairs)",
                o / b
            );
        }
    }
}
