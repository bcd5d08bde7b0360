//! The operator's actions on users, one home for `gridx-server user …` (on the store,
//! beside a running coordinator) and `/v1/admin/users/…` (through the queue). Each
//! checks its input, changes the store and writes its audit entry, all in the
//! caller's transaction. Cancelling a disabled user's queued jobs is the queue's
//! (`queue::rules::accounts`): a command-line disable reaches it through the
//! `users_version` counter.

use crate::settlement::{self, Movement, SettleError};
use crate::store::Db;
use crate::store::audit::{self, Actor};
use crate::store::ledger::{PostError, Posted};
use crate::store::{StoreError, StoreResult, now_millis, users};
use gridx_proto::admin::check_reason;
use gridx_proto::{Credits, UserName};

/// Grants (a positive amount) or debits (a negative one) a user's account, with the
/// operator's reason on the ledger entry. A debit past the balance is refused: what
/// is held in escrow for live jobs is not the operator's to take.
pub fn credit(
    conn: &Db,
    actor: &Actor,
    name: &UserName,
    amount: Credits,
    reason: &str,
) -> StoreResult<Posted> {
    let reason = check_reason(reason).map_err(|e| StoreError::Conflict(e.to_string()))?;
    if amount.millis() == 0 {
        return Err(StoreError::Conflict(
            "the amount must not be 0: a positive amount grants, a negative one debits".into(),
        ));
    }
    users::require(conn, name)?;
    let movement = if amount.is_negative() {
        Movement::Debit {
            user: name,
            amount: Credits::from_millis(-amount.millis()),
            reason: &reason,
        }
    } else {
        Movement::Grant {
            user: name,
            amount,
            reason: Some(&reason),
        }
    };
    let posted = match settlement::settle(conn, &movement, None, now_millis()) {
        Ok(mut written) => written.pop().ok_or_else(|| {
            StoreError::Corrupt("a credit of a non-zero amount wrote no entry".into())
        })?,
        Err(SettleError::Post(PostError::Insufficient { balance, needed })) => {
            return Err(StoreError::Conflict(format!(
                "{name} has {balance} credits; a debit of {needed} would take the balance below zero (credits held for live jobs cannot be taken)"
            )));
        }
        Err(SettleError::Post(PostError::Store(e))) => return Err(e),
        Err(other) => return Err(StoreError::Conflict(other.to_string())),
    };
    let signed = if amount.is_negative() {
        amount.to_string()
    } else {
        format!("+{amount}")
    };
    audit::record(
        conn,
        actor,
        "user.credit",
        &subject(name),
        &format!("{signed} credits (ledger entry {}): {reason}", posted.id),
    )?;
    Ok(posted)
}

/// Disables an account: its token is refused from its next request. Returns whether
/// it was enabled until now (disabling twice changes nothing and audits nothing).
pub fn disable(conn: &Db, actor: &Actor, name: &UserName, reason: &str) -> StoreResult<bool> {
    let reason = check_reason(reason).map_err(|e| StoreError::Conflict(e.to_string()))?;
    let changed = users::set_disabled(conn, name, Some(&reason))?;
    if changed {
        audit::record(conn, actor, "user.disable", &subject(name), &reason)?;
    }
    Ok(changed)
}

/// Enables a disabled account. Returns whether it was disabled until now.
pub fn enable(conn: &Db, actor: &Actor, name: &UserName) -> StoreResult<bool> {
    let changed = users::set_disabled(conn, name, None)?;
    if changed {
        audit::record(conn, actor, "user.enable", &subject(name), "")?;
    }
    Ok(changed)
}

/// Issues a new API token; the old one stops working at its next request.
pub fn rotate_token(conn: &Db, actor: &Actor, name: &UserName) -> StoreResult<String> {
    let token = users::rotate_user_token(conn, name)?;
    audit::record(conn, actor, "user.token", &subject(name), "rotated")?;
    Ok(token)
}

