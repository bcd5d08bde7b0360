//! `gridx-server migrate --to postgres://…`: the SQLite store into PostgreSQL
//! (`gridx_server::store::migrate`).

use super::output::print_stdout;
use color_eyre::eyre::{Context, Result, eyre};
use gridx_server::store::{self, Location};
use std::path::Path;
use std::process::ExitCode;

pub fn migrate(data_dir: &Path, to: &str, json: bool) -> Result<ExitCode> {
    let Location::Postgres(url) = Location::parse(to).map_err(|e| eyre!("--to: {e}"))? else {
        return Err(eyre!(
            "--to: the target is a PostgreSQL URL (postgres://USER@HOST/DATABASE)"
        ));
    };
    let shown = store::redact(&url);
    super::store_level::refuse_newer_store(data_dir)?;
    // The serve lock: no coordinator may write the store while it is copied.
    let (_lock, source) = store::open_for_serving(data_dir).with_context(|| {
        format!(
            "opening the store in {} (stop its coordinator first)",
            data_dir.display()
        )
    })?;
    let target = store::postgres::open(&url, None).with_context(|| format!("opening {shown}"))?;
    let report = store::migrate::copy(&source, &target)
        .with_context(|| format!("copying {} into {shown}", data_dir.display()))?;
    let ok = report.target.violations.is_empty() && report.source.totals == report.target.totals;
    if json {
        print_stdout(
            &serde_json::json!({
                "ok": ok,
                "rows": report.rows.iter().map(|(t, n)| serde_json::json!({"table": t, "rows": n})).collect::<Vec<_>>(),
                "source_entries": report.source.totals.entries,
                "target_entries": report.target.totals.entries,
                "violations": report.target.violations,
            })
            .to_string(),
        )?;
    } else {
        for (table, rows) in &report.rows {
            print_stdout(&format!("{table:>20}  {rows} rows"))?;
        }
        let (s, t) = (&report.source.totals, &report.target.totals);
        print_stdout(&format!(
            "ledger on SQLite:     {} entries, granted {}, users {}, escrow {}, platform {}",
            s.entries, s.granted, s.users, s.escrow, s.platform
        ))?;
        print_stdout(&format!(
            "ledger on PostgreSQL: {} entries, granted {}, users {}, escrow {}, platform {}",
            t.entries, t.granted, t.users, t.escrow, t.platform
        ))?;
        if ok {
            print_stdout(&format!(
                "migrated to {shown}; serve with --store {shown} (the SQLite store is left as it was)"
            ))?;
        } else {
            print_stdout("ledger FAILED on PostgreSQL after the copy:")?;
            for v in &report.target.violations {
                print_stdout(&format!("  {v}"))?;
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
