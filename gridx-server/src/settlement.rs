//! Settlement: the one home of every credit rule.
//!
//! Every movement of credits (a grant or debit by an operator, the hold at submit, and how a hold leaves escrow
//! when its job ends) is decided here, as a list of [`Posting`]s, and written here, in
//! the caller's transaction, through the double-entry mechanism in
//! [`crate::store::ledger`]. The table these functions implement is "Credits" in
//! `docs/jobs.md#the-rules`; a rule added there is added here, with its unit test below.

use crate::store::Db;
use crate::store::ledger::{self, ESCROW, MINT, PLATFORM, PostError, Posted};
use gridx_proto::api::LedgerKind;
use gridx_proto::job::Settlement;
use gridx_proto::{Credits, JobId, JobStatus, UserName};

/// What a job costs its submitter: `job_cost`, plus `gpu_cost` for each GPU it asks
/// for (docs/jobs.md, "Credits"). Held at submit and settled as one amount, so its
/// reward and fee split as any job's. `Overflow` only for a configuration whose
/// prices are past the ledger's range.
pub fn price(
    job_cost: Credits,
    gpu_cost: Credits,
    gpus: u32,
) -> Result<Credits, gridx_proto::credits::CreditsError> {
    let gpus_cost = gpu_cost
        .millis()
        .checked_mul(i64::from(gpus))
        .ok_or(gridx_proto::credits::CreditsError::Overflow)?;
    job_cost.checked_add(Credits::from_millis(gpus_cost))
}

/// A reason for credits to move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Movement<'a> {
    /// An operator gives a user credits (`user add --credits`, or `user credit` with
    /// a positive amount and a reason).
    Grant {
        user: &'a UserName,
        amount: Credits,
        reason: Option<&'a str>,
    },
    /// An operator takes credits back from a user (`user credit` with a negative
    /// amount): `amount` is what leaves the user, positive.
    Debit {
        user: &'a UserName,
        amount: Credits,
        reason: &'a str,
    },
    /// A submitted job's cost, held in escrow until the job ends.
    Hold { user: &'a UserName, cost: Credits },
    /// A job ended: its hold leaves escrow as its terminal state decides.
    End(Ending<'a>),
}

/// A job reaching a terminal state, with what decides who its hold goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending<'a> {
    pub status: JobStatus,
    /// Whether a worker ran the current attempt to its end and reported it. A lost
    /// attempt (lease expired, revoked, reconnected without it) is never paid.
    pub reported_by_worker: bool,
    /// Who submitted the job (a refund goes back to them).
    pub user: &'a UserName,
    /// The owners of the workers whose results were accepted: the one that ran the
    /// attempt, or every replica that agreed with the accepted result
    /// (docs/trust.md). The reward is shared equally among them
    /// (`trust::share_reward`), the remainder going to the fee.
    pub paid: Vec<&'a UserName>,
    pub cost: Credits,
    pub reward_permille: u16,
}

/// One ledger entry a movement consists of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub kind: LedgerKind,
    pub from: String,
    pub to: String,
    pub amount: Credits,
    /// The operator's reason, for a movement by hand.
    pub reason: Option<String>,
}

/// Why a movement cannot be settled.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RuleError {
    #[error("a job cannot be settled in state {0}: it is not terminal")]
    NotTerminal(JobStatus),
    #[error("a paid ending needs the owner of the worker that ran it")]
    NoWorkerOwner,
}

fn posting(kind: LedgerKind, from: &str, to: &str, amount: Credits) -> Posting {
    Posting {
        kind,
        from: from.to_owned(),
        to: to.to_owned(),
        amount,
        reason: None,
    }
}

