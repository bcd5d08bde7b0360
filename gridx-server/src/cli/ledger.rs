//! `gridx-server ledger verify`: the store's ledger invariants, exit 1 on a violation.

use super::output::print_stdout;
use color_eyre::eyre::{Context, Result};
use gridx_server::store::{self, ledger};
use std::process::ExitCode;

pub fn verify(location: &store::Location, json: bool) -> Result<ExitCode> {
    let conn = store::open_inspector_at(location)
        .with_context(|| format!("opening the store {}", location.display()))?;
    if let store::Location::Sqlite(data_dir) = location {
        super::store_level::refuse_newer_level(&conn, &store::database_path(data_dir))?;
    }
    let report = ledger::verify(&conn)?;
    let t = &report.totals;
    if json {
        print_stdout(
            &serde_json::json!({
                "ok": report.violations.is_empty(),
                "entries": t.entries,
                "jobs": report.jobs,
                "granted": t.granted,
                "users": t.users,
                "escrow": t.escrow,
                "platform": t.platform,
                "violations": report.violations,
            })
            .to_string(),
        )?;
    } else if report.violations.is_empty() {
        print_stdout(&format!(
            "ledger ok: {} entries, {} jobs, granted {}, users {}, escrow {}, platform {}",
            t.entries, report.jobs, t.granted, t.users, t.escrow, t.platform
        ))?;
    } else {
        print_stdout(&format!(
            "ledger FAILED: {} violations",
            report.violations.len()
        ))?;
        for v in &report.violations {
            print_stdout(&format!("  {v}"))?;
        }
    }
    Ok(if report.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
