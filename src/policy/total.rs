//! The server-wide rate cap (`--limit-rate-total`), shared by all workers.
//!
//! Key decision: the cap is split evenly, not metered centrally. Each paced transfer holds a
//! [`Share`] that counts it in one shared atomic, and its rate is `total / active`, read with a
//! single relaxed load whenever its worker takes a pacing step; the transfer's own
//! [`Pacer`](super::Pacer) then enforces that rate with no further shared state. So the
//! per-chunk path touches no contended cache line for writing, and since at most `active`
//! transfers each get `total / active`, the sum stays within the cap (plus each pacer's small
//! burst) however the transfers are spread over workers. The price is that a share a slow
//! client cannot use is not lent to the others; the even split is the fair share nginx users
//! approximate with a `map`-computed `$limit_rate`, without the bookkeeping of max-min fairness.
//! A configuration reload changes the total in place ([`TotalLimit::set_total`]): the cap is
//! the server's, so transfers under way follow the new one too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A server-wide byte rate divided evenly among the transfers registered with it.
#[derive(Debug)]
pub struct TotalLimit {
    /// Bytes per second (0: unlimited); atomic so that a reload can change it for every
    /// transfer at once.
    total: AtomicU64,
    active: AtomicU64,
}

impl TotalLimit {
    /// A cap of `total` bytes per second (0: unlimited), to be shared by all workers.
    pub fn new(total: u64) -> Arc<TotalLimit> {
        Arc::new(TotalLimit {
            total: AtomicU64::new(total),
            active: AtomicU64::new(0),
        })
    }

    /// The cap in bytes per second.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Changes the cap (a configuration reload); transfers under way get their share of the
    /// new one at their next pacing step.
    pub fn set_total(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
    }

    /// Counts a transfer in until the returned [`Share`] is dropped.
    pub fn register(self: &Arc<Self>) -> Share {
        self.active.fetch_add(1, Ordering::Relaxed);
        Share {
            limit: Arc::clone(self),
        }
    }

    /// Number of transfers currently registered.
    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// One transfer's share of the cap: `total / active`, at least 1 byte per second, or 0
    /// (unlimited) when there is no cap.
    pub fn fair_rate(&self) -> u64 {
        let total = self.total();
        if total == 0 {
            return 0;
        }
        (total / self.active().max(1)).max(1)
    }
}

/// One transfer's membership in a [`TotalLimit`]; dropping it gives the share back.
#[derive(Debug)]
pub struct Share {
    limit: Arc<TotalLimit>,
}

impl Share {
    /// The rate this transfer should be paced at now: the lower of its own limit `per_conn`
    /// and its fair share of the total, where 0 means unlimited for both.
    pub fn rate(&self, per_conn: u64) -> u64 {
        min_rate(per_conn, self.limit.fair_rate())
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.limit.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The stricter of two rates where 0 means unlimited.
pub fn min_rate(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, r) | (r, 0) => r,
        (a, b) => a.min(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_split_evenly_and_come_back() {
        let limit = TotalLimit::new(1_000_000);
        assert_eq!(limit.fair_rate(), 1_000_000);
        let a = limit.register();
        assert_eq!(a.rate(0), 1_000_000);
        let b = limit.register();
        let c = limit.register();
        assert_eq!(limit.active(), 3);
        assert_eq!(a.rate(0), 333_333);
        assert_eq!(b.rate(100_000), 100_000);
        assert_eq!(c.rate(500_000), 333_333);
        drop(b);
        drop(c);
        assert_eq!(a.rate(0), 1_000_000);
        drop(a);
        assert_eq!(limit.active(), 0);
    }

    #[test]
    fn a_new_total_applies_to_transfers_under_way() {
        let limit = TotalLimit::new(1_000_000);
        let a = limit.register();
        let _b = limit.register();
        limit.set_total(400_000);
        assert_eq!((limit.total(), a.rate(0)), (400_000, 200_000));
    }

    #[test]
    fn no_total_means_only_the_connection_limit() {
        let limit = TotalLimit::new(0);
        let s = limit.register();
        assert_eq!(s.rate(0), 0);
        assert_eq!(s.rate(42), 42);
    }

    #[test]
    fn tiny_totals_never_become_unlimited() {
        let limit = TotalLimit::new(2);
        let shares: Vec<Share> = (0..5).map(|_| limit.register()).collect();
        assert_eq!(shares[0].rate(0), 1);
    }

    #[test]
    fn min_rate_treats_zero_as_unlimited() {
        assert_eq!(min_rate(0, 0), 0);
        assert_eq!(min_rate(0, 7), 7);
        assert_eq!(min_rate(7, 0), 7);
        assert_eq!(min_rate(3, 7), 3);
    }

    #[test]
    fn counts_stay_exact_across_threads() {
        let limit = TotalLimit::new(1 << 30);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let limit = Arc::clone(&limit);
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        let s = limit.register();
                        assert!(s.rate(0) >= (1 << 30) / 4);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(limit.active(), 0);
    }
}
