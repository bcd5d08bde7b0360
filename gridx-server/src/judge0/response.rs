//! A job as Judge0 shows a submission: its fields, the `fields` selection, base64
//! when asked (docs/judge0.md#responses). Keys come out sorted (serde_json's map),
//! not in Judge0's column order; JSON clients read by key.

use super::encoding::{encode64, limit, seconds, timestamp};
use super::languages;
use super::request::Settings;
use super::status;
use crate::store::judge0::Judge0Link;
use gridx_proto::api::JobView;
use serde_json::{Map, Value, json};

/// Every field a submission has (Judge0's column order).
pub const ALL_FIELDS: [&str; 35] = [
    "source_code",
    "language_id",
    "stdin",
    "expected_output",
    "stdout",
    "status_id",
    "created_at",
    "finished_at",
    "time",
    "memory",
    "stderr",
    "token",
    "number_of_runs",
    "cpu_time_limit",
    "cpu_extra_time",
    "wall_time_limit",
    "memory_limit",
    "stack_limit",
    "max_processes_and_or_threads",
    "enable_per_process_and_thread_time_limit",
    "enable_per_process_and_thread_memory_limit",
    "max_file_size",
    "compile_output",
    "exit_code",
    "exit_signal",
    "message",
    "wall_time",
    "compiler_options",
    "command_line_arguments",
    "redirect_stderr_to_stdout",
    "callback_url",
    "additional_files",
    "enable_network",
    "status",
    "language",
];

/// What GET answers without `fields`.
pub const DEFAULT_FIELDS: [&str; 8] = [
    "token",
    "time",
    "memory",
    "stdout",
    "stderr",
    "compile_output",
    "message",
    "status",
];

/// A `fields` selection, checked: `None` is the default set, `*` is every field.
pub fn select(fields: Option<&str>) -> Result<Vec<&'static str>, String> {
    let Some(raw) = fields.filter(|f| !f.is_empty()) else {
        return Ok(keep(&DEFAULT_FIELDS));
    };
    let asked: Vec<&str> = raw.split(',').collect();
    if asked.contains(&"*") {
        return Ok(ALL_FIELDS.to_vec());
    }
    let unknown: Vec<&str> = asked
        .iter()
        .copied()
        .filter(|f| !ALL_FIELDS.contains(f))
        .collect();
    if !unknown.is_empty() {
        return Err(format!("invalid fields: [{}]", unknown.join(", ")));
    }
    Ok(keep(&asked))
}

/// The asked fields, each once.
fn keep(asked: &[&str]) -> Vec<&'static str> {
    ALL_FIELDS
        .iter()
        .copied()
        .filter(|f| asked.contains(f))
        .collect()
}

/// A job's input, read only when a field asks for it.
pub struct Input {
    pub code: String,
    pub stdin: String,
}

/// One submission as Judge0 writes it.
pub fn render(
    job: &JobView,
    link: &Judge0Link,
    input: Option<&Input>,
    fields: &[&str],
    base64: bool,
) -> Value {
    let settings: Settings = serde_json::from_str(&link.settings).unwrap_or_default();
    let finished = job.status.is_terminal();
    // With stderr redirected, both streams are one, in that order (the worker keeps
    // them apart, so lines are not interleaved); it is what is shown and compared.
    let output =
        status::program_output(&job.stdout, &job.stderr, settings.redirect_stderr_to_stdout);
    let expected = link.matched.or_else(|| {
        link.expected_output
            .as_deref()
            .map(|e| status::matches(e, &output))
    });
    let status = status::of(job, expected);
    // Judge0 stores an empty output as null.
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let (stdout, stderr) = if settings.redirect_stderr_to_stdout {
        (non_empty(&output), None)
    } else {
        (non_empty(&job.stdout), non_empty(&job.stderr))
    };
    let text = |t: Option<String>| match t {
        Some(t) if base64 => Value::String(encode64(t.as_bytes())),
        Some(t) => Value::String(t),
        None => Value::Null,
    };
    // A program that did not compile never ran: no time, exit code or signal, as
    // Judge0 answers a compilation error.
    let ran = finished
        && job.started_at.is_some()
        && job.reason != Some(gridx_proto::job::FailureReason::CompileError);
    let message = match (&job.message, job.status, job.reason) {
        (Some(m), _, _) => Some(m.clone()),
        (None, gridx_proto::JobStatus::TimedOut, _) => Some("Time limit exceeded".to_owned()),
        (None, _, Some(reason)) if finished && status.id >= 7 => Some(reason.to_string()),
        _ => None,
    };
    let language = languages::by_id(u64::from(link.language_id));
    let mut out = Map::new();
    for field in fields {
        let value = match *field {
            "source_code" => text(input.map(|i| i.code.clone())),
            "language_id" => json!(link.language_id),
            "stdin" => text(input.and_then(|i| non_empty(&i.stdin))),
            "expected_output" => text(link.expected_output.clone()),
            "stdout" => text(stdout.clone()),
            "status_id" => json!(status.id),
            "created_at" => json!(timestamp(job.submitted_at)),
            "finished_at" => json!(job.finished_at.map(timestamp)),
            "time" | "wall_time" => json!(job.duration_ms.filter(|_| ran).map(seconds)),
            // Not measured by the workers (docs/judge0.md#differences).
            "memory" => Value::Null,
            "stderr" => text(stderr.clone()),
            "token" => json!(link.token),
            "number_of_runs" => json!(settings.number_of_runs),
            "cpu_time_limit" => json!(limit(settings.cpu_time_limit)),
            "cpu_extra_time" => json!(limit(settings.cpu_extra_time)),
            "wall_time_limit" => json!(limit(settings.wall_time_limit)),
            "memory_limit" => json!(settings.memory_limit),
            "stack_limit" => json!(settings.stack_limit),
            "max_processes_and_or_threads" => json!(settings.max_processes_and_or_threads),
            "enable_per_process_and_thread_time_limit"
            | "enable_per_process_and_thread_memory_limit"
            | "enable_network" => json!(false),
            "max_file_size" => json!(settings.max_file_size),
            "compile_output" => text(job.compile_output.as_deref().and_then(non_empty)),
            "exit_code" => json!(ran.then(|| {
                if status::signal_of(job.exit_code).is_some() {
                    0
                } else {
                    job.exit_code.unwrap_or(0)
                }
            })),
            "exit_signal" => json!(status::signal_of(job.exit_code).filter(|_| ran)),
            "message" => text(message.clone()),
            "compiler_options" => json!(settings.compiler_options),
            "command_line_arguments" => json!(settings.command_line_arguments),
            "redirect_stderr_to_stdout" => json!(settings.redirect_stderr_to_stdout),
            "callback_url" | "additional_files" => Value::Null,
            "status" => json!(status),
            "language" => match language {
                Some(l) => json!({"id": l.id, "name": l.name}),
                None => Value::Null,
            },
            _ => continue,
        };
        out.insert((*field).to_owned(), value);
    }
    Value::Object(out)
}

/// Whether a field needs the job's code or stdin (read from the store only then).
pub fn needs_input(fields: &[&str]) -> bool {
    fields.iter().any(|f| *f == "source_code" || *f == "stdin")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_checked_and_kept_once() {
        assert_eq!(select(None).expect("default").len(), 8);
        assert_eq!(select(Some("*")).expect("all").len(), 35);
        assert_eq!(
            select(Some("status,stdout")).expect("two"),
            ["stdout", "status"]
        );
        assert_eq!(
            select(Some("stdout, stderr,foo")),
            Err("invalid fields: [ stderr, foo]".to_owned())
        );
    }
}
