//! The console: the address users reach it at, and how long a session lasts.

use std::time::Duration;

use crate::config::declare::{Key, Section, keys};
use crate::config::sources::Layers;
use crate::config::values::{DURATION, parse_duration};
use crate::config::{ConfigError, ConsoleSettings};

const S: Section = Section::Console;

keys! {
    PUBLIC_URL: String = Key::new(S, "public_url",
        "the address users reach Herald at (`https://herald.example.com`): links in alert mail; with `https`, \
         console cookies are `Secure`",
        "an http or https URL such as https://herald.example.com",
        |s| {
            let url = url::Url::parse(s).ok()?;
            let usable = matches!(url.scheme(), "http" | "https") && url.host().is_some();
            usable.then(|| s.trim_end_matches('/').to_owned())
        });
    SESSION_IDLE_TIMEOUT: Duration = Key::new(S, "session_idle_timeout",
        "a console session ends after this long without a request", DURATION, parse_duration)
        .default("8h");
    SESSION_LIFETIME: Duration = Key::new(S, "session_lifetime",
        "a console session ends this long after sign-in, however active", DURATION, parse_duration)
        .default("7d");
}

pub(in crate::config) fn read(layers: &Layers) -> Result<ConsoleSettings, ConfigError> {
    Ok(ConsoleSettings {
        public_url: layers.optional(&PUBLIC_URL)?,
        session_idle_timeout: layers.required(&SESSION_IDLE_TIMEOUT)?,
        session_lifetime: layers.required(&SESSION_LIFETIME)?,
    })
}
