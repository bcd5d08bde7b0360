//! Running a console command against the coordinator. The outcome is data; each face
//! renders it (text lines for the console and REPL, JSON for `--json`).

use super::grammar::{ConsoleCommand, SubmitArgs, help_text};
use crate::client::{ApiClient, ClientError};
use gridx_proto::api::{
    BalanceResponse, BatchItem, JobListQuery, JobListResponse, JobView, LedgerResponse,
    MAX_BATCH_JOBS, OutputStream, SubmitBatchRequest, SubmitJobRequest, WorkersResponse,
};
use gridx_proto::{JobId, Language};

/// What a command produced.
#[derive(Debug, Clone)]
pub enum Outcome {
    Submitted(Box<JobView>),
    /// `submit a.py b.c …`: each file with what became of it, in order.
    Batch(Vec<(String, BatchItem)>),
    /// `submit --wait` and `job`: the job as it is (terminal after a wait).
    Job(Box<JobView>),
    Cancelled(Box<JobView>),
    /// `output`: one of a job's outputs, the bytes the coordinator stores. `raw`:
    /// asked for with `--raw`, written as they are even to a terminal.
    Output {
        job_id: JobId,
        stream: OutputStream,
        bytes: Vec<u8>,
        raw: bool,
    },
    /// `logs`: a job's output so far, and how it ended if it did.
    Logs {
        job_id: JobId,
        stdout: String,
        stderr: String,
        end: Option<gridx_proto::api::OutputEnd>,
    },
    Jobs(JobListResponse),
    Workers(WorkersResponse),
    Balance(BalanceResponse),
    Ledger(LedgerResponse),
    /// `theme NAME`: the face switches; `theme` alone lists.
    Theme(Option<String>),
    Help(String),
    Quit,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Input(String),
    #[error("this dashboard is read-only; `{0}` would change something")]
    ReadOnly(&'static str),
}

/// Where `submit -` reads from: the process's stdin in one-shot mode only.
pub enum StdinSource {
    Process,
    Unavailable,
}

fn read_file(path: &str) -> Result<String, CommandError> {
    std::fs::read_to_string(path)
        .map_err(|e| CommandError::Input(format!("cannot read {path}: {e}")))
}

/// Turns submit arguments into a request (reads the files it names).
pub fn submit_request(
    args: &SubmitArgs,
    stdin: StdinSource,
) -> Result<SubmitJobRequest, CommandError> {
    let file = match args.files.as_slice() {
        [] => None,
        [one] => Some(one.as_str()),
        _ => {
            return Err(CommandError::Input(
                "one file at a time here; several are sent as a batch".into(),
            ));
        }
    };
    let (code, from_file) = match (&args.code, file) {
        (Some(code), _) => (code.clone(), None),
        (None, Some("-")) => match stdin {
            StdinSource::Process => {
                let mut code = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut code)
                    .map_err(|e| CommandError::Input(format!("cannot read standard input: {e}")))?;
                (code, None)
            }
            StdinSource::Unavailable => {
                return Err(CommandError::Input(
                    "`submit -` reads standard input, which only works as a one-shot command"
                        .into(),
                ));
            }
        },
        (None, Some(path)) => (read_file(path)?, Some(path.to_owned())),
        (None, None) => {
            return Err(CommandError::Input(
                "submit what? give a FILE, - for stdin, or --code".into(),
            ));
        }
    };
    let language = match (args.lang, &from_file) {
        (Some(l), _) => l,
        (None, Some(path)) => std::path::Path::new(path)
            .extension()
            .and_then(|e| e.to_str())
            .and_then(Language::from_extension)
            .ok_or_else(|| {
                CommandError::Input(format!("cannot tell the language of {path}; pass --lang"))
            })?,
        (None, None) => {
            return Err(CommandError::Input(
                "pass --lang (python, node, bash, ruby, c, cpp, java, go or rust)".into(),
            ));
        }
    };
    let stdin = match &args.stdin {
        Some(path) => Some(read_file(path)?),
        None => None,
    };
    Ok(SubmitJobRequest {
        gpu_memory_mb: args.gpu_memory,
        gpus: args.gpus,
        language,
        code,
        stdin,
        timeout_s: args.timeout,
        memory_mb: args.memory,
        priority: args.priority,
        validate: args.no_validate.then_some(false),
    })
}

