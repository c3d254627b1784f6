//! Throttling of password guessing.
//!
//! **What is limited: password checks that fail.** Failures are counted per (client address, user
//! name), so that one misconfigured poller behind a shared address does not lock out its neighbours,
//! and per client address with a ten times higher limit, so that spraying one password across many
//! user names is slowed down too. The client address is the peer's, or the one a trusted proxy
//! reports (`crate::client_addr`).
//!
//! **A check is reserved before it runs.** A password check first takes a slot in both keys, under the
//! lock, and is refused (429, no hash computed) when the failures already counted plus the checks in
//! flight reach the limit. Afterwards the slot is settled: a success frees it (and forgets the user's
//! failures), a failure turns it into a counted failure, a database error frees it (no password was
//! compared), and a slot dropped unsettled (the request was cancelled mid-check) counts as a failure.
//! So however many requests arrive at once, at most `max_failures` wrong passwords per key and window
//! ever reach Argon2: counting failures only after the check, as before, let 60 concurrent guesses all
//! be checked.
//!
//! **Credentials that can be verified cheaply are not blocked** (see `Authenticator::authenticate`):
//! - A credential in the credential cache (verified within `HERALD_AUTH_CACHE_TTL`) is honoured before
//!   any slot is asked for: a poller keeps working while someone at its address guesses passwords.
//! - API tokens are never throttled and their failures count nowhere. A token has 256 random bits:
//!   guessing one is infeasible at any request rate, and checking one is a SHA-256 and one indexed
//!   lookup, not an Argon2 hash. Counting bad tokens would protect nothing and would let one client's
//!   stale token lock every other token client of its address out.
//! - Only a password that is neither cached nor checkable without Argon2 is refused while its key is
//!   locked, the right one included: checking it would cost a hash and be one more guess. An innocent
//!   client meets this only when it shares the guesser's address *and* user name and its password is
//!   not cached; behind a reverse proxy, `HERALD_TRUSTED_PROXIES` gives each client its own address.
//!
//! **The cache must not become a guessing oracle.** Honouring the cache for a locked key means a
//! refused request still tells whether its password was a cached one. Two things bound that: the
//! cache key includes the client address, so a guess can only hit a credential verified from the
//! guesser's own address; and refused attempts count as failures, so a key that reaches
//! [`PROBE_LIMIT_FACTOR`] times its limit in a window is closed completely, cache included, for the
//! rest of the window (`check_open`). Up to then an innocent poller at the guesser's address keeps
//! working; past it, the two are indistinguishable and guessing must stop.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Entries kept before expired ones are pruned; bounds memory under a flood of distinct keys.
const PRUNE_ABOVE: usize = 10_000;
const ADDRESS_LIMIT_FACTOR: u32 = 10;
/// Attempts (checked or refused) after which a key is closed even to cached credentials.
pub const PROBE_LIMIT_FACTOR: u32 = 10;

pub struct Throttle {
    max_failures: u32,
    window: Duration,
    entries: Mutex<HashMap<Key, Entry>>,
    /// The map's size past which the next reservation prunes it (changed under `entries`' lock).
    prune_above: AtomicUsize,
    /// Woken whenever a check settles, for requests waiting on [`Refusal::Busy`].
    settled: tokio::sync::Notify,
}

/// Why [`Throttle::reserve`] gave no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Checks in flight fill the key's remaining allowance. Nothing failed: the request waits for
    /// one to settle (see [`Throttle::settled`]) and looks again, so a burst of concurrent requests
    /// with the right password is served (the first success fills the credential cache) instead
    /// of being refused.
    Busy,
    /// Too many failures in this window; retry after the duration. Counted as an attempt.
    Locked(Duration),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    Principal(IpAddr, String),
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// Failed and refused attempts in the current window.
    failures: u32,
    /// Reserved checks not settled yet.
    in_flight: u32,
    /// Start of the window, set by its first failure.
    window_start: Option<Instant>,
}

impl Entry {
    /// Forgets the failures of a window that has ended.
    fn refresh(&mut self, now: Instant, window: Duration) {
        if self
            .window_start
            .is_some_and(|start| now.saturating_duration_since(start) >= window)
        {
            self.failures = 0;
            self.window_start = None;
        }
    }

