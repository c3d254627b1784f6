//! The sections of the settings: each file declares its keys and reads them into the section's type.
//!
//! A section's type belongs to the service it configures (`mail::MailSettings`, `cluster::ClusterSettings`,
//! …), so a service takes its own section and never sees the rest; the sections of the faces (HTTP, the
//! console) and of start-up (the data dir and database) are declared here. Each file lists its keys in
//! the order of their rows in `docs/configuration.md`.

pub(super) mod alerts;
pub(super) mod auth;
pub(super) mod checks;
pub(super) mod cluster;
pub(super) mod console;
pub(super) mod database;
pub(super) mod http;
pub(super) mod logging;
pub(super) mod mail;
pub(super) mod smtp;
pub(super) mod tickets;

use super::declare::Meta;

/// Every declared key, section by section.
pub(super) fn all() -> impl Iterator<Item = &'static Meta> {
    [
        http::KEYS,
        database::KEYS,
        logging::KEYS,
        auth::KEYS,
        console::KEYS,
        mail::KEYS,
        smtp::KEYS,
        checks::KEYS,
        cluster::KEYS,
        alerts::KEYS,
        tickets::KEYS,
    ]
    .into_iter()
    .flatten()
    .copied()
}
