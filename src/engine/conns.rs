//! A worker's table of live connections: a slab indexed by the low half of each operation's
//! identity, with generations so a late event for a recycled slot is recognised, plus the
//! timer queue that holds the connections' deadlines.

use std::time::Instant;

use slab::Slab;

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
    slab: Slab<Entry<E>>,
    next_gen: u32,
    timers: TimerQueue,
}

impl<E> Default for Conns<E> {
    fn default() -> Self {
        Conns {
            slab: Slab::new(),
            next_gen: 0,
            timers: TimerQueue::default(),
        }
    }
}

impl<E> Conns<E> {
    /// Adds a connection and queues its first deadline.
    pub fn insert(&mut self, conn: Conn, io: E) -> TimerKey {
        self.next_gen = self.next_gen.wrapping_add(1) & 0x00ff_ffff;
        let gen = self.next_gen;
        let idx = self.slab.insert(Entry { conn, io, gen }) as u32;
        let key = TimerKey { idx, gen };
        self.slab[idx as usize].conn.key = key;
        self.sync_timer(key);
        key
    }

    /// The connection `key` names, if it is still the one in that slot.
    pub fn get_mut(&mut self, key: TimerKey) -> Option<&mut Entry<E>> {
        self.slab
            .get_mut(key.idx as usize)
            .filter(|e| e.gen == key.gen)
    }

    /// Removes the connection `key` names (its queued deadline goes stale; the queue is
    /// rebuilt when stale entries outnumber live ones).
    pub fn remove(&mut self, key: TimerKey) -> Option<Entry<E>> {
        self.get_mut(key)?;
        let entry = self.slab.remove(key.idx as usize);
        if self.timers.bloated(self.slab.len()) {
            let live = self.slab.iter_mut().map(|(idx, e)| {
                let key = TimerKey {
                    idx: idx as u32,
                    gen: e.gen,
                };
                (key, &mut e.conn.deadline)
            });
            self.timers.rebuild(live);
        }
        Some(entry)
    }

    /// Brings the timer queue in line with the connection's current deadline.
    pub fn sync_timer(&mut self, key: TimerKey) {
        if let Some(e) = self
            .slab
            .get_mut(key.idx as usize)
            .filter(|e| e.gen == key.gen)
        {
            self.timers.sync(key, &mut e.conn.deadline);
        }
    }

    /// The next connection whose deadline has passed at `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<TimerKey> {
        loop {
            let slab = &mut self.slab;
            let (key, fired) = self.timers.pop_due(now, |k| {
                slab.get_mut(k.idx as usize)
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
            .map(|(idx, e)| TimerKey {
                idx: idx as u32,
                gen: e.gen,
            })
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
