//! Per-worker timer queue: every deadline of a worker's connections (header read, keep-alive
//! idle, send stall, and later pacing) lives here, and the worker's single wait — the ring's
//! `io_uring_enter` timeout or `epoll_wait`'s — sleeps until the earliest one.
//!
//! Key decision: a connection keeps its current deadline in its own state and has at most one
//! live entry here. Pushing a deadline further out (as every served request does) touches only
//! the connection; the queue is touched when the entry fires early and is re-armed, or when a
//! deadline moves earlier. So a busy keep-alive connection costs no queue work per request,
//! and the heap holds about one entry per connection.
//!
//! A closed connection's entry is not searched for and removed; it goes stale and is dropped
//! when it comes due. Under connection churn, stale entries would pile up for a whole header
//! timeout, so the queue is rebuilt from the live deadlines ([`TimerQueue::rebuild`]) once
//! it holds more than twice as many entries as there are connections: an O(n) pass after at
//! least n closes, so O(1) per close, and the queue stays proportional to the connections.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Identifies a timer's owner: a slab index plus the owner's generation, so that an entry for
/// a connection that has since been replaced is recognised as stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerKey {
    /// Slab index of the connection.
    pub idx: u32,
    /// Generation of the connection in that slot.
    pub gen: u32,
}

/// Min-heap of `(when, owner)`.
#[derive(Default)]
pub struct TimerQueue {
    heap: BinaryHeap<Reverse<(Instant, TimerKey)>>,
}

/// A connection's view of its timer: the deadline it wants and the entry it has queued.
#[derive(Clone, Copy, Debug, Default)]
pub struct Deadline {
    want: Option<Instant>,
    queued: Option<Instant>,
}

impl Deadline {
    /// Sets (or with `None` clears) the deadline. Cheap: the queue is updated by
    /// [`TimerQueue::sync`].
    pub fn set(&mut self, when: Option<Instant>) {
        self.want = when;
    }

    /// The deadline currently wanted.
    pub fn get(&self) -> Option<Instant> {
        self.want
    }
}

/// What an expired entry means for its owner, as [`TimerQueue::pop_due`] judges it.
pub enum Fired {
    /// The entry was current and the deadline has passed: act on the timeout.
    Due,
    /// The entry was current but the deadline moved later: it has been queued again.
    Requeued,
    /// The entry was superseded or its owner is gone: ignore.
    Stale,
}

impl TimerQueue {
    /// Makes sure `key`'s wanted deadline is covered by a queued entry: queues one when there
    /// is none, or when the wanted deadline is earlier than the queued one.
    pub fn sync(&mut self, key: TimerKey, d: &mut Deadline) {
        if let Some(want) = d.want {
            if d.queued.is_none_or(|q| want < q) {
                self.heap.push(Reverse((want, key)));
                d.queued = Some(want);
            }
        }
    }