/// The requests of `submit a.py b.c …`, one per file, each with the shared flags.
pub fn batch_requests(args: &SubmitArgs) -> Result<Vec<SubmitJobRequest>, CommandError> {
    if args.wait {
        return Err(CommandError::Input(
            "--wait follows one job; submit the files one at a time to wait for each".into(),
        ));
    }
    if args.files.len() > MAX_BATCH_JOBS {
        return Err(CommandError::Input(format!(
            "{} files: a batch holds at most {MAX_BATCH_JOBS}",
            args.files.len()
        )));
    }
    if args.files.iter().any(|f| f == "-") {
        return Err(CommandError::Input(
            "- (standard input) cannot be part of a batch".into(),
        ));
    }
    args.files
        .iter()
        .map(|file| {
            let one = SubmitArgs {
                files: vec![file.clone()],
                ..args.clone()
            };
            submit_request(&one, StdinSource::Unavailable)
        })
        .collect()
}

/// Runs one command. `read_only` refuses anything that changes state.
pub async fn run(
    command: ConsoleCommand,
    client: &ApiClient,
    read_only: bool,
    stdin: StdinSource,
) -> Result<Outcome, CommandError> {
    match command {
        ConsoleCommand::Submit(args) => {
            if read_only {
                return Err(CommandError::ReadOnly("submit"));
            }
            if args.files.len() > 1 {
                let jobs = batch_requests(&args)?;
                let answer = client.submit_batch(&SubmitBatchRequest { jobs }).await?;
                if answer.jobs.len() != args.files.len() {
                    return Err(CommandError::Input(format!(
                        "the coordinator answered {} items for {} files",
                        answer.jobs.len(),
                        args.files.len()
                    )));
                }
                return Ok(Outcome::Batch(
                    args.files.into_iter().zip(answer.jobs).collect(),
                ));
            }
            let request = submit_request(&args, stdin)?;
            let view = client.submit(&request).await?;
            if args.wait {
                let done = client.wait(view.job_id).await?;
                Ok(Outcome::Job(Box::new(done)))
            } else {
                Ok(Outcome::Submitted(Box::new(view)))
            }
        }
        ConsoleCommand::Cancel { id } => {
            if read_only {
                return Err(CommandError::ReadOnly("cancel"));
            }
            Ok(Outcome::Cancelled(Box::new(client.cancel(id).await?)))
        }
        ConsoleCommand::Job { id } => Ok(Outcome::Job(Box::new(client.job(id).await?))),
        ConsoleCommand::Output { id, stderr, raw } => {
            let stream = if stderr {
                OutputStream::Stderr
            } else {
                OutputStream::Stdout
            };
            let bytes = client.output(id, stream).await?;
            Ok(Outcome::Output {
                job_id: id,
                stream,
                bytes,
                raw,
            })
        }
        ConsoleCommand::Logs { id, .. } => {
            let (mut stdout, mut stderr, mut end) = (String::new(), String::new(), None);
            crate::client::follow::follow_output(client, id, false, |event| {
                use crate::client::follow::Followed;
                match event {
                    Followed::Output(chunk) => match chunk.stream {
                        OutputStream::Stdout => stdout.push_str(&chunk.text),
                        OutputStream::Stderr => stderr.push_str(&chunk.text),
                    },
                    Followed::Reset => {
                        stdout.clear();
                        stderr.clear();
                    }
                    Followed::End(e) => end = Some(e),
                }
            })
            .await?;
            Ok(Outcome::Logs {
                job_id: id,
                stdout,
                stderr,
                end,
            })
        }
        ConsoleCommand::Jobs {
            status,
            limit,
            before,
            all,
        } => {
            let query = JobListQuery {
                status,
                limit: Some(limit),
                before,
                all: all.then_some(true),
            };
            Ok(Outcome::Jobs(client.jobs(&query).await?))
        }
        ConsoleCommand::Workers => Ok(Outcome::Workers(client.workers().await?)),
        ConsoleCommand::Balance => Ok(Outcome::Balance(client.balance().await?)),
        ConsoleCommand::Ledger { limit } => Ok(Outcome::Ledger(client.ledger(limit).await?)),
        ConsoleCommand::Theme { name } => Ok(Outcome::Theme(name)),
        ConsoleCommand::Help { command } => Ok(Outcome::Help(help_text(command.as_deref()))),
        ConsoleCommand::Quit => Ok(Outcome::Quit),
    }
}

