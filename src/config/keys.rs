//! The declaration of every configuration key: its name in `herald.toml`, its environment variable,
//! its flag and its default. `docs/configuration.md` is checked against this table by a test.

/// One configuration key: its name in `herald.toml`, its environment variable and its flag.
pub(super) struct Key {
    pub(super) name: &'static str,
    pub(super) env: &'static str,
    pub(super) flag: &'static str,
    pub(super) default: Option<&'static str>,
    pub(super) secret: bool,
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

pub(super) const KEYS: &[Key] = &[
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

/// The configuration keys as documented in `--help` and `docs/configuration.md`: (toml key, env var, default).
pub fn documented_keys() -> impl Iterator<Item = (&'static str, &'static str, &'static str)> {
    KEYS.iter().map(|k| (k.name, k.env, k.default.unwrap_or("")))
}
