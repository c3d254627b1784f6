//! The `herald` command line: the commands and their flags, and running one.
//!
//! `serve` and `migrate` are here; each group of commands that works on the database directly has its
//! own file (users, tokens, mail, cluster, integrations). Every command opens its services as the
//! server does, through `Services::open`, so it passes the same start-up checks (and stops with the
//! same errors); it then only parses its arguments, calls a service and prints plain text for people
//! and scripts alike.

mod cluster;
mod integrations;
mod mail;
mod tokens;
mod users;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::app::{self, Application};
use crate::auth::Username;
use crate::config::{ConfigError, FlagValues, Settings};
use crate::services::{NewKey, Services};

/// Herald: Jira integration health checks and a durable outgoing mail queue.
///
/// Configuration comes from defaults, then the file given by --config, then HERALD_* environment
/// variables, then flags; later sources win. Durations are written like 500ms, 30s, 5m, 1h.
#[derive(Parser)]
#[command(name = "herald", version, about, long_about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    common: CommonFlags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct CommonFlags {
    /// A herald.toml file; its keys are the settings' names (listen, data_dir, database_url, …).
    #[arg(long, global = true, value_name = "FILE", env = "HERALD_CONFIG")]
    config: Option<PathBuf>,
    /// Where Herald keeps its SQLite database, key file and generated admin password
    /// [env: HERALD_DATA_DIR] [default: ./herald-data].
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<String>,
    /// Database URL: sqlite://PATH, or postgres://USER:PASSWORD@HOST:PORT/DB for PostgreSQL
    /// [env: HERALD_DATABASE_URL] [default: SQLite file herald.db in the data dir].
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    /// Log filter, e.g. info or herald=debug,info [env: HERALD_LOG] [default: info].
    #[arg(long, global = true, value_name = "FILTER")]
    log: Option<String>,
    /// Log line format: text or json [env: HERALD_LOG_FORMAT] [default: text].
    #[arg(long, global = true, value_name = "FORMAT")]
    log_format: Option<String>,
    /// This node's id [env: HERALD_NODE_ID] [default: generated once, kept in DATA_DIR/node-id].
    #[arg(long, global = true, value_name = "ID")]
    node_id: Option<String>,
    /// Sender of mail submitted without `from` [env: HERALD_MAIL_FROM] [default: herald@localhost].
    #[arg(long, global = true, value_name = "ADDRESS")]
    mail_from: Option<String>,
}
// Parsed once at start-up; the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the server (creates user `admin` on first start; see HERALD_ADMIN_PASSWORD).
    Serve(ServeFlags),
    /// Apply database migrations and exit (serve does this too).
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    /// Send mail and manage the mail queue (works on the database directly; the node's delivery
    /// workers pick new mail up within seconds).
    #[command(subcommand)]
    Mail(mail::MailCommand),
    /// Cluster mode (PostgreSQL, HERALD_CLUSTER=true): the nodes, and draining one.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Manage and check Jira integrations.
    #[command(subcommand)]
    Integrations(integrations::IntegrationsCommand),
}