/// The process exit code of `submit --wait`: the job's own code when it exited,
/// else a conventional one (124 timeout, 130 cancelled, 125 platform error).
pub fn exit_code_of(job: &JobView) -> i32 {
    exit_code_for(job.status, job.exit_code)
}

/// [`exit_code_of`] from a job's status and exit code alone (`logs -f` has no view).
pub fn exit_code_for(status: gridx_proto::JobStatus, exit_code: Option<i32>) -> i32 {
    use gridx_proto::JobStatus::*;
    match status {
        Succeeded => 0,
        Failed => exit_code.unwrap_or(1),
        TimedOut => 124,
        Cancelled => 130,
        Error => 125,
        Queued | Running => 1,
    }
}

/// Why `submit --wait` ended with a code the job did not exit with, for stderr: a
/// timeout's 124 must not read as the program's own 124. `None` when the job exited
/// by itself, its code being the answer. The coordinator's message is inert.
pub fn wait_ending(job: &JobView) -> Option<String> {
    use gridx_proto::JobStatus::*;
    let id = job.job_id;
    let why = || {
        job.message
            .as_deref()
            .map(|m| format!(": {}", crate::inert::inert_string(m.to_owned())))
            .unwrap_or_default()
    };
    let code = exit_code_of(job);
    Some(match job.status {
        Succeeded => return None,
        Failed if job.exit_code.is_some() => return None,
        Failed if job.reason == Some(gridx_proto::job::FailureReason::CompileError) => {
            format!("job {id} did not compile (exit {code})")
        }
        Failed => format!(
            "job {id} failed without an exit code{} (exit {code})",
            why()
        ),
        TimedOut => format!("job {id} timed out after {} s (exit {code})", job.timeout_s),
        Cancelled => format!("job {id} was cancelled (exit {code})"),
        Error => format!("job {id} ended error{} (exit {code})", why()),
        Queued | Running => format!("job {id} is still {} (exit {code})", job.status),
    })
}

#[cfg(test)]
mod wait_tests {
    use super::wait_ending;
    use gridx_proto::JobStatus;
    use gridx_proto::api::JobView;

    fn job(status: JobStatus, exit_code: Option<i32>, message: Option<&str>) -> JobView {
        let mut job: JobView = serde_json::from_str(include_str!(
            "../../../gridx-proto/tests/fixtures/job_view.json"
        ))
        .expect("the fixture is a job view");
        job.job_id = gridx_proto::JobId(12);
        job.timeout_s = 1;
        job.status = status;
        job.exit_code = exit_code;
        job.message = message.map(str::to_owned);
        job
    }

    #[test]
    fn wait_says_why_the_job_ended_when_it_did_not_exit_by_itself() {
        assert_eq!(wait_ending(&job(JobStatus::Succeeded, Some(0), None)), None);
        assert_eq!(wait_ending(&job(JobStatus::Failed, Some(124), None)), None);
        assert_eq!(
            wait_ending(&job(JobStatus::TimedOut, None, None)).as_deref(),
            Some("job 12 timed out after 1 s (exit 124)")
        );
        assert_eq!(
            wait_ending(&job(JobStatus::Cancelled, None, None)).as_deref(),
            Some("job 12 was cancelled (exit 130)")
        );
        assert_eq!(
            wait_ending(&job(JobStatus::Error, None, Some("no quorum\u{1b}[2J"))).as_deref(),
            Some("job 12 ended error: no quorum^[[2J (exit 125)")
        );
    }
}
