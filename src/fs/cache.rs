//! Per-worker open-file cache (nginx `open_file_cache`, lighttpd's stat cache): request path →
//! open file + representation, so a hot file costs no `openat2`/`fstat`/`close` per request.
//!
//! Key decisions: an entry is dropped as soon as the worker learns that a name it was resolved
//! through changed — each directory on its path is watched with inotify, and the events are
//! read at most every [`DRAIN_EVERY`] by the next lookup (one `read` per period, none per
//! request), so a file replaced by rename, deleted, or reached through a swapped
//! `current -> releases/N` symlink is served new within about that. What watches cannot see
//! (another node writing a network file system, a symlinked file's target changing, a watch
//! refused at `fs.inotify.max_user_watches`) is bounded by `valid`: an entry older than that is
//! confirmed through [`Root::unchanged`] or resolved again through [`Root::lookup`], the one
//! race-free resolution path. Only successful file lookups are cached, so every refusal
//! (traversal, dotfile, missing) is still decided fresh. Entries are shared with the
//! connections sending them through `Arc`, so evicting one never closes a file mid-transfer.
//! The cache is bounded; when full, an arbitrary entry is evicted (cheap, and hot entries come
//! straight back). Precompressed sidecars are cached like files, under a key no request path
//! can spell (the path, a NUL, the suffix); directories (listings) are never cached.

mod watches;

use std::collections::HashMap;
use std::ffi::CStr;
use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Lookup, Root};
use crate::http::path::split_query;
use crate::http::{ETag, Representation};
pub use watches::DRAIN_EVERY;
use watches::{Deps, Read, Watches};

/// What the cache answers: a [`Lookup`] whose file is shared with the cache.
pub type Found = Lookup<Arc<File>>;

struct Entry {
    file: Arc<File>,
    rep: Representation,
    checked: Instant,
    /// The names it was resolved through.
    deps: Deps,
}

/// The cache; one per worker, so no locking.
pub struct FileCache {
    map: HashMap<Box<[u8]>, Entry>,
    max: usize,
    valid: Duration,
    watches: Option<Watches>,
    hits: u64,
    misses: u64,
}

impl FileCache {
    /// A cache of at most `max` entries (0 disables it), each dropped when a name it depends on
    /// changes and trusted for at most `valid` in any case.
    pub fn new(max: usize, valid: Duration) -> FileCache {
        FileCache {
            map: HashMap::new(),
            max,
            valid,
            watches: if max > 0 { Watches::new() } else { None },
            hits: 0,
            misses: 0,
        }
    }

    /// Resolves `target` below `root`, from the cache when a fresh entry exists.
    pub fn lookup(
        &mut self,
        root: &Root,
        target: &[u8],
        now: Instant,
        scratch: &mut Vec<u8>,
    ) -> Found {
        self.through(
            split_query(target).0,
            now,
            scratch,
            |version, scratch| root.unchanged(target, version, scratch),
            |scratch| root.lookup(target, scratch),
            |scratch, dir, each| root.watch_points(target, "", scratch, dir, each),
        )
    }

    /// Resolves the sidecar of `target` with `suffix` (see [`Root::lookup_sidecar`]), from
    /// the cache when a fresh entry exists; `key` is scratch space for the cache key.
    pub fn lookup_sidecar(
        &mut self,
        root: &Root,
        target: &[u8],
        suffix: &str,
        now: Instant,
        scratch: &mut Vec<u8>,
        key: &mut Vec<u8>,
    ) -> Found {
        key.clear();
        key.extend_from_slice(split_query(target).0);
        key.push(0);
        key.extend_from_slice(suffix.as_bytes());
        self.through(
            key,
            now,
            scratch,
            |_, _| false,
            |scratch| root.lookup_sidecar(target, suffix, scratch),
            |scratch, dir, each| root.watch_points(target, suffix, scratch, dir, each),
        )
    }

