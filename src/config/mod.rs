//! One `Settings` struct, layered: defaults < `herald.toml` < `HERALD_*` environment < command-line flags.
//!
//! Every key is parsed once, here, into its final type. A bad value stops start-up with one line that
//! names the key, where the value came from, the value (unless secret) and what is allowed.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::secret::Secret;

mod keys;
mod sources;
mod values;

use keys::KEYS;
pub use keys::documented_keys;
pub use sources::FlagValues;
use sources::{Layers, read_config_file};
use values::{DURATION, parse_addresses, parse_bool, parse_duration, parse_size};

/// Where a configuration value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf),
    Env(&'static str),
    Flag(&'static str),
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
        key: &'static str,
        value: String,
        origin: Origin,
        expected: String,
    },
    #[error("invalid configuration: cannot read config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("invalid configuration: unknown key `{key}` in config file {path}; known keys: {known}")]
    UnknownKey { key: String, path: PathBuf, known: String },
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Everything Herald needs to run, fully validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; the SQLite file in the data dir when not configured.
    pub database_url: String,
    pub database_max_connections: u32,
    /// Budget for connecting to the database and for taking a connection from the pool.
    pub database_timeout: Duration,
    /// Password of the bootstrap `admin` user, used only when the database has no user yet.
    pub admin_password: Option<Secret>,
    pub log: String,
    pub log_format: LogFormat,
    pub request_timeout: Duration,
    pub body_limit: usize,
    /// Time a client has to send a request's headers, from the connection's opening or the end of
    /// the previous response on a kept-alive connection; slower connections are closed.
    pub http_header_timeout: Duration,
    /// Open HTTP connections at most; further clients wait in the listen backlog.
    pub http_max_connections: u32,
    pub shutdown_timeout: Duration,
    /// How long a verified credential is trusted without checking the database again.
    pub auth_cache_ttl: Duration,
    /// Failed authentications from one client before it is throttled.
    pub auth_max_failures: u32,
    /// The window over which failures are counted, and how long a throttled client waits.
    pub auth_lockout: Duration,
    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` headers name the client's address.
    pub trusted_proxies: crate::client_addr::TrustedProxies,
    /// This node's id; when not configured, one is generated once and kept in the data dir.
    pub node_id: Option<String>,
    /// Sender of mail submitted without `from`.
    pub mail_from: String,
    /// Largest mail submission accepted (the JSON body), in bytes.
    pub mail_max_size: usize,
    /// Whether this node delivers its queue (off: it only accepts and stores mail).
    pub mail_delivery: bool,
    pub mail_backoff_initial: Duration,
    pub mail_backoff_max: Duration,
    /// Delivery attempts before a message is moved to the error queue.
    pub mail_max_attempts: u32,
    /// Age after which a message that still fails is moved to the error queue.
    pub mail_max_age: Duration,
    /// The SMTP relay: `smtp://[user:password@]host[:port][?tls=starttls]` or `smtps://…`.
    pub smtp_url: Secret,
    /// SMTP connections (and delivery workers) per node.
    pub smtp_connections: u32,
    /// Limit for each SMTP exchange (connect, each command, the message).
    pub smtp_timeout: Duration,
    /// A PEM file with extra CA certificates to trust for the relay's TLS certificate.
    pub smtp_ca_file: Option<PathBuf>,
    /// Cluster mode (needs PostgreSQL): heartbeats, clusterStatus, adoption of dead nodes' mail.
    pub cluster: bool,
    pub cluster_poll_interval: Duration,
    pub cluster_heartbeat_timeout: Duration,
    pub cluster_adopt_after: Duration,
    /// How long an offline node stays in the cluster view.
    pub cluster_retention: Duration,
    /// How long a check result is served from the cache before Jira is asked again.
    pub check_max_age: Duration,
    /// How often the background sweep re-verifies every integration.
    pub check_interval: Duration,
    /// How many integrations the sweep checks at once.
    pub check_concurrency: usize,
    /// The default overall budget of one check (an integration's own `timeout` overrides it).
    pub check_timeout: Duration,
    /// Base64 of the 32-byte key that encrypts stored credentials; `<data_dir>/secret.key` when unset.
    pub secret_key: Option<Secret>,
    /// The address users reach Herald at (`https://herald.example.com`): links in alert mail, and
    /// `Secure` console cookies when it is https.
    pub public_url: Option<String>,
    /// A console session ends after this long without a request.
    pub session_idle_timeout: Duration,
    /// A console session ends this long after sign-in, however active.
    pub session_lifetime: Duration,
    /// Who receives health alerts; alerts are off when empty.
    pub alert_emails: Vec<String>,
    /// How often the alert rules are evaluated.
    pub alert_interval: Duration,
    /// How long a condition (or its clearing) must last before a mail is sent.
    pub alert_debounce: Duration,
    /// The error queue (whole cluster) alerts when it holds more messages than this.
    pub alert_error_queue: i64,
    /// The queue alerts when its oldest message has waited longer than this.
    pub alert_queue_age: Duration,
    /// A node that stopped cleanly alerts only once it has stayed stopped this long (a node that
    /// falls silent alerts at once).
    pub alert_stopped_node: Duration,
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
        let mut values = BTreeMap::new();
        for key in KEYS {
            if let Some(default) = key.default {
                values.insert(key.name, (default.to_owned(), Origin::Default));
            }
        }
        if let Some(path) = config_file {
            for (name, value) in read_config_file(path)? {
                values.insert(name, (value, Origin::File(path.to_owned())));
            }
        }
        for key in KEYS {
            if let Some(value) = env(key.env) {
                values.insert(key.name, (value, Origin::Env(key.env)));
            }
        }
        for key in KEYS {
            if let Some(value) = flags.get(key.name) {
                values.insert(key.name, (value.clone(), Origin::Flag(key.flag)));
            }
        }
        Self::from_layers(&Layers { values })
    }

    fn from_layers(layers: &Layers) -> Result<Settings, ConfigError> {
        let data_dir: PathBuf = layers.required("data_dir", "a directory path", |s| {
            (!s.is_empty()).then(|| PathBuf::from(s))
        })?;
        let database_url = layers
            .parse(
                "database_url",
                "a URL starting with sqlite:// or postgres:// (or postgresql://)",
                |s| {
                    let lower = s.to_ascii_lowercase();
                    let known = ["sqlite:", "postgres://", "postgresql://"];
                    known.iter().any(|p| lower.starts_with(p)).then(|| s.to_owned())
                },
            )?
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("herald.db").display()));
        let positive = |s: &str| s.parse::<u32>().ok().filter(|n| *n > 0);
        Ok(Settings {
            listen: layers.required("listen", "a socket address host:port such as 127.0.0.1:8080", |s| {
                s.parse().ok()
            })?,
            data_dir,
            database_url,
            database_max_connections: layers.required(
                "database_max_connections",
                "a whole number from 1 to 1000",
                |s| positive(s).filter(|n| *n <= 1000),
            )?,
            database_timeout: layers.required("database_timeout", DURATION, parse_duration)?,
            admin_password: layers.parse(
                "admin_password",
                "a password of at least 8 characters without control characters (tab, newline, U+0000-U+001F, \
                 U+007F-U+009F), at most 1024 bytes, not starting with `hrld_`",
                |s| {
                    let password = Secret::new(s);
                    crate::auth::password::check_policy(&password).ok().map(|()| password)
                },
            )?,
            log: layers.required("log", "a log filter such as `info` or `herald=debug,info`", |s| {
                tracing_subscriber::EnvFilter::try_new(s).ok().map(|_| s.to_owned())
            })?,
            log_format: layers.required("log_format", "`text` or `json`", |s| match s {
                "text" => Some(LogFormat::Text),
                "json" => Some(LogFormat::Json),
                _ => None,
            })?,
            request_timeout: layers.required("request_timeout", DURATION, parse_duration)?,
            body_limit: layers.required(
                "body_limit",
                "a size from 1KiB to 1GiB such as `1MiB`, `512KiB` or `65536`",
                |s| parse_size(s).filter(|n| (1024..=1 << 30).contains(n)),
            )?,
            http_header_timeout: layers.required(
                "http_header_timeout",
                "a duration from 1s to 10m such as `10s`",
                |s| {
                    humantime::parse_duration(s)
                        .ok()
                        .filter(|d| (Duration::from_secs(1)..=Duration::from_secs(600)).contains(d))
                },
            )?,
            http_max_connections: layers.required("http_max_connections", "a whole number from 1 to 1000000", |s| {
                positive(s).filter(|n| *n <= 1_000_000)
            })?,
            shutdown_timeout: layers.required("shutdown_timeout", DURATION, parse_duration)?,
            auth_cache_ttl: layers.required(
                "auth_cache_ttl",
                "a duration such as `30s` (`0s` disables the cache)",
                |s| humantime::parse_duration(s).ok(),
            )?,
            auth_max_failures: layers.required("auth_max_failures", "a whole number from 1 to 1000000", |s| {
                positive(s).filter(|n| *n <= 1_000_000)
            })?,
            auth_lockout: layers.required("auth_lockout", DURATION, parse_duration)?,
            trusted_proxies: layers.required(
                "trusted_proxies",
                "a comma-separated list of IP addresses and CIDR blocks such as `10.0.0.0/8, 192.0.2.7` (or empty)",
                crate::client_addr::TrustedProxies::parse,
            )?,
            node_id: layers.parse("node_id", "1 to 64 characters from A-Z a-z 0-9 . _ -", |s| {
                crate::cluster::NodeId::try_from(s).ok().map(|id| id.to_string())
            })?,
            mail_from: layers.required("mail_from", "an email address such as herald@example.com", |s| {
                s.parse::<lettre::message::Mailbox>().ok().map(|_| s.to_owned())
            })?,
            mail_max_size: layers.required("mail_max_size", "a size from 1KiB to 64MiB such as `2MiB`", |s| {
                parse_size(s).filter(|n| (1024..=64 << 20).contains(n))
            })?,
            mail_delivery: layers.required("mail_delivery", "`true` or `false`", parse_bool)?,
            mail_backoff_initial: layers.required("mail_backoff_initial", DURATION, parse_duration)?,
            mail_backoff_max: layers.required("mail_backoff_max", DURATION, parse_duration)?,
            mail_max_attempts: layers.required("mail_max_attempts", "a whole number from 1 to 1000", |s| {
                positive(s).filter(|n| *n <= 1000)
            })?,
            mail_max_age: layers.required("mail_max_age", DURATION, parse_duration)?,
            smtp_url: layers.required(
                "smtp_url",
                "smtp://[user:password@]host[:port][?tls=starttls] or smtps://[user:password@]host[:port]",
                |s| crate::mail::SmtpTarget::parse(s).ok().map(|_| Secret::new(s)),
            )?,
            smtp_connections: layers.required("smtp_connections", "a whole number from 1 to 256", |s| {
                positive(s).filter(|n| *n <= 256)
            })?,
            smtp_timeout: layers.required("smtp_timeout", DURATION, parse_duration)?,
            smtp_ca_file: layers.parse("smtp_ca_file", "a path to a PEM file", |s| {
                (!s.is_empty()).then(|| PathBuf::from(s))
            })?,
            cluster: layers.required("cluster", "`true` or `false`", parse_bool)?,
            cluster_poll_interval: layers.required("cluster_poll_interval", DURATION, parse_duration)?,
            cluster_heartbeat_timeout: layers.required("cluster_heartbeat_timeout", DURATION, parse_duration)?,
            cluster_adopt_after: layers.required("cluster_adopt_after", DURATION, parse_duration)?,
            cluster_retention: layers.required("cluster_retention", DURATION, parse_duration)?,
            check_max_age: layers.required(
                "check_max_age",
                "a duration such as `30s` (`0s` checks Jira on every request)",
                |s| humantime::parse_duration(s).ok(),
            )?,
            check_interval: layers.required("check_interval", DURATION, parse_duration)?,
            check_concurrency: layers.required("check_concurrency", "a whole number from 1 to 1024", |s| {
                positive(s).filter(|n| *n <= 1024).map(|n| n as usize)
            })?,
            check_timeout: layers.required("check_timeout", "a duration from 100ms to 5m such as `10s`", |s| {
                parse_duration(s).filter(|d| (Duration::from_millis(100)..=Duration::from_secs(300)).contains(d))
            })?,
            secret_key: layers.parse("secret_key", "the base64 encoding of 32 random bytes", |s| {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .ok()
                    .filter(|b| b.len() == 32)
                    .map(|_| Secret::new(s))
            })?,
            public_url: layers.parse(
                "public_url",
                "an http or https URL such as https://herald.example.com",
                |s| {
                    url::Url::parse(s)
                        .ok()
                        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                        .map(|_| s.trim_end_matches('/').to_owned())
                },
            )?,
            session_idle_timeout: layers.required("session_idle_timeout", DURATION, parse_duration)?,
            session_lifetime: layers.required("session_lifetime", DURATION, parse_duration)?,
            alert_emails: layers.required(
                "alert_emails",
                "a comma-separated list of email addresses such as `ops@example.com, oncall@example.com`",
                parse_addresses,
            )?,
            alert_interval: layers.required("alert_interval", DURATION, parse_duration)?,
            alert_debounce: layers.required(
                "alert_debounce",
                "a duration such as `2m` (`0s` mails at the first evaluation that sees a change)",
                |s| humantime::parse_duration(s).ok(),
            )?,
            alert_error_queue: layers.required("alert_error_queue", "a whole number from 0 to 1000000000", |s| {
                s.parse::<i64>().ok().filter(|n| (0..=1_000_000_000).contains(n))
            })?,
            alert_queue_age: layers.required("alert_queue_age", DURATION, parse_duration)?,
            alert_stopped_node: layers.required(
                "alert_stopped_node",
                "a duration such as `30m` (`0s` alerts as soon as a node stops)",
                |s| humantime::parse_duration(s).ok(),
            )?,
        })
    }

    /// Whether the configured database is PostgreSQL.
    pub fn uses_postgres(&self) -> bool {
        let lower = self.database_url.to_ascii_lowercase();
        lower.starts_with("postgres://") || lower.starts_with("postgresql://")
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
            // The defaults are pinned by the unit tests below; a failure here is a bug in this file.
            Err(e) => panic!("default settings are invalid: {e}"),
        }
    }
}

#[cfg(test)]
mod tests;
