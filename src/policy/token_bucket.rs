//! Token buckets: [`Pacer`] paces one response's bytes (nginx `limit_rate` and
//! `limit_rate_after`), [`RequestBucket`] limits a client's requests (nginx `limit_req` with
//! `burst` and `nodelay`).
//!
//! Key decision: nginx's `limit_rate` allows `rate × (seconds since the response started + 1)`
//! bytes in total, so a client that stalls for a minute may then take a minute's worth at full
//! speed. [`Pacer`] is a true token bucket instead: credit refills at the rate up to a cap of
//! 100 ms worth ([`Pacer::burst`]), so a parked-then-resumed connection sends at most that much
//! ahead of the rate. It hands out credit in quanta of half the cap (or the whole request if
//! smaller), so a paced connection wakes about 20 times a second whatever its rate, and a
//! wake-up that comes late by less than 50 ms loses no credit.
//!
//! Both buckets count in integers (bytes times nanoseconds; instants) so that they are exact and
//! deterministic; time is always passed in, never read here.

use std::time::{Duration, Instant};

use super::size::ReqRate;

/// Nanoseconds per second: credit is counted in bytes × 10⁻⁹.
const NANOS: i128 = 1_000_000_000;

/// Longest [`Allowance::Wait`] handed out, so that no input can overflow an `Instant`.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// What a paced connection may do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allowance {
    /// Send up to this many bytes now (at least 1 when at least 1 was asked for).
    Send(u64),
    /// Send nothing; ask again at this instant.
    Wait(Instant),
}

/// Per-response byte pacer: the first `after` bytes go unpaced, the rest at `rate` bytes per
/// second with at most [`Pacer::burst`] bytes ahead of it. A rate of 0 means unlimited.
#[derive(Clone, Debug)]
pub struct Pacer {
    rate: u64,
    /// Unpaced bytes left (`limit_rate_after`).
    after_left: u64,
    /// Credit in bytes × 10⁻⁹; negative after sending more than was allowed.
    credit: i128,
    last: Instant,
}

impl Pacer {
    /// A pacer for a response starting at `now`, with a full bucket.
    pub fn new(rate: u64, after: u64, now: Instant) -> Pacer {
        Pacer {
            rate,
            after_left: after,
            credit: cap(rate),
            last: now,
        }
    }

    /// The current rate in bytes per second (0: unlimited).
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Most bytes that may be sent ahead of the rate once the unpaced bytes are spent: 100 ms
    /// worth, at least 1 byte.
    pub fn burst(&self) -> u64 {
        burst(self.rate)
    }

    /// How many of `want` bytes may be sent at `now`, or until when to wait. Does not consume
    /// anything: report what was actually sent with [`Pacer::sent`].
    pub fn allowance(&mut self, now: Instant, want: u64) -> Allowance {
        if self.rate == 0 {
            return Allowance::Send(want);
        }
        self.refill(now);
        let credit = u64::try_from(self.credit.max(0) / NANOS).unwrap_or(u64::MAX);
        let have = self.after_left.saturating_add(credit);
        let need = want.min(quantum(self.rate));
        if have >= need || self.after_left > 0 {
            return Allowance::Send(want.min(have));
        }
        let missing = i128::from(need) * NANOS - self.credit;
        let nanos = (missing + i128::from(self.rate) - 1) / i128::from(self.rate);
        let wait = u64::try_from(nanos).map_or(MAX_WAIT, Duration::from_nanos);
        Allowance::Wait(now.checked_add(wait.min(MAX_WAIT)).unwrap_or(now))
    }

    /// Records `n` bytes sent: unpaced bytes first, then credit. Sending more than was allowed
    /// is possible (e.g. a response head) and is paid back before anything else is allowed.
    pub fn sent(&mut self, n: u64) {
        let unpaced = n.min(self.after_left);
        self.after_left -= unpaced;
        if self.rate != 0 {
            self.credit = self.credit.saturating_sub(i128::from(n - unpaced) * NANOS);
        }
    }

