//! Coordinator load generator.
//!
//! Starts the real `gridx-server` binary on a temporary store, connects N simulated
//! workers over real WebSockets (their "executor" finishes a job at once), submits M
//! jobs from U users over HTTP with C requests in flight, and reports jobs/s end to end
//! (first submit to last settlement), submit-to-assign latency (p50/p99/max, measured
//! from the 201 answer to the worker receiving `assign`), and the coordinator process's
//! CPU time and peak RSS (from /proc). Then `ledger verify` must pass.
//!
//! ```sh
//! cargo build --release -p gridx-server --bins --examples
//! target/release/examples/loadgen --workers 1000 --jobs 50000 --users 10 --concurrency 64
//! target/release/examples/loadgen --idle-workers 10000      # RSS with idle workers
//! target/release/examples/loadgen --owners 10 --streak 200   # with result checks
//! target/release/examples/loadgen --batch 100               # POST /v1/jobs/batch
//! target/release/examples/loadgen --store postgres://gridx@127.0.0.1:5432/bench
//! ```
//!
//! `--store URL` runs the coordinator on that PostgreSQL database (empty, or made
//! by an earlier run's schema with no users) instead of a temporary SQLite store.
//! The coordinator's CPU then excludes PostgreSQL's own processes:
//! `scripts/bench-postgres.sh` measures those too.
//!
//! By default the simulated workers belong to one owner and are marked trusted, so
//! no result is checked (docs/trust.md). `--owners N` spreads them over N owners,
//! untrusted, each worker and owner starting with a record of `--streak S` confirmed
//! results in a row (its spot-check rate is then max(5 %, 10 / S) with the default
//! policy): the steady state of a grid whose workers have records. It then reports
//! replicas run per accepted job from `/metrics`.

use futures_util::{SinkExt, StreamExt};
use gridx_proto::Language;
use gridx_proto::job::{RunEnd, RunOutcome};
use gridx_proto::protocol::{
    Capabilities, CoordinatorMessage, ExecutorKind, PROTOCOL_VERSION, WorkerMessage,
    decode_coordinator_message, encode,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

struct Options {
    workers: usize,
    slots: u32,
    jobs: usize,
    users: usize,
    concurrency: usize,
    idle_workers: usize,
    /// Submits per second in all (0: as fast as possible).
    rate: usize,
    /// Owners the workers are spread over, untrusted (0: one owner, trusted).
    owners: usize,
    /// The confirmed results in a row every worker's and owner's record starts with.
    streak: u64,
    /// Jobs per request through `POST /v1/jobs/batch` (0: single submits).
    batch: usize,
    /// `--store postgres://…`: the store, instead of SQLite in a temporary directory.
    store: Option<String>,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        workers: 100,
        slots: 4,
        jobs: 5_000,
        users: 4,
        concurrency: 32,
        idle_workers: 0,
        rate: 0,
        owners: 0,
        streak: 0,
        batch: 0,
        store: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        if flag == "--store" {
            o.store = Some(value);
            continue;
        }
        let n: usize = value
            .parse()
            .map_err(|_| format!("{flag}: {value:?} is not a number"))?;
        match flag.as_str() {
            "--workers" => o.workers = n,
            "--slots" => o.slots = n as u32,
            "--jobs" => o.jobs = n,
            "--users" => o.users = n.max(1),
            "--concurrency" => o.concurrency = n.max(1),
            "--idle-workers" => o.idle_workers = n,
            "--rate" => o.rate = n,
            "--owners" => o.owners = n,
            "--streak" => o.streak = n as u64,
            "--batch" => o.batch = n.min(gridx_proto::api::MAX_BATCH_JOBS),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(o)
}

fn server_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().and_then(Path::parent).ok_or("no target dir")?;
    let bin = dir.join("gridx-server");
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!(
            "{} is missing: run `cargo build --release -p gridx-server --bins --examples`",
            bin.display()
        ))
    }
}

/// The store flag of every `gridx-server` command: `--store URL` or `--data-dir DIR`.
fn store_args(store: &Option<String>, dir: &Path) -> [std::ffi::OsString; 2] {
    match store {
        Some(url) => ["--store".into(), url.into()],
        None => ["--data-dir".into(), dir.into()],
    }
}

fn admin(bin: &Path, store: &[std::ffi::OsString; 2], args: &[&str]) -> String {
    let out = Command::new(bin)
        .args(store)
        .args(args)
        .output()
        .expect("gridx-server runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// CPU seconds (user + system) and peak RSS (MiB) of a process, from /proc.
fn usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let cpu = cpu_seconds(&stat);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(0.0);
    (cpu, hwm / 1024.0)
}

/// User + system CPU seconds from the text of a `/proc/.../stat` file.
fn cpu_seconds(stat: &str) -> f64 {
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc_sysconf_clk_tck() };
    (ticks(11) + ticks(12)) / hz
}

