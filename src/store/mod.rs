//! Database access for both backends: embedded SQLite (one node) and PostgreSQL (one or many nodes).
//!
//! Queries are written once where the SQL is the same (SQLite accepts PostgreSQL's `$1` placeholders);
//! [`on_pool!`] expands one body per backend so each is type-checked against its own driver.
//! Timestamps are stored as `i64` milliseconds since the Unix epoch.

mod alerts;
mod bulk;
mod cluster;
mod integrations;
mod mail;
mod mail_intake;
mod meta;
mod relays;
mod sessions;
mod ticket_work;
mod tickets;
mod tokens;
mod users;
mod writer;

use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::error_kind::{Classified, ErrorKind};

pub use alerts::{AlertState, LatestCheck, NodeMailFigures};
pub use cluster::{Heartbeat, NodeRow};
pub use integrations::{CheckRecord, StoredIntegration};
pub use mail::{ClaimedMail, Completion, MailFilter, MailSummary};
pub use mail_intake::{EnqueueOutcome, NewMail};
pub use meta::SECRET_KEY_CHECK;
pub use relays::RelayRow;
pub use sessions::SessionRecord;
pub use ticket_work::{EventOutcome, ProblemFilter, ProblemRow};
pub use tickets::{
    NewEventPost, NewTicketEvent, PostOutcome, TicketEventFigures, TicketEventFilter, TicketEventRow, TicketRow,
};
pub use tokens::{NewToken, TokenRecord, TokenWithOwner};
pub use users::{AdminGuarded, NewUser, UserRecord};
pub use writer::{HeldWriter, Writer};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Creates a new SQLite database file readable by Herald's user only (it holds mail, password
/// hashes and sealed secrets). SQLite gives the `-wal` and `-shm` files the same mode.
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" || path.exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Runs the same expression against whichever pool the store holds; on SQLite, the writer.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite { write: $pool, .. } => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Like [`on_pool!`] for statements that only read: on SQLite they use the reader pool, so they
/// never wait behind writes.
macro_rules! on_read_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite { read: $pool, .. } => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_read_pool;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Clone)]
pub(crate) enum Db {
    /// SQLite allows one writer at a time. Every write goes through `write`, a pool of exactly one
    /// connection, so writers queue fairly in the pool instead of spinning in SQLite's busy handler
    /// (which starved some of them for seconds under load); reads use `read` and never wait for writes.
    Sqlite {
        write: SqlitePool,
        read: SqlitePool,
    },
    Postgres(PgPool),
}

/// The database. Cheap to clone: the pools are reference-counted.
#[derive(Clone)]
pub struct Store {
    pub(crate) db: Db,
}

/// What can go wrong talking to the database, in words the layers above can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or did not answer in time; retrying later may work.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// A uniqueness rule was broken; the string names what already exists.
    #[error("{0} already exists")]
    Conflict(String),
    #[error("cannot open the database {url}: {reason}")]
    Open { url: String, reason: String },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value that this version of Herald cannot read.
    #[error("unreadable data in the database: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err),
            // PostgreSQL shutting down or restarting: admin_shutdown, crash_shutdown, cannot_connect_now.
            sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("57P01" | "57P02" | "57P03")) => {
                StoreError::Unavailable(err)
            }
            // SQLITE_BUSY / SQLITE_LOCKED after busy_timeout: the database is there but not answering in time.
            sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("5" | "6")) => {
                StoreError::Unavailable(err)
            }
            _ => StoreError::Other(err),
        }
    }
}

impl StoreError {
    /// Maps a unique violation to [`StoreError::Conflict`] naming `what`; anything else as usual.
    pub(crate) fn conflict_or(err: sqlx::Error, what: impl FnOnce() -> String) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what()),
            _ => err.into(),
        }
    }
}

impl Classified for StoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Unavailable(_) => ErrorKind::Unavailable,
            StoreError::Conflict(_) => ErrorKind::Conflict,
            // Unreadable rows are not a passing outage: waiting will not make them readable.
            StoreError::Open { .. } | StoreError::Migrate(_) | StoreError::Corrupt(_) | StoreError::Other(_) => {
                ErrorKind::Internal
            }
        }
    }

    fn public_detail(&self) -> String {
        match self {
            // The driver's message may name hosts, users and files: it goes to the log only.
            StoreError::Unavailable(_) => "the database is unavailable; try again shortly".to_owned(),
            other => other.to_string(),
        }
    }
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub url: String,
    pub max_connections: u32,
    pub timeout: Duration,
}

