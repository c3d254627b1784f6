//! `herald tokens …`: create, list and revoke API tokens; a new token's secret is printed once.

use clap::Subcommand;

use super::username;
use crate::auth::Accounts;
use crate::timefmt::rfc3339_ms;

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Create an API token for a user; it is printed once and cannot be shown again.
    Create {
        /// The user the token acts as (it gets that user's role).
        #[arg(long)]
        user: String,
        /// What the token is for, e.g. grafana.
        #[arg(long)]
        name: String,
        /// Lifetime such as 90d or 12h; no expiry when omitted.
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a token by id.
    Revoke { id: String },
}
pub async fn run(cmd: TokensCommand, accounts: &Accounts) -> anyhow::Result<()> {
    match cmd {
        TokensCommand::Create { user, name, expires_in } => {
            let lifetime = expires_in
                .map(|s| humantime::parse_duration(&s).map_err(|e| anyhow::anyhow!("invalid --expires-in `{s}`: {e}")))
                .transpose()?;
            let created = accounts.create_token(&username(&user)?, &name, lifetime).await?;
            println!(
                "created token {} for `{user}` (shown once, store it now):",
                created.token.token.id
            );
            println!("{}", created.secret.expose());
        }
        TokensCommand::List { user } => {
            let tokens = accounts.list_tokens(user.as_deref()).await?;
            println!(
                "{:<16} {:<24} {:<24} {:<20} {:<20} {:<20}",
                "ID", "NAME", "USER", "CREATED", "EXPIRES", "LAST USED"
            );
            for t in tokens {
                let opt = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), rfc3339_ms);
                println!(
                    "{:<16} {:<24} {:<24} {:<20} {:<20} {:<20}",
                    t.token.id,
                    t.token.name,
                    t.username,
                    rfc3339_ms(t.token.created_at),
                    opt(t.token.expires_at),
                    opt(t.token.last_used_at)
                );
            }
        }
        TokensCommand::Revoke { id } => {
            accounts.revoke_token(&id).await?;
            println!("revoked token {id}");
        }
    }
    Ok(())
}
