//! The most downloaded files: a per-worker Space-Saving list, published at most once a
//! second, merged by canonical path when read.

use std::collections::hash_map::{Entry, HashMap};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;

use crate::http::path::{canonical_path, split_query};

use super::*;

/// How often a worker publishes its top files at most.
pub(super) const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// Longest path [`TopFiles`] tracks; longer ones are not counted, bounding its memory.
pub(super) const MAX_KEY: usize = 1024;

/// A worker's approximate download counts per path, with Space-Saving: at most `capacity`
/// counters; a path not tracked replaces the one with the smallest count and inherits that
/// count plus one. Every path requested more than `total / capacity` times is tracked, and a
/// tracked count overestimates by at most the count it inherited.
///
/// The counters form a binary min-heap. Paths live in fixed slots that the heap points to and
/// are found by a keyed 64-bit hash, so a recording hashes its path once, moves no path, and
/// allocates nothing once every slot is in use: an evicted slot's buffer takes the new path
/// (growing only for a path longer than any it held). With many more distinct files than
/// counters that is most requests. Two paths with the same keyed hash would share a counter,
/// which for random keys and 64 bits does not happen in practice. The hash is foldhash,
/// cheaper than std's SipHash per request: a client that found collisions without knowing the
/// keys could at worst merge two paths' counts, in a table of `2 × capacity` entries.
pub struct TopFiles {
    pub(super) capacity: usize,
    pub(super) hasher: RandomState,
    /// `(count, slot)`, a min-heap on count.
    pub(super) heap: Vec<(u64, usize)>,
    pub(super) slots: Vec<Slot>,
    /// Path hash to slot.
    pub(super) index: HashMap<u64, usize, RandomState>,
    pub(super) changed: bool,
    pub(super) published: Option<Instant>,
}

/// A tracked path.
pub(super) struct Slot {
    pub(super) path: Vec<u8>,
    pub(super) hash: u64,
    /// Its counter's position in the heap.
    pub(super) at: usize,
}

/// Bytes reserved for a slot's path when it is created, so that eviction seldom has to grow
/// it.
pub(super) const SLOT_PATH: usize = 128;

impl TopFiles {
    /// Tracks at most `capacity` paths (at least one).
    pub fn new(capacity: usize) -> TopFiles {
        let capacity = capacity.max(1);
        TopFiles {
            capacity,
            hasher: RandomState::default(),
            heap: Vec::with_capacity(capacity),
            slots: Vec::with_capacity(capacity),
            // Twice the room: evictions leave tombstones, and a table at most half full
            // clears them in place instead of growing.
            index: HashMap::with_capacity_and_hasher(2 * capacity, Default::default()),
            changed: false,
            published: None,
        }
    }

    /// Counts one download of `target` (a request target as received: its path is the key,
    /// any `?query` is ignored). The engine calls it for each GET answered 200 or 206.
    pub fn record(&mut self, target: &[u8]) {
        let path = split_query(target).0;
        if path.len() > MAX_KEY {
            return;
        }
        self.changed = true;
        let hash = self.hasher.hash_one(path);
        if let Some(&slot) = self.index.get(&hash) {
            let at = self.slots[slot].at;
            self.heap[at].0 += 1;
            self.sift_down(at);
            return;
        }
        if self.heap.len() < self.capacity {
            let slot = self.slots.len();
            let mut buf = Vec::with_capacity(path.len().max(SLOT_PATH));
            buf.extend_from_slice(path);
            let at = self.heap.len();
            self.slots.push(Slot {
                path: buf,
                hash,
                at,
            });
            self.heap.push((1, slot));
            self.index.insert(hash, slot);
            self.sift_up(at);
            return;
        }
        let (min, slot) = self.heap[0];
        let s = &mut self.slots[slot];
        self.index.remove(&s.hash);
        s.path.clear();
        s.path.extend_from_slice(path);
        s.hash = hash;
        self.index.insert(hash, slot);
        self.heap[0].0 = min + 1;
        self.sift_down(0);
    }

    /// The tracked paths and counts, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = (&[u8], u64)> {
        self.heap
            .iter()
            .map(|&(n, slot)| (&self.slots[slot].path[..], n))
    }

    /// Publishes the counts into `to` if they changed and a second has passed since the
    /// last publication, unless a scrape holds the lock (then the next call retries). `now`
    /// is the worker's clock; call it once per loop turn.
    pub fn publish(&mut self, now: Instant, to: &WorkerMetrics) {
        let due = self
            .published
            .is_none_or(|at| now.saturating_duration_since(at) >= PUBLISH_EVERY);
        if !self.changed || !due {
            return;
        }
        if let Ok(mut shared) = to.top.0.try_lock() {
            shared.clear();
            shared.extend(self.entries().map(|(k, n)| (Arc::from(k), n)));
            self.changed = false;
            self.published = Some(now);
        }
    }

    pub(super) fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        for i in [a, b] {
            self.slots[self.heap[i].1].at = i;
        }
    }

    pub(super) fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.heap[parent].0 <= self.heap[i].0 {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    pub(super) fn sift_down(&mut self, mut i: usize) {
        loop {
            let mut smallest = i;
            for child in [2 * i + 1, 2 * i + 2] {
                if child < self.heap.len() && self.heap[child].0 < self.heap[smallest].0 {
                    smallest = child;
                }
            }
            if smallest == i {
                return;
            }
            self.swap(i, smallest);
            i = smallest;
        }
    }
}

/// The download counts published by `workers`, merged: paths are canonicalised with
/// [`path_key`] (so `/a%20b` and `/a b` count together; paths that do not decode are
/// dropped), counts summed, sorted by count (descending) then path.
pub fn top_files(workers: &[WorkerMetrics]) -> Vec<(String, u64)> {
    let mut merged: HashMap<String, u64> = HashMap::new();
    let mut scratch = Vec::new();
    for w in workers {
        let published = match w.top.0.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        for (path, n) in published {
            if let Some(key) = path_key(&path, &mut scratch) {
                match merged.entry(key) {
                    Entry::Occupied(mut e) => *e.get_mut() += n,
                    Entry::Vacant(e) => {
                        e.insert(n);
                    }
                }
            }
        }
    }
    let mut list: Vec<(String, u64)> = merged.into_iter().collect();
    list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    list
}

/// The canonical path of `target` ([`canonical_path`]) as text, the key download counts
/// merge by; `None` for a target the file layer refuses.
pub fn path_key(target: &[u8], scratch: &mut Vec<u8>) -> Option<String> {
    canonical_path(target, scratch).ok()?;
    Some(String::from_utf8_lossy(scratch).into_owned())
}