    /// Changes the rate from `now` on (e.g. to a server-wide fair share); credit earned so far
    /// is kept up to the new cap. Going from unlimited to limited starts with a full bucket.
    pub fn set_rate(&mut self, rate: u64, now: Instant) {
        if rate == self.rate {
            return;
        }
        if self.rate == 0 {
            self.credit = cap(rate);
            self.last = self.last.max(now);
        } else {
            self.refill(now);
            self.credit = self.credit.min(cap(rate));
        }
        self.rate = rate;
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = self.last.max(now);
        // Capping the elapsed time keeps the product in range; a full refill takes 0.1 s.
        let nanos = elapsed.as_nanos().min(1_000_000_000_000) as i128;
        self.credit = self
            .credit
            .saturating_add(nanos * i128::from(self.rate))
            .min(cap(self.rate));
    }
}

/// Bucket size in bytes for `rate`: 100 ms worth, at least 1.
fn burst(rate: u64) -> u64 {
    (rate / 10).max(1)
}

/// Bucket size in credit units.
fn cap(rate: u64) -> i128 {
    i128::from(burst(rate)) * NANOS
}

/// Least credit worth waking up for: half the bucket.
fn quantum(rate: u64) -> u64 {
    (burst(rate) / 2).max(1)
}

/// Configuration of a request bucket (nginx `limit_req zone=... rate=R burst=B nodelay`),
/// shared by every bucket with the same limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReqLimit {
    /// Time one request's token takes to come back.
    interval: Duration,
    /// How far ahead of the rate a client may be: `burst` intervals.
    tolerance: Duration,
}

impl ReqLimit {
    /// `rate` requests with up to `burst` more at once; like nginx with `nodelay`, requests
    /// over the burst are refused rather than delayed.
    pub fn new(rate: ReqRate, burst: u32) -> ReqLimit {
        let interval = rate.interval();
        ReqLimit {
            interval,
            tolerance: interval.saturating_mul(burst),
        }
    }

    /// Takes one request's token from `state` at `now`, or says how long until one is back.
    pub fn try_take(&self, state: &mut ReqState, now: Instant) -> Result<(), Duration> {
        let tat = state.tat.map_or(now, |t| t.max(now));
        let ahead = tat - now;
        if ahead > self.tolerance {
            return Err(ahead - self.tolerance);
        }
        state.tat = Some(tat.checked_add(self.interval).unwrap_or(tat));
        Ok(())
    }
}

/// Per-client state of a request bucket, kept apart from its [`ReqLimit`] so that tables of
/// many clients store only this (16 bytes).
///
/// It is the generic cell rate algorithm's "theoretical arrival time": the instant at which the
/// bucket would be full again. A request is allowed while that lies at most `burst` intervals
/// ahead, which admits exactly `burst + 1` requests at once, as nginx does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReqState {
    tat: Option<Instant>,
}

impl ReqState {
    /// Whether the bucket is full at `now`, i.e. the state carries no information and may be
    /// forgotten.
    pub fn is_full(&self, now: Instant) -> bool {
        self.tat.is_none_or(|t| t <= now)
    }
}

/// A self-contained request bucket: [`ReqLimit`] plus one client's [`ReqState`].
#[derive(Clone, Copy, Debug)]
pub struct RequestBucket {
    limit: ReqLimit,
    state: ReqState,
}

impl RequestBucket {
    /// A full bucket for `rate` with `burst` extra requests.
    pub fn new(rate: ReqRate, burst: u32) -> RequestBucket {
        RequestBucket {
            limit: ReqLimit::new(rate, burst),
            state: ReqState::default(),
        }
    }

