//! Outcomes as text lines (console, REPL, one-shot) and as JSON (`--json`).

use super::result_checks::{
    TrustLevel, check_line, trust_cell, trust_level, trust_sentence, waiting_line,
};
use super::run::Outcome;
use crate::built_in_themes;
use crate::inert::{inert_json, inert_string};
use gridx_proto::api::JobSummary;
use gridx_proto::time_fmt::to_rfc3339_millis;

pub fn job_line(job: &JobSummary) -> String {
    let mut line = format!(
        "job {} {} {} attempts={}",
        job.job_id, job.status, job.language, job.attempts
    );
    if let Some(code) = job.exit_code {
        line.push_str(&format!(" exit={code}"));
    }
    if let Some(ms) = job.duration_ms {
        line.push_str(&format!(" {ms}ms"));
    }
    if let Some(reason) = job.reason {
        line.push_str(&format!(" reason={reason}"));
    }
    if job.refusals > 0 {
        line.push_str(&format!(" refusals={}", job.refusals));
    }
    if job.gpus > 0 {
        line.push_str(&format!(" gpus={}", job.gpus));
    }
    line
}

/// Text lines for a person, inert (`crate::inert`): job output, messages and names
/// that strangers wrote are shown, never obeyed by the terminal they reach.
pub fn to_lines(outcome: &Outcome) -> Vec<String> {
    lines(outcome).into_iter().map(inert_string).collect()
}