    /// The earliest queued instant, for the worker's wait timeout.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    /// Pops the next entry due at `now`, if any, and judges it against its owner's deadline
    /// state (`lookup` returns the owner's [`Deadline`] if `key` is still alive).
    pub fn pop_due<'a>(
        &mut self,
        now: Instant,
        lookup: impl FnOnce(TimerKey) -> Option<&'a mut Deadline>,
    ) -> Option<(TimerKey, Fired)> {
        let &Reverse((when, key)) = self.heap.peek()?;
        if when > now {
            return None;
        }
        self.heap.pop();
        let Some(d) = lookup(key) else {
            return Some((key, Fired::Stale));
        };
        if d.queued != Some(when) {
            return Some((key, Fired::Stale));
        }
        d.queued = None;
        match d.want {
            Some(want) if want <= now => Some((key, Fired::Due)),
            Some(_) => {
                self.sync(key, d);
                Some((key, Fired::Requeued))
            }
            None => Some((key, Fired::Stale)),
        }
    }

    /// Makes room for the entries `live` owners may leave before the queue is next rebuilt
    /// (see [`TimerQueue::bloated`]); `false` when there is no memory for it.
    pub fn reserve_for(&mut self, live: usize) -> bool {
        let want = 2 * live + 1025;
        want <= self.heap.capacity()
            || self
                .heap
                .try_reserve(want.max(2 * self.heap.capacity()) - self.heap.len())
                .is_ok()
    }

    /// Whether another entry would make the queue grow.
    pub fn full(&self) -> bool {
        self.heap.len() == self.heap.capacity()
    }

    /// Whether the queue holds so many stale entries for `live` owners that it should be
    /// rebuilt.
    pub fn bloated(&self, live: usize) -> bool {
        self.heap.len() > 2 * live + 1024
    }

    /// Replaces every entry with one per owner in `owners` that wants a deadline.
    pub fn rebuild<'a>(&mut self, owners: impl Iterator<Item = (TimerKey, &'a mut Deadline)>) {
        let mut entries = std::mem::take(&mut self.heap).into_vec();
        entries.clear();
        for (key, d) in owners {
            d.queued = d.want;
            if let Some(want) = d.want {
                entries.push(Reverse((want, key)));
            }
        }
        self.heap = BinaryHeap::from(entries);
    }

    /// Number of queued entries (live or stale).
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const K: TimerKey = TimerKey { idx: 1, gen: 7 };

    #[test]
    fn pushing_deadline_later_costs_no_queue_entry() {
        let t0 = Instant::now();
        let mut q = TimerQueue::default();
        let mut d = Deadline::default();
        d.set(Some(t0 + Duration::from_secs(1)));
        q.sync(K, &mut d);
        for i in 2..100 {
            d.set(Some(t0 + Duration::from_secs(i)));
            q.sync(K, &mut d);
        }
        assert_eq!(q.len(), 1);
        // The entry fires at 1 s, finds the deadline moved and re-queues at 99 s.
        let fired = q.pop_due(t0 + Duration::from_secs(1), |_| Some(&mut d));
        assert!(matches!(fired, Some((K, Fired::Requeued))));
        assert_eq!(q.next(), Some(t0 + Duration::from_secs(99)));
        assert!(q
            .pop_due(t0 + Duration::from_secs(98), |_| Some(&mut d))
            .is_none());
        let fired = q.pop_due(t0 + Duration::from_secs(99), |_| Some(&mut d));
        assert!(matches!(fired, Some((K, Fired::Due))));
        assert!(q.is_empty());
    }

    #[test]
    fn earlier_deadline_queues_a_new_entry_and_the_old_one_goes_stale() {
        let t0 = Instant::now();
        let mut q = TimerQueue::default();
        let mut d = Deadline::default();
        d.set(Some(t0 + Duration::from_secs(60)));
        q.sync(K, &mut d);
        d.set(Some(t0 + Duration::from_secs(5)));
        q.sync(K, &mut d);
        assert_eq!(q.next(), Some(t0 + Duration::from_secs(5)));
        let fired = q.pop_due(t0 + Duration::from_secs(5), |_| Some(&mut d));
        assert!(matches!(fired, Some((K, Fired::Due))));
        let fired = q.pop_due(t0 + Duration::from_secs(60), |_| Some(&mut d));
        assert!(matches!(fired, Some((K, Fired::Stale))));
    }

    #[test]
    fn rebuild_keeps_only_live_deadlines() {
        let t0 = Instant::now();
        let mut q = TimerQueue::default();
        let mut gone = Deadline::default();
        for i in 0..3000u32 {
            gone.set(Some(t0 + Duration::from_secs(60)));
            gone.queued = None;
            q.sync(TimerKey { idx: i, gen: 1 }, &mut gone);
        }
        let (mut a, mut b) = (Deadline::default(), Deadline::default());
        a.set(Some(t0 + Duration::from_secs(5)));
        q.sync(K, &mut a);
        a.set(Some(t0 + Duration::from_secs(9)));
        assert!(q.bloated(2));
        let other = TimerKey { idx: 2, gen: 3 };
        q.rebuild([(K, &mut a), (other, &mut b)].into_iter());
        assert_eq!(q.len(), 1);
        assert!(!q.bloated(2));
        assert_eq!(q.next(), Some(t0 + Duration::from_secs(9)));
        let fired = q.pop_due(t0 + Duration::from_secs(9), |_| Some(&mut a));
        assert!(matches!(fired, Some((K, Fired::Due))));
        assert!(q.is_empty());
    }

    #[test]
    fn cleared_or_gone_owner_is_stale() {
        let t0 = Instant::now();
        let mut q = TimerQueue::default();
        let mut d = Deadline::default();
        d.set(Some(t0));
        q.sync(K, &mut d);
        d.set(None);
        assert!(matches!(
            q.pop_due(t0, |_| Some(&mut d)),
            Some((K, Fired::Stale))
        ));
        d.set(Some(t0));
        q.sync(K, &mut d);
        assert!(matches!(q.pop_due(t0, |_| None), Some((K, Fired::Stale))));
    }
}