    /// The fresh entry under `key`; an expired one that `unchanged` confirms, trusted for
    /// another period; else what `resolve` finds (cached, with the directories `watch` names
    /// watched, if it is a file).
    fn through(
        &mut self,
        key: &[u8],
        now: Instant,
        scratch: &mut Vec<u8>,
        unchanged: impl FnOnce(&ETag, &mut Vec<u8>) -> bool,
        resolve: impl FnOnce(&mut Vec<u8>) -> Lookup,
        watch: impl FnOnce(&mut Vec<u8>, &mut Vec<u8>, &mut dyn FnMut(&CStr, &[u8])),
    ) -> Found {
        self.drain(now);
        if let Some(e) = self.map.get_mut(key) {
            let fresh = now.saturating_duration_since(e.checked) < self.valid;
            if fresh || unchanged(&e.rep.version, scratch) {
                if !fresh {
                    e.checked = now;
                }
                self.hits += 1;
                return Found::File {
                    file: Arc::clone(&e.file),
                    rep: e.rep.clone(),
                };
            }
        }
        self.misses += 1;
        match resolve(scratch) {
            Lookup::File { file, rep } => {
                let file = Arc::new(file);
                if self.max > 0 {
                    let entry = Entry {
                        file: Arc::clone(&file),
                        rep: rep.clone(),
                        checked: now,
                        deps: self.watch(scratch, watch),
                    };
                    self.insert(key, entry);
                }
                Found::File { file, rep }
            }
            other => {
                self.remove(key);
                other.map_file(Arc::new)
            }
        }
    }

    /// Watches the directories `watch` names, returning what the entry depends on. A change
    /// between the lookup and these watches is caught by `valid`.
    fn watch(
        &mut self,
        scratch: &mut Vec<u8>,
        watch: impl FnOnce(&mut Vec<u8>, &mut Vec<u8>, &mut dyn FnMut(&CStr, &[u8])),
    ) -> Deps {
        match &mut self.watches {
            Some(w) => w.depend(scratch, watch),
            None => Box::default(),
        }
    }

    /// Reads the watches' events, if the last read was [`DRAIN_EVERY`] ago or more, and drops
    /// every entry resolved through a name that changed (all of them if events were lost).
    fn drain(&mut self, now: Instant) {
        let Some(w) = &mut self.watches else {
            return;
        };
        match w.read(now) {
            Read::Nothing => {}
            Read::Lost => {
                self.map.clear();
                self.watches = Watches::new();
            }
            Read::Changed => self.map.retain(|_, e| {
                let stale = w.stale(&e.deps);
                if stale {
                    w.release(&e.deps);
                }
                !stale
            }),
        }
    }

    fn insert(&mut self, key: &[u8], entry: Entry) {
        if let Some(e) = self.map.get_mut(key) {
            let old = std::mem::replace(e, entry);
            self.release(&old);
            return;
        }
        if self.map.len() >= self.max {
            if let Some(victim) = self.map.keys().next().cloned() {
                self.remove(&victim);
            }
        }
        // Short of memory (RLIMIT_AS): serve the file uncached rather than abort.
        if self.map.try_reserve(1).is_err() {
            self.release(&entry);
            return;
        }
        self.map.insert(key.into(), entry);
    }

    fn remove(&mut self, key: &[u8]) {
        if let Some(old) = self.map.remove(key) {
            self.release(&old);
        }
    }

    fn release(&mut self, old: &Entry) {
        if let Some(w) = &mut self.watches {
            w.release(&old.deps);
        }
    }

    /// Forgets every entry and from now on holds at most `max` entries trusted for `valid`
    /// (a configuration reload, whose root may be another directory). Files being sent stay
    /// open with the connections sending them; the hit and miss counts go on.
    pub fn reset(&mut self, max: usize, valid: Duration) {
        self.map = HashMap::new();
        self.max = max;
        self.valid = valid;
        self.watches = if max > 0 { Watches::new() } else { None };
    }

    /// Lookups answered from the cache and lookups that resolved the path, so far.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

#[cfg(test)]
mod tests;
