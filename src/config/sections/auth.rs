//! Signing in: the first administrator's password, the credential cache and the throttle.

use std::time::Duration;

use crate::auth::AuthSettings;
use crate::config::ConfigError;
use crate::config::declare::{Flag, Key, Section, keys};
use crate::config::sources::Layers;
use crate::config::values::{DURATION, parse_duration, whole};
use crate::secret::Secret;

const S: Section = Section::Auth;

keys! {
    ADMIN_PASSWORD: Secret = Key::new(S, "admin_password",
        "password of `admin`, used only when the database has no user; must follow the \
         [password rule](security.md#passwords)",
        "a password of at least 8 characters without control characters (tab, newline, U+0000-U+001F, \
         U+007F-U+009F), at most 1024 bytes, not starting with `hrld_`",
        |s| {
            let password = Secret::new(s);
            crate::auth::password::check_policy(&password).ok().map(|()| password)
        })
        .secret();
    AUTH_CACHE_TTL: Duration = Key::new(S, "auth_cache_ttl",
        "how long verified credentials are trusted; `0s` disables",
        "a duration such as `30s` (`0s` disables the cache)", |s| humantime::parse_duration(s).ok())
        .flag(Flag::Serve("DURATION")).default("30s");
    AUTH_MAX_FAILURES: u32 = Key::new(S, "auth_max_failures",
        "password checks that may fail per client address and user name and window; more passwords get 429 \
         unchecked",
        "a whole number from 1 to 1000000", |s| whole(s, 1, 1_000_000))
        .flag(Flag::Serve("N")).default("10");
    AUTH_LOCKOUT: Duration = Key::new(S, "auth_lockout",
        "window for counting failures, and how long a throttled client waits", DURATION, parse_duration)
        .flag(Flag::Serve("DURATION")).default("60s");
}

pub(in crate::config) fn read(layers: &Layers) -> Result<AuthSettings, ConfigError> {
    Ok(AuthSettings {
        admin_password: layers.optional(&ADMIN_PASSWORD)?,
        cache_ttl: layers.required(&AUTH_CACHE_TTL)?,
        max_failures: layers.required(&AUTH_MAX_FAILURES)?,
        lockout: layers.required(&AUTH_LOCKOUT)?,
    })
}
