//! The HTTP server: where it listens, and the limits it puts on clients.

use std::net::SocketAddr;
use std::time::Duration;

use crate::client_addr::TrustedProxies;
use crate::config::declare::{Flag, Key, Section, keys};
use crate::config::sources::Layers;
use crate::config::values::{DURATION, duration_between, parse_duration, size_between, whole};
use crate::config::{ConfigError, HttpSettings};

const S: Section = Section::Http;

keys! {
    LISTEN: SocketAddr = Key::new(S, "listen", "address to serve HTTP on",
        "a socket address host:port such as 127.0.0.1:8080", |s| s.parse().ok())
        .flag(Flag::Serve("HOST:PORT")).default("127.0.0.1:8080");
    REQUEST_TIMEOUT: Duration = Key::new(S, "request_timeout", "longer requests are answered 503",
        DURATION, parse_duration)
        .flag(Flag::Serve("DURATION")).default("30s");
    BODY_LIMIT: usize = Key::new(S, "body_limit", "larger request bodies are answered 413",
        "a size from 1KiB to 1GiB such as `1MiB`, `512KiB` or `65536`",
        |s| size_between(s, 1 << 10, 1 << 30))
        .flag(Flag::Serve("SIZE")).default("1MiB");
    HTTP_HEADER_TIMEOUT: Duration = Key::new(S, "http_header_timeout",
        "time a client has to send a request's headers, from connecting or from the end of the previous \
         response; slower or idle connections are closed (1s to 10m)",
        "a duration from 1s to 10m such as `10s`",
        |s| duration_between(s, Duration::from_secs(1), Duration::from_secs(600)))
        .flag(Flag::Serve("DURATION")).default("10s");
    HTTP_MAX_CONNECTIONS: u32 = Key::new(S, "http_max_connections",
        "HTTP connections served at once; further clients wait in the listen backlog",
        "a whole number from 1 to 1000000", |s| whole(s, 1, 1_000_000))
        .flag(Flag::Serve("N")).default("1024");
    SHUTDOWN_TIMEOUT: Duration = Key::new(S, "shutdown_timeout",
        "time given to requests in flight on SIGTERM/SIGINT", DURATION, parse_duration)
        .flag(Flag::Serve("DURATION")).default("30s");
    TRUSTED_PROXIES: TrustedProxies = Key::new(S, "trusted_proxies",
        "comma-separated IP addresses and CIDR blocks of reverse proxies (a list in `herald.toml`); only \
         from these is the client address taken from `X-Forwarded-For` or `Forwarded`",
        "a comma-separated list of IP addresses and CIDR blocks such as `10.0.0.0/8, 192.0.2.7` (or empty)",
        TrustedProxies::parse)
        .flag(Flag::Serve("LIST")).default("");
}

pub(in crate::config) fn read(layers: &Layers) -> Result<HttpSettings, ConfigError> {
    Ok(HttpSettings {
        listen: layers.required(&LISTEN)?,
        request_timeout: layers.required(&REQUEST_TIMEOUT)?,
        body_limit: layers.required(&BODY_LIMIT)?,
        header_timeout: layers.required(&HTTP_HEADER_TIMEOUT)?,
        max_connections: layers.required(&HTTP_MAX_CONNECTIONS)?,
        shutdown_timeout: layers.required(&SHUTDOWN_TIMEOUT)?,
        trusted_proxies: layers.required(&TRUSTED_PROXIES)?,
    })
}
