//! A worker's table of live connections: a slab indexed by the low half of each operation's
//! identity, with generations so a late event for a recycled slot is recognised, plus the
//! timer queue that holds the connections' deadlines.
//!
//! Key decision: the table and the queue grow fallibly (`try_reserve`), when a connection is
//! added, and the queue never grows afterwards (it is compacted instead): a worker short of
//! memory (`RLIMIT_AS`, a cgroup limit) refuses the new connection, and the server goes on
//! serving the others, instead of aborting on a failed allocation.

use std::time::Instant;

use super::conn::Conn;
use super::timer::{Fired, TimerKey, TimerQueue};

/// A connection and the backend's bookkeeping for it (`E`).
pub struct Entry<E> {
    /// The protocol driver.
    pub conn: Conn,
    /// Backend-specific state (operations in flight, interest).
    pub io: E,
    gen: u32,
}

/// Live connections of one worker.
pub struct Conns<E> {
    slab: Slots<Entry<E>>,
    next_gen: u32,
    timers: TimerQueue,
}

impl<E> Default for Conns<E> {
    fn default() -> Self {
        Conns {
            slab: Slots::default(),
            next_gen: 0,
            timers: TimerQueue::default(),
        }
    }
}

impl<E> Conns<E> {
    /// Adds a connection and queues its first deadline; gives it back when there is no
    /// memory for it (in the table or the timer queue).
    // Handed back by value: boxing it would allocate just when memory is short.
    #[allow(clippy::result_large_err)]
    pub fn insert(&mut self, conn: Conn, io: E) -> Result<TimerKey, Conn> {
        if !self.timers.reserve_for(self.slab.len() + 1) {
            return Err(conn);
        }
        self.next_gen = self.next_gen.wrapping_add(1) & 0x00ff_ffff;
        let gen = self.next_gen;
        let idx = self
            .slab
            .insert(Entry { conn, io, gen })
            .map_err(|e| e.conn)?;
        let key = TimerKey { idx, gen };
        if let Some(e) = self.slab.get_mut(idx) {
            e.conn.key = key;
        }
        self.sync_timer(key);
        Ok(key)
    }

    /// The connection `key` names, if it is still the one in that slot.
    pub fn get_mut(&mut self, key: TimerKey) -> Option<&mut Entry<E>> {
        self.slab.get_mut(key.idx).filter(|e| e.gen == key.gen)
    }

    /// Removes the connection `key` names (its queued deadline goes stale; the queue is
    /// rebuilt when stale entries outnumber live ones).
    pub fn remove(&mut self, key: TimerKey) -> Option<Entry<E>> {
        self.get_mut(key)?;
        let entry = self.slab.remove(key.idx)?;
        if self.timers.bloated(self.slab.len()) {
            self.compact_timers();
        }
        Some(entry)
    }

    /// Rebuilds the timer queue from the live deadlines, dropping stale entries.
    fn compact_timers(&mut self) {
        let live = self.slab.iter_mut().map(|(idx, e)| {
            let key = TimerKey { idx, gen: e.gen };
            (key, &mut e.conn.deadline)
        });
        self.timers.rebuild(live);
    }

    /// Brings the timer queue in line with the connection's current deadline (compacting the
    /// queue first if it is full, so that it never grows here).
    pub fn sync_timer(&mut self, key: TimerKey) {
        if self.timers.full() {
            self.compact_timers();
        }
        if let Some(e) = self.slab.get_mut(key.idx).filter(|e| e.gen == key.gen) {
            self.timers.sync(key, &mut e.conn.deadline);
        }
    }

    /// The next connection whose deadline has passed at `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<TimerKey> {
        loop {
            let slab = &mut self.slab;
            let (key, fired) = self.timers.pop_due(now, |k| {
                slab.get_mut(k.idx)
                    .filter(|e| e.gen == k.gen)
                    .map(|e| &mut e.conn.deadline)
            })?;
            if let Fired::Due = fired {
                return Some(key);
            }
        }
    }

    /// When the earliest deadline falls.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Keys of all live connections (for draining).
    pub fn keys(&self) -> Vec<TimerKey> {
        self.slab
            .iter()
            .map(|(idx, e)| TimerKey { idx, gen: e.gen })
            .collect()
    }

    /// Whether no connection is live.
    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// Number of live connections.
    pub fn len(&self) -> usize {
        self.slab.len()
    }
}

/// A slab (slots reused through a free list) whose growth can fail without aborting.
struct Slots<T> {
    slots: Vec<Slot<T>>,
    /// First free slot, [`NONE`] when every slot is taken.
    free: u32,
    len: usize,
}

enum Slot<T> {
    Taken(T),
    Free { next: u32 },
}

const NONE: u32 = u32::MAX;

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots {
            slots: Vec::new(),
            free: NONE,
            len: 0,
        }
    }
}

impl<T> Slots<T> {
    /// Stores `value` in a free slot, growing the table if there is none; gives it back when
    /// the table cannot grow.
    fn insert(&mut self, value: T) -> Result<u32, T> {
        if let Some(slot) = self.slots.get_mut(self.free as usize) {
            let Slot::Free { next } = *slot else {
                return Err(value); // cannot be: the free list holds free slots only
            };
            *slot = Slot::Taken(value);
            let idx = self.free;
            self.free = next;
            self.len += 1;
            return Ok(idx);
        }
        let idx = self.slots.len();
        if idx >= NONE as usize
            || (idx == self.slots.capacity() && self.slots.try_reserve(idx.max(64)).is_err())
        {
            return Err(value);
        }
        self.slots.push(Slot::Taken(value));
        self.len += 1;
        Ok(idx as u32)
    }

    fn get_mut(&mut self, idx: u32) -> Option<&mut T> {
        match self.slots.get_mut(idx as usize) {
            Some(Slot::Taken(value)) => Some(value),
            _ => None,
        }
    }

    fn remove(&mut self, idx: u32) -> Option<T> {
        let slot = self.slots.get_mut(idx as usize)?;
        if let Slot::Free { .. } = slot {
            return None;
        }
        let Slot::Taken(value) = std::mem::replace(slot, Slot::Free { next: self.free }) else {
            return None;
        };
        self.free = idx;
        self.len -= 1;
        Some(value)
    }

    fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| match s {
            Slot::Taken(v) => Some((i as u32, v)),
            Slot::Free { .. } => None,
        })
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (u32, &mut T)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Slot::Taken(v) => Some((i as u32, v)),
                Slot::Free { .. } => None,
            })
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_last_freed_first() {
        let mut s = Slots::default();
        let (a, b, c) = (s.insert('a'), s.insert('b'), s.insert('c'));
        assert_eq!((a, b, c), (Ok(0), Ok(1), Ok(2)));
        assert_eq!(s.remove(1), Some('b'));
        assert_eq!(s.remove(1), None);
        assert_eq!(s.remove(0), Some('a'));
        assert_eq!(s.len(), 1);
        assert_eq!(s.insert('d'), Ok(0));
        assert_eq!(s.insert('e'), Ok(1));
        assert_eq!(s.insert('f'), Ok(3));
        *s.get_mut(2).unwrap() = 'C';
        let all: Vec<_> = s.iter().map(|(i, v)| (i, *v)).collect();
        assert_eq!(all, [(0, 'd'), (1, 'e'), (2, 'C'), (3, 'f')]);
        assert!(s.get_mut(9).is_none());
    }
}
