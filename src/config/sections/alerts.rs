//! Health alerts: who receives them, and when a condition is worth a mail.

use std::time::Duration;

use crate::alerts::AlertSettings;
use crate::config::ConfigError;
use crate::config::declare::{Key, Section, keys};
use crate::config::sources::Layers;
use crate::config::values::{DURATION, parse_addresses, parse_duration};

const S: Section = Section::Alerts;

keys! {
    ALERT_EMAILS: Vec<String> = Key::new(S, "alert_emails", "comma-separated recipients of health alerts",
        "a comma-separated list of email addresses such as `ops@example.com, oncall@example.com`",
        parse_addresses)
        .default("").default_prose("none (alerts off)");
    ALERT_INTERVAL: Duration = Key::new(S, "alert_interval", "how often the alert rules are evaluated",
        DURATION, parse_duration)
        .default("30s");
    ALERT_DEBOUNCE: Duration = Key::new(S, "alert_debounce",
        "how long a change must hold before it is mailed (`0s`: at once)",
        "a duration such as `2m` (`0s` mails at the first evaluation that sees a change)",
        |s| humantime::parse_duration(s).ok())
        .default("2m");
    ALERT_ERROR_QUEUE: i64 = Key::new(S, "alert_error_queue",
        "alert when the cluster's error queue holds more messages than this", "a whole number from 0 to 1000000000",
        |s| s.parse::<i64>().ok().filter(|n| (0..=1_000_000_000).contains(n)))
        .default("10");
    ALERT_QUEUE_AGE: Duration = Key::new(S, "alert_queue_age",
        "alert when the oldest waiting message, or an integration's oldest ticket event not yet applied, is \
         older than this", DURATION, parse_duration)
        .default("30m");
    ALERT_STOPPED_NODE: Duration = Key::new(S, "alert_stopped_node",
        "alert for a node that stopped cleanly only once it has stayed stopped this long (`0s`: as soon as it \
         stops; a node that falls silent alerts at once)",
        "a duration such as `30m` (`0s` alerts as soon as a node stops)", |s| humantime::parse_duration(s).ok())
        .default("30m");
    ALERT_RELAY_DOWN: Duration = Key::new(S, "alert_relay_down",
        "alert when a node's mail relay has been down this long (`0s`: as soon as it goes down)",
        "a duration such as `5m` (`0s` alerts as soon as a relay goes down)", |s| humantime::parse_duration(s).ok())
        .default("5m");
}

pub(in crate::config) fn read(layers: &Layers) -> Result<AlertSettings, ConfigError> {
    Ok(AlertSettings {
        recipients: layers.required(&ALERT_EMAILS)?,
        interval: layers.required(&ALERT_INTERVAL)?,
        debounce: layers.required(&ALERT_DEBOUNCE)?,
        error_queue: layers.required(&ALERT_ERROR_QUEUE)?,
        queue_age: layers.required(&ALERT_QUEUE_AGE)?,
        stopped_node: layers.required(&ALERT_STOPPED_NODE)?,
        relay_down: layers.required(&ALERT_RELAY_DOWN)?,
    })
}
