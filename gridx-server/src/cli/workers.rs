//! `gridx-server worker add|set|revoke|trust|restore|list`: worker tokens, slot caps
//! and trust (docs/trust.md).

use super::args::WorkerCommand;
use super::output::print_stdout;
use color_eyre::eyre::{Result, eyre};
use gridx_proto::{UserName, WorkerId};
use gridx_server::store::audit::{self, Actor};
use gridx_server::store::trust::{self, Subject};
use gridx_server::store::{self, users};
use std::process::ExitCode;

pub fn worker(cmd: WorkerCommand, location: &store::Location, json: bool) -> Result<ExitCode> {
    let conn = store::open_writer_at(location)?;
    let actor = Actor::cli();
    let record = |conn: &store::Db, action: &str, id: WorkerId, detail: &str| {
        audit::record(conn, &actor, action, &format!("worker:{id}"), detail)
    };
    match cmd {
        WorkerCommand::Add {
            owner,
            name,
            max_slots,
            trusted,
        } => {
            let owner = UserName::new(&owner)?;
            let label = match name {
                Some(n) => UserName::new(&n)
                    .map_err(|e| eyre!("--name: {e}"))?
                    .to_string(),
                None => format!("{owner}-worker"),
            };
            let tx = conn.transaction()?;
            let (id, token) = users::register_worker(&tx, &owner, &label, max_slots)?;
            if trusted {
                trust::set_trusted(&tx, id, true)?;
            }
            let detail = format!(
                "{label} owned by {owner}, {}{}",
                describe_cap(max_slots),
                if trusted { ", trusted" } else { "" }
            );
            record(&tx, "worker.add", id, &detail)?;
            tx.commit()?;
            eprintln!(
                "registered worker {id} ({label}) owned by {owner}, {}, {}",
                describe_cap(max_slots),
                if trusted {
                    "trusted (its results need no replica)"
                } else {
                    "on probation (its results are checked by other owners' workers)"
                }
            );
            if json {
                print_stdout(&serde_json::json!({"worker_id": id, "name": label, "owner": owner, "max_slots": max_slots, "trusted": trusted, "token": token}).to_string())?;
            } else {
                print_stdout(&token)?;
            }
        }
        WorkerCommand::Set { id, max_slots } => {
            let id: WorkerId = id.parse()?;
            let tx = conn.transaction()?;
            users::set_worker_max_slots(&tx, id, max_slots.0)?;
            record(&tx, "worker.set", id, &describe_cap(max_slots.0))?;
            tx.commit()?;
            eprintln!(
                "worker {id}: {}; a running coordinator applies it when the worker next connects",
                describe_cap(max_slots.0)
            );
        }
        WorkerCommand::Revoke { id } => {
            let id: WorkerId = id.parse()?;
            let tx = conn.transaction()?;
            users::revoke_worker(&tx, id)?;
            record(&tx, "worker.revoke", id, "")?;
            tx.commit()?;
            eprintln!("revoked worker {id}; a running coordinator drops it within a second");
        }
        WorkerCommand::Trust { id, off } => {
            let id: WorkerId = id.parse()?;
            let tx = conn.transaction()?;
            trust::set_trusted(&tx, id, !off)?;
            record(&tx, "worker.trust", id, if off { "off" } else { "on" })?;
            tx.commit()?;
            if off {
                eprintln!(
                    "worker {id} is no longer trusted: its results are checked by its record; a running coordinator applies it within a second"
                );
            } else {
                eprintln!(
                    "worker {id} is trusted: its results need no replica; a running coordinator applies it within a second"
                );
            }
        }
        WorkerCommand::Restore { id } => {
            let id: WorkerId = id.parse()?;
            let owner = users::all_workers(&conn)?
                .into_iter()
                .find(|(w, _)| w.id == id)
                .map(|(w, _)| w.owner)
                .ok_or_else(|| eyre!("no worker {id}"))?;
            let tx = conn.transaction()?;
            let lifted = trust::restore(&tx, id, &owner)?;
            record(&tx, "worker.restore", id, &lifted.join("; "))?;
            tx.commit()?;
            if lifted.is_empty() {
                eprintln!("worker {id} was not quarantined; its and {owner}'s streaks start again");
            } else {
                eprintln!(
                    "worker {id} restored (lifted: {}); it is on probation again, every result checked",
                    lifted.join("; ")
                );
            }
        }
        WorkerCommand::List => {
            let list = users::all_workers(&conn)?;
            let marks = trust::trusted_workers(&conn)?;
            let records = trust::all_records(&conn)?;
            let record = |s: Subject| records.get(&s).cloned().unwrap_or_default();
            let rows: Vec<_> = list
                .iter()
                .map(|(w, _)| {
                    let own = record(Subject::Worker(w.id));
                    let owner = record(Subject::Owner(w.owner.clone()));
                    let trusted = marks.get(&w.id).copied().unwrap_or(false);
                    let quarantined = if trusted {
                        None
                    } else {
                        own.quarantined.clone().or_else(|| {
                            owner.quarantined.map(|r| format!("owner {}: {r}", w.owner))
                        })
                    };
                    (w, trusted, own, quarantined)
                })
                .collect();
            if json {
                let rows: Vec<_> = rows
                    .iter()
                    .map(|(w, trusted, r, q)| serde_json::json!({"worker_id": w.id, "name": w.name, "owner": w.owner, "max_slots": w.max_slots, "revoked": w.revoked, "trusted": trusted, "validated": r.validated, "invalid": r.invalid, "errors": r.errors, "lost": r.lost, "streak": r.streak, "quarantined": q}))
                    .collect();
                print_stdout(&serde_json::to_string(&rows)?)?;
            } else {
                print_stdout(&format!(
                    "{:>6}  {:<20} {:<16} {:>9}  {:<7} {:>9} {:>7}  STATE",
                    "ID", "NAME", "OWNER", "MAX_SLOTS", "TRUSTED", "VALIDATED", "INVALID"
                ))?;
                for (w, trusted, r, quarantined) in rows {
                    let state = if w.revoked {
                        "revoked".to_owned()
                    } else if let Some(q) = quarantined {
                        format!("quarantined: {q}")
                    } else {
                        String::new()
                    };
                    print_stdout(&format!(
                        "{:>6}  {:<20} {:<16} {:>9}  {:<7} {:>9} {:>7}  {}",
                        w.id.to_string(),
                        w.name,
                        w.owner.to_string(),
                        w.max_slots.map_or_else(|| "-".into(), |n| n.to_string()),
                        if trusted { "yes" } else { "" },
                        r.validated,
                        r.invalid,
                        state
                    ))?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn describe_cap(max_slots: Option<u32>) -> String {
    match max_slots {
        Some(n) => format!("at most {n} jobs at once"),
        None => "as many jobs at once as it claims".into(),
    }
}