    /// Takes a token at `now`, or returns the time after which one will be available.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        self.limit.try_take(&mut self.state, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn rate_zero_is_unlimited() {
        let t0 = Instant::now();
        let mut p = Pacer::new(0, 0, t0);
        for _ in 0..10 {
            assert_eq!(p.allowance(t0, u64::MAX), Allowance::Send(u64::MAX));
            p.sent(u64::MAX);
        }
    }

    #[test]
    fn limit_rate_after_is_unpaced() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1000, 10_000, t0);
        // The unpaced bytes plus a full bucket (100 ms at 1000 B/s) go at once.
        assert_eq!(p.allowance(t0, 1 << 20), Allowance::Send(10_100));
        p.sent(4000);
        assert_eq!(p.allowance(t0, 1 << 20), Allowance::Send(6100));
        p.sent(6100);
        // Now paced: wait for half a bucket (50 bytes, 50 ms).
        assert_eq!(p.allowance(t0, 1 << 20), Allowance::Wait(t0 + ms(50)));
        assert_eq!(p.allowance(t0 + ms(50), 1 << 20), Allowance::Send(50));
        assert_eq!(p.allowance(t0 + ms(500), 1 << 20), Allowance::Send(100));
    }

    #[test]
    fn small_wants_wait_only_for_themselves() {
        let t0 = Instant::now();
        let mut p = Pacer::new(10_000, 0, t0);
        p.sent(1000);
        assert_eq!(p.allowance(t0, 10), Allowance::Wait(t0 + ms(1)));
        assert_eq!(p.allowance(t0 + ms(1), 10), Allowance::Send(10));
        assert_eq!(p.allowance(t0, 0), Allowance::Send(0));
    }

    #[test]
    fn overdraft_is_paid_back() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1000, 0, t0);
        p.sent(1100);
        // 1000 bytes of debt plus a 50-byte quantum: 1.05 s.
        assert_eq!(p.allowance(t0, 1 << 20), Allowance::Wait(t0 + ms(1050)));
    }

    #[test]
    fn set_rate_keeps_credit_up_to_the_new_cap() {
        let t0 = Instant::now();
        let mut p = Pacer::new(10_000, 0, t0);
        p.set_rate(1000, t0);
        assert_eq!(p.allowance(t0, 1 << 20), Allowance::Send(100));
        p.sent(100);
        p.set_rate(100_000, t0 + ms(100));
        // 100 bytes from 100 ms at the old rate; the 4900 more for a quantum come at the new one.
        assert_eq!(
            p.allowance(t0 + ms(100), 1 << 20),
            Allowance::Wait(t0 + ms(149))
        );
        assert_eq!(p.allowance(t0 + ms(150), 1 << 20), Allowance::Send(5100));
        p.set_rate(0, t0);
        assert_eq!(p.allowance(t0, 7), Allowance::Send(7));
        p.set_rate(1000, t0 + ms(200));
        assert_eq!(p.allowance(t0 + ms(200), 1 << 20), Allowance::Send(100));
    }

    #[test]
    fn extreme_inputs_do_not_panic() {
        let t0 = Instant::now();
        let mut p = Pacer::new(u64::MAX, u64::MAX, t0);
        assert!(matches!(
            p.allowance(t0, u64::MAX),
            Allowance::Send(u64::MAX)
        ));
        p.sent(u64::MAX);
        p.sent(u64::MAX);
        assert!(matches!(
            p.allowance(t0 + ms(1), u64::MAX),
            Allowance::Wait(_)
        ));
        let mut p = Pacer::new(1, 0, t0);
        for _ in 0..1000 {
            p.sent(u64::MAX);
        }
        let Allowance::Wait(t) = p.allowance(t0, u64::MAX) else {
            panic!("a debtor must wait");
        };
        assert!(t <= t0 + MAX_WAIT);
        // Time going backwards is ignored.
        assert!(matches!(p.allowance(t0 - ms(5), 1), Allowance::Wait(_)));
    }

    #[derive(Clone, Debug)]
    enum Step {
        /// Advance the clock by this many microseconds.
        Tick(u64),
        /// Ask for this many bytes, then send this fraction (per mille) of what was allowed.
        Ask(u64, u16),
        /// Sleep until the instant a `Wait` named, plus this many microseconds.
        Obey(u64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0u64..200_000).prop_map(Step::Tick),
            (0u64..1 << 22, 0u16..=1000).prop_map(|(w, f)| Step::Ask(w, f)),
            (0u64..5_000).prop_map(Step::Obey),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn never_ahead_of_the_rate(
            rate in 1u64..50_000_000,
            after in 0u64..1 << 20,
            steps in proptest::collection::vec(step(), 1..200),
        ) {
            let t0 = Instant::now();
            let mut now = t0;
            let mut p = Pacer::new(rate, after, t0);
            let mut total = 0u128;
            let mut wait = None;
            for s in steps {
                match s {
                    Step::Tick(us) => now += Duration::from_micros(us),
                    Step::Obey(us) => {
                        if let Some(t) = wait.take() {
                            now = now.max(t + Duration::from_micros(us));
                        }
                    }
                    Step::Ask(want, frac) => match p.allowance(now, want) {
                        Allowance::Send(n) => {
                            prop_assert!(n <= want);
                            prop_assert!(n >= 1 || want == 0);
                            let n = n * u64::from(frac) / 1000;
                            p.sent(n);
                            total += u128::from(n);
                        }
                        Allowance::Wait(t) => {
                            prop_assert!(t > now);
                            wait = Some(t);
                        }
                    },
                }
                let elapsed = (now - t0).as_nanos();
                let bound = u128::from(after)
                    + u128::from(p.burst())
                    + elapsed * u128::from(rate) / 1_000_000_000;
                prop_assert!(total <= bound, "{} > {}", total, bound);
            }
        }

        #[test]
        fn rate_changes_never_exceed_the_integral(
            rates in proptest::collection::vec((1u64..10_000_000, 1u64..300_000), 1..10),
            want in 1u64 << 16..1 << 22,
        ) {
            let t0 = Instant::now();
            let mut now = t0;
            let mut p = Pacer::new(rates[0].0, 0, t0);
            let (mut total, mut integral, mut max_burst) = (0u128, 0u128, 0u128);
            for (rate, us) in rates {
                p.set_rate(rate, now);
                max_burst = max_burst.max(u128::from(p.burst()));
                let end = now + Duration::from_micros(us);
                while now < end {
                    match p.allowance(now, want) {
                        Allowance::Send(n) => {
                            p.sent(n);
                            total += u128::from(n);
                        }
                        Allowance::Wait(t) => {
                            let t = t.min(end);
                            integral += (t - now).as_nanos() * u128::from(rate);
                            now = t;
                        }
                    }
                    prop_assert!(total <= max_burst + integral / 1_000_000_000);
                }
            }
        }

        #[test]
        fn a_greedy_client_gets_the_rate(
            rate in 1000u64..100_000_000,
            want in 1u64 << 14..1 << 22,
            late_us in 0u64..3000,
        ) {
            let t0 = Instant::now();
            let mut now = t0;
            let mut p = Pacer::new(rate, 0, t0);
            let mut total = 0u64;
            let run = Duration::from_secs(10);
            while now - t0 < run {
                match p.allowance(now, want) {
                    Allowance::Send(n) => {
                        p.sent(n);
                        total += n;
                    }
                    Allowance::Wait(t) => now = t + Duration::from_micros(late_us),
                }
            }
            let got = total as f64 / (now - t0).as_secs_f64();
            prop_assert!(got >= rate as f64 * 0.97, "{} < {}", got, rate);
            prop_assert!(got <= rate as f64 * 1.02, "{} > {}", got, rate);
        }
    }

    #[test]
    fn request_bucket_allows_burst_plus_one() {
        let t0 = Instant::now();
        let rate = ReqRate {
            requests: 10,
            per_secs: 1,
        };
        let mut b = RequestBucket::new(rate, 3);
        for _ in 0..4 {
            assert_eq!(b.try_take(t0), Ok(()));
        }
        assert_eq!(b.try_take(t0), Err(ms(100)));
        assert_eq!(b.try_take(t0 + ms(40)), Err(ms(60)));
        assert_eq!(b.try_take(t0 + ms(100)), Ok(()));
        assert_eq!(b.try_take(t0 + ms(100)), Err(ms(100)));
        // Refused requests cost nothing; a long pause refills the whole burst.
        for _ in 0..4 {
            assert_eq!(b.try_take(t0 + ms(10_000)), Ok(()));
        }
        assert!(b.try_take(t0 + ms(10_000)).is_err());
    }

    #[test]
    fn request_bucket_without_burst_spaces_requests() {
        let t0 = Instant::now();
        let rate = ReqRate {
            requests: 2,
            per_secs: 60,
        };
        let limit = ReqLimit::new(rate, 0);
        let mut s = ReqState::default();
        assert!(s.is_full(t0));
        assert_eq!(limit.try_take(&mut s, t0), Ok(()));
        assert!(!s.is_full(t0 + ms(29_999)));
        assert_eq!(limit.try_take(&mut s, t0 + ms(1)), Err(ms(29_999)));
        assert_eq!(limit.try_take(&mut s, t0 + ms(30_000)), Ok(()));
        assert!(s.is_full(t0 + ms(60_000)));
    }

    #[test]
    fn request_bucket_survives_extremes() {
        let t0 = Instant::now();
        let rate = ReqRate {
            requests: 1,
            per_secs: 60,
        };
        let mut b = RequestBucket::new(rate, u32::MAX);
        for _ in 0..1000 {
            assert_eq!(b.try_take(t0), Ok(()));
        }
        assert!(b.try_take(t0 - ms(1)).is_ok());
    }
}
