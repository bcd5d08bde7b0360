//! REST request and response bodies of the HTTP API under `/v1`.

use crate::credits::Credits;
use crate::ids::{JobId, UserName, WorkerId};
use crate::job::{FailureReason, JobStatus};
use crate::language::Language;
use crate::metrics::HostMetrics;
use crate::protocol::ExecutorKind;
use crate::time_fmt::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

/// `POST /v1/jobs`. Unknown fields are refused so a typo is an error, not a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitJobRequest {
    pub language: Language,
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Whether the result may be checked by running the job again on another owner's
    /// worker and comparing (docs/trust.md). `false` for a job whose output differs
    /// from run to run: it then runs only on a worker the grid trusts. Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate: Option<bool>,
    /// GPUs the job needs (docs/jobs.md, "GPU jobs"), at most `server.limits.max_gpus`;
    /// each adds `server.gpu_cost` to its cost. Absent: none, and the job sees none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    /// The least memory, in MB, each of those GPUs must have. Only with `gpus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_memory_mb: Option<u32>,
}

/// The most jobs one `POST /v1/jobs/batch` may carry.
pub const MAX_BATCH_JOBS: usize = 100;

/// `POST /v1/jobs/batch`: several submits in one request and one transaction. Each
/// item is a [`SubmitJobRequest`], checked on its own: one bad item is refused in its
/// place and the others go ahead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBatchRequest {
    pub jobs: Vec<SubmitJobRequest>,
}

/// One item's result in a batch answer: the job it made, or why it made none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BatchItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Box<JobView>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// The answer to `POST /v1/jobs/batch`: one item per submitted item, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SubmitBatchResponse {
    pub jobs: Vec<BatchItem>,
}

/// A job as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    pub job_id: JobId,
    pub user: UserName,
    pub status: JobStatus,
    pub language: Language,
    pub priority: i32,
    pub timeout_s: u32,
    pub memory_mb: u32,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub submitted_at: Timestamp,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<WorkerId>,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// What the compiler printed, for a compiled language once it has run (even
    /// when it succeeded, for its warnings). Absent for interpreted languages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile_output: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<FailureReason>,
    /// A human sentence accompanying `reason`, when the platform has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How many times a worker refused an assignment of this job because it was past
    /// the worker's admission caps (docs/jobs.md, "Refusals"). A refused assignment
    /// costs nothing and does not count toward `server.max_attempts`. Absent: none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refusals: u32,
    /// The last refusal, as `refused by worker NAME (#ID): REASON`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    pub cost: Credits,
    /// How the result was (or will be) checked (docs/trust.md).
    pub validation: JobValidation,
    /// GPUs it asked for (docs/jobs.md, "GPU jobs"). Absent: none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gpus: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_memory_mb: Option<u32>,
    /// The GPUs of its worker (NVML indices) its latest attempt holds or held.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpu_indices: Vec<u32>,
    /// Why a queued job waits, when the grid can say: no online worker lends the
    /// GPUs it asks for. (A wait for result checks is in `validation.waiting`.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
}

/// How a job's result is checked: the replicas run so far, and how the job was
/// accepted (docs/trust.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobValidation {
    /// What the submitter asked: `false` for a job whose result cannot be compared.
    pub required: bool,
    /// How the result was accepted, once the job ended; absent while it is live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<ValidationOutcome>,
    /// Every result a worker reported that took part in the check, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<ReplicaView>,
    /// Why a queued job is waiting, when the check is what holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
}

/// How a job's result came to be accepted, or why none was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ValidationOutcome {
    /// A quorum of replicas, run by workers of different owners, agreed.
    Quorum,
    /// Run by a worker the operator marked trusted: no replica.
    TrustedWorker,
    /// Run by a worker the job's own submitter owns: no replica.
    OwnWorker,
    /// Run by a worker whose record let this result pass without a spot check.
    NotSpotChecked,
    /// A `validate: false` job, run by a stranger's worker whose record is long and
    /// clean (`server.validation.trusted_streak`).
    ProvenWorker,
    /// Checks are off on this grid (`server.validation.quorum = 1`): taken as
    /// reported.
    Unvalidated,
    /// The replicas disagreed up to the maximum: the job ended `error`, refunded.
    NoQuorum,
    /// The job ended without a result to accept (cancelled, lost, or a platform error).
    NoResult,
}

