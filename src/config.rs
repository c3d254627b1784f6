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
use crate::store::redact_url;

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

/// One configuration key: its name in `herald.toml`, its environment variable and its flag.
struct Key {
    name: &'static str,
    env: &'static str,
    flag: &'static str,
    default: Option<&'static str>,
    secret: bool,
}

const fn key(name: &'static str, env: &'static str, flag: &'static str, default: Option<&'static str>) -> Key {
    Key {
        name,
        env,
        flag,
        default,
        secret: false,
    }
}

const KEYS: &[Key] = &[
    key("listen", "HERALD_LISTEN", "--listen", Some("127.0.0.1:8080")),
    key("data_dir", "HERALD_DATA_DIR", "--data-dir", Some("./herald-data")),
    key("database_url", "HERALD_DATABASE_URL", "--database-url", None),
    key(
        "database_max_connections",
        "HERALD_DATABASE_MAX_CONNECTIONS",
        "--database-max-connections",
        Some("10"),
    ),
    key(
        "database_timeout",
        "HERALD_DATABASE_TIMEOUT",
        "--database-timeout",
        Some("5s"),
    ),
    Key {
        name: "admin_password",
        env: "HERALD_ADMIN_PASSWORD",
        flag: "",
        default: None,
        secret: true,
    },
    key("log", "HERALD_LOG", "--log", Some("info")),
    key("log_format", "HERALD_LOG_FORMAT", "--log-format", Some("text")),
    key(
        "request_timeout",
        "HERALD_REQUEST_TIMEOUT",
        "--request-timeout",
        Some("30s"),
    ),
    key("body_limit", "HERALD_BODY_LIMIT", "--body-limit", Some("1MiB")),
    key(
        "http_header_timeout",
        "HERALD_HTTP_HEADER_TIMEOUT",
        "--http-header-timeout",
        Some("10s"),
    ),
    key(
        "http_max_connections",
        "HERALD_HTTP_MAX_CONNECTIONS",
        "--http-max-connections",
        Some("1024"),
    ),
    key(
        "shutdown_timeout",
        "HERALD_SHUTDOWN_TIMEOUT",
        "--shutdown-timeout",
        Some("30s"),
    ),
    key(
        "auth_cache_ttl",
        "HERALD_AUTH_CACHE_TTL",
        "--auth-cache-ttl",
        Some("30s"),
    ),
    key(
        "auth_max_failures",
        "HERALD_AUTH_MAX_FAILURES",
        "--auth-max-failures",
        Some("10"),
    ),
    key("auth_lockout", "HERALD_AUTH_LOCKOUT", "--auth-lockout", Some("60s")),
    key(
        "trusted_proxies",
        "HERALD_TRUSTED_PROXIES",
        "--trusted-proxies",
        Some(""),
    ),
    key("node_id", "HERALD_NODE_ID", "--node-id", None),
    key("mail_from", "HERALD_MAIL_FROM", "--mail-from", Some("herald@localhost")),
    key("mail_max_size", "HERALD_MAIL_MAX_SIZE", "--mail-max-size", Some("2MiB")),
    key("mail_delivery", "HERALD_MAIL_DELIVERY", "--mail-delivery", Some("true")),
    key(
        "mail_backoff_initial",
        "HERALD_MAIL_BACKOFF_INITIAL",
        "--mail-backoff-initial",
        Some("30s"),
    ),
    key(
        "mail_backoff_max",
        "HERALD_MAIL_BACKOFF_MAX",
        "--mail-backoff-max",
        Some("1h"),
    ),
    key(
        "mail_max_attempts",
        "HERALD_MAIL_MAX_ATTEMPTS",
        "--mail-max-attempts",
        Some("10"),
    ),
    key("mail_max_age", "HERALD_MAIL_MAX_AGE", "--mail-max-age", Some("3d")),
    Key {
        name: "smtp_url",
        env: "HERALD_SMTP_URL",
        flag: "--smtp-url",
        default: Some("smtp://127.0.0.1:25"),
        secret: true,
    },
    key(
        "smtp_connections",
        "HERALD_SMTP_CONNECTIONS",
        "--smtp-connections",
        Some("4"),
    ),
    key("smtp_timeout", "HERALD_SMTP_TIMEOUT", "--smtp-timeout", Some("30s")),
    key("smtp_ca_file", "HERALD_SMTP_CA_FILE", "--smtp-ca-file", None),
    key("cluster", "HERALD_CLUSTER", "", Some("false")),
    key("cluster_poll_interval", "HERALD_CLUSTER_POLL_INTERVAL", "", Some("60s")),
    key(
        "cluster_heartbeat_timeout",
        "HERALD_CLUSTER_HEARTBEAT_TIMEOUT",
        "",
        Some("5m"),
    ),
    key("cluster_adopt_after", "HERALD_CLUSTER_ADOPT_AFTER", "", Some("10m")),
    key("cluster_retention", "HERALD_CLUSTER_RETENTION", "", Some("7d")),
    key("check_max_age", "HERALD_CHECK_MAX_AGE", "--check-max-age", Some("30s")),
    key(
        "check_interval",
        "HERALD_CHECK_INTERVAL",
        "--check-interval",
        Some("5m"),
    ),
    key(
        "check_concurrency",
        "HERALD_CHECK_CONCURRENCY",
        "--check-concurrency",
        Some("32"),
    ),
    key("check_timeout", "HERALD_CHECK_TIMEOUT", "--check-timeout", Some("10s")),
    Key {
        name: "secret_key",
        env: "HERALD_SECRET_KEY",
        flag: "",
        default: None,
        secret: true,
    },
    key("public_url", "HERALD_PUBLIC_URL", "", None),
    key("session_idle_timeout", "HERALD_SESSION_IDLE_TIMEOUT", "", Some("8h")),
    key("session_lifetime", "HERALD_SESSION_LIFETIME", "", Some("7d")),
    key("alert_emails", "HERALD_ALERT_EMAILS", "", Some("")),
    key("alert_interval", "HERALD_ALERT_INTERVAL", "", Some("30s")),
    key("alert_debounce", "HERALD_ALERT_DEBOUNCE", "", Some("2m")),
    key("alert_error_queue", "HERALD_ALERT_ERROR_QUEUE", "", Some("10")),
    key("alert_queue_age", "HERALD_ALERT_QUEUE_AGE", "", Some("30m")),
    key("alert_stopped_node", "HERALD_ALERT_STOPPED_NODE", "", Some("30m")),
];

