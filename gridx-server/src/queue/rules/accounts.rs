//! The operator's actions on accounts, as the queue applies them for `/v1/admin/…`,
//! and the one rule that follows a disable: the account's queued jobs are cancelled
//! with a refund. Its running jobs finish and settle as usual, and so do queued jobs
//! already waiting for a replica of a result that was run (docs/operations.md#users-
//! and-credits). The actions themselves are `crate::admin`'s, shared with the CLI.

use super::super::model::{Effects, State, Step, StepError};
use super::super::{AdminAction, AdminOutcome, QueueError};
use crate::admin;
use crate::store::Db;
use crate::store::StoreError;
use crate::store::audit::Actor;
use crate::store::counters::{self, Counter};
use crate::store::users;
use gridx_proto::job::FailureReason;
use gridx_proto::{JobId, UserName};

/// An operator's mistake is a refusal for the caller; anything else aborts the batch.
fn refusal(e: StoreError) -> StepError {
    match e {
        StoreError::NotFound(m) => StepError::Refused(QueueError::NoSuchUser(m)),
        StoreError::Conflict(m) => StepError::Refused(QueueError::Invalid(m)),
        other => StepError::Store(other),
    }
}

impl State {
    pub(in crate::queue) fn admin(
        &mut self,
        conn: &Db,
        admin_name: &UserName,
        action: AdminAction,
        fx: &mut Effects,
    ) -> Step<AdminOutcome> {
        let actor = Actor::Admin(admin_name.clone());
        match action {
            AdminAction::Credit {
                user,
                amount,
                reason,
            } => {
                let posted =
                    admin::credit(conn, &actor, &user, amount, &reason).map_err(refusal)?;
                fx.posted.push(posted.clone());
                Ok(AdminOutcome::Credited(posted))
            }
            AdminAction::Disable { user, reason } => {
                if &user == admin_name {
                    return Err(StepError::Refused(QueueError::Invalid(
                        "you cannot disable your own account; another admin or `gridx-server user disable` can".into(),
                    )));
                }
                admin::disable(conn, &actor, &user, &reason).map_err(refusal)?;
                // Also the jobs of anyone a command line disabled since the last pass.
                let cancelled = self.cancel_jobs_of_disabled(conn, fx)?;
                let mine = cancelled.iter().filter(|owner| **owner == user).count();
                Ok(AdminOutcome::State {
                    cancelled: mine as u32,
                })
            }
            AdminAction::Enable { user } => {
                admin::enable(conn, &actor, &user).map_err(refusal)?;
                // The counter is left for housekeeping: a command line may have
                // disabled someone else a moment ago.
                Ok(AdminOutcome::State { cancelled: 0 })
            }
            AdminAction::RotateToken { user } => {
                let token = admin::rotate_token(conn, &actor, &user).map_err(refusal)?;
                Ok(AdminOutcome::Token(token))
            }
        }
    }

    /// Cancels, with a refund, every queued job of a disabled account that has not run
    /// yet. A job waiting for a replica keeps its place: it already ran once, and its
    /// check decides who is paid. Returns the owner of each job it cancelled.
    pub(in crate::queue) fn cancel_jobs_of_disabled(
        &mut self,
        conn: &Db,
        fx: &mut Effects,
    ) -> Step<Vec<UserName>> {
        self.users_version = counters::read(conn, Counter::Users)?;
        let disabled = users::disabled_users(conn)?;
        if disabled.is_empty() {
            return Ok(Vec::new());
        }
        let doomed: Vec<(JobId, UserName)> = self
            .scheduler
            .jobs()
            .filter(|j| disabled.contains(&j.user) && j.check.replica_owners.is_empty())
            .map(|j| (j.id, j.user.clone()))
            .collect();
        for (id, user) in &doomed {
            let message = format!(
                "cancelled and refunded: the operator disabled {user}'s account while the job waited"
            );
            self.finish_queued(conn, *id, FailureReason::UserDisabled, Some(message), fx)?;
        }
        if !doomed.is_empty() {
            tracing::info!(
                jobs = doomed.len(),
                "cancelled the queued jobs of disabled accounts"
            );
        }
        Ok(doomed.into_iter().map(|(_, user)| user).collect())
    }

    /// A disable or enable made with `gridx-server user …` takes effect within a
    /// second: the change counter is read on each housekeeping pass, and before the
    /// first dispatch after a start (`users_version` is -1 until then).
    pub(in crate::queue) fn apply_account_changes(
        &mut self,
        conn: &Db,
        fx: &mut Effects,
    ) -> Step<()> {
        if counters::read(conn, Counter::Users)? != self.users_version {
            self.cancel_jobs_of_disabled(conn, fx)?;
        }
        Ok(())
    }
}