#[derive(Args)]
struct ServeFlags {
    /// Address to listen on [env: HERALD_LISTEN] [default: 127.0.0.1:8080].
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Maximum connections to the database [env: HERALD_DATABASE_MAX_CONNECTIONS] [default: 10].
    #[arg(long, value_name = "N")]
    database_max_connections: Option<String>,
    /// Time allowed to connect to the database or take a pooled connection
    /// [env: HERALD_DATABASE_TIMEOUT] [default: 5s].
    #[arg(long, value_name = "DURATION")]
    database_timeout: Option<String>,
    /// Longest time a request may take before it is answered 503 [env: HERALD_REQUEST_TIMEOUT] [default: 30s].
    #[arg(long, value_name = "DURATION")]
    request_timeout: Option<String>,
    /// Largest request body accepted, e.g. 1MiB or 65536 [env: HERALD_BODY_LIMIT] [default: 1MiB].
    #[arg(long, value_name = "SIZE")]
    body_limit: Option<String>,
    /// Time a client has to send a request's headers, also the idle limit of a kept-alive connection
    /// [env: HERALD_HTTP_HEADER_TIMEOUT] [default: 10s].
    #[arg(long, value_name = "DURATION")]
    http_header_timeout: Option<String>,
    /// Open HTTP connections at most [env: HERALD_HTTP_MAX_CONNECTIONS] [default: 1024].
    #[arg(long, value_name = "N")]
    http_max_connections: Option<String>,
    /// Time given to requests in flight after SIGTERM or SIGINT [env: HERALD_SHUTDOWN_TIMEOUT] [default: 30s].
    #[arg(long, value_name = "DURATION")]
    shutdown_timeout: Option<String>,
    /// How long a verified credential is trusted before it is checked again; 0s disables
    /// [env: HERALD_AUTH_CACHE_TTL] [default: 30s].
    #[arg(long, value_name = "DURATION")]
    auth_cache_ttl: Option<String>,
    /// Failed sign-ins per client and user name before answering 429 [env: HERALD_AUTH_MAX_FAILURES] [default: 10].
    #[arg(long, value_name = "N")]
    auth_max_failures: Option<String>,
    /// Window in which failures are counted, and how long a throttled client waits
    /// [env: HERALD_AUTH_LOCKOUT] [default: 60s].
    #[arg(long, value_name = "DURATION")]
    auth_lockout: Option<String>,
    /// Reverse proxies (IP addresses or CIDR blocks, comma-separated) whose X-Forwarded-For or Forwarded
    /// header names the client [env: HERALD_TRUSTED_PROXIES] [default: none].
    #[arg(long, value_name = "LIST")]
    trusted_proxies: Option<String>,
    /// The SMTP relay: smtp://[user:password@]host[:port][?tls=starttls] or smtps://…
    /// [env: HERALD_SMTP_URL] [default: smtp://127.0.0.1:25].
    #[arg(long, value_name = "URL")]
    smtp_url: Option<String>,
    /// SMTP connections (delivery workers) of this node [env: HERALD_SMTP_CONNECTIONS] [default: 4].
    #[arg(long, value_name = "N")]
    smtp_connections: Option<String>,
    /// Limit for each SMTP exchange [env: HERALD_SMTP_TIMEOUT] [default: 30s].
    #[arg(long, value_name = "DURATION")]
    smtp_timeout: Option<String>,
    /// PEM file of extra CA certificates to trust for the relay [env: HERALD_SMTP_CA_FILE].
    #[arg(long, value_name = "FILE")]
    smtp_ca_file: Option<String>,
    /// Whether this node delivers mail, or only accepts it [env: HERALD_MAIL_DELIVERY] [default: true].
    #[arg(long, value_name = "BOOL")]
    mail_delivery: Option<String>,
    /// Largest mail submission accepted [env: HERALD_MAIL_MAX_SIZE] [default: 2MiB].
    #[arg(long, value_name = "SIZE")]
    mail_max_size: Option<String>,
    /// First retry delay after a transient failure; doubles each time
    /// [env: HERALD_MAIL_BACKOFF_INITIAL] [default: 30s].
    #[arg(long, value_name = "DURATION")]
    mail_backoff_initial: Option<String>,
    /// Longest retry delay [env: HERALD_MAIL_BACKOFF_MAX] [default: 1h].
    #[arg(long, value_name = "DURATION")]
    mail_backoff_max: Option<String>,
    /// Attempts before a message goes to the error queue [env: HERALD_MAIL_MAX_ATTEMPTS] [default: 10].
    #[arg(long, value_name = "N")]
    mail_max_attempts: Option<String>,
    /// Age after which a failing message goes to the error queue [env: HERALD_MAIL_MAX_AGE] [default: 3d].
    #[arg(long, value_name = "DURATION")]
    mail_max_age: Option<String>,
    /// How long an integration's check result is served from cache [env: HERALD_CHECK_MAX_AGE] [default: 30s].
    #[arg(long, value_name = "DURATION")]
    check_max_age: Option<String>,
    /// How often every integration is re-verified [env: HERALD_CHECK_INTERVAL] [default: 5m].
    #[arg(long, value_name = "DURATION")]
    check_interval: Option<String>,
    /// Integrations checked at once by the sweep [env: HERALD_CHECK_CONCURRENCY] [default: 32].
    #[arg(long, value_name = "N")]
    check_concurrency: Option<String>,
    /// Default budget of one check [env: HERALD_CHECK_TIMEOUT] [default: 10s].
    #[arg(long, value_name = "DURATION")]
    check_timeout: Option<String>,
}
impl Cli {
    /// The settings: defaults, then the --config file, then HERALD_* variables, then this command
    /// line's flags (the server's own flags only for `serve`).
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let serve_flags = match &self.command {
            Command::Serve(flags) => Some(flags),
            _ => None,
        };
        Settings::load(self.common.config.as_deref(), &flag_values(&self.common, serve_flags))
    }

    /// Runs the command to its end (`serve` until SIGTERM or SIGINT).
    pub async fn run(self, settings: Settings) -> anyhow::Result<()> {
        match self.command {
            Command::Serve(_) => {
                let stop = app::shutdown_signal();
                let app = Application::build(settings).await?;
                app.run_until_stopped(stop).await?;
                Ok(())
            }
            Command::Migrate => {
                Services::open(&settings, NewKey::Unused).await?.close().await;
                println!("database is up to date");
                Ok(())
            }
            Command::Users(cmd) => {
                let services = Services::open(&settings, NewKey::Unused).await?;
                let done = users::run(cmd, &services.accounts).await;
                services.close().await;
                done
            }
            Command::Tokens(cmd) => {
                let services = Services::open(&settings, NewKey::Unused).await?;
                let done = tokens::run(cmd, &services.accounts).await;
                services.close().await;
                done
            }
            Command::Mail(cmd) => {
                let services = Services::open(&settings, NewKey::Unused).await?;
                let done = mail::run(cmd, &services).await;
                services.close().await;
                done
            }
            Command::Cluster(cmd) => {
                let services = Services::open(&settings, NewKey::Unused).await?;
                let done = cluster::run(cmd, &services).await;
                services.close().await;
                done
            }
            Command::Integrations(cmd) => {
                let services = Services::open(&settings, integrations::new_key(&cmd)).await?;
                let done = integrations::run(cmd, &services).await;
                services.close().await;
                if done? {
                    Ok(())
                } else {
                    anyhow::bail!("at least one integration is faulty")
                }
            }
        }
    }
}