/// Values given on the command line, by key name (`listen`, `data_dir`, …).
pub type FlagValues = BTreeMap<&'static str, String>;

/// The raw value of each key and where it came from, before parsing.
struct Layers {
    values: BTreeMap<&'static str, (String, Origin)>,
}

impl Layers {
    fn get(&self, name: &'static str) -> Option<&(String, Origin)> {
        self.values.get(name)
    }

    fn parse<T>(
        &self,
        name: &'static str,
        expected: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        let Some((raw, origin)) = self.get(name) else {
            return Ok(None);
        };
        match parse(raw.trim()) {
            Some(value) => Ok(Some(value)),
            None => {
                let key = KEYS.iter().find(|k| k.name == name).map_or(name, |k| k.env);
                // A value that carries a URL (HERALD_DATABASE_URL) is shown without its password.
                let value = if KEYS.iter().any(|k| k.name == name && k.secret) {
                    "<redacted>".to_owned()
                } else {
                    format!("{:?}", redact_url(raw))
                };
                Err(ConfigError::Invalid {
                    key,
                    value,
                    origin: origin.clone(),
                    expected: expected.to_owned(),
                })
            }
        }
    }

    fn required<T>(
        &self,
        name: &'static str,
        expected: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, ConfigError> {
        // Every required key has a default, so absence is a programming error caught by the unit tests.
        self.parse(name, expected, parse)?.ok_or_else(|| ConfigError::Invalid {
            key: name,
            value: "nothing".to_owned(),
            origin: Origin::Default,
            expected: expected.to_owned(),
        })
    }
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

/// A comma-separated list of addresses (empty is allowed: no recipient).
fn parse_addresses(s: &str) -> Option<Vec<String>> {
    s.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| a.parse::<lettre::Address>().ok().map(|_| a.to_owned()))
        .collect()
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

const DURATION: &str = "a positive duration such as `500ms`, `60s`, `5m` or `1h`";

fn parse_duration(s: &str) -> Option<Duration> {
    humantime::parse_duration(s).ok().filter(|d| !d.is_zero())
}

/// Parses `65536`, `64KiB`, `1MiB`, `1GiB` (also `KB`/`MB`/`GB` as powers of 1000).
fn parse_size(s: &str) -> Option<usize> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let number: usize = digits.parse().ok()?;
    let factor: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return None,
    };
    number.checked_mul(factor)
}

