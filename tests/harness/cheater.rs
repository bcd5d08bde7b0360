//! A worker that lies about results, for the result-check scenarios (docs/trust.md):
//! a raw protocol client that claims many slots and answers every `assign` at once
//! with `started` then `finished`, exit 0, and made-up stdout, without running
//! anything. A "sleeper" first answers honestly for a number of jobs (it runs the
//! bash code itself, so its answer matches an honest worker's byte for byte), then
//! lies like the others.
//!
//! It records every answer it gave, in order, so a scenario can tell afterwards what
//! became of each lie: accepted unchecked, or caught by a replica.

use futures_util::{SinkExt, StreamExt};
use gridx_proto::job::{RunEnd, RunOutcome};
use gridx_proto::protocol::{
    Capabilities, CoordinatorMessage, ExecutorKind, JobAttempt, PROTOCOL_VERSION, WorkerMessage,
    decode_coordinator_message, encode,
};
use gridx_proto::{Language, WorkerId};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::fake_worker::Ws;

/// Far more than any honest worker of the scenarios: the coordinator gives the
/// free-est worker the next job, so a cheater that is allowed one gets it.
pub const CHEATER_SLOTS: u32 = 1024;

/// One answer the cheater gave, in the order it gave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub job_id: u64,
    pub attempt: u32,
    /// Whether it reported what the job really prints (a sleeper's first jobs).
    pub honest: bool,
}

/// A cheating worker connected to a coordinator; disconnects when dropped.
pub struct Cheater {
    pub worker_id: u64,
    answers: Arc<Mutex<Vec<Answer>>>,
    task: JoinHandle<()>,
}

impl Cheater {
    /// Connects to the coordinator at `url` (`http://HOST:PORT`) with a worker token
    /// and lies about every job, printing `fake_stdout`.
    pub async fn connect(url: &str, token: &str, fake_stdout: &str) -> Cheater {
        Cheater::sleeper(url, token, fake_stdout, 0).await
    }

