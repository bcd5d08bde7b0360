//! The commands and their arguments, parsed by clap from a console line (split like a
//! shell would) or from the process's own arguments.

use clap::{Args, Parser, Subcommand};
use gridx_proto::{JobId, JobStatus, Language};

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum ConsoleCommand {
    /// Submit a job: from FILE, from - (stdin), or inline with --code.
    Submit(SubmitArgs),
    /// Cancel a job.
    Cancel {
        /// Job id.
        id: JobId,
    },
    /// Show one job with its output.
    Job {
        /// Job id.
        id: JobId,
    },
    /// Print a job's stdout (or stderr): the stored bytes into a pipe or file, shown
    /// inert on a terminal.
    Output {
        /// Job id.
        id: JobId,
        /// Its standard error instead.
        #[arg(long)]
        stderr: bool,
        /// The stored bytes even on a terminal, escape sequences and all (one-shot
        /// and REPL; the dashboard's console always shows them inert).
        #[arg(long)]
        raw: bool,
    },
    /// Print a job's output so far (stdout, then stderr), or with -f as the job
    /// prints it, until it ends.
    Logs {
        /// Job id.
        id: JobId,
        /// Follow: print as the job prints, until it ends; exit with its code, as
        /// `submit --wait` does (one-shot only; the console and REPL show what is
        /// there).
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// List your jobs, newest first.
    Jobs {
        /// Only jobs in this state (queued, running, succeeded, failed, timed_out, cancelled, error).
        #[arg(long)]
        status: Option<JobStatus>,
        /// How many (at most 500).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Only jobs older than this one: the next page, as `more before job ID` says.
        #[arg(long, value_name = "ID")]
        before: Option<JobId>,
        /// Everyone's jobs (admins only).
        #[arg(long)]
        all: bool,
    },
    /// List the grid's workers.
    Workers,
    /// Show your balance.
    Balance,
    /// Show your newest ledger entries.
    Ledger {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Switch the dashboard's theme, or list themes.
    Theme {
        /// dark, light, high-contrast, ansi, or a file in the themes directory.
        name: Option<String>,
    },
    /// List commands, or explain one.
    Help { command: Option<String> },
    /// Leave the console (and the dashboard or REPL).
    #[command(alias = "exit")]
    Quit,
}

#[derive(Args, Debug, Clone, PartialEq, Eq, Default)]
pub struct SubmitArgs {
    /// File with the job's code, or - for standard input. Several files are
    /// submitted as one batch, one job each.
    pub files: Vec<String>,
    /// python, node (javascript), bash, ruby, c, cpp (c++), java, go or rust; guessed
    /// from the file's extension if absent.
    #[arg(long, short = 'l')]
    pub lang: Option<Language>,
    /// The code itself, instead of a file.
    #[arg(long, short = 'c', conflicts_with = "files")]
    pub code: Option<String>,
    /// Wall-clock limit in seconds.
    #[arg(long)]
    pub timeout: Option<u32>,
    /// Memory limit in MB.
    #[arg(long)]
    pub memory: Option<u32>,
    /// Priority; higher runs first.
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i32>,
    /// File whose contents are the job's standard input.
    #[arg(long)]
    pub stdin: Option<String>,
    /// Wait for the job, print its output, and exit with its exit code.
    #[arg(long)]
    pub wait: bool,
    /// Its output differs from run to run, so it cannot be checked by running it
    /// again elsewhere: run it only on a worker the grid trusts (docs/trust.md).
    #[arg(long)]
    pub no_validate: bool,
    /// GPUs the job needs; each adds the grid's GPU price to its cost (docs/jobs.md,
    /// "GPU jobs").
    #[arg(long, value_name = "N")]
    pub gpus: Option<u32>,
    /// The least memory each of those GPUs must have, in MB.
    #[arg(long, value_name = "MB", requires = "gpus")]
    pub gpu_memory: Option<u32>,
}

/// A console line is parsed as if it followed the program name.
#[derive(Parser, Debug)]
#[command(
    name = "",
    no_binary_name = true,
    disable_version_flag = true,
    disable_help_subcommand = true
)]
struct ConsoleLine {
    #[command(subcommand)]
    command: ConsoleCommand,
}

/// Why a console line could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("unbalanced quotes")]
    Quotes,
    #[error("{0}")]
    Usage(String),
}

impl ParseError {
    /// The error in one line, the real reason first, for a console two lines high at
    /// 80 columns: clap's `error: ` prefix, usage block and "For more information"
    /// are dropped, and a tip ("a similar subcommand exists") is kept in brackets.
    pub fn summary(&self) -> String {
        let ParseError::Usage(text) = self else {
            return self.to_string();
        };
        let mut reason = None;
        let mut tips = Vec::new();
        for line in text.lines().map(str::trim) {
            if let Some(tip) = line.strip_prefix("tip: ") {
                tips.push(tip.to_owned());
            } else if reason.is_none() && !line.is_empty() {
                reason = Some(line.strip_prefix("error: ").unwrap_or(line).to_owned());
            }
        }
        let reason = reason.unwrap_or_else(|| text.clone());
        if tips.is_empty() {
            reason
        } else {
            format!("{reason} ({})", tips.join("; "))
        }
    }
}