impl Store {
    /// Opens the database named by the URL and checks that it answers. Does not migrate.
    pub async fn connect(options: &ConnectOptions) -> Result<Store, StoreError> {
        let open_error = |reason: String| StoreError::Open {
            url: redact_url(&options.url),
            // Should a driver ever quote the URL it could not use, it is shown redacted too.
            reason: reason.replace(&options.url, &redact_url(&options.url)),
        };
        let lower = options.url.to_ascii_lowercase();
        let db = if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            let connect = PgConnectOptions::from_str(&options.url)
                .map_err(|e| open_error(e.to_string()))?
                .application_name("herald");
            // One direct attempt first: the pool retries until its timeout and then reports only
            // "timed out", while this says why (refused, bad password, unknown database…).
            match tokio::time::timeout(options.timeout, PgConnection::connect_with(&connect)).await {
                Ok(Ok(conn)) => {
                    let _ = conn.close().await;
                }
                Ok(Err(e)) => return Err(open_error(describe(&e))),
                Err(_) => {
                    return Err(open_error(format!(
                        "no answer within {}",
                        humantime::format_duration(options.timeout)
                    )));
                }
            }
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections)
                .min_connections(0)
                .acquire_timeout(options.timeout)
                .test_before_acquire(true)
                .connect_with(connect)
                .await
                .map_err(|e| open_error(describe(&e)))?;
            Db::Postgres(pool)
        } else {
            let connect = SqliteConnectOptions::from_str(&options.url)
                .map_err(|e| open_error(e.to_string()))?
                .create_if_missing(true)
                // WAL: readers never block the writer. FULL: a committed transaction survives power loss,
                // which the mail queue's "accepted means durable" promise needs.
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(options.timeout);
            create_private(connect.get_filename()).map_err(|e| open_error(e.to_string()))?;
            // An embedded connection cannot go stale: testing it before each use (sqlx's default) would
            // only add a round trip to its worker thread to every transaction.
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .acquire_timeout(options.timeout)
                .connect_with(connect.clone())
                .await
                .map_err(|e| open_error(describe(&e)))?;
            let read = SqlitePoolOptions::new()
                .max_connections(options.max_connections.clamp(1, 8))
                .test_before_acquire(false)
                .acquire_timeout(options.timeout)
                .connect_with(connect.read_only(true))
                .await
                .map_err(|e| open_error(describe(&e)))?;
            Db::Sqlite { write, read }
        };
        Ok(Store { db })
    }

    /// Applies pending migrations. On PostgreSQL the migrator holds an advisory lock, so several
    /// nodes may start at once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.db {
            Db::Sqlite { write, .. } => SQLITE_MIGRATIONS.run(write).await?,
            Db::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// A round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_read_pool!(self, |pool| sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Closes every connection; waits for checked-out connections to come back.
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { write, read } => {
                read.close().await;
                write.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

/// The current time in the store's unit (milliseconds since the Unix epoch).
pub use crate::clock::now_ms;

/// A database URL with any password replaced, fit for logs and error messages.
///
/// Any text may come here, valid URL or not (a mistyped `HERALD_DATABASE_URL` is quoted in the error
/// that rejects it), so when the URL cannot be parsed, or has no authority part, everything between
/// the first `:` and the last `@` is taken for credentials: better a host name hidden than a password
/// shown.
pub fn redact_url(url: &str) -> String {
    const REDACTED: &str = "<redacted>";
    let mut out = url.to_owned();
    let parsed = url::Url::parse(url).ok().filter(|u| u.has_authority());
    let (start, end) = match (&parsed, url.find("://")) {
        // A valid URL: its userinfo ends at the last `@` before the path, query or fragment.
        (Some(_), Some(scheme_end)) => {
            let start = scheme_end + 3;
            let end = url[start..].find(['/', '?', '#']).map_or(url.len(), |i| start + i);
            (start, end)
        }
        (None, Some(scheme_end)) => (scheme_end + 3, url.len()),
        (_, None) => (0, url.len()),
    };
    // A SQLite URL names a file, which may well have an `@` in its path, and carries no credentials.
    let credentials = !url.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("sqlite:"));
    if let Some(at) = url[start..end].rfind('@').filter(|_| credentials) {
        if let Some(colon) = url[start..start + at].find(':') {
            out.replace_range(start + colon + 1..start + at, REDACTED);
        }
    }
    // Passwords may also travel as query parameters (`password=`, `sslpassword=`), in any case.
    let mut from = 0;
    while let Some(idx) = out.to_ascii_lowercase()[from..].find("password=") {
        let value = from + idx + "password=".len();
        let value_end = out[value..].find(['&', '#']).map_or(out.len(), |e| value + e);
        out.replace_range(value..value_end, REDACTED);
        from = value + REDACTED.len();
    }
    out
}