    /// Like [`Cheater::connect`], but honest for its first `honest_jobs` assignments.
    pub async fn sleeper(url: &str, token: &str, fake_stdout: &str, honest_jobs: usize) -> Cheater {
        let ws_url = format!(
            "{}/v1/worker/connect",
            url.replacen("http://", "ws://", 1)
                .replacen("https://", "wss://", 1)
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(ws_url)
            .await
            .expect("the cheater's WebSocket upgrade");
        let hello = WorkerMessage::Hello {
            protocol: PROTOCOL_VERSION,
            token: token.to_owned(),
            name: "cheater".into(),
            capabilities: Capabilities {
                gpu_devices: Vec::new(),
                languages: vec![Language::Bash],
                slots: CHEATER_SLOTS,
                // It claims a sandbox, so it is offered every user's jobs.
                executor: ExecutorKind::Docker,
                cpu_cores: 64,
                memory_mb: 1 << 20,
                gpus: 0,
                max_job_memory_mb: None,
                memory_budget_mb: None,
                max_job_timeout_s: None,
            },
            running: Vec::new(),
        };
        send(&mut ws, &hello).await;
        let worker_id = loop {
            match next(&mut ws, Duration::from_secs(10)).await {
                Some(CoordinatorMessage::Welcome { worker_id, .. }) => break worker_id,
                Some(CoordinatorMessage::Reject { code, message }) => {
                    panic!("the cheater was refused: {code}: {message}")
                }
                Some(_) => continue,
                None => panic!("the coordinator closed the cheater's connection before welcome"),
            }
        };
        let answers = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(serve(
            ws,
            worker_id,
            fake_stdout.to_owned(),
            honest_jobs,
            answers.clone(),
        ));
        Cheater {
            worker_id: worker_id.0,
            answers,
            task,
        }
    }

    /// Every answer given so far, oldest first.
    pub fn answers(&self) -> Vec<Answer> {
        self.answers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The answers that were lies, oldest first.
    pub fn lies(&self) -> Vec<Answer> {
        self.answers().into_iter().filter(|a| !a.honest).collect()
    }
}

impl Drop for Cheater {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Answers assignments until the connection ends, heartbeating every half second
/// (the scenarios' coordinators expect one a second) with the attempts it runs, as a
/// real worker does. A lie goes back at once; an honest answer is run in the
/// background, so a run slowed down by a loaded machine neither stops the
/// heartbeats (the lease would end and the attempt be lost) nor holds up the next
/// assignment.
async fn serve(
    mut ws: Ws,
    worker_id: WorkerId,
    fake_stdout: String,
    honest_jobs: usize,
    answers: Arc<Mutex<Vec<Answer>>>,
) {
    enum Event {
        Beat,
        Message(Option<CoordinatorMessage>),
        Done(JobAttempt, RunOutcome),
    }
    let heartbeat = |running: &[JobAttempt]| WorkerMessage::Heartbeat {
        metrics: Default::default(),
        running: running.to_vec(),
        draining: false,
    };
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut running: Vec<JobAttempt> = Vec::new();
    // Answers decided so far: the first `honest_jobs` are honest.
    let mut decided = 0usize;
    send(&mut ws, &heartbeat(&running)).await;
    let mut beat = tokio::time::interval(Duration::from_millis(500));
    // A stalled loop (a loaded machine) sends one late heartbeat, not a burst of them:
    // each heartbeat that does not list an attempt assigned meanwhile counts against
    // it, and a burst sent before reading that assignment would get it taken back.
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // The select only chooses; the socket is used after it, once no branch holds it.
        // Biased: an assignment waiting on the socket is read (and answered or listed
        // as running) before the next heartbeat goes out, as a real worker's would be.
        let event = tokio::select! {
            biased;
            message = next(&mut ws, Duration::from_secs(3600)) => Event::Message(message),
            Some((attempt, outcome)) = done_rx.recv() => Event::Done(attempt, outcome),
            _ = beat.tick() => Event::Beat,
        };
        match event {
            Event::Beat => send(&mut ws, &heartbeat(&running)).await,
            Event::Message(None) => return,
            Event::Message(Some(CoordinatorMessage::Assign { job, attempt })) => {
                let key = JobAttempt {
                    job_id: job.job_id,
                    attempt,
                };
                let honest = decided < honest_jobs;
                decided += 1;
                send(
                    &mut ws,
                    &WorkerMessage::Started {
                        job_id: job.job_id,
                        attempt,
                    },
                )
                .await;
                if honest {
                    running.push(key);
                    let done = done_tx.clone();
                    tokio::spawn(async move {
                        let outcome = run_honestly(&job.spec.code, &job.spec.stdin).await;
                        let _ = done.send((key, outcome));
                    });
                } else {
                    let lie = RunOutcome {
                        end: RunEnd::Exited,
                        exit_code: Some(0),
                        stdout: fake_stdout.clone(),
                        stderr: String::new(),
                        stdout_truncated: false,
                        stderr_truncated: false,
                        duration_ms: 1,
                        message: None,
                        compile_output: None,
                    };
                    answer(&mut ws, worker_id, &answers, key, false, lie).await;
                }
            }
            Event::Message(Some(_)) => {}
            Event::Done(key, outcome) => {
                running.retain(|a| *a != key);
                answer(&mut ws, worker_id, &answers, key, true, outcome).await;
            }
        }
    }
}

/// Sends `finished` for `key` and records the answer.
async fn answer(
    ws: &mut Ws,
    worker_id: WorkerId,
    answers: &Mutex<Vec<Answer>>,
    key: JobAttempt,
    honest: bool,
    outcome: RunOutcome,
) {
    send(
        ws,
        &WorkerMessage::Finished {
            job_id: key.job_id,
            attempt: key.attempt,
            outcome,
        },
    )
    .await;
    if let Ok(mut a) = answers.lock() {
        a.push(Answer {
            job_id: key.job_id.0,
            attempt: key.attempt,
            honest,
        });
    }
    note(worker_id, key.job_id.0, key.attempt, honest);
}

/// What the cheater did, on the test's output (shown when a scenario fails).
fn note(worker: WorkerId, job: u64, attempt: u32, honest: bool) {
    let what = if honest { "honest" } else { "fake" };
    println!("cheater worker {worker}: job {job} attempt {attempt}: {what} answer");
}

/// Runs a bash job here, as an honest worker would in its sandbox: the scenarios'
/// jobs are the test's own deterministic one-liners, so its stdout, stderr and exit
/// code are what any honest worker reports.
async fn run_honestly(code: &str, stdin: &str) -> RunOutcome {
    use tokio::io::AsyncWriteExt;
    let started = std::time::Instant::now();
    let mut child = tokio::process::Command::new("bash")
        .args(["-c", code])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the sleeper runs bash");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes()).await;
    }
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("a scenario's job ends within 30 s")
        .expect("the sleeper's bash ran");
    RunOutcome {
        end: RunEnd::Exited,
        exit_code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        stdout_truncated: false,
        stderr_truncated: false,
        duration_ms: started.elapsed().as_millis() as u64,
        message: None,
        compile_output: None,
    }
}

async fn send(ws: &mut Ws, message: &WorkerMessage) {
    let text = encode(message).expect("a worker message encodes");
    // A send into a closed connection ends the cheater at its next read.
    let _ = ws.send(Message::Text(text.into())).await;
}

/// The next coordinator message; `None` when the connection ended or `wait` passed.
async fn next(ws: &mut Ws, wait: Duration) -> Option<CoordinatorMessage> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) | Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => {
                return None;
            }
            Ok(Some(Ok(Message::Text(text)))) => {
                return Some(
                    decode_coordinator_message(&text, usize::MAX)
                        .expect("the coordinator's frames decode"),
                );
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}