    fn fail(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        self.window_start.get_or_insert(now);
    }

    fn wait(&self, now: Instant, window: Duration) -> Duration {
        self.window_start.map_or(window, |start| {
            window.saturating_sub(now.saturating_duration_since(start))
        })
    }

    fn is_idle(&self) -> bool {
        self.failures == 0 && self.in_flight == 0
    }
}

impl Throttle {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures: max_failures.max(1),
            window,
            entries: Mutex::new(HashMap::new()),
            prune_above: AtomicUsize::new(PRUNE_ABOVE),
            settled: tokio::sync::Notify::new(),
        }
    }

    fn limit(&self, key: &Key) -> u32 {
        match key {
            Key::Address(_) => self.max_failures.saturating_mul(ADDRESS_LIMIT_FACTOR),
            Key::Principal(..) => self.max_failures,
        }
    }

    fn keys(client: IpAddr, principal: &str) -> [Key; 2] {
        let client = network_of(client);
        [Key::Address(client), Key::Principal(client, principal.to_owned())]
    }

    /// `Err(retry_after)` when this client and user name made so many attempts in this window that
    /// not even a cached credential is honoured for them.
    pub fn check_open(&self, client: IpAddr, principal: &str, now: Instant) -> Result<(), Duration> {
        let mut entries = self.lock();
        let mut wait = Duration::ZERO;
        for key in Self::keys(client, principal) {
            let limit = self.limit(&key).saturating_mul(PROBE_LIMIT_FACTOR);
            if let Some(entry) = entries.get_mut(&key) {
                entry.refresh(now, self.window);
                if entry.failures >= limit {
                    wait = wait.max(entry.wait(now, self.window));
                }
            }
        }
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    /// Completes when a reserved check settles. Create (and `enable`) it before calling
    /// [`Throttle::reserve`], so that a settlement in between is not missed.
    pub fn settled(&self) -> tokio::sync::futures::Notified<'_> {
        self.settled.notified()
    }

    /// Reserves one password check for this client and user name. Refused with
    /// [`Refusal::Locked`] when the failures counted reach the limit of either key (the refusal is
    /// counted as an attempt), or [`Refusal::Busy`] when the failures plus the checks in flight do.
    pub fn reserve(&self, client: IpAddr, principal: &str, now: Instant) -> Result<Reservation<'_>, Refusal> {
        let mut entries = self.lock();
        // Pruning walks the whole map under the lock: do it only when the map has doubled since the
        // last prune, so a map full of live entries is not walked again on every attempt.
        let prune_above = self.prune_above.load(Ordering::Relaxed);
        if entries.len() > prune_above {
            entries.retain(|_, e| {
                e.refresh(now, self.window);
                !e.is_idle()
            });
            self.prune_above
                .store(PRUNE_ABOVE.max(entries.len().saturating_mul(2)), Ordering::Relaxed);
        }
        let keys = Self::keys(client, principal);
        let mut wait = Duration::ZERO;
        let mut busy = false;
        for key in &keys {
            if let Some(entry) = entries.get_mut(key) {
                entry.refresh(now, self.window);
                let limit = self.limit(key);
                if entry.failures >= limit {
                    wait = wait.max(entry.wait(now, self.window));
                } else if entry.failures.saturating_add(entry.in_flight) >= limit {
                    busy = true;
                }
            }
        }
        if !wait.is_zero() {
            // A refusal counts on the keys that exist; it never creates one, or a locked address
            // trying ever new user names would grow the map with every (free) attempt.
            for key in &keys {
                if let Some(entry) = entries.get_mut(key) {
                    entry.fail(now);
                }
            }
            return Err(Refusal::Locked(wait));
        }
        if busy {
            return Err(Refusal::Busy);
        }
        for key in keys {
            let entry = entries.entry(key).or_default();
            entry.in_flight = entry.in_flight.saturating_add(1);
        }
        Ok(Reservation {
            throttle: self,
            client,
            principal: principal.to_owned(),
            settled: false,
        })
    }

    fn settle(&self, client: IpAddr, principal: &str, outcome: Outcome, now: Instant) -> bool {
        let mut entries = self.lock();
        let mut locked_now = false;
        for key in Self::keys(client, principal) {
            let limit = self.limit(&key);
            let is_principal = matches!(key, Key::Principal(..));
            let Some(entry) = entries.get_mut(&key) else { continue };
            entry.in_flight = entry.in_flight.saturating_sub(1);
            entry.refresh(now, self.window);
            match outcome {
                Outcome::Failed => {
                    entry.fail(now);
                    locked_now |= is_principal && entry.failures == limit;
                }
                // A success forgets this user's failures (the address-wide count stays).
                Outcome::Succeeded if is_principal => {
                    entry.failures = 0;
                    entry.window_start = None;
                }
                Outcome::Succeeded | Outcome::Released => {}
            }
            if entry.is_idle() {
                entries.remove(&key);
            }
        }
        drop(entries);
        self.settled.notify_waiters();
        locked_now
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        // A poisoned lock only means another thread panicked mid-update of a counter; the map is
        // still usable, and refusing all logins would be worse.
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The unit a client is counted by: its IPv4 address, or its IPv6 /64. One IPv6 host usually holds
/// a whole /64 and may take a new address for every request, so counting by address would give it
/// a fresh allowance each time.
fn network_of(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
    }
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Succeeded,
    Failed,
    Released,
}

