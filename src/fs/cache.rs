//! Per-worker open-file cache (nginx `open_file_cache`, lighttpd's stat cache): request path →
//! open file + representation, so a hot file costs no `openat2`/`fstat`/`close` per request.
//!
//! Key decision: an entry is trusted for a fixed period (`valid`) and then simply resolved
//! again through [`Root::lookup`] — the one race-free resolution path — rather than
//! revalidated by a second mechanism. Only successful file lookups are cached, so every
//! refusal (traversal, dotfile, missing) is still decided fresh. Entries are shared with the
//! connections sending them through `Arc`, so evicting one never closes a file mid-transfer.
//! The cache is bounded; when full, an arbitrary entry is evicted (cheap, and hot entries come
//! straight back). Precompressed sidecars are cached like files, under a key no request path
//! can spell (the path, a NUL, the suffix); directories (listings) are never cached.

use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Lookup, Root};
use crate::http::path::split_query;
use crate::http::{ETag, Representation};

/// What the cache answers: a [`Lookup`] whose file is shared with the cache.
pub type Found = Lookup<Arc<File>>;

struct Entry {
    file: Arc<File>,
    rep: Representation,
    checked: Instant,
}

/// The cache; one per worker, so no locking.
pub struct FileCache {
    map: HashMap<Box<[u8]>, Entry>,
    max: usize,
    valid: Duration,
    hits: u64,
    misses: u64,
}

impl FileCache {
    /// A cache of at most `max` entries (0 disables it), each trusted for `valid`.
    pub fn new(max: usize, valid: Duration) -> FileCache {
        FileCache {
            map: HashMap::new(),
            max,
            valid,
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
        )
    }