/// The entries a movement consists of, in order. Pure: this is the rules table.
pub fn postings(movement: &Movement<'_>) -> Result<Vec<Posting>, RuleError> {
    Ok(match movement {
        Movement::Grant {
            user,
            amount,
            reason,
        } => vec![Posting {
            reason: reason.map(str::to_owned),
            ..posting(
                LedgerKind::Grant,
                MINT,
                &ledger::user_account(user.as_str()),
                *amount,
            )
        }],
        Movement::Debit {
            user,
            amount,
            reason,
        } => vec![Posting {
            reason: Some((*reason).to_owned()),
            ..posting(
                LedgerKind::Debit,
                &ledger::user_account(user.as_str()),
                MINT,
                *amount,
            )
        }],
        Movement::Hold { user, cost } => vec![posting(
            LedgerKind::Hold,
            &ledger::user_account(user.as_str()),
            ESCROW,
            *cost,
        )],
        Movement::End(end) => match end.status.settlement(end.reported_by_worker) {
            None => return Err(RuleError::NotTerminal(end.status)),
            Some(Settlement::Refund) => vec![posting(
                LedgerKind::Refund,
                ESCROW,
                &ledger::user_account(end.user.as_str()),
                end.cost,
            )],
            Some(Settlement::PayWorker) => {
                if end.paid.is_empty() {
                    return Err(RuleError::NoWorkerOwner);
                }
                let (reward, fee) = end.cost.split_permille(end.reward_permille);
                let (share, rest) = crate::trust::share_reward(reward.millis(), &end.paid);
                let mut entries: Vec<Posting> = end
                    .paid
                    .iter()
                    .map(|owner| {
                        posting(
                            LedgerKind::Reward,
                            ESCROW,
                            &ledger::user_account(owner.as_str()),
                            Credits::from_millis(share),
                        )
                    })
                    .collect();
                entries.push(posting(
                    LedgerKind::Fee,
                    ESCROW,
                    PLATFORM,
                    Credits::from_millis(fee.millis() + rest),
                ));
                entries
            }
        },
    })
}

/// Decides and writes a movement inside the caller's transaction. A zero amount
/// writes no entry (a free job has none). A hold the balance does not cover is
/// [`PostError::Insufficient`] and writes nothing.
pub fn settle(
    conn: &Db,
    movement: &Movement<'_>,
    job_id: Option<JobId>,
    at: i64,
) -> Result<Vec<Posted>, SettleError> {
    let mut written = Vec::new();
    for p in postings(movement)? {
        let reason = p.reason.as_deref();
        if let Some(entry) =
            ledger::post(conn, p.kind, &p.from, &p.to, p.amount, job_id, at, reason)?
        {
            written.push(entry);
        }
    }
    Ok(written)
}

