//! `gridx-server audit`: the audit log, newest first (also `GET /v1/admin/audit`).

use super::output::print_stdout;
use color_eyre::eyre::{Context, Result};
use gridx_proto::admin::AuditResponse;
use gridx_proto::time_fmt::to_rfc3339;
use gridx_server::store::{self, audit};
use std::process::ExitCode;

pub fn show(
    location: &store::Location,
    limit: u32,
    before: Option<u64>,
    json: bool,
) -> Result<ExitCode> {
    let conn = store::open_inspector_at(location)
        .with_context(|| format!("opening the store {}", location.display()))?;
    if let store::Location::Sqlite(data_dir) = location {
        super::store_level::refuse_newer_level(&conn, &store::database_path(data_dir))?;
    }
    let entries = audit::list(&conn, limit, before)?;
    if json {
        print_stdout(&serde_json::to_string(&AuditResponse { entries })?)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_stdout(&format!(
        "{:>6}  {:<20}  {:<20} {:<16} {:<14} DETAIL",
        "ID", "AT", "ACTOR", "ACTION", "SUBJECT"
    ))?;
    let full = entries.len() == limit as usize;
    let last = entries.last().map(|e| e.id);
    for e in entries {
        print_stdout(&format!(
            "{:>6}  {:<20}  {:<20} {:<16} {:<14} {}",
            e.id,
            to_rfc3339(e.at),
            e.actor,
            e.action,
            e.subject,
            e.detail
        ))?;
    }
    if let (true, Some(last)) = (full, last) {
        eprintln!("more before entry {last}: gridx-server audit --before {last}");
    }
    Ok(ExitCode::SUCCESS)
}