fn lines(outcome: &Outcome) -> Vec<String> {
    match outcome {
        Outcome::Submitted(job) => vec![format!(
            "submitted job {} ({}, {})",
            job.job_id, job.language, job.status
        )],
        Outcome::Batch(items) => items
            .iter()
            .map(|(file, item)| match (&item.job, &item.error) {
                (Some(job), _) => format!(
                    "{file}: submitted job {} ({}, {})",
                    job.job_id, job.language, job.status
                ),
                (None, Some(e)) => {
                    format!("{file}: not submitted: {} ({})", e.message, e.code.as_str())
                }
                (None, None) => format!("{file}: no answer"),
            })
            .collect(),
        Outcome::Cancelled(job) => vec![format!(
            "job {}: {}",
            job.job_id,
            if job.status.is_terminal() {
                job.status.to_string()
            } else {
                "cancel requested".into()
            }
        )],
        Outcome::Job(job) => {
            let mut lines = vec![job_line(&job.summary())];
            if let Some(message) = &job.message {
                lines.push(format!("  {message}"));
            }
            // The last worker that refused it, and why (docs/jobs.md, "Refusals").
            if let Some(refusal) = &job.refusal {
                lines.push(format!("  {refusal}"));
            }
            if !job.gpu_indices.is_empty() {
                let held: Vec<String> = job.gpu_indices.iter().map(u32::to_string).collect();
                lines.push(format!("  on GPU {} of its worker", held.join(", ")));
            }
            lines.push(format!("  {}", check_line(&job.validation, job.status)));
            // What holds a queued job: the GPUs it asks for, its result check.
            lines.extend(job.waiting.as_deref().map(|w| format!("  queued: {w}")));
            lines.extend(waiting_line(&job.validation).map(|w| format!("  {w}")));
            if let Some(compiled) = job.compile_output.as_deref().filter(|c| !c.is_empty()) {
                lines.push("--- compile output".into());
                lines.extend(compiled.lines().map(str::to_owned));
            }
            if !job.stdout.is_empty() {
                lines.push("--- stdout".into());
                lines.extend(job.stdout.lines().map(str::to_owned));
                if job.stdout_truncated {
                    lines.push("[stdout truncated]".into());
                }
            }
            if !job.stderr.is_empty() {
                lines.push("--- stderr".into());
                lines.extend(job.stderr.lines().map(str::to_owned));
                if job.stderr_truncated {
                    lines.push("[stderr truncated]".into());
                }
            }
            lines
        }
        Outcome::Logs {
            job_id,
            stdout,
            stderr,
            end,
        } => {
            let mut lines = Vec::new();
            for (name, text) in [("stdout", stdout), ("stderr", stderr)] {
                if !text.is_empty() {
                    lines.push(format!("--- {name}"));
                    lines.extend(text.lines().map(str::to_owned));
                }
            }
            lines.push(match end {
                Some(end) => format!("[job {job_id} {}]", end_words(end)),
                None => {
                    format!("[job {job_id} has not ended: `gridx-tui logs {job_id} -f` follows it]")
                }
            });
            lines
        }
        Outcome::Output { bytes, .. } => String::from_utf8_lossy(bytes)
            .lines()
            .map(str::to_owned)
            .collect(),
        Outcome::Jobs(list) => {
            let mut lines = vec![format!(
                "{:>8}  {:<10} {:<7} {:>3}  {:<24} {:>9}",
                "ID", "STATUS", "LANG", "TRY", "SUBMITTED", "OUTPUT"
            )];
            for job in &list.jobs {
                lines.push(format!(
                    "{:>8}  {:<10} {:<7} {:>3}  {:<24} {:>9}",
                    job.job_id.to_string(),
                    job.status.to_string(),
                    job.language.to_string(),
                    job.attempts,
                    to_rfc3339_millis(job.submitted_at),
                    output_size(job)
                ));
            }
            if list.jobs.is_empty() {
                lines.push("(no jobs)".into());
            }
            if let Some(next) = list.next {
                lines.push(format!("more before job {next}: jobs --before {next}"));
            }
            lines
        }
        Outcome::Workers(workers) => {
            let mut lines = vec![format!(
                "{:>5}  {:<16} {:<12} {:<9} {:<11} {:>6} {:>4} {:<11} {:>5}  {}",
                "ID",
                "NAME",
                "OWNER",
                "STATUS",
                "TRUST",
                "STREAK",
                "PEND",
                "EXECUTOR",
                "SLOTS",
                "LANGUAGES"
            )];
            for w in &workers.workers {
                let langs: Vec<String> = w.languages.iter().map(|l| l.to_string()).collect();
                let r = &w.reliability;
                // A trusted worker's results are not checked: no streak, none pending.
                let (streak, pending) = if r.trusted {
                    ("-".to_owned(), "-".to_owned())
                } else {
                    (r.streak.to_string(), r.pending.to_string())
                };
                lines.push(format!(
                    "{:>5}  {:<16} {:<12} {:<9} {:<11} {:>6} {:>4} {:<11} {:>2}/{:<2}  {}",
                    w.worker_id.to_string(),
                    w.name,
                    w.owner.to_string(),
                    w.status.to_string(),
                    trust_cell(r),
                    streak,
                    pending,
                    w.executor
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| "-".into()),
                    w.running,
                    w.slots,
                    langs.join(",")
                ));
            }
            if workers.workers.is_empty() {
                lines.push("(no workers)".into());
            }
            // The GPUs each worker lends, and which job holds each, under the table.
            for w in &workers.workers {
                if w.gpus.is_empty() {
                    continue;
                }
                let gpus: Vec<String> = w
                    .gpus
                    .iter()
                    .map(|g| {
                        let holder = g
                            .job_id
                            .map_or_else(|| "free".to_owned(), |j| format!("job {j}"));
                        format!("GPU {} {} {} MB: {holder}", g.index, g.name, g.memory_mb)
                    })
                    .collect();
                lines.push(format!("worker {} lends {}", w.worker_id, gpus.join("; ")));
            }
            // Why each quarantined worker gets no jobs, under the table.
            for w in &workers.workers {
                if trust_level(&w.reliability) == TrustLevel::Quarantined {
                    lines.push(format!(
                        "worker {} {}",
                        w.worker_id,
                        trust_sentence(&w.reliability, w.worker_id)
                    ));
                }
            }
            lines
        }
        Outcome::Balance(b) => vec![format!("{}: {} credits", b.user, b.balance)],
        Outcome::Ledger(l) => {
            let mut lines = vec![format!(
                "{:>6}  {:<24} {:<7} {:>10} {:>8} {:>12}  REASON",
                "ID", "AT", "KIND", "AMOUNT", "JOB", "BALANCE"
            )];
            for e in &l.entries {
                let line = format!(
                    "{:>6}  {:<24} {:<7} {:>10} {:>8} {:>12}  {}",
                    e.id,
                    to_rfc3339_millis(e.at),
                    e.kind.to_string(),
                    e.amount.to_string(),
                    e.job_id
                        .map(|j| j.to_string())
                        .unwrap_or_else(|| "-".into()),
                    e.balance_after.to_string(),
                    e.reason.as_deref().unwrap_or("")
                );
                lines.push(line.trim_end().to_owned());
            }
            lines
        }
        Outcome::Theme(Some(name)) => vec![format!("theme: {name}")],
        Outcome::Theme(None) => vec![format!("themes: {}", built_in_themes::NAMES.join(", "))],
        Outcome::Help(text) => text.lines().map(str::to_owned).collect(),
        Outcome::Quit => vec![],
    }
}