    /// The fresh entry under `key`; an expired one that `unchanged` confirms, trusted for
    /// another period; else what `resolve` finds (cached if it is a file).
    fn through(
        &mut self,
        key: &[u8],
        now: Instant,
        scratch: &mut Vec<u8>,
        unchanged: impl FnOnce(&ETag, &mut Vec<u8>) -> bool,
        resolve: impl FnOnce(&mut Vec<u8>) -> Lookup,
    ) -> Found {
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
                    self.insert(
                        key,
                        Entry {
                            file: Arc::clone(&file),
                            rep: rep.clone(),
                            checked: now,
                        },
                    );
                }
                Found::File { file, rep }
            }
            other => {
                self.map.remove(key);
                other.map_file(Arc::new)
            }
        }
    }

    fn insert(&mut self, key: &[u8], entry: Entry) {
        if let Some(e) = self.map.get_mut(key) {
            *e = entry;
            return;
        }
        if self.map.len() >= self.max {
            if let Some(victim) = self.map.keys().next().cloned() {
                self.map.remove(&victim);
            }
        }
        self.map.insert(key.into(), entry);
    }

    /// Forgets every entry and from now on holds at most `max` entries trusted for `valid`
    /// (a configuration reload, whose root may be another directory). Files being sent stay
    /// open with the connections sending them; the hit and miss counts go on.
    pub fn reset(&mut self, max: usize, valid: Duration) {
        self.map = HashMap::new();
        self.max = max;
        self.valid = valid;
    }

    /// Lookups answered from the cache and lookups that resolved the path, so far.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn setup() -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.txt"), "one").unwrap();
        let root = Root::open(dir.path(), false).unwrap();
        (dir, root)
    }

    fn len_of(f: Found) -> u64 {
        match f {
            Found::File { rep, .. } => rep.len,
            _ => panic!("expected a file"),
        }
    }

    #[test]
    fn hits_within_valid_period_and_resolves_again_after() {
        let (dir, root) = setup();
        let mut c = FileCache::new(8, Duration::from_secs(5));
        let t0 = Instant::now();
        let s = &mut Vec::new();
        assert_eq!(len_of(c.lookup(&root, b"/a.txt?x=1", t0, s)), 3);
        fs::write(dir.path().join("a.txt"), "changed").unwrap();
        assert_eq!(
            len_of(c.lookup(&root, b"/a.txt", t0 + Duration::from_secs(1), s)),
            3
        );
        assert_eq!(c.stats(), (1, 1));
        assert_eq!(
            len_of(c.lookup(&root, b"/a.txt", t0 + Duration::from_secs(6), s)),
            7
        );
        assert_eq!(c.stats(), (1, 2));
    }

    #[test]
    fn refusals_are_never_cached_and_drop_stale_entries() {
        let (dir, root) = setup();
        let mut c = FileCache::new(8, Duration::ZERO);
        let t0 = Instant::now();
        let s = &mut Vec::new();
        assert!(matches!(
            c.lookup(&root, b"/a.txt", t0, s),
            Found::File { .. }
        ));
        fs::remove_file(dir.path().join("a.txt")).unwrap();
        assert!(matches!(c.lookup(&root, b"/a.txt", t0, s), Found::NotFound));
        assert!(matches!(
            c.lookup(&root, b"/../a.txt", t0, s),
            Found::BadRequest
        ));
        assert!(c.map.is_empty());
    }

    #[test]
    fn bounded() {
        let (dir, root) = setup();
        for i in 0..20 {
            fs::write(dir.path().join(format!("{i}.txt")), "x").unwrap();
        }
        let mut c = FileCache::new(4, Duration::from_secs(60));
        let now = Instant::now();
        for i in 0..20 {
            c.lookup(&root, format!("/{i}.txt").as_bytes(), now, &mut Vec::new());
        }
        assert_eq!(c.map.len(), 4);
    }

    #[test]
    fn reset_forgets_entries_and_keeps_counting() {
        let (_dir, root) = setup();
        let mut c = FileCache::new(8, Duration::from_secs(60));
        let now = Instant::now();
        let s = &mut Vec::new();
        let Found::File { file: sending, .. } = c.lookup(&root, b"/a.txt", now, s) else {
            panic!("expected a file");
        };
        c.reset(0, Duration::ZERO);
        assert!(c.map.is_empty());
        assert_eq!(sending.metadata().unwrap().len(), 3, "still open");
        c.lookup(&root, b"/a.txt", now, s);
        assert!(c.map.is_empty(), "now disabled");
        assert_eq!(c.stats(), (0, 2));
    }

    #[test]
    fn disabled_cache_holds_nothing() {
        let (_dir, root) = setup();
        let mut c = FileCache::new(0, Duration::from_secs(60));
        let now = Instant::now();
        c.lookup(&root, b"/a.txt", now, &mut Vec::new());
        c.lookup(&root, b"/a.txt", now, &mut Vec::new());
        assert_eq!(c.stats(), (0, 2));
    }

    #[test]
    fn sidecars_cached_apart_from_files() {
        let (dir, root) = setup();
        fs::write(dir.path().join("a.txt.gz"), "zipped").unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        fs::write(dir.path().join("d/index.html.gz"), "index").unwrap();
        fs::write(dir.path().join("d/.gz"), "a dotfile named .gz").unwrap();
        let mut c = FileCache::new(8, Duration::from_secs(60));
        let now = Instant::now();
        let (s, key) = (&mut Vec::new(), &mut Vec::new());
        assert_eq!(
            len_of(c.lookup_sidecar(&root, b"/a.txt", ".gz", now, s, key)),
            6
        );
        assert_eq!(len_of(c.lookup(&root, b"/a.txt", now, s)), 3);
        assert_eq!(
            len_of(c.lookup_sidecar(&root, b"/a.txt?x", ".gz", now, s, key)),
            6
        );
        assert_eq!(c.stats(), (1, 2));
        assert_eq!(
            len_of(c.lookup_sidecar(&root, b"/d/", ".gz", now, s, key)),
            5
        );
        assert!(matches!(
            c.lookup(&root, b"/d/", now, s),
            Found::Directory { .. }
        ));
        assert!(matches!(
            c.lookup_sidecar(&root, b"/a.txt", ".br", now, s, key),
            Found::NotFound
        ));
        assert_eq!(c.map.len(), 3);
    }

    #[test]
    fn an_unchanged_file_is_confirmed_without_being_opened_again() {
        let (dir, root) = setup();
        let mut c = FileCache::new(8, Duration::from_secs(1));
        let t0 = Instant::now();
        let s = &mut Vec::new();
        let file = |f: Found| match f {
            Found::File { file, .. } => file,
            _ => panic!("expected a file"),
        };
        let first = file(c.lookup(&root, b"/a.txt", t0, s));
        // Expired but the same version: the same open file, trusted for another period.
        let again = file(c.lookup(&root, b"/a.txt", t0 + Duration::from_secs(2), s));
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(c.stats(), (1, 1));
        // Replaced by rename (another inode): opened anew.
        fs::write(dir.path().join("b.txt"), "one").unwrap();
        fs::rename(dir.path().join("b.txt"), dir.path().join("a.txt")).unwrap();
        let next = file(c.lookup(&root, b"/a.txt", t0 + Duration::from_secs(4), s));
        assert!(!Arc::ptr_eq(&first, &next));
        assert_eq!(c.stats(), (1, 2));
    }
}
