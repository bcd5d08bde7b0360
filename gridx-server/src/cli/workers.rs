//! `gridx-server worker add|revoke|list`: worker tokens.

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
        WorkerCommand::Add { owner, name } => {
            let owner = UserName::new(&owner)?;
            let label = match name {
                Some(n) => UserName::new(&n)
                    .map_err(|e| eyre!("--name: {e}"))?
                    .to_string(),
                None => format!("{owner}-worker"),
            };
            let (id, token) = users::add_worker(&conn, &owner, &label)?;
            eprintln!("registered worker {id} ({label}) owned by {owner}");
            if json {
                print_stdout(&serde_json::json!({"worker_id": id, "name": label, "owner": owner, "token": token}).to_string())?;
            } else {
                print_stdout(&token)?;
            }
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
                    .map(|(w, _)| serde_json::json!({"worker_id": w.id, "name": w.name, "owner": w.owner, "revoked": w.revoked}))
                    .collect();
                print_stdout(&serde_json::to_string(&rows)?)?;
            } else {
                print_stdout(&format!(
                    "{:>6}  {:<24} {:<24} REVOKED",
                    "ID", "NAME", "OWNER"
                ))?;
                for (w, _) in list {
                    print_stdout(&format!(
                        "{:>6}  {:<24} {:<24} {}",
                        w.id.to_string(),
                        w.name,
                        w.owner.to_string(),
                        if w.revoked { "yes" } else { "" }
                    ))?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
