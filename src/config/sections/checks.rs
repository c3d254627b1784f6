//! Integration checks: how long a verdict is trusted, and how the background sweep runs.

use std::time::Duration;

use crate::config::ConfigError;
use crate::config::declare::{Flag, Key, Section, keys};
use crate::config::sources::Layers;
use crate::config::values::{DURATION, duration_between, parse_duration, whole};
use crate::integrations::CheckSettings;

const S: Section = Section::Checks;

keys! {
    CHECK_MAX_AGE: Duration = Key::new(S, "check_max_age",
        "a verdict is served from cache this long; concurrent checks of one integration share one run; `0s` \
         checks Jira on every request",
        "a duration such as `30s` (`0s` checks Jira on every request)", |s| humantime::parse_duration(s).ok())
        .flag(Flag::Serve("DURATION")).default("30s");
    CHECK_INTERVAL: Duration = Key::new(S, "check_interval",
        "the background sweep re-verifies every integration this often", DURATION, parse_duration)
        .flag(Flag::Serve("DURATION")).default("5m");
    CHECK_CONCURRENCY: usize = Key::new(S, "check_concurrency",
        "integrations the sweep (and `check --all`) checks at once", "a whole number from 1 to 1024",
        |s| whole(s, 1, 1024))
        .flag(Flag::Serve("N")).default("32");
    CHECK_TIMEOUT: Duration = Key::new(S, "check_timeout",
        "overall budget of one check, 100ms to 5m (an integration's `timeout` overrides it)",
        "a duration from 100ms to 5m such as `10s`",
        |s| duration_between(s, Duration::from_millis(100), Duration::from_secs(300)))
        .flag(Flag::Serve("DURATION")).default("10s");
}

pub(in crate::config) fn read(layers: &Layers) -> Result<CheckSettings, ConfigError> {
    Ok(CheckSettings {
        max_age: layers.required(&CHECK_MAX_AGE)?,
        interval: layers.required(&CHECK_INTERVAL)?,
        concurrency: layers.required(&CHECK_CONCURRENCY)?,
        timeout: layers.required(&CHECK_TIMEOUT)?,
    })
}
