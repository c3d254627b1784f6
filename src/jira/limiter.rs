//! How hard Herald may press one Jira: at most N requests in flight, at most R requests a second, and
//! none at all while Jira has asked for a pause.
//!
//! One [`Limiter`] per integration, shared by every request of it (the worker's, a test event's).
//! The pause is the point: when Jira answers 429 with `Retry-After` (or reports an exhausted
//! `X-RateLimit-Remaining` with its `X-RateLimit-Reset`), the client sets "blocked until", and every
//! request of that integration, including those already waiting for a token, waits until then.
//! Alertmanager's notifier ignores `Retry-After` (alertmanager#4918) and so keeps meeting 429s;
//! Herald sends nothing while a pause runs, so a burst does not turn into a stream of 429s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// A limiter's settings. The defaults are well below what Jira Cloud allows a tenant (its
/// burst limits are per second and its quota is per hour) and what a Data Center node serves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimiterSettings {
    /// Requests in flight at once (default 4).
    pub concurrency: usize,
    /// Sustained requests per second (default 10).
    pub per_second: f64,
    /// Requests that may go at once after a quiet spell (default 10; at least 1).
    pub burst: u32,
}

impl Default for LimiterSettings {
    fn default() -> Self {
        Self {
            concurrency: 4,
            per_second: 10.0,
            burst: 10,
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The limiter of one integration: a semaphore, a token bucket and a pause.
#[derive(Debug)]
pub struct Limiter {
    settings: LimiterSettings,
    permits: Arc<Semaphore>,
    bucket: Mutex<Bucket>,
    blocked_until: Mutex<Option<Instant>>,
    /// 429s (and 503s with `Retry-After`) since [`Limiter::take_throttled`] last read them.
    throttled: AtomicU64,
}

/// Held for the duration of one request; frees its concurrency slot when dropped.
#[derive(Debug)]
pub struct Permit {
    _slot: Option<OwnedSemaphorePermit>,
}

impl Limiter {
    pub fn new(settings: LimiterSettings) -> Arc<Limiter> {
        let settings = LimiterSettings {
            concurrency: settings.concurrency.max(1),
            per_second: if settings.per_second.is_finite() && settings.per_second > 0.0 {
                settings.per_second
            } else {
                LimiterSettings::default().per_second
            },
            burst: settings.burst.max(1),
        };
        Arc::new(Limiter {
            permits: Arc::new(Semaphore::new(settings.concurrency)),
            bucket: Mutex::new(Bucket {
                tokens: f64::from(settings.burst),
                at: Instant::now(),
            }),
            blocked_until: Mutex::new(None),
            throttled: AtomicU64::new(0),
            settings,
        })
    }

    pub fn settings(&self) -> LimiterSettings {
        self.settings
    }

    /// Waits for a concurrency slot, for the end of any pause, and for a token, in that order.
    pub async fn acquire(&self) -> Permit {
        // The semaphore is never closed, so this only fails if it were; go on without a slot then.
        let slot = self.permits.clone().acquire_owned().await.ok();
        let mut token = false;
        loop {
            if let Some(until) = self.blocked_until() {
                tokio::time::sleep_until(until).await;
                continue;
            }
            if token {
                break;
            }
            let wait = self.reserve_token();
            token = true;
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        Permit { _slot: slot }
    }

    /// Counts one answer of Jira's that asked Herald to slow down.
    pub fn note_throttled(&self) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
    }

    /// The throttled answers counted since the last call (for the metrics).
    pub fn take_throttled(&self) -> u64 {
        self.throttled.swap(0, Ordering::Relaxed)
    }

    /// Sends nothing before `now + wait`: what Jira asked for. A longer pause already set stays.
    pub fn pause_for(&self, wait: Duration) {
        let Some(until) = Instant::now().checked_add(wait) else {
            return;
        };
        let mut blocked = self.blocked_until.lock().unwrap_or_else(|e| e.into_inner());
        if blocked.is_none_or(|current| current < until) {
            *blocked = Some(until);
        }
    }

    /// The end of the current pause, if one is running.
    pub fn blocked_until(&self) -> Option<Instant> {
        let mut blocked = self.blocked_until.lock().unwrap_or_else(|e| e.into_inner());
        match *blocked {
            Some(until) if until > Instant::now() => Some(until),
            Some(_) => {
                *blocked = None;
                None
            }
            None => None,
        }
    }

    /// Takes a token, going into debt when none is left; returns how long the debt takes to repay,
    /// so waiters are served in the order they came and never more than the rate.
    fn reserve_token(&self) -> Duration {
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.settings.per_second).min(f64::from(self.settings.burst));
        bucket.at = now;
        bucket.tokens -= 1.0;
        if bucket.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-bucket.tokens / self.settings.per_second)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(concurrency: usize, per_second: f64, burst: u32) -> Arc<Limiter> {
        Limiter::new(LimiterSettings {
            concurrency,
            per_second,
            burst,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_at_once_then_the_rate_holds() {
        let limiter = limiter(100, 10.0, 5);
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..15 {
            drop(limiter.acquire().await);
            times.push(start.elapsed());
        }
        assert!(times[..5].iter().all(|t| t.is_zero()), "{times:?}");
        // The 15th request is the 10th beyond the burst: one second at 10/s.
        assert_eq!(times[14], Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn no_request_goes_during_a_pause() {
        let limiter = limiter(4, 1000.0, 100);
        limiter.pause_for(Duration::from_secs(2));
        limiter.pause_for(Duration::from_secs(1));
        let start = Instant::now();
        drop(limiter.acquire().await);
        assert!(start.elapsed() >= Duration::from_secs(2));
        assert_eq!(limiter.blocked_until(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_bounded() {
        let limiter = limiter(2, 1000.0, 100);
        let a = limiter.acquire().await;
        let _b = limiter.acquire().await;
        let third = tokio::spawn({
            let limiter = limiter.clone();
            async move { limiter.acquire().await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!third.is_finished());
        drop(a);
        assert!(third.await.is_ok());
    }

    #[test]
    fn nonsense_settings_fall_back_to_sane_ones() {
        let l = limiter(0, f64::NAN, 0);
        assert_eq!(
            l.settings(),
            LimiterSettings {
                concurrency: 1,
                per_second: 10.0,
                burst: 1
            }
        );
    }
}