/// One reserved password check. Settle it with [`Reservation::succeeded`], [`Reservation::failed`] or
/// [`Reservation::released`]; dropped unsettled, it counts as a failure.
#[must_use = "a reservation dropped unsettled counts as a failure"]
pub struct Reservation<'a> {
    throttle: &'a Throttle,
    client: IpAddr,
    principal: String,
    settled: bool,
}

impl Reservation<'_> {
    /// The password was right.
    pub fn succeeded(mut self) {
        self.settle(Outcome::Succeeded, Instant::now());
    }

    /// The password was wrong (at `now`); true when this failure locked the user name at this address.
    pub fn failed(mut self, now: Instant) -> bool {
        self.settle(Outcome::Failed, now)
    }

    /// No password was compared (the database could not be read).
    pub fn released(mut self) {
        self.settle(Outcome::Released, Instant::now());
    }

    fn settle(&mut self, outcome: Outcome, now: Instant) -> bool {
        self.settled = true;
        self.throttle.settle(self.client, &self.principal, outcome, now)
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.settle(Outcome::Failed, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Barrier};

    const ALICE: &str = "alice";

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    fn fail(throttle: &Throttle, client: IpAddr, principal: &str, now: Instant) {
        if let Ok(reservation) = throttle.reserve(client, principal, now) {
            reservation.failed(now);
        }
    }

    #[test]
    fn blocks_after_the_limit_until_the_window_ends() {
        let throttle = Throttle::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..3 {
            fail(&throttle, ip(1), ALICE, t0);
        }
        let refusal = throttle
            .reserve(ip(1), ALICE, t0 + Duration::from_secs(10))
            .err()
            .unwrap();
        assert_eq!(refusal, Refusal::Locked(Duration::from_secs(50)));
        assert!(throttle.reserve(ip(1), ALICE, t0 + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn other_clients_and_other_users_are_not_affected() {
        let throttle = Throttle::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        fail(&throttle, ip(1), ALICE, t0);
        fail(&throttle, ip(1), ALICE, t0);
        assert!(throttle.reserve(ip(1), ALICE, t0).is_err());
        assert!(throttle.reserve(ip(2), ALICE, t0).is_ok());
        assert!(throttle.reserve(ip(1), "bob", t0).is_ok());
    }

    #[test]
    fn spraying_many_users_from_one_address_is_throttled_too() {
        let throttle = Throttle::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..20 {
            fail(&throttle, ip(1), &format!("user{i}"), t0);
        }
        assert!(throttle.reserve(ip(1), "someone-new", t0).is_err());
    }

    #[test]
    fn success_clears_the_principal_count() {
        let throttle = Throttle::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        fail(&throttle, ip(1), ALICE, t0);
        throttle.reserve(ip(1), ALICE, t0).unwrap().succeeded();
        fail(&throttle, ip(1), ALICE, t0);
        assert!(throttle.reserve(ip(1), ALICE, t0).is_ok());
    }

    #[test]
    fn checks_in_flight_count_against_the_limit_until_settled() {
        let throttle = Throttle::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        let first = throttle.reserve(ip(1), ALICE, t0).unwrap();
        let second = throttle.reserve(ip(1), ALICE, t0).unwrap();
        // Two checks running: a third would exceed the limit even though nothing has failed yet.
        // It must wait, and waiting is not an attempt: nothing is counted against the user.
        for _ in 0..100 {
            assert_eq!(throttle.reserve(ip(1), ALICE, t0).err(), Some(Refusal::Busy));
        }
        first.succeeded();
        let third = throttle.reserve(ip(1), ALICE, t0).unwrap();
        second.released();
        third.released();
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_bit_network() {
        let throttle = Throttle::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        let host = |last: u16| IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, last]);
        fail(&throttle, host(1), ALICE, t0);
        fail(&throttle, host(2), ALICE, t0);
        assert!(
            throttle.reserve(host(3), ALICE, t0).is_err(),
            "a new address in the same /64"
        );
        let elsewhere = IpAddr::from([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1]);
        assert!(throttle.reserve(elsewhere, ALICE, t0).is_ok(), "another /64");
    }

    #[test]
    fn a_locked_address_trying_new_user_names_adds_no_entries() {
        let throttle = Throttle::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..20 {
            fail(&throttle, ip(1), &format!("user{i}"), t0);
        }
        let size = throttle.lock().len();
        for i in 0..10_000 {
            let refusal = throttle.reserve(ip(1), &format!("new-{i}"), t0).err();
            assert!(matches!(refusal, Some(Refusal::Locked(_))), "{i}");
        }
        assert_eq!(throttle.lock().len(), size, "refusals create no entries");
    }

    #[test]
    fn a_reservation_dropped_unsettled_counts_as_a_failure() {
        let throttle = Throttle::new(1, Duration::from_secs(60));
        let t0 = Instant::now();
        drop(throttle.reserve(ip(1), ALICE, t0).unwrap());
        assert!(throttle.reserve(ip(1), ALICE, t0).is_err());
    }

    #[test]
    fn concurrent_guesses_never_exceed_the_limit() {
        const GUESSES: usize = 64;
        let throttle = Arc::new(Throttle::new(10, Duration::from_secs(60)));
        let checked = Arc::new(AtomicU32::new(0));
        let start = Arc::new(Barrier::new(GUESSES));
        let attempted = Arc::new(Barrier::new(GUESSES));
        let threads: Vec<_> = (0..GUESSES)
            .map(|_| {
                let (throttle, checked) = (throttle.clone(), checked.clone());
                let (start, attempted) = (start.clone(), attempted.clone());
                std::thread::spawn(move || {
                    start.wait();
                    let reservation = throttle.reserve(ip(1), ALICE, Instant::now());
                    if reservation.is_ok() {
                        // Stands for the hasher: every reserved check reaches it.
                        checked.fetch_add(1, Ordering::SeqCst);
                    }
                    // Every guess is made while all reserved checks are still running.
                    attempted.wait();
                    if let Ok(reservation) = reservation {
                        reservation.failed(Instant::now());
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(checked.load(Ordering::SeqCst), 10);
        assert!(throttle.reserve(ip(1), ALICE, Instant::now()).is_err());
    }

    #[test]
    fn many_refused_attempts_close_the_key_even_to_cached_credentials() {
        let throttle = Throttle::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..2 * PROBE_LIMIT_FACTOR - 1 {
            fail(&throttle, ip(1), ALICE, t0);
            assert!(throttle.check_open(ip(1), ALICE, t0).is_ok());
        }
        assert!(throttle.reserve(ip(1), ALICE, t0).is_err());
        let wait = throttle
            .check_open(ip(1), ALICE, t0 + Duration::from_secs(5))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(55));
        assert!(throttle.check_open(ip(2), ALICE, t0).is_ok());
        assert!(throttle.check_open(ip(1), ALICE, t0 + Duration::from_secs(60)).is_ok());
    }
}