impl ValidationOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ValidationOutcome::Quorum => "quorum",
            ValidationOutcome::TrustedWorker => "trusted_worker",
            ValidationOutcome::OwnWorker => "own_worker",
            ValidationOutcome::NotSpotChecked => "not_spot_checked",
            ValidationOutcome::ProvenWorker => "proven_worker",
            ValidationOutcome::Unvalidated => "unvalidated",
            ValidationOutcome::NoQuorum => "no_quorum",
            ValidationOutcome::NoResult => "no_result",
        }
    }

    pub const ALL: [ValidationOutcome; 8] = [
        ValidationOutcome::Quorum,
        ValidationOutcome::TrustedWorker,
        ValidationOutcome::OwnWorker,
        ValidationOutcome::NotSpotChecked,
        ValidationOutcome::ProvenWorker,
        ValidationOutcome::Unvalidated,
        ValidationOutcome::NoQuorum,
        ValidationOutcome::NoResult,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

impl fmt::Display for ValidationOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the check decided about one replica's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Waiting for more replicas.
    Pending,
    /// Agrees with the accepted result: its worker's owner is paid a share.
    Valid,
    /// Disagrees with the accepted result: paid nothing, and a strike on its worker.
    Invalid,
    /// The job ended without a quorum, or was cancelled: paid nothing, no strike.
    Inconclusive,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pending => "pending",
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::Inconclusive => "inconclusive",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Verdict::Pending,
            Verdict::Valid,
            Verdict::Invalid,
            Verdict::Inconclusive,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// One replica's result as the check compares it: the terminal state, exit code and
/// SHA-256 digests of the stored stdout and stderr with their truncation flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReplicaView {
    pub attempt: u32,
    pub worker_id: WorkerId,
    pub owner: UserName,
    pub status: JobStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<FailureReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    pub stdout_sha256: String,
    pub stderr_sha256: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// The SHA-256 of what the compiler printed (compiled languages only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile_output_sha256: Option<String>,
    pub verdict: Verdict,
}

/// A worker's reliability record (docs/trust.md): what the checks found of its
/// results, and whether it may take jobs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Reliability {
    /// Marked trusted by the operator: its results need no replica.
    pub trusted: bool,
    /// Results a quorum confirmed.
    pub validated: u64,
    /// Results a quorum contradicted.
    pub invalid: u64,
    /// Platform errors it reported (`sandbox_error`).
    pub errors: u64,
    /// Attempts lost with it (lease expired, disconnected).
    pub lost: u64,
    /// Results confirmed in a row since its last invalid one (the lower of its own and
    /// its owner's): what its spot-check rate follows.
    pub streak: u64,
    /// The share of its results checked by a replica, in per-mille.
    pub spot_check_permille: u16,
    /// Results waiting for a replica to confirm them (their rewards are pending).
    pub pending: u64,
    /// Why it gets no jobs, when quarantined (it or its owner); an operator restores
    /// it with `gridx-server worker restore ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantined: Option<String>,
}

/// A job without its output: what lists (`GET /v1/jobs`) and live events carry, so
/// that their size does not grow with what jobs print. The output itself comes from
/// `GET /v1/jobs/{id}` (in the view) or, as raw bytes, `GET /v1/jobs/{id}/stdout` and
/// `/stderr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobSummary {
    pub job_id: JobId,
    pub user: UserName,
    pub status: JobStatus,
    pub language: Language,
    pub priority: i32,
    pub timeout_s: u32,
    pub memory_mb: u32,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub submitted_at: Timestamp,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<WorkerId>,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The length of the stored stdout in bytes (UTF-8): what
    /// `GET /v1/jobs/{id}/stdout` returns. 0 until the job ends.
    pub stdout_bytes: u64,
    /// The length of the stored stderr in bytes, like `stdout_bytes`.
    pub stderr_bytes: u64,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<FailureReason>,
    /// A human sentence accompanying `reason`, when the platform has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How many times a worker refused an assignment of this job because it was past
    /// the worker's admission caps (docs/jobs.md, "Refusals"). A refused assignment
    /// costs nothing and does not count toward `server.max_attempts`. Absent: none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refusals: u32,
    /// The last refusal, as `refused by worker NAME (#ID): REASON`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    pub cost: Credits,
    /// GPUs it asked for. Absent: none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gpus: u32,
}

