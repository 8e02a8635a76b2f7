//! One response's pacing: its own rate (`--limit-rate`, or the rate a signed link carries)
//! joined with its share of the server-wide cap (`--limit-rate-total`).
//!
//! The engine asks [`Pacing::allowance`] before each file chunk and sizes the chunk from the
//! answer, or parks the connection in its worker's timer queue until the instant it names;
//! no thread ever sleeps. The fair share is re-read at every step, so a transfer speeds up as
//! others finish.

use std::sync::Arc;
use std::time::Instant;

use super::token_bucket::{Allowance, Pacer};
use super::total::{Share, TotalLimit};

/// Pacing state of one response.
#[derive(Debug)]
pub struct Pacing {
    pacer: Pacer,
    /// Membership in the server-wide cap, given back when the response ends.
    share: Option<Share>,
    /// The response's own rate (0: none), before the fair share is applied.
    own: u64,
}

impl Pacing {
    /// Pacing for a response starting at `now` with its own `rate` (0: unlimited), the first
    /// `after` bytes unpaced, under the server-wide cap `total` if there is one. `None` when
    /// nothing limits the response.
    pub fn new(
        rate: u64,
        after: u64,
        total: Option<&Arc<TotalLimit>>,
        now: Instant,
    ) -> Option<Pacing> {
        let share = total.map(TotalLimit::register);
        if rate == 0 && share.is_none() {
            return None;
        }
        let effective = share.as_ref().map_or(rate, |s| s.rate(rate));
        Some(Pacing {
            pacer: Pacer::new(effective, after, now),
            share,
            own: rate,
        })
    }

    /// How many of `want` bytes may be sent at `now`, or until when to wait.
    pub fn allowance(&mut self, now: Instant, want: u64) -> Allowance {
        if let Some(share) = &self.share {
            self.pacer.set_rate(share.rate(self.own), now);
        }
        self.pacer.allowance(now, want)
    }

    /// Records `n` bytes handed to the kernel (head bytes included, as nginx counts them).
    pub fn sent(&mut self, n: u64) {
        self.pacer.sent(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn nothing_to_pace_without_limits() {
        assert!(Pacing::new(0, 1 << 20, None, Instant::now()).is_none());
    }

    #[test]
    fn own_rate_paces() {
        let t0 = Instant::now();
        let mut p = Pacing::new(1000, 0, None, t0).unwrap();
        assert_eq!(p.allowance(t0, 1 << 20), Allowance::Send(100));
        p.sent(100);
        assert!(matches!(p.allowance(t0, 1 << 20), Allowance::Wait(_)));
    }

    #[test]
    fn share_follows_the_number_of_transfers() {
        let t0 = Instant::now();
        let total = TotalLimit::new(10_000);
        let mut a = Pacing::new(0, 0, Some(&total), t0).unwrap();
        let b = Pacing::new(0, 0, Some(&total), t0).unwrap();
        // Two transfers: 5000 B/s each, a 500-byte bucket.
        assert_eq!(a.allowance(t0, 1 << 20), Allowance::Send(500));
        a.sent(500);
        drop(b);
        assert_eq!(total.active(), 1);
        // Credit earned so far came at 5000 B/s; alone from now on, it earns 10 000 B/s and
        // its bucket holds 1000 bytes.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(a.allowance(t1, 1 << 20), Allowance::Send(500));
        let t2 = t1 + Duration::from_millis(100);
        assert_eq!(a.allowance(t2, 1 << 20), Allowance::Send(1000));
        drop(a);
        assert_eq!(total.active(), 0);
    }

    #[test]
    fn own_rate_below_the_share_wins() {
        let t0 = Instant::now();
        let total = TotalLimit::new(1 << 30);
        let mut p = Pacing::new(1000, 0, Some(&total), t0).unwrap();
        assert_eq!(p.allowance(t0, 1 << 20), Allowance::Send(100));
    }
}
