//! Ticket delivery: whether this node applies events to Jira, how hard it presses each Jira, and how
//! long it keeps trying.

use std::time::Duration;

use crate::config::ConfigError;
use crate::config::declare::{Flag, Key, Section, keys};
use crate::config::sources::Layers;
use crate::config::values::{DURATION, duration_between, parse_bool, parse_duration, whole};
use crate::jira::{LimiterSettings, TicketClientSettings};
use crate::mail::RetryPolicy;
use crate::ticket_delivery::TicketDeliverySettings;

const S: Section = Section::Tickets;

keys! {
    TICKETS_DELIVERY: bool = Key::new(S, "tickets_delivery",
        "`false`: this node accepts and stores events but does not apply them to Jira", "`true` or `false`",
        parse_bool)
        .flag(Flag::Serve("BOOL")).default("true");
    TICKETS_WORKERS: usize = Key::new(S, "tickets_workers",
        "events this node applies at once, across integrations (one per problem at a time)",
        "a whole number from 1 to 256", |s| whole(s, 1, 256))
        .flag(Flag::Serve("N")).default("16");
    TICKETS_JIRA_CONCURRENCY: usize = Key::new(S, "tickets_jira_concurrency",
        "requests in flight to one integration's Jira, per node", "a whole number from 1 to 64", |s| whole(s, 1, 64))
        .flag(Flag::Serve("N")).default("4");
    TICKETS_JIRA_RATE: u32 = Key::new(S, "tickets_jira_rate",
        "requests a second to one integration's Jira, per node (also the burst after a quiet spell); Herald also \
         pauses for as long as Jira's `Retry-After` asks",
        "a whole number from 1 to 10000", |s| whole(s, 1, 10_000))
        .flag(Flag::Serve("N")).default("10");
    TICKETS_JIRA_TIMEOUT: Duration = Key::new(S, "tickets_jira_timeout",
        "limit for one request to Jira, answer included, 1s to 5m", "a duration from 1s to 5m such as `30s`",
        |s| duration_between(s, Duration::from_secs(1), Duration::from_secs(300)))
        .flag(Flag::Serve("DURATION")).default("30s");
    TICKETS_BACKOFF_INITIAL: Duration = Key::new(S, "tickets_backoff_initial",
        "first retry delay after a passing fault (network, 5xx); doubles per attempt", DURATION, parse_duration)
        .flag(Flag::Serve("DURATION")).default("10s");
    TICKETS_BACKOFF_MAX: Duration = Key::new(S, "tickets_backoff_max", "longest retry delay", DURATION,
        parse_duration)
        .flag(Flag::Serve("DURATION")).default("10m");
    TICKETS_MAX_AGE: Duration = Key::new(S, "tickets_max_age",
        "an event still failing this long after it was accepted goes to the error list", DURATION, parse_duration)
        .flag(Flag::Serve("DURATION")).default("3d");
    TICKETS_KEEP_DONE: Duration = Key::new(S, "tickets_keep_done",
        "applied events stay listed this long (each problem's issue is kept for good)", DURATION, parse_duration)
        .flag(Flag::Serve("DURATION")).default("7d");
}

pub(in crate::config) fn read(layers: &Layers) -> Result<TicketDeliverySettings, ConfigError> {
    let defaults = TicketDeliverySettings::default();
    let rate: u32 = layers.required(&TICKETS_JIRA_RATE)?;
    Ok(TicketDeliverySettings {
        delivery: layers.required(&TICKETS_DELIVERY)?,
        workers: layers.required(&TICKETS_WORKERS)?,
        limiter: LimiterSettings {
            concurrency: layers.required(&TICKETS_JIRA_CONCURRENCY)?,
            per_second: f64::from(rate),
            burst: rate,
        },
        client: TicketClientSettings {
            request_timeout: layers.required(&TICKETS_JIRA_TIMEOUT)?,
            ..defaults.client
        },
        retry: RetryPolicy {
            initial: layers.required(&TICKETS_BACKOFF_INITIAL)?,
            max: layers.required(&TICKETS_BACKOFF_MAX)?,
            max_age: layers.required(&TICKETS_MAX_AGE)?,
            ..defaults.retry
        },
        keep_done: layers.required(&TICKETS_KEEP_DONE)?,
        ..defaults
    })
}