impl JobView {
    /// The view without its output, with the output's lengths.
    pub fn summary(&self) -> JobSummary {
        JobSummary {
            job_id: self.job_id,
            user: self.user.clone(),
            status: self.status,
            language: self.language,
            priority: self.priority,
            timeout_s: self.timeout_s,
            memory_mb: self.memory_mb,
            submitted_at: self.submitted_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            worker_id: self.worker_id,
            attempts: self.attempts,
            exit_code: self.exit_code,
            stdout_bytes: self.stdout.len() as u64,
            stderr_bytes: self.stderr.len() as u64,
            stdout_truncated: self.stdout_truncated,
            stderr_truncated: self.stderr_truncated,
            duration_ms: self.duration_ms,
            reason: self.reason,
            message: self.message.clone(),
            refusals: self.refusals,
            refusal: self.refusal.clone(),
            cost: self.cost,
            gpus: self.gpus,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Which of a job's two outputs: the `{stream}` of `GET /v1/jobs/{id}/{stream}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

impl OutputStream {
    pub const BOTH: [OutputStream; 2] = [OutputStream::Stdout, OutputStream::Stderr];

    pub fn as_str(self) -> &'static str {
        match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        }
    }

    pub fn parse(text: &str) -> Option<OutputStream> {
        OutputStream::BOTH.into_iter().find(|s| s.as_str() == text)
    }

    /// Its place in a `[stdout, stderr]` pair.
    pub fn index(self) -> usize {
        match self {
            OutputStream::Stdout => 0,
            OutputStream::Stderr => 1,
        }
    }
}

impl fmt::Display for OutputStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One piece of a job's output: `data` of an `output` event on
/// `GET /v1/jobs/{id}/output` (docs/api.md). `offset` is where `text` starts in that
/// stream's text (in bytes of UTF-8); pieces of one stream are contiguous.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OutputChunk {
    #[schema(value_type = String)]
    pub stream: OutputStream,
    pub offset: u64,
    pub text: String,
}

/// `data` of the last event on `GET /v1/jobs/{id}/output`, `end`: how the job ended.
/// The output itself came before it, as `output` events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OutputEnd {
    pub status: JobStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<FailureReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile_output: Option<String>,
}

/// The `Content-Type` of `GET /v1/jobs/{id}/stdout` and `/stderr`. The coordinator
/// only ever holds UTF-8 output (a worker replaces bytes that are not UTF-8 with
/// U+FFFD before it reports), so the raw body is always valid UTF-8 text.
pub const OUTPUT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// `GET /v1/jobs`: own jobs, newest first; pass `next` as `before` for the next page.
/// The items are summaries: no output, only its lengths and truncation flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobListResponse {
    pub jobs: Vec<JobSummary>,
    pub next: Option<JobId>,
}

/// Query of `GET /v1/jobs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobListQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<JobStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<JobId>,
    /// Admins only: everyone's jobs instead of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<bool>,
}

impl JobListQuery {
    /// The page size when `limit` is not given.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// The largest page `limit` may ask for (the smallest is 1).
    pub const MAX_LIMIT: u32 = 500;
}

/// Query of `GET /v1/ledger`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LedgerQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

impl LedgerQuery {
    /// The number of entries when `limit` is not given.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// The most entries `limit` may ask for (the fewest is 1).
    pub const MAX_LIMIT: u32 = 1000;
}

/// The longest `Idempotency-Key` header a submit may carry (the shortest is 1 byte).
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// `GET /v1/balance`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BalanceResponse {
    pub user: UserName,
    pub balance: Credits,
}

/// The kind of a ledger movement (the credit rules are in docs/jobs.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LedgerKind {
    Grant,
    Hold,
    Reward,
    Fee,
    Refund,
    /// The operator took credits back to the mint (`user credit NAME -N`).
    Debit,
}

impl LedgerKind {
    pub const ALL: [LedgerKind; 6] = [
        LedgerKind::Grant,
        LedgerKind::Hold,
        LedgerKind::Reward,
        LedgerKind::Fee,
        LedgerKind::Refund,
        LedgerKind::Debit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LedgerKind::Grant => "grant",
            LedgerKind::Hold => "hold",
            LedgerKind::Reward => "reward",
            LedgerKind::Fee => "fee",
            LedgerKind::Refund => "refund",
            LedgerKind::Debit => "debit",
        }
    }

    pub fn parse(s: &str) -> Option<LedgerKind> {
        LedgerKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for LedgerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One ledger row as a user sees it on their own account: `amount` is signed from
/// that account's side (a hold is negative, a reward positive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LedgerEntryView {
    pub id: u64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub kind: LedgerKind,
    pub amount: Credits,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<JobId>,
    pub balance_after: Credits,
    /// The operator's reason, on a `grant` or `debit` they made by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `GET /v1/ledger`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LedgerResponse {
    pub entries: Vec<LedgerEntryView>,
}

/// A worker's connection state as the coordinator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkerStatus {
    /// Connected and taking jobs.
    Online,
    /// Connected, finishing its jobs, taking no new ones.
    Draining,
    /// Not connected.
    Offline,
    /// Its token was revoked; it can never connect again.
    Revoked,
}

impl WorkerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerStatus::Online => "online",
            WorkerStatus::Draining => "draining",
            WorkerStatus::Offline => "offline",
            WorkerStatus::Revoked => "revoked",
        }
    }
}