fn read_config_file(path: &Path) -> Result<Vec<(&'static str, String)>, ConfigError> {
    let file_error = |reason: String| ConfigError::File {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| file_error(e.to_string()))?;
    let mut out = Vec::new();
    for (name, value) in table {
        let Some(key) = KEYS.iter().find(|k| k.name == name) else {
            let known = KEYS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ");
            return Err(ConfigError::UnknownKey {
                key: name,
                path: path.to_owned(),
                known,
            });
        };
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            // A list (`trusted_proxies = ["10.0.0.0/8"]`) is the comma-separated form.
            toml::Value::Array(items) if items.iter().all(toml::Value::is_str) => items
                .iter()
                .filter_map(toml::Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
            other => {
                return Err(ConfigError::Invalid {
                    key: key.name,
                    value: if key.secret {
                        "<redacted>".into()
                    } else {
                        redact_url(&other.to_string())
                    },
                    origin: Origin::File(path.to_owned()),
                    expected: "a string, number or boolean".into(),
                });
            }
        };
        out.push((key.name, text));
    }
    Ok(out)
}

/// The configuration keys as documented in `--help` and `docs/configuration.md`: (toml key, env var, default).
pub fn documented_keys() -> impl Iterator<Item = (&'static str, &'static str, &'static str)> {
    KEYS.iter().map(|k| (k.name, k.env, k.default.unwrap_or("")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)], flags: &[(&'static str, &str)]) -> Result<Settings, ConfigError> {
        let env: BTreeMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let flags = flags.iter().map(|(k, v)| (*k, v.to_string())).collect();
        Settings::load_from(None, |k| env.get(k).cloned(), &flags)
    }

    #[test]
    fn defaults_are_valid_and_documented() {
        let s = load(&[], &[]).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from("./herald-data"));
        assert_eq!(s.database_url, "sqlite://./herald-data/herald.db");
        assert_eq!(s.log_format, LogFormat::Text);
        assert_eq!(s.body_limit, 1 << 20);
        assert!(!s.uses_postgres());
    }

    #[test]
    fn flags_beat_environment_beats_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("herald.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:1000\"\nrequest_timeout = \"5s\"\nbody_limit = 4096\n",
        )
        .unwrap();
        let env = |k: &str| (k == "HERALD_LISTEN").then(|| "127.0.0.1:2000".to_owned());
        let s = Settings::load_from(Some(&file), env, &FlagValues::new()).unwrap();
        assert_eq!(s.listen.port(), 2000);
        assert_eq!(s.request_timeout, Duration::from_secs(5));
        assert_eq!(s.body_limit, 4096);
        let flags = [("listen", "127.0.0.1:3000".to_owned())].into_iter().collect();
        let s = Settings::load_from(Some(&file), env, &flags).unwrap();
        assert_eq!(s.listen.port(), 3000);
    }

    #[test]
    fn an_invalid_value_names_key_origin_value_and_what_is_allowed() {
        let err = load(&[("HERALD_LISTEN", "nowhere")], &[]).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid configuration: HERALD_LISTEN = \"nowhere\" (from environment variable HERALD_LISTEN): \
             expected a socket address host:port such as 127.0.0.1:8080"
        );
        let err = load(&[], &[("request_timeout", "soon")]).unwrap_err().to_string();
        assert!(
            err.contains("HERALD_REQUEST_TIMEOUT = \"soon\" (from flag --request-timeout)"),
            "{err}"
        );
        assert!(err.contains("`60s`"), "{err}");
        let err = load(&[("HERALD_LOG_FORMAT", "yaml")], &[]).unwrap_err().to_string();
        assert!(err.ends_with("expected `text` or `json`"), "{err}");
        let err = load(&[("HERALD_DATABASE_URL", "mysql://x")], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("sqlite:// or postgres://"), "{err}");
        let err = load(&[("HERALD_BODY_LIMIT", "12 parsecs")], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("HERALD_BODY_LIMIT"), "{err}");
    }

    #[test]
    fn a_secret_is_never_echoed_in_errors() {
        let err = load(&[("HERALD_ADMIN_PASSWORD", "")], &[]).unwrap_err().to_string();
        assert!(err.contains("HERALD_ADMIN_PASSWORD = <redacted>"), "{err}");
    }

    #[test]
    fn the_admin_password_follows_the_password_rule() {
        let err = load(&[("HERALD_ADMIN_PASSWORD", "bad\u{16}password")], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("HERALD_ADMIN_PASSWORD = <redacted>") && err.contains("without control characters"),
            "{err}"
        );
        let err = load(&[("HERALD_ADMIN_PASSWORD", "short")], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 8 characters"), "{err}");
        let s = load(&[("HERALD_ADMIN_PASSWORD", "a fine pass phrase")], &[]).unwrap();
        assert_eq!(s.admin_password.unwrap().expose(), "a fine pass phrase");
    }

    #[test]
    fn unknown_keys_in_the_file_are_rejected_with_the_known_ones_listed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("herald.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let err = Settings::load_from(Some(&file), |_| None, &FlagValues::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown key `lisen`") && err.contains("listen, data_dir"),
            "{err}"
        );
    }

    #[test]
    fn sizes_and_durations_are_human_readable() {
        assert_eq!(parse_size("64KiB"), Some(65536));
        assert_eq!(parse_size("2 MiB"), Some(2 << 20));
        assert_eq!(parse_size("10MB"), Some(10_000_000));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("0s"), None);
    }

    #[test]
    fn check_settings_have_defaults_and_precise_errors() {
        let s = load(&[], &[]).unwrap();
        assert_eq!(s.check_max_age, Duration::from_secs(30));
        assert_eq!(s.check_interval, Duration::from_secs(300));
        assert_eq!(s.check_timeout, Duration::from_secs(10));
        assert_eq!(s.check_concurrency, 32);
        assert!(s.secret_key.is_none());
        let s = load(
            &[("HERALD_CHECK_MAX_AGE", "0s"), ("HERALD_CHECK_CONCURRENCY", "4")],
            &[],
        )
        .unwrap();
        assert_eq!(s.check_max_age, Duration::ZERO);
        assert_eq!(s.check_concurrency, 4);
        let err = load(&[("HERALD_CHECK_TIMEOUT", "1h")], &[]).unwrap_err().to_string();
        assert!(
            err.contains("HERALD_CHECK_TIMEOUT = \"1h\"") && err.contains("100ms to 5m"),
            "{err}"
        );
        let err = load(&[("HERALD_CHECK_CONCURRENCY", "0")], &[]).unwrap_err().to_string();
        assert!(err.contains("HERALD_CHECK_CONCURRENCY"), "{err}");
        let err = load(&[("HERALD_CHECK_INTERVAL", "0s")], &[]).unwrap_err().to_string();
        assert!(err.contains("HERALD_CHECK_INTERVAL"), "{err}");
    }

    #[test]
    fn the_secret_key_must_be_32_bytes_and_is_never_echoed() {
        let err = load(&[("HERALD_SECRET_KEY", "dG9vIHNob3J0")], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("HERALD_SECRET_KEY = <redacted>"), "{err}");
        assert!(!err.contains("dG9vIHNob3J0"), "{err}");
        let key = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
        let s = load(&[("HERALD_SECRET_KEY", key)], &[]).unwrap();
        assert_eq!(s.secret_key.unwrap().expose(), key);
    }

    #[test]
    fn alert_and_console_settings_are_parsed_with_precise_errors() {
        let s = load(&[], &[]).unwrap();
        assert!(s.alert_emails.is_empty());
        assert_eq!(s.alert_queue_age, Duration::from_secs(30 * 60));
        assert_eq!(s.alert_error_queue, 10);
        assert_eq!(s.alert_stopped_node, Duration::from_secs(30 * 60));
        assert_eq!(s.public_url, None);
        let s = load(
            &[
                ("HERALD_ALERT_EMAILS", " ops@example.com,oncall@example.org ,"),
                ("HERALD_PUBLIC_URL", "https://herald.example.com/"),
                ("HERALD_ALERT_DEBOUNCE", "0s"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(s.alert_emails, ["ops@example.com", "oncall@example.org"]);
        assert_eq!(s.public_url.as_deref(), Some("https://herald.example.com"));
        assert_eq!(s.alert_debounce, Duration::ZERO);
        let e = load(&[("HERALD_ALERT_EMAILS", "ops@example.com, not an address")], &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("HERALD_ALERT_EMAILS") && e.contains("comma-separated"),
            "{e}"
        );
        let e = load(&[("HERALD_PUBLIC_URL", "ftp://x")], &[]).unwrap_err().to_string();
        assert!(e.contains("HERALD_PUBLIC_URL") && e.contains("http or https"), "{e}");
    }

    #[test]
    fn trusted_proxies_are_a_list_of_addresses_and_blocks() {
        let s = load(&[], &[]).unwrap();
        assert!(s.trusted_proxies.is_empty());
        let s = load(&[("HERALD_TRUSTED_PROXIES", "10.0.0.0/8, 2001:db8::1")], &[]).unwrap();
        assert!(s.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
        assert!(s.trusted_proxies.contains("2001:db8::1".parse().unwrap()));
        assert!(!s.trusted_proxies.contains("192.0.2.1".parse().unwrap()));
        let e = load(&[], &[("trusted_proxies", "10.0.0.0/40")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("HERALD_TRUSTED_PROXIES = \"10.0.0.0/40\" (from flag --trusted-proxies)") && e.contains("CIDR"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("herald.toml");
        std::fs::write(&file, "trusted_proxies = [\"10.0.0.1\", \"192.0.2.0/24\"]\n").unwrap();
        let s = Settings::load_from(Some(&file), |_| None, &FlagValues::new()).unwrap();
        assert!(s.trusted_proxies.contains("192.0.2.200".parse().unwrap()));
    }

    #[test]
    fn postgres_urls_select_postgres() {
        let s = load(&[("HERALD_DATABASE_URL", "postgres://u@localhost/herald")], &[]).unwrap();
        assert!(s.uses_postgres());
    }

    /// `docs/configuration.md`, compiled in so that the test sees the file of this checkout.
    const CONFIGURATION_DOC: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md"));

    /// One row of a settings table in `docs/configuration.md`: (key, env, flag, default). An empty
    /// flag means the setting has none; a default that is not one code span (`none`, `generated
    /// once, …`) is prose and reads as "no literal default" (`""`).
    fn documented_rows(doc: &str) -> Vec<(String, String, String, String)> {
        let cells = |line: &str| -> Vec<String> {
            let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
            // `\|` inside a cell is a literal bar, not a column separator.
            inner
                .replace("\\|", "\u{0}")
                .split('|')
                .map(|c| c.trim().replace('\u{0}', "|"))
                .collect()
        };
        let code_span = |cell: &str| -> Option<String> {
            let inner = cell.strip_prefix('`')?.strip_suffix('`')?;
            (!inner.contains('`')).then(|| inner.to_owned())
        };
        let mut rows = Vec::new();
        let mut in_settings_table = false;
        for line in doc.lines() {
            if !line.trim_start().starts_with('|') {
                in_settings_table = false;
                continue;
            }
            let c = cells(line);
            if c.first().is_some_and(|h| h == "key") {
                assert_eq!(
                    c,
                    ["key", "environment", "flag", "default", "meaning"],
                    "settings table header"
                );
                in_settings_table = true;
                continue;
            }
            if !in_settings_table || c.iter().all(|cell| cell.chars().all(|ch| ch == '-' || ch == ':')) {
                continue;
            }
            assert_eq!(c.len(), 5, "a settings row has five cells: {line}");
            let literal =
                |cell: &str| code_span(cell).unwrap_or_else(|| panic!("`{cell}` is not one code span: {line}"));
            let flag = if c[2].is_empty() { String::new() } else { literal(&c[2]) };
            let default = code_span(&c[3]).unwrap_or_default();
            rows.push((literal(&c[0]), literal(&c[1]), flag, default));
        }
        rows
    }

    /// The tables of `docs/configuration.md` list exactly the keys of [`KEYS`], each with its
    /// environment variable, flag and default. To update: change the key in `KEYS` and its row in
    /// `docs/configuration.md` together. A literal default is written as one code span (`` `30s` ``);
    /// a key declared without a default (or with an empty one) is described in words instead
    /// (`none`, `key file`, …); a key without a flag leaves the flag cell empty. Each key has
    /// exactly one row, in any of the file's tables whose header is
    /// `| key | environment | flag | default | meaning |`.
    #[test]
    fn the_documented_table_matches_the_declared_keys() {
        let rows = documented_rows(CONFIGURATION_DOC);
        let mut documented = BTreeMap::new();
        for (key, env, flag, default) in rows {
            let again = documented.insert(key.clone(), (env, flag, default));
            assert!(again.is_none(), "`{key}` has two rows in docs/configuration.md");
        }
        let declared: BTreeMap<String, (String, String, String)> = KEYS
            .iter()
            .map(|k| {
                let default = k.default.unwrap_or_default().to_owned();
                (k.name.to_owned(), (k.env.to_owned(), k.flag.to_owned(), default))
            })
            .collect();
        let mut problems = Vec::new();
        for (key, declaration) in &declared {
            match documented.get(key) {
                None => problems.push(format!("`{key}` is declared but has no row")),
                Some(row) if row != declaration => problems.push(format!(
                    "`{key}`: declared (env, flag, default) {declaration:?}, documented {row:?}"
                )),
                Some(_) => {}
            }
        }
        for key in documented.keys().filter(|k| !declared.contains_key(*k)) {
            problems.push(format!("`{key}` has a row but is not declared in KEYS"));
        }
        assert!(
            problems.is_empty(),
            "docs/configuration.md and KEYS in src/config.rs disagree:\n{}",
            problems.join("\n")
        );
    }

    #[test]
    fn the_documented_table_parser_reads_flags_defaults_and_prose() {
        let doc = "| key | environment | flag | default | meaning |\n|---|---|---|---|---|\n\
                   | `a` | `HERALD_A` | `--a` | `1s` | x \\| y |\n| `b` | `HERALD_B` | | none (off) | z |\n\ntext\n\
                   | endpoint | does |\n|---|---|\n| `GET /` | not a setting |\n";
        assert_eq!(
            documented_rows(doc),
            [
                ("a".into(), "HERALD_A".into(), "--a".into(), "1s".into()),
                ("b".into(), "HERALD_B".into(), String::new(), String::new()),
            ]
        );
    }
}
