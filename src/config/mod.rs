//! The settings, in sections: defaults < `herald.toml` < `HERALD_*` environment < command-line flags.
//!
//! Each key is declared once, in the file of its section under `sections/` (see [`declare`] for what a
//! declaration holds), and parsed once, here, into its final type. A bad value stops start-up with one
//! line that names the key, where the value came from, the value (unless secret) and what is allowed.
//! Each service takes its own section ([`Settings::mail`] for the mail queue, …), never the whole.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::alerts::AlertSettings;
use crate::auth::AuthSettings;
use crate::client_addr::{TrustedNetworks, TrustedProxies};
use crate::cluster::ClusterSettings;
use crate::integrations::CheckSettings;
use crate::mail::MailSettings;
use crate::secret::Secret;
use crate::telemetry::LoggingSettings;

mod declare;
mod sections;
mod sources;
mod values;

pub use declare::{Flag, Meta, Section};
pub use sources::FlagValues;
use sources::Layers;

/// Where a configuration value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf),
    Env(String),
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A configuration that cannot be used. `Display` is the one line printed before exiting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {key} = {value} (from {origin}): expected {expected}")]
    Invalid {
        key: String,
        value: String,
        origin: Origin,
        expected: String,
    },
    #[error("invalid configuration: cannot read config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("invalid configuration: unknown key `{key}` in config file {path}; known keys: {known}")]
    UnknownKey { key: String, path: PathBuf, known: String },
}

/// Everything Herald needs to run, fully validated, section by section.
#[derive(Debug, Clone)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub logging: LoggingSettings,
    pub auth: AuthSettings,
    pub console: ConsoleSettings,
    pub mail: MailSettings,
    pub smtp: SmtpSettings,
    pub checks: CheckSettings,
    pub tickets: crate::ticket_delivery::TicketDeliverySettings,
    pub cluster: ClusterSettings,
    pub alerts: AlertSettings,
}

/// The HTTP server's address and the limits it puts on clients.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// Longer requests are answered 503.
    pub request_timeout: Duration,
    /// Larger request bodies are answered 413 (mail submissions have their own limit).
    pub body_limit: usize,
    /// Time a client has to send a request's headers, from the connection's opening or the end of
    /// the previous response on a kept-alive connection; slower connections are closed.
    pub header_timeout: Duration,
    /// Open HTTP connections at most; further clients wait in the listen backlog.
    pub max_connections: u32,
    /// Time given to requests in flight after SIGTERM or SIGINT.
    pub shutdown_timeout: Duration,
    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` headers name the client's address.
    pub trusted_proxies: TrustedProxies,
}

/// The SMTP submission server (`crate::submission`): its listeners, TLS, who may submit without
/// AUTH, and the limits it puts on clients. The largest message is the mail section's `max_size`.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// Plain SMTP with STARTTLS (when a certificate is set); `None`: off.
    pub listen: Option<SocketAddr>,
    /// Implicit TLS (SMTPS); `None`: off.
    pub smtps_listen: Option<SocketAddr>,
    /// PEM certificate chain and private key for STARTTLS and SMTPS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Clients from these blocks may submit without AUTH.
    pub trusted_networks: TrustedNetworks,
    /// Sessions served at once; further clients are answered 421 and closed.
    pub max_connections: u32,
    /// Sessions one address (outside the trusted networks) may have open at once.
    pub max_connections_per_client: u32,
    /// Bytes all sessions' messages may hold in memory together (raised to one largest message).
    pub data_memory: usize,
    /// Recipients per message; further RCPTs are answered 452.
    pub max_recipients: usize,
    /// Time a client has to send each command.
    pub command_timeout: Duration,
    /// Time a client has to send each part of a message during DATA.
    pub data_timeout: Duration,
    /// Failed commands in a session before it is closed.
    pub max_errors: u32,
    /// How long the server waits before its greeting; a client that speaks first is refused.
    pub greet_wait: Duration,
}

/// What start-up opens: the data dir, the database, and the key that seals stored secrets.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; the SQLite file in the data dir when not configured.
    pub url: String,
    pub max_connections: u32,
    /// Budget for connecting to the database and for taking a connection from the pool.
    pub timeout: Duration,
    /// Base64 of the 32-byte key that encrypts stored credentials; `<data_dir>/secret.key` when unset.
    pub secret_key: Option<Secret>,
}

impl DatabaseSettings {
    /// Whether the configured database is PostgreSQL.
    pub fn uses_postgres(&self) -> bool {
        let lower = self.url.to_ascii_lowercase();
        lower.starts_with("postgres://") || lower.starts_with("postgresql://")
    }
}

/// The console's public address and how long its sessions last.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    /// The address users reach Herald at (`https://herald.example.com`): links in alert mail, and
    /// `Secure` console cookies when it is https.
    pub public_url: Option<String>,
    /// A console session ends after this long without a request.
    pub session_idle_timeout: Duration,
    /// A console session ends this long after sign-in, however active.
    pub session_lifetime: Duration,
}

impl Settings {
    /// Loads settings from the optional config file, the process environment and the given flags.
    pub fn load(config_file: Option<&Path>, flags: &FlagValues) -> Result<Settings, ConfigError> {
        Self::load_from(config_file, |var| std::env::var(var).ok(), flags)
    }

    /// Like [`Settings::load`], with the environment given as a lookup function (for tests).
    pub fn load_from(
        config_file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
        flags: &FlagValues,
    ) -> Result<Settings, ConfigError> {
        let layers = Layers::gather(config_file, env, flags)?;
        Ok(Settings {
            http: sections::http::read(&layers)?,
            database: sections::database::read(&layers)?,
            logging: sections::logging::read(&layers)?,
            auth: sections::auth::read(&layers)?,
            console: sections::console::read(&layers)?,
            mail: sections::mail::read(&layers)?,
            smtp: sections::smtp::read(&layers)?,
            checks: sections::checks::read(&layers)?,
            tickets: sections::tickets::read(&layers)?,
            cluster: sections::cluster::read(&layers)?,
            alerts: sections::alerts::read(&layers)?,
        })
    }

    /// Settings for tests and embedding: every default, a data dir, and the given database URL.
    pub fn for_data_dir(data_dir: &Path, database_url: Option<String>) -> Settings {
        let mut flags = FlagValues::new();
        flags.insert("data_dir", data_dir.display().to_string());
        if let Some(url) = database_url {
            flags.insert("database_url", url);
        }
        match Self::load_from(None, |_| None, &flags) {
            Ok(settings) => settings,
            // The defaults are pinned by the unit tests; a failure here is a bug in the declarations.
            Err(e) => panic!("default settings are invalid: {e}"),
        }
    }
}

/// Every declared setting, section by section in the documentation's order: what the command line
/// turns into flags and help.
pub fn declared() -> impl Iterator<Item = &'static Meta> {
    sections::all()
}

#[cfg(test)]
mod tests;