/// A summary's output size for a list: stdout and stderr bytes together, `+` when
/// either was cut.
fn output_size(job: &JobSummary) -> String {
    let bytes = job.stdout_bytes.saturating_add(job.stderr_bytes);
    let cut = job.stdout_truncated || job.stderr_truncated;
    let size = match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    };
    if cut { format!("{size}+") } else { size }
}

/// `to_json` as text for a terminal or a pipe: the characters a terminal would obey
/// or hide are `\uXXXX` escapes (serde_json escapes only C0 controls), which parse
/// back to the very same value.
pub fn to_json_text(outcome: &Outcome) -> String {
    let json = to_json(outcome).to_string();
    match inert_json(&json) {
        std::borrow::Cow::Borrowed(_) => json,
        std::borrow::Cow::Owned(escaped) => escaped,
    }
}

/// How a followed job ended, in words: `succeeded`, `failed, exit 3`,
/// `failed: compile_error`.
pub fn end_words(end: &gridx_proto::api::OutputEnd) -> String {
    match (end.exit_code, end.reason) {
        (Some(code), _) if end.status != gridx_proto::JobStatus::Succeeded => {
            format!("{}, exit {code}", end.status)
        }
        (None, Some(reason)) => format!("{}: {reason}", end.status),
        _ => end.status.to_string(),
    }
}

