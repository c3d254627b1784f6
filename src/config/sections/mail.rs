//! The mail queue: what it accepts, the relay it delivers to, and how it retries.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::ConfigError;
use crate::config::declare::{Flag, Key, Section, keys};
use crate::config::sources::Layers;
use crate::config::values::{DURATION, parse_bool, parse_duration, size_between, whole};
use crate::mail::{MailSettings, RetryPolicy, parse_relay_list};
use crate::secret::Secret;

const S: Section = Section::Mail;

keys! {
    MAIL_FROM: String = Key::new(S, "mail_from", "sender of mail submitted without `from`",
        "an email address such as herald@example.com",
        |s| s.parse::<lettre::message::Mailbox>().ok().map(|_| s.to_owned()))
        .flag(Flag::Global("ADDRESS")).default("herald@localhost");
    MAIL_MAX_SIZE: usize = Key::new(S, "mail_max_size",
        "largest message, 1KiB to 64MiB: an HTTP submission above it gets 413, an SMTP message `552 5.3.4` \
         (the listener announces it as SIZE)",
        "a size from 1KiB to 64MiB such as `10MiB`", |s| size_between(s, 1 << 10, 64 << 20))
        .flag(Flag::Serve("SIZE")).default("10MiB");
    MAIL_DELIVERY: bool = Key::new(S, "mail_delivery",
        "`false`: this node accepts and stores mail but does not deliver", "`true` or `false`", parse_bool)
        .flag(Flag::Serve("BOOL")).default("true");
    SMTP_URL: Secret = Key::new(S, "smtp_url",
        "the relay: `smtp://[user:password@]host[:port][?tls=starttls][&helo=name]` or `smtps://…` (port 465); \
         several relays, comma-separated, are tried in order (see [relays](operations.md#relays))",
        "smtp://[user:password@]host[:port][?tls=starttls] or smtps://[user:password@]host[:port], or several \
         of them comma-separated",
        |s| parse_relay_list(s).ok().map(|_| Secret::new(s)))
        .flag(Flag::Serve("URL")).default("smtp://127.0.0.1:25").secret();
    SMTP_CONNECTIONS: u32 = Key::new(S, "smtp_connections", "SMTP connections (delivery workers) per node",
        "a whole number from 1 to 256", |s| whole(s, 1, 256))
        .flag(Flag::Serve("N")).default("4");
    SMTP_TIMEOUT: Duration = Key::new(S, "smtp_timeout", "limit for connecting and for each message exchange",
        DURATION, parse_duration)
        .flag(Flag::Serve("DURATION")).default("30s");
    SMTP_PROBE_INITIAL: Duration = Key::new(S, "smtp_probe_initial",
        "a relay that cannot be reached is probed (a connection, no message) after this long, then at doubling \
         waits (±20 %); no mail is tried on it meanwhile",
        DURATION, parse_duration)
        .flag(Flag::Serve("DURATION")).default("5s");
    SMTP_PROBE_MAX: Duration = Key::new(S, "smtp_probe_max", "longest wait between two probes of a down relay",
        DURATION, parse_duration)
        .flag(Flag::Serve("DURATION")).default("60s");
    SMTP_CA_FILE: PathBuf = Key::new(S, "smtp_ca_file",
        "PEM file of extra CA certificates for the relay's TLS certificate", "a path to a PEM file",
        |s| (!s.is_empty()).then(|| PathBuf::from(s)))
        .flag(Flag::Serve("FILE"));
    MAIL_BACKOFF_INITIAL: Duration = Key::new(S, "mail_backoff_initial",
        "first retry delay after a transient failure; doubles per attempt", DURATION, parse_duration)
        .flag(Flag::Serve("DURATION")).default("30s");
    MAIL_BACKOFF_MAX: Duration = Key::new(S, "mail_backoff_max", "longest retry delay", DURATION, parse_duration)
        .flag(Flag::Serve("DURATION")).default("1h");
    MAIL_MAX_ATTEMPTS: u32 = Key::new(S, "mail_max_attempts", "attempts before a message goes to the error queue",
        "a whole number from 1 to 1000", |s| whole(s, 1, 1000))
        .flag(Flag::Serve("N")).default("10");
    MAIL_MAX_AGE: Duration = Key::new(S, "mail_max_age",
        "a message still failing after this long goes to the error queue", DURATION, parse_duration)
        .flag(Flag::Serve("DURATION")).default("3d");
}

pub(in crate::config) fn read(layers: &Layers) -> Result<MailSettings, ConfigError> {
    Ok(MailSettings {
        from: layers.required(&MAIL_FROM)?,
        max_size: layers.required(&MAIL_MAX_SIZE)?,
        delivery: layers.required(&MAIL_DELIVERY)?,
        smtp_url: layers.required(&SMTP_URL)?,
        smtp_connections: layers.required(&SMTP_CONNECTIONS)?,
        smtp_timeout: layers.required(&SMTP_TIMEOUT)?,
        probe_initial: layers.required(&SMTP_PROBE_INITIAL)?,
        probe_max: layers.required(&SMTP_PROBE_MAX)?,
        smtp_ca_file: layers.optional(&SMTP_CA_FILE)?,
        retry: RetryPolicy {
            initial: layers.required(&MAIL_BACKOFF_INITIAL)?,
            max: layers.required(&MAIL_BACKOFF_MAX)?,
            max_attempts: layers.required(&MAIL_MAX_ATTEMPTS)?,
            max_age: layers.required(&MAIL_MAX_AGE)?,
        },
    })
}
