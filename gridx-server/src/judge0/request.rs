//! A Judge0 submission request, read as Judge0 reads it (numbers or numeric strings,
//! Rails' booleans, base64 when asked) and turned into a Grid-X job, or refused with
//! Judge0's `422 {"field": ["message"]}` (docs/judge0.md#requests).

use super::encoding::decode64;
use super::languages;
use crate::queue::NewJob;
use crate::store::judge0::Judge0Link;
use gridx_proto::JobLimits;
use gridx_proto::api::SubmitJobRequest;
use gridx_proto::config::Judge0Config;
use gridx_proto::limits::SpecError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Judge0 CE 1.13.1's defaults and maximums (`/config_info`).
pub const CPU_TIME_LIMIT: f64 = 5.0;
pub const MAX_CPU_TIME_LIMIT: f64 = 15.0;
pub const CPU_EXTRA_TIME: f64 = 1.0;
pub const MAX_CPU_EXTRA_TIME: f64 = 5.0;
pub const WALL_TIME_LIMIT: f64 = 10.0;
pub const MAX_WALL_TIME_LIMIT: f64 = 20.0;
pub const MEMORY_LIMIT: u64 = 128_000;
pub const MIN_MEMORY_LIMIT: u64 = 2048;
pub const MAX_MEMORY_LIMIT: u64 = 512_000;
pub const STACK_LIMIT: u64 = 64_000;
pub const MAX_PROCESSES_AND_OR_THREADS: u64 = 60;
pub const MAX_FILE_SIZE: u64 = 1024;
pub const MAX_TEXT_OPTION: usize = 512;

/// The request's limits and options, stored with the job and shown by `fields`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub cpu_time_limit: f64,
    pub cpu_extra_time: f64,
    pub wall_time_limit: f64,
    pub memory_limit: u64,
    pub stack_limit: u64,
    pub max_processes_and_or_threads: u64,
    pub max_file_size: u64,
    pub number_of_runs: u64,
    pub redirect_stderr_to_stdout: bool,
    pub compiler_options: Option<String>,
    pub command_line_arguments: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            cpu_time_limit: CPU_TIME_LIMIT,
            cpu_extra_time: CPU_EXTRA_TIME,
            wall_time_limit: WALL_TIME_LIMIT,
            memory_limit: MEMORY_LIMIT,
            stack_limit: STACK_LIMIT,
            max_processes_and_or_threads: MAX_PROCESSES_AND_OR_THREADS,
            max_file_size: MAX_FILE_SIZE,
            number_of_runs: 1,
            redirect_stderr_to_stdout: false,
            compiler_options: None,
            command_line_arguments: None,
        }
    }
}

/// Judge0's validation errors: field → messages.
pub type Invalid = BTreeMap<String, Vec<String>>;

struct Reader<'a> {
    body: &'a Map<String, Value>,
    base64: bool,
    errors: Invalid,
}