/// A sqlx error as one human line, without the Debug noise.
fn describe(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::PoolTimedOut => "timed out waiting for a connection".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_are_classified_by_what_a_caller_can_do_about_them() {
        let cases = [
            (
                StoreError::Unavailable(sqlx::Error::PoolTimedOut),
                ErrorKind::Unavailable,
            ),
            (StoreError::Conflict("a user named `x`".into()), ErrorKind::Conflict),
            (
                StoreError::Open {
                    url: "sqlite:x".into(),
                    reason: "no".into(),
                },
                ErrorKind::Internal,
            ),
            (
                StoreError::Migrate(sqlx::migrate::MigrateError::VersionMissing(1)),
                ErrorKind::Internal,
            ),
            (StoreError::Corrupt("user 7: bad role".into()), ErrorKind::Internal),
            (StoreError::Other(sqlx::Error::RowNotFound), ErrorKind::Internal),
        ];
        for (err, kind) in cases {
            assert_eq!(err.kind(), kind, "{err}");
            assert_eq!(err.code(), None, "{err}");
        }
    }

    #[test]
    fn an_unavailable_database_is_described_without_the_drivers_words() {
        let err = StoreError::Unavailable(sqlx::Error::Protocol("db.internal:5432 said no".into()));
        assert!(err.to_string().contains("db.internal"), "the log keeps the cause");
        assert_eq!(err.public_detail(), "the database is unavailable; try again shortly");
        assert_eq!(
            StoreError::Conflict("a user named `x`".into()).public_detail(),
            "a user named `x` already exists"
        );
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://herald:s3cret@db:5432/herald"),
            "postgres://herald:<redacted>@db:5432/herald"
        );
        assert_eq!(
            redact_url("postgres://db/herald?password=s3cret&x=1"),
            "postgres://db/herald?password=<redacted>&x=1"
        );
        assert_eq!(redact_url("postgres://u@db"), "postgres://u@db");
        assert_eq!(
            redact_url("sqlite://./herald-data/herald.db"),
            "sqlite://./herald-data/herald.db"
        );
    }

    #[test]
    fn passwords_are_redacted_from_any_scheme_and_from_unparsable_urls() {
        for (url, shown) in [
            (
                "mysql://herald:S3cretPW@db/herald",
                "mysql://herald:<redacted>@db/herald",
            ),
            // A `/`, `?` or `#` in the password makes the URL unparsable; nothing of it is shown.
            (
                "postgres://herald:S3c/retPW@db/herald",
                "postgres://herald:<redacted>@db/herald",
            ),
            (
                "postgres://herald:S3c?ret#PW@db:5432",
                "postgres://herald:<redacted>@db:5432",
            ),
            (
                "postgres://herald:S3cret PW@db:port/x",
                "postgres://herald:<redacted>@db:port/x",
            ),
            (
                "postgres://herald:p@ss@db/herald",
                "postgres://herald:<redacted>@db/herald",
            ),
            ("mysql:herald:S3cretPW@db", "mysql:<redacted>@db"),
            ("herald:S3cretPW@db", "herald:<redacted>@db"),
            (
                "postgres://db/h?sslmode=require&PassWord=S3cretPW",
                "postgres://db/h?sslmode=require&PassWord=<redacted>",
            ),
            (
                "postgres://db/h?password=a&sslpassword=S3cretPW",
                "postgres://db/h?password=<redacted>&sslpassword=<redacted>",
            ),
            ("sqlite:./data@home/herald.db", "sqlite:./data@home/herald.db"),
            (
                "postgres://u@db/h?application_name=a@b",
                "postgres://u@db/h?application_name=a@b",
            ),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
            assert!(!redact_url(url).contains("S3cret"), "{url}");
        }
    }
}