/// The audit subject of a user.
pub fn subject(name: &UserName) -> String {
    format!("user:{name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ledger, testing};
    use gridx_proto::api::LedgerKind;

    fn name(n: &str) -> UserName {
        UserName::new(n).expect("a valid test name")
    }

    fn actor() -> Actor {
        Actor::Cli("root".into())
    }

    #[test]
    fn a_credit_is_a_grant_or_a_debit_with_its_reason_and_an_audit_entry() {
        let conn = testing::memory_store(&["alice"], "alice");
        let alice = name("alice");
        let granted =
            credit(&conn, &actor(), &alice, "12.5".parse().unwrap(), " prize ").expect("grant");
        assert_eq!(
            (granted.kind, granted.reason.as_deref()),
            (LedgerKind::Grant, Some("prize"))
        );
        let debited = credit(
            &conn,
            &actor(),
            &alice,
            "-2.5".parse().unwrap(),
            "chargeback",
        )
        .expect("debit");
        assert_eq!(
            (debited.kind, debited.amount, debited.from.as_str()),
            (LedgerKind::Debit, Credits::from_millis(2_500), "user:alice")
        );
        assert_eq!(
            ledger::balance(&conn, "user:alice").unwrap(),
            Credits::from_whole(10)
        );
        let log = audit::list(&conn, 10, None).unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(
            log[0].detail,
            format!("-2.5 credits (ledger entry {}): chargeback", debited.id)
        );
        assert_eq!(
            log[1].detail,
            format!("+12.5 credits (ledger entry {}): prize", granted.id)
        );
        assert_eq!(
            (
                log[0].actor.as_str(),
                log[0].action.as_str(),
                log[0].subject.as_str()
            ),
            ("cli:root", "user.credit", "user:alice")
        );
        let report = ledger::verify(&conn).unwrap();
        assert!(report.violations.is_empty(), "{:?}", report.violations);
        assert_eq!(report.totals.granted, Credits::from_whole(10));
    }

    #[test]
    fn bad_credits_change_nothing_and_say_why() {
        let conn = testing::memory_store(&["alice"], "alice");
        let alice = name("alice");
        let cases = [
            ("nobody", "1", "why", "no user nobody"),
            ("alice", "0", "why", "must not be 0"),
            ("alice", "-1", "why", "below zero"),
            ("alice", "1", "  ", "a reason is required"),
            ("alice", "1", "two\nlines", "control character"),
        ];
        for (who, amount, reason, expected) in cases {
            let err = credit(&conn, &actor(), &name(who), amount.parse().unwrap(), reason)
                .expect_err("refused");
            assert!(
                err.to_string().contains(expected),
                "{who} {amount} {reason:?}: {err}"
            );
        }
        let entries: i64 = conn
            .query_row("SELECT COUNT(*) FROM ledger", (), |r| r.get(0))
            .unwrap();
        let audited: i64 = conn
            .query_row("SELECT COUNT(*) FROM audit", (), |r| r.get(0))
            .unwrap();
        assert_eq!((entries, audited), (0, 0));
        assert_eq!(ledger::balance(&conn, "user:alice").unwrap(), Credits::ZERO);
        let _ = alice;
    }

    #[test]
    fn disabling_twice_or_enabling_an_enabled_account_audits_once() {
        let conn = testing::memory_store(&["alice"], "alice");
        let alice = name("alice");
        assert!(disable(&conn, &actor(), &alice, "abuse report 17").unwrap());
        assert!(!disable(&conn, &actor(), &alice, "again").unwrap());
        assert_eq!(
            users::user_account_view(&conn, &alice)
                .unwrap()
                .disabled
                .as_deref(),
            Some("abuse report 17")
        );
        assert!(users::disabled_users(&conn).unwrap().contains(&alice));
        assert!(enable(&conn, &actor(), &alice).unwrap());
        assert!(!enable(&conn, &actor(), &alice).unwrap());
        let actions: Vec<_> = audit::list(&conn, 10, None)
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions, ["user.enable", "user.disable"]);
        assert!(disable(&conn, &actor(), &name("nobody"), "x").is_err());
    }
}