/// Parses one console line. An empty line is `Ok(None)`.
pub fn parse_line(line: &str) -> Result<Option<ConsoleCommand>, ParseError> {
    let words = shlex::split(line).ok_or(ParseError::Quotes)?;
    if words.is_empty() {
        return Ok(None);
    }
    ConsoleLine::try_parse_from(words)
        .map(|l| Some(l.command))
        .map_err(|e| ParseError::Usage(e.render().to_string().trim_end().to_owned()))
}

/// Every command name, for completion and highlighting.
pub fn command_names() -> Vec<String> {
    use clap::CommandFactory;
    ConsoleLine::command()
        .get_subcommands()
        .flat_map(|c| {
            std::iter::once(c.get_name().to_owned()).chain(c.get_all_aliases().map(str::to_owned))
        })
        .collect()
}

/// The flags of one command, for completion.
pub fn flags_of(command: &str) -> Vec<String> {
    use clap::CommandFactory;
    ConsoleLine::command()
        .find_subcommand(command)
        .map(|c| {
            c.get_arguments()
                .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
                .filter(|f| f != "--help")
                .collect()
        })
        .unwrap_or_default()
}

/// Help text: the command list, or one command's usage.
pub fn help_text(command: Option<&str>) -> String {
    use clap::CommandFactory;
    let mut root = ConsoleLine::command();
    match command.and_then(|name| root.find_subcommand_mut(name)) {
        Some(sub) => sub.render_long_help().to_string(),
        None => {
            let mut out = String::from("commands:\n");
            for sub in ConsoleLine::command().get_subcommands() {
                let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
                out.push_str(&format!("  {:<8} {about}\n", sub.get_name()));
            }
            out.push_str("`help COMMAND` explains one.");
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ConsoleCommand, ParseError, command_names, flags_of, help_text, parse_line};
    use gridx_proto::{JobId, JobStatus, Language};

    fn summary(line: &str) -> String {
        match parse_line(line) {
            Err(e) => e.summary(),
            other => panic!("{line:?} parsed: {other:?}"),
        }
    }

    #[test]
    fn an_error_is_one_line_with_the_reason_first() {
        let typo = summary("jbos");
        assert!(!typo.contains('\n') && !typo.contains("--help"), "{typo}");
        assert!(typo.starts_with("unrecognized subcommand 'jbos'"), "{typo}");
        assert!(typo.contains("'jobs'"), "the tip is kept: {typo}");
        assert!(typo.chars().count() <= 80, "{typo}");
        let missing = summary("cancel");
        assert!(
            missing.contains("required") && !missing.contains("Usage"),
            "{missing}"
        );
        let value = summary("jobs --status nope");
        assert!(value.starts_with("invalid value 'nope'"), "{value}");
        assert_eq!(summary("submit 'open"), "unbalanced quotes");
    }

    #[test]
    fn parses_every_command() {
        assert_eq!(
            parse_line("balance").unwrap(),
            Some(ConsoleCommand::Balance)
        );
        assert_eq!(parse_line("  ").unwrap(), None);
        assert_eq!(
            parse_line("cancel 42").unwrap(),
            Some(ConsoleCommand::Cancel { id: JobId(42) })
        );
        assert_eq!(
            parse_line("jobs --status running --limit 5").unwrap(),
            Some(ConsoleCommand::Jobs {
                status: Some(JobStatus::Running),
                limit: 5,
                before: None,
                all: false
            })
        );
        assert_eq!(
            parse_line("jobs --before 4").unwrap(),
            Some(ConsoleCommand::Jobs {
                status: None,
                limit: 20,
                before: Some(JobId(4)),
                all: false
            })
        );
        assert!(parse_line("jobs --before four").is_err());
        assert_eq!(parse_line("exit").unwrap(), Some(ConsoleCommand::Quit));
        assert_eq!(
            parse_line("output 7 --stderr").unwrap(),
            Some(ConsoleCommand::Output {
                id: JobId(7),
                stderr: true,
                raw: false
            })
        );
        assert_eq!(
            parse_line("output 7 --raw").unwrap(),
            Some(ConsoleCommand::Output {
                id: JobId(7),
                stderr: false,
                raw: true
            })
        );
        let Some(ConsoleCommand::Submit(args)) =
            parse_line("submit --lang javascript --code 'console.log(\"hi there\")' --priority -3")
                .unwrap()
        else {
            panic!("not a submit");
        };
        assert_eq!(args.lang, Some(Language::Node));
        assert_eq!(args.code.as_deref(), Some("console.log(\"hi there\")"));
        assert_eq!(args.priority, Some(-3));
    }

    #[test]
    fn mistakes_get_clear_errors() {
        assert_eq!(parse_line("submit 'unclosed"), Err(ParseError::Quotes));
        let err = parse_line("cancel abc").unwrap_err().to_string();
        assert!(err.contains("not a job id"), "{err}");
        let err = parse_line("frobnicate").unwrap_err().to_string();
        assert!(err.contains("frobnicate"), "{err}");
        let err = parse_line("jobs --status finished")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown job status"), "{err}");
        assert!(parse_line("submit a.py --code x").is_err());
    }

    #[test]
    fn completion_data_comes_from_the_grammar() {
        let names = command_names();
        for expected in [
            "submit", "cancel", "job", "jobs", "output", "workers", "balance", "ledger", "theme",
            "help", "quit",
        ] {
            assert!(
                names.contains(&expected.to_owned()),
                "{expected} missing from {names:?}"
            );
        }
        assert!(flags_of("submit").contains(&"--lang".to_owned()));
        assert!(help_text(None).contains("submit"));
        assert!(help_text(Some("jobs")).contains("--status"));
    }
}
