//! `gridx-server user add|set|list|token|credit|disable|enable`. Every change is
//! audited under `cli:$USER`; the actions shared with `/v1/admin/…` are
//! `gridx_server::admin`'s.

use super::args::UserCommand;
use super::output::print_stdout;
use color_eyre::eyre::{Result, bail};
use gridx_proto::config::GridxConfig;
use gridx_proto::{Credits, UserName};
use gridx_server::admin;
use gridx_server::store::audit::{self, Actor};
use gridx_server::store::{self, users};
use std::process::ExitCode;

pub fn user(
    cmd: UserCommand,
    config: &GridxConfig,
    location: &store::Location,
    json: bool,
) -> Result<ExitCode> {
    let conn = store::open_writer_at(location)?;
    let actor = Actor::cli();
    match cmd {
        UserCommand::Add {
            name,
            credits,
            admin,
            max_priority,
        } => {
            let name = UserName::new(&name)?;
            let credits = match credits {
                Some(text) => text.parse::<Credits>()?,
                None => config.server.new_user_credits,
            };
            if credits.is_negative() {
                bail!("--credits must not be negative");
            }
            let max_priority = max_priority.unwrap_or(0);
            let detail = format!(
                "{credits} credits, max priority {max_priority}{}",
                if admin { ", admin" } else { "" }
            );
            let tx = conn.transaction()?;
            let token = users::create_user_in(&tx, &name, credits, admin, max_priority)?;
            audit::record(&tx, &actor, "user.add", &admin::subject(&name), &detail)?;
            tx.commit()?;
            eprintln!("created user {name} with {detail}");
            if json {
                print_stdout(&serde_json::json!({"user": name, "token": token}).to_string())?;
            } else {
                print_stdout(&token)?;
            }
        }
        UserCommand::Set { name, max_priority } => {
            let name = UserName::new(&name)?;
            let tx = conn.transaction()?;
            users::set_max_priority(&tx, &name, max_priority)?;
            let detail = format!("max priority {max_priority}");
            audit::record(&tx, &actor, "user.set", &admin::subject(&name), &detail)?;
            tx.commit()?;
            eprintln!("{name} may now submit up to priority {max_priority}");
        }
        UserCommand::List => {
            let list = users::list_users(&conn)?;
            if json {
                print_stdout(&serde_json::to_string(&list)?)?;
            } else {
                print_stdout(&format!(
                    "{:<24} {:>14} {:>8} {:>12}  {:<5}  STATE",
                    "USER", "BALANCE", "JOBS", "MAX_PRIORITY", "ADMIN"
                ))?;
                for u in list {
                    print_stdout(&format!(
                        "{:<24} {:>14} {:>8} {:>12}  {:<5}  {}",
                        u.user.to_string(),
                        u.balance.to_string(),
                        u.jobs,
                        u.max_priority,
                        if u.admin { "yes" } else { "" },
                        u.disabled
                            .map(|r| format!("disabled: {r}"))
                            .unwrap_or_default()
                    ))?;
                }
            }
        }
        UserCommand::Token { name, rotate: _ } => {
            let name = UserName::new(&name)?;
            let tx = conn.transaction()?;
            let token = admin::rotate_token(&tx, &actor, &name)?;
            tx.commit()?;
            eprintln!("issued a new token for {name}; the old one no longer works");
            if json {
                print_stdout(&serde_json::json!({"user": name, "token": token}).to_string())?;
            } else {
                print_stdout(&token)?;
            }
        }
        UserCommand::Credit {
            name,
            amount,
            reason,
        } => {
            let name = UserName::new(&name)?;
            let amount = amount
                .parse::<Credits>()
                .map_err(|e| color_eyre::eyre::eyre!("AMOUNT: {e}"))?;
            let tx = conn.transaction()?;
            let posted = admin::credit(&tx, &actor, &name, amount, &reason)?;
            tx.commit()?;
            let balance = posted
                .view_for(&store::ledger::user_account(name.as_str()))
                .map(|v| v.balance_after)
                .unwrap_or_default();
            eprintln!(
                "{} {} credits {} {name} (ledger entry {}); balance now {balance}",
                if amount.is_negative() {
                    "debited"
                } else {
                    "granted"
                },
                posted.amount,
                if amount.is_negative() { "from" } else { "to" },
                posted.id
            );
            if json {
                print_stdout(
                    &serde_json::json!({"user": name, "entry": posted.id, "kind": posted.kind, "amount": amount, "balance": balance})
                        .to_string(),
                )?;
            }
        }
        UserCommand::Disable { name, reason } => {
            let name = UserName::new(&name)?;
            let tx = conn.transaction()?;
            let changed = admin::disable(&tx, &actor, &name, &reason)?;
            tx.commit()?;
            if changed {
                eprintln!(
                    "disabled {name}: their token is refused from its next request; a running coordinator cancels their queued jobs with a refund within a second (a stopped one when it starts), and running jobs finish"
                );
            } else {
                eprintln!("{name} was already disabled; nothing changed");
            }
        }
        UserCommand::Enable { name } => {
            let name = UserName::new(&name)?;
            let tx = conn.transaction()?;
            let changed = admin::enable(&tx, &actor, &name)?;
            tx.commit()?;
            if changed {
                eprintln!("enabled {name}: their token works again");
            } else {
                eprintln!("{name} was not disabled; nothing changed");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
