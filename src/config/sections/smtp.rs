//! The SMTP submission server: where it listens, its TLS certificate, who may submit without AUTH,
//! and the limits it puts on clients (RFC 5321 §4.5.3). The largest message is `mail_max_size`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::client_addr::TrustedNetworks;
use crate::config::declare::{Flag, Key, Section, keys};
use crate::config::sources::Layers;
use crate::config::values::{duration_between, size_between, whole};
use crate::config::{ConfigError, SmtpSettings};
use crate::mail::MAX_RECIPIENTS;

const S: Section = Section::Smtp;

const ADDRESS_OR_OFF: &str = "a socket address host:port such as 127.0.0.1:2525, or `off`";

/// A listening address, or `off` (`Some(None)`).
fn address_or_off(s: &str) -> Option<Option<SocketAddr>> {
    if s.eq_ignore_ascii_case("off") {
        return Some(None);
    }
    s.parse().ok().map(Some)
}

fn pem_path(s: &str) -> Option<PathBuf> {
    (!s.is_empty()).then(|| PathBuf::from(s))
}

keys! {
    SMTP_LISTEN: Option<SocketAddr> = Key::new(S, "smtp_listen",
        "address of the SMTP submission server (plain, with STARTTLS when a certificate is set); `off` \
         disables it (see [SMTP submission](smtp.md))",
        ADDRESS_OR_OFF, address_or_off)
        .flag(Flag::Serve("HOST:PORT")).default("127.0.0.1:2525");
    SMTPS_LISTEN: Option<SocketAddr> = Key::new(S, "smtps_listen",
        "address of the SMTP submission server with implicit TLS (SMTPS, Jira's `SECURE_SMTP`); needs \
         `smtp_tls_cert` and `smtp_tls_key`",
        ADDRESS_OR_OFF, address_or_off)
        .flag(Flag::Serve("HOST:PORT")).default("off");
    SMTP_TLS_CERT: PathBuf = Key::new(S, "smtp_tls_cert",
        "PEM file of the submission server's certificate chain; with `smtp_tls_key`, STARTTLS is offered",
        "a path to a PEM file", pem_path)
        .flag(Flag::Serve("FILE"));
    SMTP_TLS_KEY: PathBuf = Key::new(S, "smtp_tls_key", "PEM file of the certificate's private key",
        "a path to a PEM file", pem_path)
        .flag(Flag::Serve("FILE"));
    SMTP_TRUSTED_NETWORKS: TrustedNetworks = Key::new(S, "smtp_trusted_networks",
        "comma-separated IP addresses and CIDR blocks (a list in `herald.toml`) whose clients may submit \
         mail without AUTH",
        "a comma-separated list of IP addresses and CIDR blocks such as `10.0.0.0/8, 192.0.2.7` (or empty)",
        TrustedNetworks::parse)
        .flag(Flag::Serve("LIST")).default("");
    SMTP_MAX_CONNECTIONS: u32 = Key::new(S, "smtp_max_connections",
        "SMTP sessions served at once; a client beyond them is answered 421 and closed",
        "a whole number from 1 to 1000000", |s| whole(s, 1, 1_000_000))
        .flag(Flag::Serve("N")).default("1000");
    SMTP_MAX_CONNECTIONS_PER_CLIENT: u32 = Key::new(S, "smtp_max_connections_per_client",
        "SMTP sessions one client address may have open at once (trusted networks are exempt); one more is \
         answered 421 and closed",
        "a whole number from 1 to 1000000", |s| whole(s, 1, 1_000_000))
        .flag(Flag::Serve("N")).default("50");
    SMTP_DATA_MEMORY: usize = Key::new(S, "smtp_data_memory",
        "memory all SMTP sessions together may hold for the messages they are receiving (never less than \
         one `mail_max_size` message); a message beyond it is answered `452 4.3.1` and the client retries",
        "a size of at least 64KiB such as `256MiB`", |s| size_between(s, 64 << 10, usize::MAX))
        .flag(Flag::Serve("SIZE")).default("256MiB");
    SMTP_MAX_RECIPIENTS: usize = Key::new(S, "smtp_max_recipients",
        "recipients of one message; further RCPT TO are answered 452",
        "a whole number from 1 to 500", |s| whole(s, 1, MAX_RECIPIENTS))
        .flag(Flag::Serve("N")).default("500");
    SMTP_COMMAND_TIMEOUT: Duration = Key::new(S, "smtp_command_timeout",
        "time a client has to send each command; an idle session is then closed with 421 (RFC 5321 asks for at \
         least 5 minutes; Jira keeps its connection open for 10)",
        "a duration from 1s to 1h such as `5m`",
        |s| duration_between(s, Duration::from_secs(1), Duration::from_secs(3600)))
        .flag(Flag::Serve("DURATION")).default("10m");
    SMTP_DATA_TIMEOUT: Duration = Key::new(S, "smtp_data_timeout",
        "time a client has to send each line of a message during DATA (a client that trickles bytes is \
         timed out too); the session is then closed with 421",
        "a duration from 1s to 1h such as `10m`",
        |s| duration_between(s, Duration::from_secs(1), Duration::from_secs(3600)))
        .flag(Flag::Serve("DURATION")).default("10m");
    SMTP_MAX_ERRORS: u32 = Key::new(S, "smtp_max_errors",
        "refused commands in one session before it is closed with 421",
        "a whole number from 1 to 1000", |s| whole(s, 1, 1000))
        .flag(Flag::Serve("N")).default("10");
    SMTP_GREET_WAIT: Duration = Key::new(S, "smtp_greet_wait",
        "time the server waits before its greeting; a client that speaks in it is refused 554 and closed \
         (`0s`: only what arrived before the greeting is checked)",
        "a duration from 0s to 1m such as `0s` or `2s`",
        |s| duration_between(s, Duration::ZERO, Duration::from_secs(60)))
        .flag(Flag::Serve("DURATION")).default("0s");
}

pub(in crate::config) fn read(layers: &Layers) -> Result<SmtpSettings, ConfigError> {
    Ok(SmtpSettings {
        listen: layers.required(&SMTP_LISTEN)?,
        smtps_listen: layers.required(&SMTPS_LISTEN)?,
        tls_cert: layers.optional(&SMTP_TLS_CERT)?,
        tls_key: layers.optional(&SMTP_TLS_KEY)?,
        trusted_networks: layers.required(&SMTP_TRUSTED_NETWORKS)?,
        max_connections: layers.required(&SMTP_MAX_CONNECTIONS)?,
        max_connections_per_client: layers.required(&SMTP_MAX_CONNECTIONS_PER_CLIENT)?,
        data_memory: layers.required(&SMTP_DATA_MEMORY)?,
        max_recipients: layers.required(&SMTP_MAX_RECIPIENTS)?,
        command_timeout: layers.required(&SMTP_COMMAND_TIMEOUT)?,
        data_timeout: layers.required(&SMTP_DATA_TIMEOUT)?,
        max_errors: layers.required(&SMTP_MAX_ERRORS)?,
        greet_wait: layers.required(&SMTP_GREET_WAIT)?,
    })
}
