//! The data dir, the database, and the key that seals stored secrets: what start-up opens.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::declare::{Flag, Key, Section, keys};
use crate::config::sources::Layers;
use crate::config::values::{DURATION, parse_duration, whole};
use crate::config::{ConfigError, DatabaseSettings};
use crate::secret::Secret;

const S: Section = Section::Database;

keys! {
    DATA_DIR: PathBuf = Key::new(S, "data_dir",
        "SQLite database, generated admin password, secrets key file, node id \
         ([the data dir](operations.md#the-data-dir))",
        "a directory path", |s| (!s.is_empty()).then(|| PathBuf::from(s)))
        .flag(Flag::Global("DIR")).default("./herald-data");
    DATABASE_URL: String = Key::new(S, "database_url",
        "`sqlite://PATH` or `postgres://USER:PASSWORD@HOST:PORT/DB`; logs and error messages show it with the \
         password replaced by `<redacted>`, even when it is not a valid URL",
        "a URL starting with sqlite:// or postgres:// (or postgresql://)",
        |s| {
            let lower = s.to_ascii_lowercase();
            let known = ["sqlite:", "postgres://", "postgresql://"];
            known.iter().any(|p| lower.starts_with(p)).then(|| s.to_owned())
        })
        .flag(Flag::Global("URL")).default_prose("SQLite `herald.db` in the data dir");
    DATABASE_MAX_CONNECTIONS: u32 = Key::new(S, "database_max_connections", "pool size (SQLite: at most 8)",
        "a whole number from 1 to 1000", |s| whole(s, 1, 1000))
        .flag(Flag::Serve("N")).default("10");
    DATABASE_TIMEOUT: Duration = Key::new(S, "database_timeout",
        "time to connect, or to get a pooled connection", DURATION, parse_duration)
        .flag(Flag::Serve("DURATION")).default("5s");
    SECRET_KEY: Secret = Key::new(S, "secret_key",
        "base64 of 32 bytes that encrypts integration secrets; otherwise `<data_dir>/secret.key` \
         ([secrets at rest](security.md#secrets-at-rest))",
        "the base64 encoding of 32 random bytes",
        |s| {
            use base64::Engine;
            let key = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
            (key.len() == 32).then(|| Secret::new(s))
        })
        .default_prose("key file").secret();
}

pub(in crate::config) fn read(layers: &Layers) -> Result<DatabaseSettings, ConfigError> {
    let data_dir = layers.required(&DATA_DIR)?;
    let url = layers
        .optional(&DATABASE_URL)?
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("herald.db").display()));
    Ok(DatabaseSettings {
        url,
        data_dir,
        max_connections: layers.required(&DATABASE_MAX_CONNECTIONS)?,
        timeout: layers.required(&DATABASE_TIMEOUT)?,
        secret_key: layers.optional(&SECRET_KEY)?,
    })
}
