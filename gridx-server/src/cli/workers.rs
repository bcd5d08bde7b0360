//! `gridx-server worker add|set|revoke|list`: worker tokens and slot caps.

use super::args::WorkerCommand;
use super::output::print_stdout;
use color_eyre::eyre::{Result, eyre};
use gridx_proto::{UserName, WorkerId};
use gridx_server::store::{self, users};
use std::path::Path;
use std::process::ExitCode;

pub fn worker(cmd: WorkerCommand, data_dir: &Path, json: bool) -> Result<ExitCode> {
    let conn = store::open_writer(data_dir)?;
    match cmd {
        WorkerCommand::Add {
            owner,
            name,
            max_slots,
        } => {
            let owner = UserName::new(&owner)?;
            let label = match name {
                Some(n) => UserName::new(&n)
                    .map_err(|e| eyre!("--name: {e}"))?
                    .to_string(),
                None => format!("{owner}-worker"),
            };
            let (id, token) = users::register_worker(&conn, &owner, &label, max_slots)?;
            eprintln!(
                "registered worker {id} ({label}) owned by {owner}, {}",
                describe_cap(max_slots)
            );
            if json {
                print_stdout(&serde_json::json!({"worker_id": id, "name": label, "owner": owner, "max_slots": max_slots, "token": token}).to_string())?;
            } else {
                print_stdout(&token)?;
            }
        }
        WorkerCommand::Set { id, max_slots } => {
            let id: WorkerId = id.parse()?;
            users::set_worker_max_slots(&conn, id, max_slots.0)?;
            eprintln!(
                "worker {id}: {}; a running coordinator applies it when the worker next connects",
                describe_cap(max_slots.0)
            );
        }
        WorkerCommand::Revoke { id } => {
            let id: WorkerId = id.parse()?;
            users::revoke_worker(&conn, id)?;
            eprintln!("revoked worker {id}; a running coordinator drops it within a second");
        }
        WorkerCommand::List => {
            let list = users::all_workers(&conn)?;
            if json {
                let rows: Vec<_> = list
                    .iter()
                    .map(|(w, _)| serde_json::json!({"worker_id": w.id, "name": w.name, "owner": w.owner, "max_slots": w.max_slots, "revoked": w.revoked}))
                    .collect();
                print_stdout(&serde_json::to_string(&rows)?)?;
            } else {
                print_stdout(&format!(
                    "{:>6}  {:<24} {:<24} {:>9}  REVOKED",
                    "ID", "NAME", "OWNER", "MAX_SLOTS"
                ))?;
                for (w, _) in list {
                    print_stdout(&format!(
                        "{:>6}  {:<24} {:<24} {:>9}  {}",
                        w.id.to_string(),
                        w.name,
                        w.owner.to_string(),
                        w.max_slots.map_or_else(|| "-".into(), |n| n.to_string()),
                        if w.revoked { "yes" } else { "" }
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