/// Machine-readable output: the API's own JSON shapes.
pub fn to_json(outcome: &Outcome) -> serde_json::Value {
    let value = match outcome {
        Outcome::Submitted(job) | Outcome::Job(job) | Outcome::Cancelled(job) => {
            serde_json::to_value(job)
        }
        Outcome::Batch(items) => {
            let jobs: Vec<serde_json::Value> = items
                .iter()
                .map(|(file, item)| {
                    let mut v = serde_json::to_value(item).unwrap_or_default();
                    if let Some(map) = v.as_object_mut() {
                        map.insert("file".into(), serde_json::Value::String(file.clone()));
                    }
                    v
                })
                .collect();
            Ok(serde_json::json!({ "jobs": jobs }))
        }
        Outcome::Output {
            job_id,
            stream,
            bytes,
            ..
        } => Ok(serde_json::json!({
            "job_id": job_id,
            "stream": stream,
            "output": String::from_utf8_lossy(bytes),
        })),
        Outcome::Logs {
            job_id,
            stdout,
            stderr,
            end,
        } => Ok(serde_json::json!({
            "job_id": job_id,
            "stdout": stdout,
            "stderr": stderr,
            "end": end,
        })),
        Outcome::Jobs(list) => serde_json::to_value(list),
        Outcome::Workers(w) => serde_json::to_value(w),
        Outcome::Balance(b) => serde_json::to_value(b),
        Outcome::Ledger(l) => serde_json::to_value(l),
        Outcome::Theme(name) => Ok(serde_json::json!({ "theme": name })),
        Outcome::Help(text) => Ok(serde_json::json!({ "help": text })),
        Outcome::Quit => Ok(serde_json::Value::Null),
    };
    value.unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::{Outcome, to_json_text, to_lines};
    use crate::ui::fixtures::{job, worker};
    use gridx_proto::api::{JobListResponse, JobView, OutputStream, WorkerStatus, WorkersResponse};
    use gridx_proto::protocol::ExecutorKind;
    use gridx_proto::time_fmt::from_unix_millis;
    use gridx_proto::{JobId, JobStatus, Language};

    #[test]
    fn the_jobs_table_lines_up_whatever_the_fraction_digits() {
        let jobs = [0, 500, 7]
            .into_iter()
            .enumerate()
            .map(|(i, ms)| {
                let mut j = job(i as u64 + 1, "alice", Language::Bash, JobStatus::Queued);
                j.submitted_at = from_unix_millis(1_700_000_000_000 + ms);
                j
            })
            .collect();
        let lines = to_lines(&Outcome::Jobs(JobListResponse { jobs, next: None }));
        let at = lines[0].find("SUBMITTED").unwrap();
        let times: Vec<&str> = lines[1..].iter().map(|l| &l[at..at + 24]).collect();
        assert_eq!(
            times,
            [
                "2023-11-14T22:13:20.000Z",
                "2023-11-14T22:13:20.500Z",
                "2023-11-14T22:13:20.007Z"
            ]
        );
        let widths: Vec<usize> = lines.iter().map(|l| l.len()).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "{lines:#?}");
    }

    #[test]
    fn one_shot_text_is_inert_and_json_keeps_the_value() {
        let output = Outcome::Output {
            job_id: JobId(7),
            stream: OutputStream::Stdout,
            bytes: b"\x1b]0;pwned\x07\x1b[2J hello\r\nbye \xe2\x80\xae!\n".to_vec(),
            raw: false,
        };
        assert_eq!(
            to_lines(&output),
            ["^[]0;pwned^G^[[2J hello", "bye <U+202E>!"]
        );
        let json = to_json_text(&output);
        assert!(json.is_ascii() && !json.contains('\x1b'), "{json}");
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back["output"],
            "\x1b]0;pwned\x07\x1b[2J hello\r\nbye \u{202e}!\n"
        );
        // A worker's name, as a coordinator relays it: a stranger's text too.
        let w = worker(
            1,
            "box\u{9b}2J",
            "alice",
            WorkerStatus::Online,
            ExecutorKind::Docker,
            0,
        );
        let lines = to_lines(&Outcome::Workers(WorkersResponse { workers: vec![w] }));
        assert!(lines[1].contains("box<U+009B>2J"), "{lines:#?}");
    }

    #[test]
    fn a_job_shows_how_often_it_was_refused_and_the_last_refusal() {
        let view: JobView = serde_json::from_str(include_str!(
            "../../../gridx-proto/tests/fixtures/job_view.json"
        ))
        .expect("the fixture");
        let lines = to_lines(&Outcome::Job(Box::new(view.clone())));
        assert!(lines[0].ends_with(" refusals=1"), "{lines:?}");
        assert_eq!(
            lines[1],
            "  refused by worker small-box (#3): the job asks for 256 MB of memory and the jobs running on this worker already hold 900 MB of its 1024 MB"
        );
        let never = JobView {
            refusals: 0,
            refusal: None,
            ..view
        };
        let lines = to_lines(&Outcome::Job(Box::new(never)));
        assert!(!lines.iter().any(|l| l.contains("refus")), "{lines:?}");
    }

    #[test]
    fn gpu_jobs_and_lent_gpus_show_their_gpus_and_why_a_job_waits() {
        let view: JobView = serde_json::from_str(include_str!(
            "../../../gridx-proto/tests/fixtures/job_view.json"
        ))
        .expect("the fixture");
        let queued = JobView {
            gpus: 2,
            waiting: Some("it asks for 2 GPUs, and no online worker lends that many".into()),
            ..view.clone()
        };
        let lines = to_lines(&Outcome::Job(Box::new(queued)));
        assert!(lines[0].ends_with(" gpus=2"), "{lines:?}");
        assert!(
            lines.contains(
                &"  queued: it asks for 2 GPUs, and no online worker lends that many".into()
            ),
            "{lines:#?}"
        );
        let running = JobView {
            gpus: 1,
            gpu_indices: vec![3],
            ..view
        };
        let lines = to_lines(&Outcome::Job(Box::new(running)));
        assert!(
            lines.contains(&"  on GPU 3 of its worker".into()),
            "{lines:#?}"
        );
        let mut w = worker(
            4,
            "gpu-box",
            "bob",
            WorkerStatus::Online,
            ExecutorKind::Bubblewrap,
            1,
        );
        w.gpus = vec![
            gridx_proto::api::WorkerGpu {
                index: 0,
                name: "NVIDIA\u{1b}[2J L4".into(),
                memory_mb: 23_034,
                job_id: Some(gridx_proto::JobId(12)),
            },
            gridx_proto::api::WorkerGpu {
                index: 2,
                name: "NVIDIA L4".into(),
                memory_mb: 23_034,
                job_id: None,
            },
        ];
        let lines = to_lines(&Outcome::Workers(WorkersResponse { workers: vec![w] }));
        assert_eq!(
            lines[2],
            "worker 4 lends GPU 0 NVIDIA^[[2J L4 23034 MB: job 12; GPU 2 NVIDIA L4 23034 MB: free",
            "{lines:#?}"
        );
    }

    #[test]
    fn workers_show_their_trust_and_why_one_is_quarantined() {
        use crate::ui::fixtures::{on_probation, quarantined, trusted};
        let mut workers = Vec::new();
        for (id, name, reliability) in [
            (1, "gpu-box", trusted()),
            (2, "lab-7", on_probation()),
            (9, "mallory-pc", quarantined()),
        ] {
            let mut w = worker(
                id,
                name,
                "bob",
                WorkerStatus::Online,
                ExecutorKind::Docker,
                0,
            );
            w.reliability = reliability;
            workers.push(w);
        }
        let outcome = Outcome::Workers(WorkersResponse { workers });
        let lines = to_lines(&outcome);
        let at = lines[0].find("TRUST").unwrap();
        let cell = |l: &str| {
            l[at..]
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(cell(&lines[0]), "TRUST STREAK PEND");
        assert_eq!(cell(&lines[1]), "trusted - -");
        assert_eq!(cell(&lines[2]), "check 100% 3");
        assert_eq!(lines[2][at..].split_whitespace().nth(3), Some("1"));
        assert_eq!(cell(&lines[3]), "QUARANTINED 0 0");
        assert_eq!(
            lines[4],
            "worker 9 QUARANTINED: 2 invalid results since it was last restored (the last on job 4); it gets no jobs until an operator runs `gridx-server worker restore 9`"
        );
        assert_eq!(lines.len(), 5, "{lines:#?}");
        // --json is the API's own shape: every reliability field is there.
        let json: serde_json::Value = serde_json::from_str(&to_json_text(&outcome)).unwrap();
        let r = &json["workers"][2]["reliability"];
        assert_eq!(r["invalid"], 2);
        assert_eq!(r["spot_check_permille"], 1000);
        assert!(r["quarantined"].as_str().unwrap().starts_with("2 invalid"));
        assert_eq!(json["workers"][0]["reliability"]["trusted"], true);
    }

    #[test]
    fn a_job_shows_how_its_result_was_checked_or_why_it_waits() {
        use crate::ui::fixtures::{validated_by_quorum, waiting_for_quorum};
        let view: JobView = serde_json::from_str(include_str!(
            "../../../gridx-proto/tests/fixtures/job_view.json"
        ))
        .expect("the fixture");
        let checked = JobView {
            validation: validated_by_quorum(),
            ..view.clone()
        };
        let lines = to_lines(&Outcome::Job(Box::new(checked.clone())));
        assert_eq!(
            lines[2],
            "  checked: quorum of 2 agreed (bob #1 valid, carol #2 valid, mallory #9 INVALID)"
        );
        let json: serde_json::Value =
            serde_json::from_str(&to_json_text(&Outcome::Job(Box::new(checked)))).unwrap();
        assert_eq!(json["validation"]["outcome"], "quorum");
        assert_eq!(json["validation"]["replicas"][2]["verdict"], "invalid");
        let mut waiting = waiting_for_quorum();
        waiting.waiting = Some("too few owners \u{1b}[2J".into());
        let queued = JobView {
            status: JobStatus::Queued,
            validation: waiting,
            stdout: String::new(),
            ..view
        };
        let lines = to_lines(&Outcome::Job(Box::new(queued)));
        assert_eq!(
            lines[2..4],
            [
                "  pending: decided when a worker reports",
                "  queued: too few owners ^[[2J"
            ]
        );
    }
}
