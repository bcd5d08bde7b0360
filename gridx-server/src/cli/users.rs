//! `gridx-server user add|set|list|token`.

use super::args::UserCommand;
use super::output::print_stdout;
use color_eyre::eyre::{Result, bail};
use gridx_proto::config::GridxConfig;
use gridx_proto::{Credits, UserName};
use gridx_server::store::{self, users};
use std::path::Path;
use std::process::ExitCode;

pub fn user(
    cmd: UserCommand,
    config: &GridxConfig,
    data_dir: &Path,
    json: bool,
) -> Result<ExitCode> {
    let mut conn = store::open_writer(data_dir)?;
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
            let token = users::create_user_with_max_priority(
                &mut conn,
                &name,
                credits,
                admin,
                max_priority,
            )?;
            eprintln!(
                "created user {name} with {credits} credits, max priority {max_priority}{}",
                if admin { " (admin)" } else { "" }
            );
            if json {
                print_stdout(&serde_json::json!({"user": name, "token": token}).to_string())?;
            } else {
                print_stdout(&token)?;
            }
        }
        UserCommand::Set { name, max_priority } => {
            let name = UserName::new(&name)?;
            users::set_max_priority(&conn, &name, max_priority)?;
            eprintln!("{name} may now submit up to priority {max_priority}");
        }
        UserCommand::List => {
            let list = users::list_users(&conn)?;
            if json {
                print_stdout(&serde_json::to_string(&list)?)?;
            } else {
                print_stdout(&format!(
                    "{:<24} {:>14} {:>8} {:>12}  ADMIN",
                    "USER", "BALANCE", "JOBS", "MAX_PRIORITY"
                ))?;
                for u in list {
                    print_stdout(&format!(
                        "{:<24} {:>14} {:>8} {:>12}  {}",
                        u.user.to_string(),
                        u.balance.to_string(),
                        u.jobs,
                        u.max_priority,
                        if u.admin { "yes" } else { "" }
                    ))?;
                }
            }
        }
        UserCommand::Token { name } => {
            let name = UserName::new(&name)?;
            let token = users::rotate_user_token(&conn, &name)?;
            eprintln!("issued a new token for {name}; the old one no longer works");
            if json {
                print_stdout(&serde_json::json!({"user": name, "token": token}).to_string())?;
            } else {
                print_stdout(&token)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
