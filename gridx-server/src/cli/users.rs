//! `gridx-server user add|list|token`.

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
        } => {
            let name = UserName::new(&name)?;
            let credits = match credits {
                Some(text) => text.parse::<Credits>()?,
                None => config.server.new_user_credits,
            };
            if credits.is_negative() {
                bail!("--credits must not be negative");
            }
            let token = users::create_user(&mut conn, &name, credits, admin)?;
            eprintln!(
                "created user {name} with {credits} credits{}",
                if admin { " (admin)" } else { "" }
            );
            if json {
                print_stdout(&serde_json::json!({"user": name, "token": token}).to_string())?;
            } else {
                print_stdout(&token)?;
            }
        }
        UserCommand::List => {
            let list = users::list_users(&conn)?;
            if json {
                print_stdout(&serde_json::to_string(&list)?)?;
            } else {
                print_stdout(&format!(
                    "{:<24} {:>14} {:>8}  ADMIN",
                    "USER", "BALANCE", "JOBS"
                ))?;
                for u in list {
                    print_stdout(&format!(
                        "{:<24} {:>14} {:>8}  {}",
                        u.user.to_string(),
                        u.balance.to_string(),
                        u.jobs,
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