unsafe fn libc_sysconf_clk_tck() -> f64 {
    // _SC_CLK_TCK is 2 on Linux; avoid a libc dependency for one call.
    unsafe extern "C" {
        fn sysconf(name: i32) -> i64;
    }
    // SAFETY: sysconf only reads a constant of the system; any name is accepted.
    let v = unsafe { sysconf(2) };
    if v > 0 { v as f64 } else { 100.0 }
}

/// CPU seconds per thread name of a process, biggest first: where the time goes.
fn threads(pid: u32) -> Vec<(String, f64)> {
    let mut by_name: HashMap<String, f64> = HashMap::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            let name = stat
                .split('(')
                .nth(1)
                .and_then(|r| r.split(')').next())
                .unwrap_or("?")
                .to_owned();
            *by_name.entry(name).or_default() += cpu_seconds(&stat);
        }
    }
    let mut v: Vec<_> = by_name.into_iter().collect();
    v.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
    v
}

async fn health(http: &reqwest::Client, base: &str) -> serde_json::Value {
    http.get(format!("{base}/healthz"))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// When each request was sent, by request number (carried in the job's code, so the
/// worker can tell which request an `assign` answers).
type Submitted = Arc<Mutex<HashMap<u64, Instant>>>;

async fn worker(
    url: String,
    token: String,
    slots: u32,
    submitted: Submitted,
    latencies: Arc<Mutex<Vec<f64>>>,
    done: Arc<AtomicU64>,
    busy: bool,
) {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{url}/v1/worker/connect"))
        .await
        .expect("connect");
    let hello = WorkerMessage::Hello {
        protocol: PROTOCOL_VERSION,
        token,
        name: "sim".into(),
        capabilities: Capabilities {
            gpu_devices: Vec::new(),
            languages: vec![Language::Python, Language::Node, Language::Bash],
            slots,
            // It finishes jobs without running them, but claims a sandbox: a `noop`
            // worker gets only its owner's jobs, and these stand in for the grid's
            // sandboxed workers, which take every user's.
            executor: ExecutorKind::Docker,
            cpu_cores: 1,
            memory_mb: 1024,
            gpus: 0,
            max_job_memory_mb: None,
            memory_budget_mb: None,
            max_job_timeout_s: None,
        },
        running: vec![],
    };
    socket
        .send(Message::Text(encode(&hello).unwrap_or_default().into()))
        .await
        .expect("hello");
    let mut heartbeat = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            frame = socket.next() => {
                let Some(Ok(Message::Text(text))) = frame else { return };
                let Ok(message) = decode_coordinator_message(&text, usize::MAX) else { return };
                match message {
                    CoordinatorMessage::Assign { job, attempt } if busy => {
                        let request = job.spec.code.rsplit('#').next().and_then(|n| n.trim().parse::<u64>().ok());
                        // A replica (a later attempt) is not a submit's first assignment.
                        if attempt == 1
                            && let Some(t0) = request.and_then(|n| submitted.lock().ok().and_then(|m| m.get(&n).copied()))
                            && let Ok(mut l) = latencies.lock()
                        {
                            l.push(t0.elapsed().as_secs_f64() * 1000.0);
                        }
                        let finished = WorkerMessage::Finished {
                            job_id: job.job_id,
                            attempt,
                            outcome: RunOutcome { end: RunEnd::Exited, exit_code: Some(0), stdout: String::new(), stderr: String::new(), stdout_truncated: false, stderr_truncated: false, duration_ms: 0, message: None, compile_output: None },
                        };
                        if socket.send(Message::Text(encode(&finished).unwrap_or_default().into())).await.is_err() { return; }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    CoordinatorMessage::Reject { code, message } => {
                        // The coordinator stopping at the end of the run is expected.
                        if code != gridx_proto::protocol::RejectCode::ShuttingDown {
                            eprintln!("worker rejected: {message}");
                        }
                        return;
                    }
                    _ => {}
                }
            }
            _ = heartbeat.tick() => {
                let hb = WorkerMessage::Heartbeat { metrics: Default::default(), running: vec![], draining: false };
                if socket.send(Message::Text(encode(&hb).unwrap_or_default().into())).await.is_err() { return; }
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let bin = match server_binary() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_args(&options.store, dir.path());
    let config = dir.path().join("gridx.toml");
    std::fs::write(
        &config,
        // Every simulated worker connects from 127.0.0.1: the per-address limits
        // (docs/operations.md, "What is limited") are raised out of the way.
        "[server]\nheartbeat_s = 5\nqueue_capacity = 10000000\nmax_queued_per_user = 10000000\nrate_limit_per_s = 1000000\nrate_limit_burst = 1000000\nmax_worker_connections_per_address = 1000000\nmax_worker_connections = 1000000\n",
    )
    .expect("config");
    // Submitters share the job counter unevenly; let every user afford all of it.
    let per_user_credits = (options.jobs + 10).to_string();
    let tokens: Vec<String> = (0..options.users)
        .map(|i| {
            admin(
                &bin,
                &store,
                &[
                    "user",
                    "add",
                    &format!("u{i}"),
                    "--credits",
                    &per_user_credits,
                ],
            )
        })
        .collect();
    let owner_names: Vec<String> = if options.owners == 0 {
        vec!["owner".into()]
    } else {
        (0..options.owners).map(|i| format!("owner{i}")).collect()
    };
    for name in &owner_names {
        admin(&bin, &store, &["user", "add", name, "--credits", "0"]);
    }
    let total_workers = options.workers + options.idle_workers;
    let started = Instant::now();
    let worker_tokens: Vec<String> = {
        // One admin process per token is slow for thousands; register in bulk.
        use gridx_server::store::trust::{self, Record, Subject};
        let location = match &options.store {
            Some(url) => gridx_server::store::Location::parse(url).expect("--store"),
            None => gridx_server::store::Location::Sqlite(dir.path().to_owned()),
        };
        // A thread of its own: PostgreSQL's synchronous client must not run on the
        // async runtime's.
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let conn = gridx_server::store::open_writer_at(&location).expect("store");
                    let owners: Vec<gridx_proto::UserName> = owner_names
                        .iter()
                        .map(|n| gridx_proto::UserName::new(n).expect("name"))
                        .collect();
                    let tx = conn.transaction().expect("tx");
                    let record = Record {
                        validated: options.streak,
                        streak: options.streak,
                        ..Record::default()
                    };
                    let tokens = (0..total_workers)
                        .map(|i| {
                            let owner = &owners[i % owners.len()];
                            let (id, token) =
                                gridx_server::store::users::add_worker(&tx, owner, "sim")
                                    .expect("worker");
                            if options.owners == 0 {
                                // One owner's simulated workers cannot check each other
                                // (docs/trust.md): trusted, so this measures the coordinator
                                // without result checks.
                                trust::set_trusted(&tx, id, true).expect("trust");
                            } else {
                                trust::save_record(&tx, &Subject::Worker(id), &record, 0)
                                    .expect("record");
                            }
                            token
                        })
                        .collect();
                    if options.owners > 0 {
                        for owner in &owners {
                            trust::save_record(&tx, &Subject::Owner(owner.clone()), &record, 0)
                                .expect("record");
                        }
                    }
                    tx.commit().expect("commit");
                    tokens
                })
                .join()
                .expect("registering workers")
        })
    };
    eprintln!(
        "registered {total_workers} workers in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let mut server = Command::new(&bin)
        .args(&store)
        .arg("--config")
        .arg(&config)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("GRIDX_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("gridx-server starts");
    let http_url = format!("http://127.0.0.1:{port}");
    let ws_url = format!("ws://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(options.concurrency)
        .build()
        .expect("client");
    // Up and leading (on PostgreSQL a coordinator leads a moment after it listens).
    for _ in 0..400 {
        if let Ok(r) = http.get(format!("{http_url}/healthz")).send().await
            && r.status() == 200
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let submitted: Submitted = Arc::new(Mutex::new(HashMap::with_capacity(options.jobs)));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(options.jobs)));
    let done = Arc::new(AtomicU64::new(0));
    for (i, token) in worker_tokens.into_iter().enumerate() {
        let busy = i < options.workers;
        tokio::spawn(worker(
            ws_url.clone(),
            token,
            options.slots,
            submitted.clone(),
            latencies.clone(),
            done.clone(),
            busy,
        ));
        if i % 500 == 499 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Wait until every worker is online.
    loop {
        let health = health(&http, &http_url).await;
        if health["workers_online"].as_u64().unwrap_or(0) as usize >= total_workers {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (cpu_before, _) = usage(server.id());
    let threads_before = threads(server.id());
    eprintln!(
        "{total_workers} workers online; coordinator RSS {:.1} MiB",
        usage(server.id()).1
    );
    if options.jobs == 0 {
        let (_, rss) = usage(server.id());
        println!("idle: {total_workers} workers connected, coordinator peak RSS {rss:.1} MiB");
        let _ = server.kill();
        let _ = server.wait();
        return;
    }

    let t0 = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut submitters = Vec::new();
    for c in 0..options.concurrency {
        let http = http.clone();
        let batch = options.batch as u64;
        let url = if batch > 0 {
            format!("{http_url}/v1/jobs/batch")
        } else {
            format!("{http_url}/v1/jobs")
        };
        let token = tokens[c % tokens.len()].clone();
        let next = next.clone();
        let submitted = submitted.clone();
        let jobs = options.jobs as u64;
        // Paced mode: each submitter sends on its own steady clock.
        let pace = (options.rate > 0)
            .then(|| Duration::from_secs_f64(options.concurrency as f64 / options.rate as f64));
        submitters.push(tokio::spawn(async move {
            let mut clock = pace.map(|p| {
                let mut i = tokio::time::interval(p);
                i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                i
            });
            loop {
                if let Some(clock) = clock.as_mut() {
                    clock.tick().await;
                }
                let take = batch.max(1);
                let n = next.fetch_add(take, Ordering::Relaxed);
                if n >= jobs {
                    break;
                }
                let last = (n + take).min(jobs);
                if let Ok(mut m) = submitted.lock() {
                    let now = Instant::now();
                    for i in n..last {
                        m.insert(i, now);
                    }
                }
                let job =
                    |i: u64| serde_json::json!({"language": "bash", "code": format!("true #{i}")});
                let body = if batch > 0 {
                    serde_json::json!({"jobs": (n..last).map(job).collect::<Vec<_>>()})
                } else {
                    job(n)
                };
                let response = http.post(&url).bearer_auth(&token).json(&body).send().await;
                match response {
                    Ok(r) if r.status() == 201 => {}
                    Ok(r) if r.status() == 200 && batch > 0 => {
                        let answer: serde_json::Value = r.json().await.unwrap_or_default();
                        let refused = answer["jobs"].as_array().map_or(1, |items| {
                            items.iter().filter(|i| i.get("job").is_none()).count()
                        });
                        if refused > 0 {
                            eprintln!("batch: {refused} items refused: {answer}");
                        }
                    }
                    Ok(r) => eprintln!("submit refused: {}", r.status()),
                    Err(e) => eprintln!("submit failed: {e}"),
                }
            }
        }));
    }
    for s in submitters {
        let _ = s.await;
    }
    let submit_time = t0.elapsed();
    while (done.load(Ordering::Relaxed) as usize) < options.jobs {
        if t0.elapsed() > Duration::from_secs(600) {
            eprintln!(
                "gave up waiting: {} of {} finished",
                done.load(Ordering::Relaxed),
                options.jobs
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Settlement is the coordinator's commit of `finished`: wait until nothing runs.
    loop {
        let health = health(&http, &http_url).await;
        let metrics = http
            .get(format!("{http_url}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .unwrap_or_default();
        let running = metrics
            .lines()
            .find(|l| l.starts_with("gridx_jobs{status=\"running\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(1);
        if health["jobs_queued"].as_u64() == Some(0) && running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = t0.elapsed();
    let (cpu_after, rss) = usage(server.id());
    let mut lat = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let cpu = cpu_after - cpu_before;
    println!(
        "jobs {} · workers {} x {} slots · users {} · concurrency {} · {}",
        options.jobs,
        options.workers,
        options.slots,
        options.users,
        options.concurrency,
        if options.batch > 0 {
            format!("batches of {}", options.batch)
        } else {
            "single submits".to_owned()
        }
    );
    println!(
        "end to end      {:.0} jobs/s ({:.2} s; submits took {:.2} s)",
        options.jobs as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        submit_time.as_secs_f64()
    );
    println!(
        "submit->assign  p50 {:.2} ms · p99 {:.2} ms · max {:.2} ms ({} samples; from sending the request to the worker holding the job)",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0.0),
        lat.len()
    );
    println!(
        "coordinator     {:.2} CPU-s ({:.0}% of one core) · peak RSS {:.1} MiB",
        cpu,
        cpu / elapsed.as_secs_f64() * 100.0,
        rss
    );
    // Only the measured window: the threads' CPU at its end less at its start.
    let mut window: Vec<(String, f64)> = threads(server.id())
        .into_iter()
        .map(|(name, t)| {
            let before = threads_before
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(0.0, |(_, b)| *b);
            (name, t - before)
        })
        .collect();
    window.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
    let breakdown: Vec<String> = window
        .into_iter()
        .take(4)
        .map(|(n, t)| format!("{n} {t:.2}s"))
        .collect();
    println!("                by thread: {}", breakdown.join(" · "));
    let metrics = http
        .get(format!("{http_url}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    let sum = |prefix: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let reported = sum("gridx_results_reported_total");
    let accepted = sum("gridx_jobs_accepted_total");
    println!(
        "result checks   {} owners · streak {} · {:.3} runs per accepted job ({reported} results, {accepted} accepted, {} mismatches)",
        options.owners,
        options.streak,
        if accepted > 0.0 {
            reported / accepted
        } else {
            0.0
        },
        sum("gridx_replica_verdicts_total{status=\"invalid\"}").max(0.0)
    );
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();
    let verify = admin(&bin, &store, &["ledger", "verify"]);
    println!("{verify}");
}