impl Reader<'_> {
    fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.errors
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    fn present(&self, field: &str) -> Option<&Value> {
        self.body.get(field).filter(|v| !v.is_null())
    }

    /// A text field; base64-decoded when the request says so (Judge0 decodes
    /// leniently: characters outside the alphabet are skipped).
    fn text(&mut self, field: &str, base64: bool) -> Option<String> {
        let value = self.present(field)?.clone();
        let text = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                self.fail(field, "must be a string");
                return None;
            }
        };
        if base64 && self.base64 {
            match String::from_utf8(decode64(&text)) {
                Ok(decoded) => Some(decoded),
                Err(_) => {
                    self.fail(field, "is not UTF-8 text once base64-decoded");
                    None
                }
            }
        } else {
            Some(text)
        }
    }

    fn number(&mut self, field: &str) -> Option<f64> {
        let value = self.present(field)?.clone();
        let parsed = match &value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) if s.trim().is_empty() => return None,
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match parsed.filter(|f| f.is_finite()) {
            Some(f) => Some(f),
            None => {
                self.fail(field, "is not a number");
                None
            }
        }
    }

    fn integer(&mut self, field: &str) -> Option<i64> {
        let f = self.number(field)?;
        if f.fract() != 0.0 || f.abs() > 1e15 {
            self.fail(field, "must be an integer");
            return None;
        }
        Some(f as i64)
    }

    /// Rails' boolean cast: `false`, `0`, `"0"`, `"f"`, `"false"`, `"off"` (any case)
    /// are false, `""` is absent, anything else true.
    fn boolean(&mut self, field: &str) -> Option<bool> {
        match self.present(field)? {
            Value::Bool(b) => Some(*b),
            Value::Number(n) => Some(n.as_f64() != Some(0.0)),
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(!matches!(
                s.to_ascii_lowercase().as_str(),
                "0" | "f" | "false" | "off"
            )),
            _ => Some(true),
        }
    }

    fn float_in(&mut self, field: &str, default: f64, min: f64, max: f64) -> f64 {
        let Some(v) = self.number(field) else {
            return default;
        };
        if v < min {
            self.fail(field, format!("must be greater than or equal to {min:?}"));
        } else if v > max {
            self.fail(field, format!("must be less than or equal to {max:?}"));
        }
        v
    }

    /// A limit the sandbox sets by itself: only Judge0's default (or nothing) is
    /// taken, since another value could not be honoured.
    fn fixed(&mut self, field: &str, default: u64) -> u64 {
        match self.integer(field) {
            None => default,
            Some(v) if v == default as i64 => default,
            Some(_) => {
                self.fail(
                    field,
                    format!(
                        "cannot be set on this server: its sandbox sets this limit itself; leave it unset (or {default})"
                    ),
                );
                default
            }
        }
    }

    fn blank_or_refused(&mut self, field: &str, message: &str) -> Option<String> {
        let text = self.text(field, false)?;
        if text.chars().count() > MAX_TEXT_OPTION {
            self.fail(
                field,
                format!("is too long (maximum is {MAX_TEXT_OPTION} characters)"),
            );
        } else if !text.trim().is_empty() {
            self.fail(field, message);
        }
        Some(text)
    }
}

/// A submission that passed Judge0's checks and ours: the job to queue.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub job: NewJob,
}

