//! Judge0's fourteen statuses, and the one a Grid-X job has (docs/judge0.md#statuses).

use gridx_proto::JobStatus;
use gridx_proto::api::JobView;
use gridx_proto::job::FailureReason;
use serde::Serialize;

/// `{"id": 3, "description": "Accepted"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Status {
    pub id: u8,
    pub description: &'static str,
}

pub const ALL: [Status; 14] = [
    Status {
        id: 1,
        description: "In Queue",
    },
    Status {
        id: 2,
        description: "Processing",
    },
    Status {
        id: 3,
        description: "Accepted",
    },
    Status {
        id: 4,
        description: "Wrong Answer",
    },
    Status {
        id: 5,
        description: "Time Limit Exceeded",
    },
    Status {
        id: 6,
        description: "Compilation Error",
    },
    Status {
        id: 7,
        description: "Runtime Error (SIGSEGV)",
    },
    Status {
        id: 8,
        description: "Runtime Error (SIGXFSZ)",
    },
    Status {
        id: 9,
        description: "Runtime Error (SIGFPE)",
    },
    Status {
        id: 10,
        description: "Runtime Error (SIGABRT)",
    },
    Status {
        id: 11,
        description: "Runtime Error (NZEC)",
    },
    Status {
        id: 12,
        description: "Runtime Error (Other)",
    },
    Status {
        id: 13,
        description: "Internal Error",
    },
    Status {
        id: 14,
        description: "Exec Format Error",
    },
];

fn status(id: u8) -> Status {
    ALL[usize::from(id.clamp(1, 14)) - 1]
}

/// The signal a process that exited with `code` was killed by, by the shells'
/// 128 + N convention, which is how a Grid-X worker reports a signalled process.
pub fn signal_of(code: Option<i32>) -> Option<i32> {
    code.filter(|c| (129..=128 + 64).contains(c))
        .map(|c| c - 128)
}

/// Judge0's comparison: trailing whitespace (and NULs) off every line and off the
/// end, trailing empty lines dropped, then compared byte for byte.
pub fn strip(text: &str) -> String {
    let trim = |s: &str| {
        s.trim_end_matches(|c: char| c.is_ascii_whitespace() || c == '\0' || c == '\u{b}')
            .to_owned()
    };
    let lines: Vec<String> = text.split('\n').map(trim).collect();
    trim(&lines.join("\n"))
}

/// What a program printed as Judge0 compares and shows it: its stdout, followed by
/// its stderr when the submission redirected stderr to stdout.
pub fn program_output(stdout: &str, stderr: &str, redirect: bool) -> String {
    if redirect {
        format!("{stdout}{stderr}")
    } else {
        stdout.to_owned()
    }
}

/// Whether a submission's stored settings redirect stderr to stdout.
pub fn redirects(settings_json: &str) -> bool {
    serde_json::from_str::<super::request::Settings>(settings_json)
        .is_ok_and(|s| s.redirect_stderr_to_stdout)
}

/// Judge0's comparison. Judge0 stores an empty output as null, so an expected `""`
/// (or any expected text) never matches an empty output.
pub fn matches(expected: &str, output: &str) -> bool {
    !output.is_empty() && strip(expected) == strip(output)
}

/// The status of a job. `expected`: whether its output matched the expected output
/// it was submitted with (`None`: none was given).
pub fn of(job: &JobView, expected: Option<bool>) -> Status {
    match job.status {
        JobStatus::Queued => status(1),
        JobStatus::Running => status(2),
        JobStatus::TimedOut => status(5),
        JobStatus::Succeeded => match expected {
            None | Some(true) => status(3),
            Some(false) => status(4),
        },
        JobStatus::Failed => match job.reason {
            Some(FailureReason::CompileError) => status(6),
            Some(FailureReason::Oom) => status(12),
            _ => match signal_of(job.exit_code) {
                Some(11) => status(7),
                Some(25) => status(8),
                Some(8) => status(9),
                Some(6) => status(10),
                Some(_) => status(12),
                None => status(11),
            },
        },
        JobStatus::Cancelled | JobStatus::Error => status(13),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judge0s_strip_rule() {
        assert_eq!(strip("1 2 \n3\t\n\n\n"), "1 2\n3");
        assert_eq!(strip("  lead\r\n"), "  lead");
        assert_eq!(strip("a\0\n"), "a");
        assert_ne!(strip("a\nb"), strip("a b"));
        assert_eq!(strip(""), "");
    }

    #[test]
    fn signals_come_from_128_plus_n() {
        assert_eq!(signal_of(Some(139)), Some(11));
        assert_eq!(signal_of(Some(1)), None);
        assert_eq!(signal_of(Some(128)), None);
        assert_eq!(signal_of(None), None);
        assert_eq!(ALL[10].description, "Runtime Error (NZEC)");
    }
}