/// A movement that was refused or could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error(transparent)]
    Post(#[from] PostError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{jobs, testing};

    fn name(n: &str) -> UserName {
        UserName::new(n).expect("a valid test name")
    }

    fn ending<'a>(
        status: JobStatus,
        reported: bool,
        user: &'a UserName,
        owner: &'a UserName,
    ) -> Movement<'a> {
        Movement::End(Ending {
            status,
            reported_by_worker: reported,
            user,
            paid: vec![owner],
            cost: Credits::from_millis(1_001),
            reward_permille: 800,
        })
    }

    /// What each row of the rules table in docs/jobs.md says, as (kind, from, to, millis).
    fn expected(
        status: JobStatus,
        reported: bool,
    ) -> Vec<(LedgerKind, &'static str, &'static str, i64)> {
        use JobStatus::*;
        let pay = vec![
            (LedgerKind::Reward, "escrow", "user:owner", 800),
            (LedgerKind::Fee, "escrow", "platform", 201),
        ];
        let refund = vec![(LedgerKind::Refund, "escrow", "user:alice", 1_001)];
        match (status, reported) {
            (Succeeded | Failed | TimedOut, _) => pay,
            (Cancelled, true) => pay,
            (Cancelled, false) | (Error, _) => refund,
            (Queued | Running, _) => vec![],
        }
    }

    #[test]
    fn every_ending_posts_exactly_the_rules_table_and_empties_the_hold() {
        let (alice, owner) = (name("alice"), name("owner"));
        for status in JobStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for reported in [true, false] {
                let got: Vec<_> = postings(&ending(status, reported, &alice, &owner))
                    .expect("a terminal state settles")
                    .into_iter()
                    .map(|p| (p.kind, p.from, p.to, p.amount.millis()))
                    .collect();
                let want: Vec<_> = expected(status, reported)
                    .into_iter()
                    .map(|(k, f, t, a)| (k, f.to_owned(), t.to_owned(), a))
                    .collect();
                assert_eq!(got, want, "{status}, reported {reported}");
                let out_of_escrow: i64 = got.iter().filter(|p| p.1 == "escrow").map(|p| p.3).sum();
                assert_eq!(
                    out_of_escrow, 1_001,
                    "{status}: the whole hold leaves escrow"
                );
            }
        }
    }

    #[test]
    fn a_live_state_or_a_paid_ending_without_an_owner_is_refused() {
        let alice = name("alice");
        for status in [JobStatus::Queued, JobStatus::Running] {
            let m = ending(status, true, &alice, &alice);
            assert_eq!(postings(&m), Err(RuleError::NotTerminal(status)));
        }
        let m = Movement::End(Ending {
            status: JobStatus::Succeeded,
            reported_by_worker: true,
            user: &alice,
            paid: vec![],
            cost: Credits::from_whole(1),
            reward_permille: 800,
        });
        assert_eq!(postings(&m), Err(RuleError::NoWorkerOwner));
    }

    fn store() -> Db {
        testing::memory_store(&["alice", "owner"], "owner")
    }

    fn job(conn: &Db, user: &UserName) -> JobId {
        jobs::insert_job(conn, user, &testing::spec(), Credits::from_millis(1_001), 0)
            .expect("job row")
    }

    /// On a real store: grant, hold, then each ending; every entry is written with the
    /// job's id, balances move exactly, and `ledger verify` finds nothing wrong.
    #[test]
    fn settling_on_a_store_writes_the_table_and_keeps_the_ledger_balanced() {
        let conn = store();
        let (alice, owner) = (name("alice"), name("owner"));
        let grant = Movement::Grant {
            user: &alice,
            amount: Credits::from_whole(101),
            reason: Some("welcome"),
        };
        assert_eq!(settle(&conn, &grant, None, 0).expect("grant").len(), 1);
        let debit = Movement::Debit {
            user: &alice,
            amount: Credits::from_whole(1),
            reason: "granted one too many",
        };
        let written = settle(&conn, &debit, None, 0).expect("debit");
        assert_eq!(
            (
                written[0].kind,
                written[0].from.as_str(),
                written[0].to.as_str()
            ),
            (LedgerKind::Debit, "user:alice", "mint")
        );
        assert_eq!(written[0].reason.as_deref(), Some("granted one too many"));
        let mut expected_alice = 100_000;
        let mut expected_owner = 0;
        let mut expected_platform = 0;
        for status in JobStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for reported in [true, false] {
                let id = job(&conn, &alice);
                let hold = Movement::Hold {
                    user: &alice,
                    cost: Credits::from_millis(1_001),
                };
                settle(&conn, &hold, Some(id), 1).expect("hold");
                expected_alice -= 1_001;
                let written = settle(
                    &conn,
                    &ending(status, reported, &alice, &owner),
                    Some(id),
                    2,
                )
                .expect("ending");
                for (entry, (kind, _, to, amount)) in written.iter().zip(expected(status, reported))
                {
                    assert_eq!((entry.kind, entry.job_id), (kind, Some(id)));
                    match to {
                        "user:alice" => expected_alice += amount,
                        "user:owner" => expected_owner += amount,
                        _ => expected_platform += amount,
                    }
                }
                // End it in the store too, so `verify` sees a settled job.
                let done = jobs::Completion::default();
                let assigned = jobs::StatusWrite::Assigned {
                    worker: gridx_proto::WorkerId(1),
                    attempt: 1,
                    gpus: &[],
                };
                jobs::write_status(
                    &conn,
                    id,
                    JobStatus::Queued,
                    JobStatus::Running,
                    assigned,
                    2,
                )
                .expect("assign");
                let finished = jobs::StatusWrite::Finished(&done);
                jobs::write_status(&conn, id, JobStatus::Running, status, finished, 3)
                    .expect("finish");
            }
        }
        let balance = |a: &str| ledger::balance(&conn, a).expect("balance").millis();
        assert_eq!(balance("user:alice"), expected_alice);
        assert_eq!(balance("user:owner"), expected_owner);
        assert_eq!(balance("platform"), expected_platform);
        assert_eq!(balance("escrow"), 0);
        let report = ledger::verify(&conn).expect("verify runs");
        assert!(report.violations.is_empty(), "{:?}", report.violations);
    }

    /// A result confirmed by three owners: each gets a third of the reward, in whole
    /// milli-credits, and what does not divide goes to the fee; the hold leaves
    /// escrow whole.
    #[test]
    fn a_confirmed_result_shares_the_reward_among_the_agreeing_owners() {
        let (alice, b, c, d) = (name("alice"), name("b"), name("c"), name("d"));
        let m = Movement::End(Ending {
            status: JobStatus::Succeeded,
            reported_by_worker: true,
            user: &alice,
            paid: vec![&b, &c, &d],
            cost: Credits::from_millis(1_001),
            reward_permille: 800,
        });
        let got: Vec<_> = postings(&m)
            .expect("settles")
            .into_iter()
            .map(|p| (p.kind, p.to, p.amount.millis()))
            .collect();
        assert_eq!(
            got,
            vec![
                (LedgerKind::Reward, "user:b".to_owned(), 266),
                (LedgerKind::Reward, "user:c".to_owned(), 266),
                (LedgerKind::Reward, "user:d".to_owned(), 266),
                (LedgerKind::Fee, "platform".to_owned(), 203),
            ]
        );
    }

    #[test]
    fn a_hold_the_balance_cannot_cover_writes_nothing() {
        let conn = store();
        let alice = name("alice");
        let id = job(&conn, &alice);
        let hold = Movement::Hold {
            user: &alice,
            cost: Credits::from_millis(1),
        };
        assert!(matches!(
            settle(&conn, &hold, Some(id), 1),
            Err(SettleError::Post(PostError::Insufficient { .. }))
        ));
        let entries: i64 = conn
            .query_row("SELECT COUNT(*) FROM ledger", (), |r| r.get(0))
            .expect("count");
        assert_eq!(entries, 0);
    }

    /// A debit never takes more than the balance: credits in escrow for live jobs and
    /// credits already spent stay where they are.
    #[test]
    fn a_debit_past_the_balance_writes_nothing() {
        let conn = store();
        let alice = name("alice");
        let grant = Movement::Grant {
            user: &alice,
            amount: Credits::from_whole(2),
            reason: None,
        };
        settle(&conn, &grant, None, 0).expect("grant");
        let debit = Movement::Debit {
            user: &alice,
            amount: Credits::from_millis(2_001),
            reason: "too much",
        };
        assert!(matches!(
            settle(&conn, &debit, None, 1),
            Err(SettleError::Post(PostError::Insufficient { .. }))
        ));
        assert_eq!(
            ledger::balance(&conn, "user:alice").expect("balance"),
            Credits::from_whole(2)
        );
        let report = ledger::verify(&conn).expect("verify runs");
        assert!(report.violations.is_empty(), "{:?}", report.violations);
    }

    #[test]
    fn a_gpu_job_costs_the_job_cost_and_the_gpu_cost_per_gpu() {
        let job = Credits::from_whole(1);
        let gpu = Credits::from_millis(2_500);
        assert_eq!(price(job, gpu, 0), Ok(job));
        assert_eq!(price(job, gpu, 1), Ok(Credits::from_millis(3_500)));
        assert_eq!(price(job, gpu, 16), Ok(Credits::from_millis(41_000)));
        let huge = Credits::from_millis(gridx_proto::credits::MAX_ABS_MILLIS);
        assert!(price(job, huge, 16).is_err());
    }
}
