//! Throttling of repeated authentication failures.
//!
//! Failures are counted per (client address, user name) so that one misconfigured poller behind a
//! shared NAT address does not lock out its neighbours, and per client address with a ten times
//! higher limit so that password spraying across many user names is slowed down too. A key that
//! reaches its limit is refused for the rest of its window, without any password being checked.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before expired ones are pruned; bounds memory under a flood of distinct keys.
const PRUNE_ABOVE: usize = 10_000;
const ADDRESS_LIMIT_FACTOR: u32 = 10;

pub struct Throttle {
    max_failures: u32,
    window: Duration,
    entries: Mutex<HashMap<Key, Entry>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    Principal(IpAddr, String),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    window_start: Instant,
}

impl Throttle {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures: max_failures.max(1),
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn limit(&self, key: &Key) -> u32 {
        match key {
            Key::Address(_) => self.max_failures.saturating_mul(ADDRESS_LIMIT_FACTOR),
            Key::Principal(..) => self.max_failures,
        }
    }

    fn keys(client: IpAddr, principal: &str) -> [Key; 2] {
        [Key::Address(client), Key::Principal(client, principal.to_owned())]
    }

    /// `Err(retry_after)` when this client may not try again yet.
    pub fn check(&self, client: IpAddr, principal: &str, now: Instant) -> Result<(), Duration> {
        let entries = self.lock();
        let mut wait = Duration::ZERO;
        for key in Self::keys(client, principal) {
            if let Some(entry) = entries.get(&key) {
                let elapsed = now.saturating_duration_since(entry.window_start);
                if elapsed < self.window && entry.failures >= self.limit(&key) {
                    wait = wait.max(self.window - elapsed);
                }
            }
        }
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    pub fn record_failure(&self, client: IpAddr, principal: &str, now: Instant) {
        let mut entries = self.lock();
        if entries.len() > PRUNE_ABOVE {
            entries.retain(|_, e| now.saturating_duration_since(e.window_start) < self.window);
        }
        for key in Self::keys(client, principal) {
            let entry = entries.entry(key).or_insert(Entry {
                failures: 0,
                window_start: now,
            });
            if now.saturating_duration_since(entry.window_start) >= self.window {
                *entry = Entry {
                    failures: 0,
                    window_start: now,
                };
            }
            entry.failures = entry.failures.saturating_add(1);
        }
    }

    /// Forgets this principal's failures after a success (the address-wide count stays).
    pub fn record_success(&self, client: IpAddr, principal: &str) {
        self.lock().remove(&Key::Principal(client, principal.to_owned()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        // A poisoned lock only means another thread panicked mid-update of a counter; the map is
        // still usable, and refusing all logins would be worse.
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "alice";

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn blocks_after_the_limit_until_the_window_ends() {
        let throttle = Throttle::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(throttle.check(ip(1), ALICE, t0).is_ok(), "attempt {i}");
            throttle.record_failure(ip(1), ALICE, t0);
        }
        let wait = throttle.check(ip(1), ALICE, t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(throttle.check(ip(1), ALICE, t0 + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn other_clients_and_other_users_are_not_affected() {
        let throttle = Throttle::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        throttle.record_failure(ip(1), ALICE, t0);
        throttle.record_failure(ip(1), ALICE, t0);
        assert!(throttle.check(ip(1), ALICE, t0).is_err());
        assert!(throttle.check(ip(2), ALICE, t0).is_ok());
        assert!(throttle.check(ip(1), "bob", t0).is_ok());
    }

    #[test]
    fn spraying_many_users_from_one_address_is_throttled_too() {
        let throttle = Throttle::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..20 {
            throttle.record_failure(ip(1), &format!("user{i}"), t0);
        }
        assert!(throttle.check(ip(1), "someone-new", t0).is_err());
    }

    #[test]
    fn success_clears_the_principal_count() {
        let throttle = Throttle::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        throttle.record_failure(ip(1), ALICE, t0);
        throttle.record_success(ip(1), ALICE);
        throttle.record_failure(ip(1), ALICE, t0);
        assert!(throttle.check(ip(1), ALICE, t0).is_ok());
    }
}
