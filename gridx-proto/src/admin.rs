//! The operator's REST bodies under `/v1/admin/` (docs/api.md#admin), answered only to
//! admin tokens. `gridx-server user …` does the same on the store directly; both write
//! an audit entry for every change.

use crate::api::LedgerEntryView;
use crate::time_fmt::Timestamp;
use crate::{Credits, UserName};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The longest reason an operator may give (a credit's, a disabled account's), in
/// bytes: it is shown in ledgers and lists, not a place for documents.
pub const MAX_REASON_BYTES: usize = 200;

/// Why a reason is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReasonError {
    #[error("a reason is required: say why, e.g. --reason \"refund for outage 2026-11-30\"")]
    Empty,
    #[error("the reason is {0} bytes; at most {MAX_REASON_BYTES} are allowed")]
    TooLong(usize),
    #[error("the reason contains a control character; write it on one line of plain text")]
    Control,
}

/// Checks an operator's reason: one line of plain text, 1 to [`MAX_REASON_BYTES`]
/// bytes once trimmed. Control characters are refused rather than escaped, since the
/// text is shown in every user's ledger.
pub fn check_reason(reason: &str) -> Result<String, ReasonError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ReasonError::Empty);
    }
    if reason.len() > MAX_REASON_BYTES {
        return Err(ReasonError::TooLong(reason.len()));
    }
    if reason.chars().any(char::is_control) {
        return Err(ReasonError::Control);
    }
    Ok(reason.to_owned())
}

/// One user as the operator sees them (`user list`, `GET /v1/admin/users`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserAccountView {
    pub user: UserName,
    pub admin: bool,
    pub balance: Credits,
    /// Jobs submitted, ever.
    pub jobs: u64,
    pub max_priority: i32,
    /// Why the operator disabled the account; absent while it is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<String>,
}

/// `GET /v1/admin/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UsersResponse {
    pub users: Vec<UserAccountView>,
}

/// `POST /v1/admin/users/{name}/credit`: a positive amount is a `grant` from the mint,
/// a negative one a `debit` back to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditRequest {
    #[schema(value_type = f64)]
    pub amount: Credits,
    pub reason: String,
}

/// The answer to a credit: the entry as the user sees it, and their balance after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreditResponse {
    pub user: UserName,
    pub entry: LedgerEntryView,
    pub balance: Credits,
}

/// `POST /v1/admin/users/{name}/disable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableRequest {
    pub reason: String,
}

/// The answer to a disable or an enable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserStateResponse {
    pub user: UserAccountView,
    /// Queued jobs of the user this change cancelled (with a refund each).
    pub cancelled_jobs: u32,
}

/// `POST /v1/admin/users/{name}/token`: the new token, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub user: UserName,
    pub token: String,
}

/// One audited operator change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub id: u64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// Who: `admin:NAME` over the API, `cli:USER` for `gridx-server` on the host.
    pub actor: String,
    /// What, e.g. `user.credit`, `user.disable`, `worker.revoke`.
    pub action: String,
    /// On what: `user:NAME` or `worker:ID`.
    pub subject: String,
    /// The details: an amount and reason, the ledger entry's id.
    pub detail: String,
}

/// `GET /v1/admin/audit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditResponse {
    pub entries: Vec<AuditEntry>,
}

/// The query of `GET /v1/admin/audit`: the newest `limit` entries, older than
/// `before` when given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub limit: Option<u32>,
    pub before: Option<u64>,
}

impl AuditQuery {
    pub const DEFAULT_LIMIT: u32 = 50;
    pub const MAX_LIMIT: u32 = 1000;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_one_trimmed_line_of_bounded_text() {
        assert_eq!(check_reason("  outage refund "), Ok("outage refund".into()));
        assert_eq!(check_reason("   "), Err(ReasonError::Empty));
        assert_eq!(check_reason("a\nb"), Err(ReasonError::Control));
        assert_eq!(check_reason("\u{1b}[31mred"), Err(ReasonError::Control));
        let long = "x".repeat(MAX_REASON_BYTES + 1);
        assert_eq!(
            check_reason(&long),
            Err(ReasonError::TooLong(MAX_REASON_BYTES + 1))
        );
        assert!(check_reason(&"é".repeat(MAX_REASON_BYTES / 2)).is_ok());
    }
}
