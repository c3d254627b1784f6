//! One budget of memory for the messages of all sessions (`HERALD_SMTP_DATA_MEMORY`).
//!
//! Each session may keep up to `HERALD_MAIL_MAX_SIZE` of DATA, so without a common bound
//! `HERALD_SMTP_MAX_CONNECTIONS` clients could make Herald hold gigabytes. A session takes budget in
//! chunks as its message grows and gives it back when the message is committed or refused: a
//! [`Reservation`] is a drop guard, so every way out of a session (an error, a timeout, the client
//! leaving, a panic) returns it.
//!
//! - **Never waits.** Taking budget either succeeds at once or fails: a session never blocks on
//!   budget that others hold, so no set of sessions can deadlock. One that cannot get budget stops
//!   keeping its message, reads it to the final dot, and answers `452 4.3.1` (the client tries again).
//! - **One message always fits.** The listener raises the budget to at least the largest message
//!   (plus its trace header), so a message alone is never refused for want of memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus_client::metrics::gauge::Gauge;

/// How much budget a session takes at a time: big enough to keep the shared counter quiet, small
/// enough that a session holds little more than it keeps.
pub(super) const CHUNK: usize = 64 * 1024;

/// The bytes that all sessions' messages may hold together.
pub(super) struct MemoryBudget {
    total: usize,
    used: AtomicUsize,
    /// `herald_smtp_data_memory_bytes`: the budget in use now.
    gauge: Gauge,
}

impl MemoryBudget {
    pub fn new(total: usize, gauge: Gauge) -> Arc<MemoryBudget> {
        gauge.set(0);
        Arc::new(MemoryBudget {
            total,
            used: AtomicUsize::new(0),
            gauge,
        })
    }

    /// The budget in use now.
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    #[cfg(test)]
    pub fn total(&self) -> usize {
        self.total
    }

    /// Takes `bytes` if that many are free, at once or not at all.
    fn try_take(&self, bytes: usize) -> bool {
        let taken = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&after| after <= self.total)
            })
            .is_ok();
        if taken {
            self.gauge.inc_by(gauge_value(bytes));
        }
        taken
    }

    fn give_back(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        self.gauge.dec_by(gauge_value(bytes));
    }
}

fn gauge_value(bytes: usize) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// What one message holds of the budget; given back when dropped (or at [`Reservation::release`]).
pub(super) struct Reservation {
    budget: Arc<MemoryBudget>,
    held: usize,
}

impl Reservation {
    /// Holds nothing yet.
    pub fn new(budget: Arc<MemoryBudget>) -> Reservation {
        Reservation { budget, held: 0 }
    }

    pub fn held(&self) -> usize {
        self.held
    }

    /// Makes sure at least `needed` bytes are held, taking a chunk at a time (never more than
    /// `ceiling` in all: the most the message can need). False when the budget has not enough left.
    pub fn ensure(&mut self, needed: usize, ceiling: usize) -> bool {
        if needed <= self.held {
            return true;
        }
        let target = needed.max(self.held.saturating_add(CHUNK)).min(ceiling.max(needed));
        let more = target - self.held;
        if self.budget.try_take(more) {
            self.held = target;
            true
        } else {
            false
        }
    }

    /// Gives everything held back (the message was refused; what is left is read and dropped).
    pub fn release(&mut self) {
        self.budget.give_back(std::mem::take(&mut self.held));
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(total: usize) -> Arc<MemoryBudget> {
        MemoryBudget::new(total, Gauge::default())
    }

    #[test]
    fn budget_is_taken_in_chunks_up_to_the_ceiling() {
        let budget = budget(10 * CHUNK);
        let mut r = Reservation::new(budget.clone());
        assert!(r.ensure(1, usize::MAX));
        assert_eq!(r.held(), CHUNK);
        assert!(r.ensure(CHUNK, usize::MAX), "already held");
        assert_eq!(budget.used(), CHUNK);
        assert!(r.ensure(CHUNK + 1, CHUNK + 100));
        assert_eq!(r.held(), CHUNK + 100, "never more than the message can need");
        assert!(
            r.ensure(3 * CHUNK, CHUNK + 100),
            "a need above the ceiling is taken as is"
        );
        assert_eq!(r.held(), 3 * CHUNK);
        assert_eq!(budget.used(), 3 * CHUNK);
    }

    #[test]
    fn dropping_or_releasing_a_reservation_gives_its_budget_back() {
        let budget = budget(4 * CHUNK);
        let mut first = Reservation::new(budget.clone());
        assert!(first.ensure(2 * CHUNK, usize::MAX));
        first.release();
        assert_eq!((first.held(), budget.used()), (0, 0));
        assert!(first.ensure(CHUNK, usize::MAX));
        drop(first);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_session_that_finds_the_budget_spent_is_refused_at_once_and_others_go_on() {
        let budget = budget(3 * CHUNK);
        let mut big = Reservation::new(budget.clone());
        assert!(big.ensure(2 * CHUNK + 1, usize::MAX));
        assert_eq!(big.held(), 2 * CHUNK + 1, "a need above one chunk is taken as is");
        let mut other = Reservation::new(budget.clone());
        assert!(
            !other.ensure(1, usize::MAX),
            "less than a chunk left: refused, not waiting"
        );
        assert_eq!(other.held(), 0);
        drop(big);
        assert!(other.ensure(1, usize::MAX), "the budget given back serves the next one");
        assert_eq!(budget.used(), CHUNK);
    }

    #[test]
    fn the_gauge_follows_the_budget_in_use() {
        let gauge = Gauge::default();
        let budget = MemoryBudget::new(8 * CHUNK, gauge.clone());
        let mut r = Reservation::new(budget.clone());
        assert!(r.ensure(1, usize::MAX));
        assert!(r.ensure(CHUNK + 1, usize::MAX));
        assert_eq!(gauge.get(), gauge_value(2 * CHUNK));
        drop(r);
        assert_eq!(gauge.get(), 0);
    }

    #[test]
    fn concurrent_sessions_never_overspend_the_budget() {
        let budget = budget(10 * CHUNK);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let budget = budget.clone();
                std::thread::spawn(move || {
                    let mut granted = 0;
                    for _ in 0..1000 {
                        let mut r = Reservation::new(budget.clone());
                        if r.ensure(3 * CHUNK, usize::MAX) {
                            granted += 1;
                            assert!(budget.used() <= budget.total());
                        }
                    }
                    granted
                })
            })
            .collect();
        let granted: u32 = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
        assert!(granted > 0);
        assert_eq!(budget.used(), 0);
    }
}