fn flag_values(common: &CommonFlags, serve: Option<&ServeFlags>) -> FlagValues {
    let mut flags = FlagValues::new();
    let mut put = |key: &'static str, value: &Option<String>| {
        if let Some(v) = value {
            flags.insert(key, v.clone());
        }
    };
    put("data_dir", &common.data_dir);
    put("database_url", &common.database_url);
    put("log", &common.log);
    put("log_format", &common.log_format);
    put("node_id", &common.node_id);
    put("mail_from", &common.mail_from);
    if let Some(s) = serve {
        put("listen", &s.listen);
        put("database_max_connections", &s.database_max_connections);
        put("database_timeout", &s.database_timeout);
        put("request_timeout", &s.request_timeout);
        put("body_limit", &s.body_limit);
        put("http_header_timeout", &s.http_header_timeout);
        put("http_max_connections", &s.http_max_connections);
        put("shutdown_timeout", &s.shutdown_timeout);
        put("auth_cache_ttl", &s.auth_cache_ttl);
        put("auth_max_failures", &s.auth_max_failures);
        put("auth_lockout", &s.auth_lockout);
        put("trusted_proxies", &s.trusted_proxies);
        put("smtp_url", &s.smtp_url);
        put("smtp_connections", &s.smtp_connections);
        put("smtp_timeout", &s.smtp_timeout);
        put("smtp_ca_file", &s.smtp_ca_file);
        put("mail_delivery", &s.mail_delivery);
        put("mail_max_size", &s.mail_max_size);
        put("mail_backoff_initial", &s.mail_backoff_initial);
        put("mail_backoff_max", &s.mail_backoff_max);
        put("mail_max_attempts", &s.mail_max_attempts);
        put("mail_max_age", &s.mail_max_age);
        put("check_max_age", &s.check_max_age);
        put("check_interval", &s.check_interval);
        put("check_concurrency", &s.check_concurrency);
        put("check_timeout", &s.check_timeout);
    }
    flags
}

/// A user name from the command line, or why it is not one.
fn username(name: &str) -> anyhow::Result<Username> {
    Username::try_from(name).map_err(|e| anyhow::anyhow!("invalid user name `{name}`: {e}"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn the_command_line_definition_is_consistent() {
        // Catches, at test time, what clap would otherwise report only when a command is run:
        // duplicate flags, conflicts naming unknown arguments, bad defaults.
        Cli::command().debug_assert();
    }
}
