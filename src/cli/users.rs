//! `herald users …`: create, list and delete users, change their role or password.

use std::io::Read;

use clap::Subcommand;

use super::username;
use crate::auth::{Accounts, Role};
use crate::secret::Secret;
use crate::timefmt::rfc3339_ms;

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Create a user. The password is read from standard input with --password-stdin, otherwise a
    /// random one is generated and printed once.
    Add {
        username: String,
        /// admin (everything), monitor (read-only monitoring endpoints), mail (may submit mail) or
        /// events (may post events: Alertmanager, scripts).
        #[arg(long, default_value = "monitor")]
        role: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Delete a user and their tokens (the last admin cannot be deleted).
    Delete { username: String },
    /// Change a user's role (the last admin cannot be demoted).
    SetRole {
        username: String,
        /// admin, monitor, mail or events.
        role: String,
    },
    /// Set a user's password (from standard input with --password-stdin, else generated and printed).
    SetPassword {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
}
/// The password from standard input (first line), or a generated one that is printed.
fn password(from_stdin: bool) -> anyhow::Result<(Secret, bool)> {
    if from_stdin {
        let mut input = String::new();
        std::io::stdin().take(64 * 1024).read_to_string(&mut input)?;
        let line = input.lines().next().unwrap_or("").to_owned();
        Ok((Secret::new(line), false))
    } else {
        Ok((crate::auth::password::generate(), true))
    }
}
pub async fn run(cmd: UsersCommand, accounts: &Accounts) -> anyhow::Result<()> {
    match cmd {
        UsersCommand::Add {
            username: name,
            role,
            password_stdin,
        } => {
            let role: Role = role.parse()?;
            let name = username(&name)?;
            let (password, generated) = password(password_stdin)?;
            accounts.create_user(&name, &password, role).await?;
            println!("created user `{name}` with role {role}");
            if generated {
                println!("password: {}", password.expose());
            }
        }
        UsersCommand::List => {
            let users = accounts.list_users().await?;
            println!("{:<32} {:<8} {:<20}", "USERNAME", "ROLE", "CREATED");
            for user in users {
                println!(
                    "{:<32} {:<8} {:<20}",
                    user.username,
                    user.role,
                    rfc3339_ms(user.created_at)
                );
            }
        }
        UsersCommand::Delete { username } => {
            accounts.delete_user(&username).await?;
            println!("deleted user `{username}`");
        }
        UsersCommand::SetRole { username, role } => {
            let role: Role = role.parse()?;
            accounts.set_role(&username, role).await?;
            println!("`{username}` is now {role}");
        }
        UsersCommand::SetPassword {
            username,
            password_stdin,
        } => {
            let (password, generated) = password(password_stdin)?;
            accounts.set_password(&username, &password).await?;
            println!("password of `{username}` changed");
            if generated {
                println!("password: {}", password.expose());
            }
        }
    }
    Ok(())
}