impl fmt::Display for WorkerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One worker in `GET /v1/workers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkerView {
    pub worker_id: WorkerId,
    pub name: String,
    pub owner: UserName,
    pub status: WorkerStatus,
    pub languages: Vec<Language>,
    pub slots: u32,
    pub running: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<ExecutorKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<HostMetrics>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_seen: Option<Timestamp>,
    /// What result checks found of it (docs/trust.md).
    #[serde(default)]
    pub reliability: Reliability,
    /// The GPUs it lends to jobs, and which job holds each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<WorkerGpu>,
}

/// A GPU a worker lends, as the worker list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkerGpu {
    /// NVML's index on the worker's host.
    pub index: u32,
    pub name: String,
    pub memory_mb: u64,
    /// The job running on it; absent when it is free.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<JobId>,
}

/// `GET /v1/workers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkersResponse {
    pub workers: Vec<WorkerView>,
}

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    /// `ok`, or `unavailable` with a 503.
    pub status: String,
    pub version: String,
    pub protocol: u32,
    pub uptime_s: u64,
    pub workers_online: u32,
    pub jobs_queued: u64,
    /// `leader`, or `standby` (with a 503) on a coordinator that waits to take over
    /// on a shared PostgreSQL store. A coordinator on SQLite is its grid's leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Who leads, as that coordinator advertises itself (a standby's answer), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// The leadership's epoch (shared store only): it grows at every takeover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
}

/// The machine-readable error codes of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    Unauthorized,
    InsufficientCredits,
    /// Allowed by the API's bounds, but not to this user (a priority above theirs).
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Timeout,
    Conflict,
    PayloadTooLarge,
    RateLimited,
    QueueFull,
    Unavailable,
    Internal,
}

impl ErrorCode {
    /// The HTTP status each code is sent with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::InsufficientCredits => 402,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Timeout => 408,
            ErrorCode::Conflict => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::RateLimited => 429,
            ErrorCode::QueueFull => 503,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }

    /// The code an HTTP error status stands for, for errors made outside our handlers.
    pub fn for_status(status: u16) -> ErrorCode {
        match status {
            401 => ErrorCode::Unauthorized,
            402 => ErrorCode::InsufficientCredits,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            405 => ErrorCode::MethodNotAllowed,
            408 => ErrorCode::Timeout,
            409 => ErrorCode::Conflict,
            413 => ErrorCode::PayloadTooLarge,
            429 => ErrorCode::RateLimited,
            503 => ErrorCode::Unavailable,
            500..=599 => ErrorCode::Internal,
            _ => ErrorCode::InvalidRequest,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::InsufficientCredits => "insufficient_credits",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::QueueFull => "queue_full",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

/// `{"error": {"code": "...", "message": "..."}}`, the body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code,
                message: message.into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_submit_fields_are_rejected() {
        let err = serde_json::from_str::<SubmitJobRequest>(
            r#"{"language":"python","code":"print(1)","timeout":5}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `timeout`"), "{err}");
    }

    #[test]
    fn submit_accepts_the_javascript_alias() {
        let r: SubmitJobRequest =
            serde_json::from_str(r#"{"language":"javascript","code":"1"}"#).unwrap();
        assert_eq!(r.language, Language::Node);
    }

    #[test]
    fn submit_rejects_wrong_types_and_missing_fields() {
        for bad in [
            r#"{"code":"x"}"#,
            r#"{"language":"python"}"#,
            r#"{"language":"python","code":5}"#,
            r#"{"language":"python","code":"x","timeout_s":-1}"#,
            r#"{"language":"python","code":"x","memory_mb":1.5}"#,
            r#"[]"#,
            r#""#,
        ] {
            assert!(
                serde_json::from_str::<SubmitJobRequest>(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_summary_counts_output_bytes_and_leaves_the_output_out() {
        let view: JobView = serde_json::from_str(include_str!("../tests/fixtures/job_view.json"))
            .expect("the fixture");
        let view = JobView {
            stdout: "é\u{1F600}\n".into(),
            stderr: "\u{FFFD}".into(),
            ..view
        };
        let summary = view.summary();
        assert_eq!((summary.stdout_bytes, summary.stderr_bytes), (7, 3));
        let json = serde_json::to_value(&summary).expect("serialises");
        assert!(json.get("stdout").is_none() && json.get("stderr").is_none());
        assert_eq!(summary.job_id, view.job_id);
        assert_eq!(summary.status, view.status);
    }

    #[test]
    fn error_codes_map_to_the_documented_statuses() {
        assert_eq!(ErrorCode::InsufficientCredits.http_status(), 402);
        assert_eq!(ErrorCode::QueueFull.http_status(), 503);
        assert_eq!(ErrorCode::RateLimited.http_status(), 429);
        assert_eq!(ErrorCode::Forbidden.http_status(), 403);
        assert_eq!(ErrorCode::for_status(403), ErrorCode::Forbidden);
        let body =
            serde_json::to_string(&ErrorBody::new(ErrorCode::NotFound, "no such job")).unwrap();
        assert_eq!(
            body,
            r#"{"error":{"code":"not_found","message":"no such job"}}"#
        );
    }
}
