//! Outcomes as text lines (console, REPL, one-shot) and as JSON (`--json`).

use super::run::Outcome;
use crate::built_in_themes;
use gridx_proto::api::JobSummary;
use gridx_proto::time_fmt::to_rfc3339;

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
    line
}

/// Text lines for a person.
pub fn to_lines(outcome: &Outcome) -> Vec<String> {
    match outcome {
        Outcome::Submitted(job) => vec![format!(
            "submitted job {} ({}, {})",
            job.job_id, job.language, job.status
        )],
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
                    to_rfc3339(job.submitted_at),
                    output_size(job)
                ));
            }
            if list.jobs.is_empty() {
                lines.push("(no jobs)".into());
            }
            if let Some(next) = list.next {
                lines.push(format!("more before job {next}"));
            }
            lines
        }
        Outcome::Workers(workers) => {
            let mut lines = vec![format!(
                "{:>5}  {:<16} {:<12} {:<9} {:<11} {:>5}  {}",
                "ID", "NAME", "OWNER", "STATUS", "EXECUTOR", "SLOTS", "LANGUAGES"
            )];
            for w in &workers.workers {
                let langs: Vec<String> = w.languages.iter().map(|l| l.to_string()).collect();
                lines.push(format!(
                    "{:>5}  {:<16} {:<12} {:<9} {:<11} {:>2}/{:<2}  {}",
                    w.worker_id.to_string(),
                    w.name,
                    w.owner.to_string(),
                    w.status.to_string(),
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
            lines
        }
        Outcome::Balance(b) => vec![format!("{}: {} credits", b.user, b.balance)],
        Outcome::Ledger(l) => {
            let mut lines = vec![format!(
                "{:>6}  {:<24} {:<7} {:>10} {:>8} {:>12}",
                "ID", "AT", "KIND", "AMOUNT", "JOB", "BALANCE"
            )];
            for e in &l.entries {
                lines.push(format!(
                    "{:>6}  {:<24} {:<7} {:>10} {:>8} {:>12}",
                    e.id,
                    to_rfc3339(e.at),
                    e.kind.to_string(),
                    e.amount.to_string(),
                    e.job_id
                        .map(|j| j.to_string())
                        .unwrap_or_else(|| "-".into()),
                    e.balance_after.to_string()
                ));
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

/// Machine-readable output: the API's own JSON shapes.
pub fn to_json(outcome: &Outcome) -> serde_json::Value {
    let value = match outcome {
        Outcome::Submitted(job) | Outcome::Job(job) | Outcome::Cancelled(job) => {
            serde_json::to_value(job)
        }
        Outcome::Output {
            job_id,
            stream,
            bytes,
        } => Ok(serde_json::json!({
            "job_id": job_id,
            "stream": stream,
            "output": String::from_utf8_lossy(bytes),
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
    use super::*;
    use gridx_proto::api::JobView;

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
}
