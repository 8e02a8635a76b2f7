//! Memory pressure: new connections are turned away (503) while the process is close to its
//! memory limit, so that what it already serves keeps the memory it needs, rather than the
//! server being killed or aborting (Envoy's overload manager acts the same way).
//!
//! Key decision: the usage is sampled, not tracked: at most every [`CHECK_EVERY`], when a
//! connection arrives, the engine reads the resident set against the cgroup's memory limit
//! ([`crate::sys::MemoryProbe`]; systemd's `MemoryMax=`, a container's limit), where the
//! kernel would kill the server rather than fail an allocation. So serving costs nothing
//! extra and a flood of accepts at most one read per period; the margin kept ([`reserve`])
//! covers what the connections admitted within one period and those already open may still
//! allocate. Where allocations fail instead (`RLIMIT_AS`), the connection table's growth is
//! what fails first and turns connections away (`engine::conns`).

use std::cell::Cell;
use std::time::{Duration, Instant};

/// The longest the usage goes unread while connections arrive.
pub const CHECK_EVERY: Duration = Duration::from_millis(10);

/// Memory kept in reserve under a limit of `limit` bytes: a sixteenth of it, at least 4 MiB.
pub fn reserve(limit: u64) -> u64 {
    (limit / 16).max(4 << 20)
}

/// Whether `used` bytes under a limit of `limit` leave less than the [`reserve`].
pub fn is_low(used: u64, limit: u64) -> bool {
    limit.saturating_sub(used) < reserve(limit)
}

/// One worker's view of memory pressure, refreshed at most every [`CHECK_EVERY`].
#[derive(Debug, Default)]
pub struct MemoryGuard {
    checked: Cell<Option<Instant>>,
    low: Cell<bool>,
}

impl MemoryGuard {
    /// Whether memory is short at `now`; `probe` gives `(used, limit)` of the tightest limit
    /// (`None`: unlimited) and is called only when the last answer is older than
    /// [`CHECK_EVERY`].
    pub fn low(&self, now: Instant, probe: impl FnOnce() -> Option<(u64, u64)>) -> bool {
        let due = self
            .checked
            .get()
            .is_none_or(|t| now.saturating_duration_since(t) >= CHECK_EVERY);
        if due {
            self.checked.set(Some(now));
            self.low
                .set(probe().is_some_and(|(used, limit)| is_low(used, limit)));
        }
        self.low.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_a_sixteenth_and_at_least_4_mib() {
        assert_eq!(reserve(16 << 20), 4 << 20);
        assert_eq!(reserve(1 << 30), 64 << 20);
        assert!(!is_low(100 << 20, 1 << 30));
        assert!(is_low((1 << 30) - (63 << 20), 1 << 30));
        assert!(is_low(30 << 20, 20 << 20), "over the limit");
    }

    #[test]
    fn the_probe_is_asked_at_most_once_a_period() {
        let g = MemoryGuard::default();
        let t0 = Instant::now();
        let asked = Cell::new(0);
        let probe = |used| {
            asked.set(asked.get() + 1);
            Some((used, 64u64 << 20))
        };
        assert!(g.low(t0, || probe(62 << 20)));
        assert!(
            g.low(t0 + CHECK_EVERY / 2, || probe(1 << 20)),
            "not asked yet"
        );
        assert_eq!(asked.get(), 1);
        assert!(!g.low(t0 + CHECK_EVERY, || probe(1 << 20)));
        assert!(!g.low(t0 + 3 * CHECK_EVERY, || None), "unlimited");
        assert_eq!(asked.get(), 2);
    }
}