/// Reads one submission. `base64` is the request's `base64_encoded=true`.
pub fn parse(
    body: &Value,
    base64: bool,
    limits: &JobLimits,
    judge0: &Judge0Config,
) -> Result<Accepted, Invalid> {
    let Some(body) = body.as_object() else {
        let mut errors = Invalid::new();
        errors.insert(
            "submission".into(),
            vec!["must be a JSON object of submission fields".into()],
        );
        return Err(errors);
    };
    let mut r = Reader {
        body,
        base64,
        errors: Invalid::new(),
    };
    let source_code = r.text("source_code", true);
    if source_code.as_deref().is_none_or(|c| c.trim().is_empty()) {
        r.fail("source_code", "can't be blank");
    }
    let language_id = r.integer("language_id");
    let language = match language_id {
        None => {
            r.fail("language_id", "can't be blank");
            None
        }
        Some(id) => {
            let found = u64::try_from(id).ok().and_then(languages::by_id);
            if found.is_none() {
                r.fail(
                    "language_id",
                    format!("language with id {id} doesn't exist"),
                );
            }
            found
        }
    };
    let stdin = r.text("stdin", true);
    let expected_output = r.text("expected_output", true);
    // Longer than the output a job may keep, it could never match.
    if let Some(e) = &expected_output
        && e.len() > limits.max_output_bytes
    {
        r.fail(
            "expected_output",
            format!(
                "is {} bytes; at most {} (the most output a job keeps)",
                e.len(),
                limits.max_output_bytes
            ),
        );
    }
    let mut settings = Settings {
        cpu_time_limit: r.float_in("cpu_time_limit", CPU_TIME_LIMIT, 0.0, MAX_CPU_TIME_LIMIT),
        cpu_extra_time: r.float_in("cpu_extra_time", CPU_EXTRA_TIME, 0.0, MAX_CPU_EXTRA_TIME),
        wall_time_limit: r.float_in("wall_time_limit", WALL_TIME_LIMIT, 1.0, MAX_WALL_TIME_LIMIT),
        ..Settings::default()
    };
    if let Some(kb) = r.integer("memory_limit") {
        if kb < MIN_MEMORY_LIMIT as i64 {
            r.fail(
                "memory_limit",
                format!("must be greater than or equal to {MIN_MEMORY_LIMIT}"),
            );
        } else if kb > MAX_MEMORY_LIMIT as i64 {
            r.fail(
                "memory_limit",
                format!("must be less than or equal to {MAX_MEMORY_LIMIT}"),
            );
        } else {
            settings.memory_limit = kb as u64;
        }
    }
    settings.stack_limit = r.fixed("stack_limit", STACK_LIMIT);
    settings.max_processes_and_or_threads =
        r.fixed("max_processes_and_or_threads", MAX_PROCESSES_AND_OR_THREADS);
    settings.max_file_size = r.fixed("max_file_size", MAX_FILE_SIZE);
    settings.number_of_runs = r.fixed("number_of_runs", 1);
    for field in [
        "enable_per_process_and_thread_time_limit",
        "enable_per_process_and_thread_memory_limit",
    ] {
        if r.boolean(field) == Some(true) {
            r.fail(field, "this option cannot be enabled");
        }
    }
    if r.boolean("enable_network") == Some(true) {
        r.fail("enable_network", "enabling network is not allowed");
    }
    settings.redirect_stderr_to_stdout = r.boolean("redirect_stderr_to_stdout").unwrap_or(false);
    // As Judge0 with ENABLE_COMPILER_OPTIONS=false (its /config_info says so too).
    settings.compiler_options = r.blank_or_refused(
        "compiler_options",
        "setting compiler options is not allowed",
    );
    settings.command_line_arguments = r.blank_or_refused(
        "command_line_arguments",
        "setting command line arguments is not allowed",
    );
    let mut callback_url = None;
    if let Some(url) = r
        .text("callback_url", false)
        .filter(|u| !u.trim().is_empty())
    {
        if !judge0.callbacks {
            r.fail("callback_url", "setting callback is not allowed");
        } else {
            match super::callback::check_url(&url, judge0.callbacks_to_private_addresses) {
                Ok(url) => callback_url = Some(url),
                Err(why) => r.fail("callback_url", why),
            }
        }
    }
    if r.text("additional_files", false)
        .is_some_and(|f| !f.trim().is_empty())
    {
        r.fail(
            "additional_files",
            "setting additional files is not allowed",
        );
    }
    // The wall-clock limit a worker enforces: Judge0's wall limit, or its CPU limit
    // (with the extra time) when that is lower, since a program's CPU time never
    // exceeds its wall time on one core (docs/judge0.md#limits).
    let seconds = settings
        .wall_time_limit
        .min(settings.cpu_time_limit + settings.cpu_extra_time)
        .max(f64::from(limits.min_timeout_s));
    let timeout_s = seconds.ceil() as u32;
    let memory_mb = (settings.memory_limit.div_ceil(1024) as u32).max(limits.min_memory_mb);
    if memory_mb > limits.max_memory_mb {
        r.fail(
            "memory_limit",
            format!(
                "must be less than or equal to {} on this server",
                u64::from(limits.max_memory_mb) * 1024
            ),
        );
    }
    let (Some(language), Some(code)) = (language, source_code) else {
        return Err(r.errors);
    };
    if !r.errors.is_empty() {
        return Err(r.errors);
    }
    let request = SubmitJobRequest {
        gpus: None,
        gpu_memory_mb: None,
        language: language.language,
        code,
        stdin,
        timeout_s: Some(timeout_s),
        memory_mb: Some(memory_mb),
        priority: None,
        validate: None,
    };
    let spec = limits.validate(&request).map_err(|e| {
        let field = match &e {
            SpecError::TooLarge { field: "stdin", .. } => "stdin",
            SpecError::NulByte { field } if *field == "stdin" => "stdin",
            SpecError::OutOfBounds {
                field: "timeout_s", ..
            } => "wall_time_limit",
            SpecError::OutOfBounds {
                field: "memory_mb", ..
            } => "memory_limit",
            _ => "source_code",
        };
        let mut errors = Invalid::new();
        errors.insert(field.into(), vec![e.to_string()]);
        errors
    })?;
    let settings_json = serde_json::to_string(&settings).map_err(|e| {
        let mut errors = Invalid::new();
        errors.insert("submission".into(), vec![e.to_string()]);
        errors
    })?;
    let link = Judge0Link {
        token: uuid::Uuid::new_v4().to_string(),
        language_id: language.id,
        expected_output,
        settings: settings_json,
        matched: None,
        callback_url,
    };
    Ok(Accepted {
        job: NewJob {
            judge0: Some(link),
            ..NewJob::new(spec, true)
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_ok(body: Value) -> Accepted {
        parse(
            &body,
            false,
            &JobLimits::default(),
            &Judge0Config::default(),
        )
        .expect("accepted")
    }

    fn refused(body: Value) -> Invalid {
        parse(
            &body,
            false,
            &JobLimits::default(),
            &Judge0Config::default(),
        )
        .expect_err("refused")
    }

    #[test]
    fn defaults_make_a_job_within_judge0s_limits() {
        let a = parse_ok(json!({"source_code": "print(1)", "language_id": 71}));
        let spec = &a.job.spec;
        assert_eq!(spec.language, gridx_proto::Language::Python);
        // min(10 s wall, 5 + 1 s CPU) and 128000 KB.
        assert_eq!((spec.timeout_s, spec.memory_mb), (6, 125));
        let link = a.job.judge0.expect("a link");
        assert_eq!(link.language_id, 71);
        assert_eq!(link.token.len(), 36);
        assert_eq!(
            uuid::Uuid::parse_str(&link.token).map(|u| u.get_version_num()),
            Ok(4)
        );
    }

    #[test]
    fn numbers_may_be_strings_and_blank_options_are_accepted() {
        let a = parse_ok(json!({
            "source_code": "echo hi", "language_id": "46", "wall_time_limit": "2.5",
            "cpu_time_limit": 15, "compiler_options": "", "command_line_arguments": "  ",
            "redirect_stderr_to_stdout": true, "memory_limit": "2048", "stack_limit": 64000,
            "number_of_runs": 1, "enable_network": false, "unknown_key": [1, 2]
        }));
        assert_eq!((a.job.spec.timeout_s, a.job.spec.memory_mb), (3, 32));
        let settings: Settings =
            serde_json::from_str(&a.job.judge0.expect("link").settings).expect("settings");
        assert!(settings.redirect_stderr_to_stdout);
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_by_field() {
        let errors = refused(json!({
            "source_code": " ", "language_id": 51, "cpu_time_limit": 16, "memory_limit": 100,
            "stack_limit": 1, "number_of_runs": 3, "enable_network": true,
            "compiler_options": "-O2", "command_line_arguments": "a b",
            "callback_url": "http://10.0.0.1/x", "additional_files": "UEsDBA==",
            "enable_per_process_and_thread_time_limit": "true", "wall_time_limit": "x"
        }));
        for field in [
            "source_code",
            "language_id",
            "cpu_time_limit",
            "memory_limit",
            "stack_limit",
            "number_of_runs",
            "enable_network",
            "compiler_options",
            "command_line_arguments",
            "callback_url",
            "additional_files",
            "enable_per_process_and_thread_time_limit",
            "wall_time_limit",
        ] {
            assert!(errors.contains_key(field), "{field}: {errors:?}");
        }
        assert_eq!(errors["language_id"], ["language with id 51 doesn't exist"]);
        assert_eq!(errors["wall_time_limit"], ["is not a number"]);
        let errors = refused(json!({}));
        assert_eq!(errors["source_code"], ["can't be blank"]);
        assert_eq!(errors["language_id"], ["can't be blank"]);
    }

    #[test]
    fn base64_texts_are_decoded_leniently() {
        let body = json!({"source_code": "cHJpbnQo\nMSk=", "language_id": 71, "stdin": "aGk=",
                          "expected_output": "MQo="});
        let a =
            parse(&body, true, &JobLimits::default(), &Judge0Config::default()).expect("accepted");
        assert_eq!(a.job.spec.code, "print(1)");
        assert_eq!(a.job.spec.stdin, "hi");
        assert_eq!(
            a.job.judge0.expect("link").expected_output.as_deref(),
            Some("1\n")
        );
        let bad = json!({"source_code": "/w==", "language_id": 71});
        let errors = parse(&bad, true, &JobLimits::default(), &Judge0Config::default())
            .expect_err("not UTF-8");
        assert!(errors.contains_key("source_code"));
    }
}
