//! Prebuilt responses for hot small files: the whole response — head, then the file's bytes —
//! held in a pipe, and copied into a connection's pipe with `tee(2)`.
//!
//! Key decision: a small file sent the usual way goes through TCP's send path twice (`send`
//! of the head, `sendfile` of the body) and looks its pages up in the page cache each time.
//! A prebuilt response goes out with one `tee` and one `splice`: one trip through TCP and no
//! lookup. That took 14 % off the server's CPU per 1 KiB keep-alive request and 8 % off
//! `Connection: close` churn (perf/RESULTS.md). No file byte enters user space: the pipe
//! holds references to the file's page-cache pages, as the pipe inside `sendfile` does.
//!
//! An entry is keyed by the file's version — its entity tag, which names mtime, size and
//! inode — so the copy follows the file across the open-file cache's reopenings and is never
//! used for another version. Its head carries the `Date`, so a copy serves for one second at
//! most and is renewed, from the file as it is then, for the next head. A copy is first built
//! only after [`BUILD_AT`] identical responses in a row: a file asked for less often costs a
//! comparison, and one served alternately with two heads (keep-alive and close, say) is
//! rebuilt at most once a second. A renewed copy is emptied into `/dev/null` and refilled in
//! its own pipe, which costs three syscalls rather than the six of a new pipe. Entries left
//! unused for two sweeps (seconds) are dropped, so the pipes — two descriptors and a page for
//! the head each — follow the hot set, within budgets of pipe pages and descriptors.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use super::out_pool::Out;
use crate::http::{Chunk, ETag, Status};
use crate::sys;

/// Responses a worker tracks at once: the hot files it can keep prebuilt.
const MAX_ENTRIES: usize = 1024;
/// Largest response (head and body) that is prebuilt: small files are where the saving is
/// (larger ones cost mostly TCP), and every page of a copy counts against the budget below.
const MAX_LEN: usize = 60 * 1024;
/// Longest head that is prebuilt (heads are kept inline to compare them).
const MAX_HEAD: usize = 512;
/// Identical responses in a row after which one is prebuilt: building takes about as many
/// syscalls as sending three responses.
const BUILD_AT: u32 = 4;
/// How often unused entries are dropped.
const SWEEP: Duration = Duration::from_secs(1);
/// Pipe pages the copies of all workers may hold together, shared out evenly: a quarter of
/// the kernel's default per-user budget (`fs.pipe-user-pages-soft`, 16,384), past which an
/// unprivileged user's new pipes get one page each.
const SERVER_PAGES: usize = 4096;
/// Share of the descriptor limit (`RLIMIT_NOFILE`) the copies of all workers may hold
/// together (two descriptors each), so they never starve accepts and opens.
const FD_SHARE: usize = 8;

/// A worker's prebuilt responses.
pub struct Prebuilt {
    /// Entry of each file version, by hash of its tag.
    index: HashMap<u64, u32>,
    hasher: RandomState,
    /// Entries; those of `free` are unused. Grown to the largest hot set seen (at most
    /// [`MAX_ENTRIES`]) and reused after, so steady serving allocates nothing.
    entries: Vec<Entry>,
    free: Vec<u32>,
    /// Sweeps so far; an entry records the one it was last used in.
    epoch: u32,
    next_sweep: Instant,
    /// Set when `tee` is refused (a seccomp filter, say): the worker then sends every
    /// response the usual way.
    off: bool,
    page: usize,
    /// `/dev/null`, where a copy is emptied to be refilled for its next head; without it,
    /// copies are rebuilt in new pipes.
    null: Option<OwnedFd>,
    /// What the built copies hold, and this worker's share of [`SERVER_PAGES`] and of the
    /// descriptor limit.
    held: Held,
    budget: Held,
}

/// Pipe pages and pipes (two descriptors each).
#[derive(Clone, Copy, Default)]
struct Held {
    pages: usize,
    pipes: usize,
}

impl Held {
    /// Whether one more pipe of `pages` stays within `budget`.
    fn fits(&self, pages: usize, budget: &Held) -> bool {
        self.pages + pages <= budget.pages && self.pipes < budget.pipes
    }

    /// A copy of `pages` pages was closed (none: there was no copy).
    fn release(&mut self, pages: usize) {
        if pages > 0 {
            self.pages -= pages;
            self.pipes -= 1;
        }
    }
}

/// One file version's response: its head, and once it is hot, the pipe holding it.
struct Entry {
    version: ETag,
    offset: u64,
    len: u64,
    head: [u8; MAX_HEAD],
    head_len: usize,
    /// Identical responses in a row, counted up to [`BUILD_AT`].
    seen: u32,
    pipe: Option<Built>,
    used: u32,
    /// Sweep in which the copy was last rebuilt at once for a new head.
    renewed: u32,
}

/// A built response: the pipe holding head and body, its size in pages and the bytes in it.
struct Built {
    r: OwnedFd,
    w: OwnedFd,
    pages: usize,
    len: usize,
}

impl Entry {
    /// Whether this entry is the response of `head` and that range.
    fn is(&self, offset: u64, len: u64, head: &[u8]) -> bool {
        (self.offset, self.len) == (offset, len) && &self.head[..self.head_len] == head
    }

    /// Makes the entry that response, seen once (its copy, if any, still holds the old one).
    fn set(&mut self, offset: u64, len: u64, head: &[u8]) {
        (self.offset, self.len, self.head_len) = (offset, len, head.len());
        self.head[..head.len()].copy_from_slice(head);
        self.seen = 1;
    }

    /// Closes the copy; returns the pages it held.
    fn drop_copy(&mut self) -> usize {
        self.pipe.take().map_or(0, |c| c.pages)
    }
}

impl Prebuilt {
    /// No responses yet, for one of `workers` workers of a process that may open `fds`
    /// descriptors.
    pub fn new(now: Instant, workers: usize, fds: usize) -> Prebuilt {
        let workers = workers.max(1);
        Prebuilt {
            index: HashMap::new(),
            hasher: RandomState::new(),
            entries: Vec::new(),
            free: Vec::new(),
            epoch: 0,
            next_sweep: now + SWEEP,
            off: false,
            page: sys::page_size(),
            null: std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .ok()
                .map(OwnedFd::from),
            held: Held::default(),
            budget: Held {
                pages: SERVER_PAGES / workers,
                pipes: fds / FD_SHARE / workers / 2,
            },
        }
    }

    /// The prebuilt copy of the response `out` is about to start sending, and its length;
    /// `None` when it has none. Only a whole stored file after its head qualifies (a 200, no
    /// pacing), up to [`MAX_LEN`] bytes. The copy is built here once `out` is the
    /// [`BUILD_AT`]th response in a row for its file version with the same head.
    pub fn lookup(&mut self, out: &Out) -> Option<(BorrowedFd<'_>, usize)> {
        if self.off || out.status != Status::Ok || out.cursor != (0, 0) || out.pacing.is_some() {
            return None;
        }
        let [Chunk::Mem { start, end }, Chunk::File { offset, len }] = out.chunks[..] else {
            return None;
        };
        let (file, version) = (out.file.as_ref()?, out.version.as_ref()?);
        let head = &out.bytes[start..end];
        let total = usize::try_from(len).ok()?.checked_add(head.len())?;
        if total > MAX_LEN || head.len() > MAX_HEAD {
            return None;
        }
        let content = Content {
            head,
            file: file.as_fd(),
            offset,
            len: len as usize,
        };
        let key = self.hasher.hash_one(version.as_bytes());
        let Some(&i) = self.index.get(&key) else {
            self.insert(key, version, offset, len, head);
            return None;
        };
        let entry = &mut self.entries[i as usize];
        if entry.version != *version {
            return None; // Another version with the same hash: it keeps the entry.
        }
        entry.used = self.epoch;
        if !entry.is(offset, len, head) {
            entry.set(offset, len, head);
            // A hot copy is renewed at once for its next head (the `Date` moved on): emptied
            // and refilled in place. Only once per sweep, though, so that a file served with
            // two heads in turn is not rebuilt each time.
            let renew = entry.pipe.is_some() && entry.renewed != self.epoch;
            if renew {
                entry.renewed = self.epoch;
                if let (Some(built), Some(null)) = (entry.pipe.as_mut(), &self.null) {
                    if built.refill(null.as_fd(), &content).is_ok() {
                        return entry.pipe.as_ref().map(|c| (c.r.as_fd(), total));
                    }
                }
            }
            self.held.release(entry.drop_copy());
            if !renew {
                return None;
            }
            entry.seen = BUILD_AT - 1;
        }
        if entry.pipe.is_none() {
            entry.seen += 1;
            let pages = (offset as usize % self.page + len as usize).div_ceil(self.page) + 1;
            if entry.seen < BUILD_AT || !self.held.fits(pages, &self.budget) {
                return None;
            }
            match Built::new(&content, pages, self.page) {
                Ok(built) => entry.pipe = Some(built),
                Err(_) => {
                    entry.seen = 0;
                    return None;
                }
            }
            self.held.pages += pages;
            self.held.pipes += 1;
        }
        entry.pipe.as_ref().map(|c| (c.r.as_fd(), total))
    }

    /// Starts tracking the response of `head` and that range of the file `version`, unless
    /// [`MAX_ENTRIES`] are tracked already.
    fn insert(&mut self, key: u64, version: &ETag, offset: u64, len: u64, head: &[u8]) {
        let i = match self.free.pop() {
            Some(i) => i,
            None if self.entries.len() < MAX_ENTRIES => {
                // Short of memory (RLIMIT_AS): the response is sent the usual way.
                if self.index.capacity() == 0
                    && (self.index.try_reserve(MAX_ENTRIES).is_err()
                        || self.free.try_reserve(MAX_ENTRIES).is_err())
                {
                    return;
                }
                if self.entries.try_reserve(1).is_err() {
                    return;
                }
                self.entries.push(Entry {
                    version: *version,
                    offset: 0,
                    len: 0,
                    head: [0; MAX_HEAD],
                    head_len: 0,
                    seen: 0,
                    pipe: None,
                    used: 0,
                    renewed: 0,
                });
                (self.entries.len() - 1) as u32
            }
            None => return,
        };
        let entry = &mut self.entries[i as usize];
        (entry.version, entry.used) = (*version, self.epoch);
        entry.renewed = self.epoch.wrapping_sub(1);
        entry.set(offset, len, head);
        self.index.insert(key, i);
    }

    /// `tee` is refused: send everything the usual way from now on.
    pub fn disable(&mut self) {
        self.off = true;
        self.index = HashMap::new();
        self.entries = Vec::new();
        self.free = Vec::new();
        self.held = Held::default();
    }

    /// Once a second (called every loop turn): drops the entries not used since the sweep
    /// before last, closing their pipes.
    pub fn sweep(&mut self, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + SWEEP;
        self.epoch = self.epoch.wrapping_add(1);
        let (entries, free, epoch) = (&mut self.entries, &mut self.free, self.epoch);
        let held = &mut self.held;
        self.index.retain(|_, &mut i| {
            let entry = &mut entries[i as usize];
            let keep = epoch.wrapping_sub(entry.used) <= 1;
            if !keep {
                held.release(entry.drop_copy());
                free.push(i);
            }
            keep
        });
    }

    /// Responses held built (for tests).
    #[cfg(test)]
    fn built(&self) -> usize {
        self.entries.iter().filter(|e| e.pipe.is_some()).count()
    }
}

/// What a copy holds: a head, then `len` bytes of `file` from `offset`.
struct Content<'a> {
    head: &'a [u8],
    file: BorrowedFd<'a>,
    offset: u64,
    len: usize,
}

impl Content<'_> {
    /// Writes the head into the empty pipe `w`, then splices the file's bytes in: the head in
    /// one buffer, then one buffer per page of the file (references, not copies).
    fn fill(&self, w: BorrowedFd<'_>) -> io::Result<()> {
        if sys::write(w, self.head)? != self.head.len() {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let mut done = 0;
        while done < self.len {
            let at = self.offset + done as u64;
            match sys::splice_from_file(self.file, at, w, self.len - done)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => done += n,
            }
        }
        Ok(())
    }

    fn total(&self) -> usize {
        self.head.len() + self.len
    }
}

impl Built {
    /// A new pipe of `pages` pages of `page` bytes holding `content`.
    fn new(content: &Content<'_>, pages: usize, page: usize) -> io::Result<Built> {
        let (r, w) = sys::pipe(pages * page)?;
        content.fill(w.as_fd())?;
        let len = content.total();
        Ok(Built { r, w, pages, len })
    }

    /// Empties the pipe into `null` and fills it again with `content`.
    fn refill(&mut self, null: BorrowedFd<'_>, content: &Content<'_>) -> io::Result<()> {
        while self.len > 0 {
            match sys::splice_to_socket(self.r.as_fd(), null, self.len, false)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => self.len -= n,
            }
        }
        content.fill(self.w.as_fd())?;
        self.len = content.total();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::sync::Arc;

    /// A 200 response state: `head`, then all of `file` (version `version`).
    fn out(file: &Arc<File>, version: u64, head: &[u8]) -> Out {
        let len = file.metadata().unwrap().len();
        let mut out = Out::default();
        out.bytes.extend_from_slice(head);
        out.chunks.push(Chunk::Mem {
            start: 0,
            end: head.len(),
        });
        out.chunks.push(Chunk::File { offset: 0, len });
        out.file = Some(Arc::clone(file));
        out.version = Some(ETag::from_parts(version, len, 1));
        out
    }

    fn file(content: &[u8]) -> Arc<File> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(content).unwrap();
        Arc::new(f)
    }

    /// A copy of the `len` bytes in the pipe read end `r`, teed out as the engine does.
    fn copy(r: BorrowedFd<'_>, len: usize) -> Vec<u8> {
        let (cr, cw) = sys::pipe(MAX_LEN).unwrap();
        assert_eq!(sys::tee(r, cw.as_fd(), len).unwrap(), len);
        let mut buf = vec![0; len];
        File::from(cr).read_exact(&mut buf).unwrap();
        buf
    }

    /// Looks `out` up until just before it is built.
    fn warm(p: &mut Prebuilt, out: &Out) {
        for _ in 1..BUILD_AT {
            assert!(p.lookup(out).is_none());
        }
    }

    #[test]
    fn built_once_seen_often_enough() {
        let f = file(b"01234");
        let mut p = Prebuilt::new(Instant::now(), 1, 1 << 20);
        let o = out(&f, 1, b"HEAD\r\n\r\n");
        warm(&mut p, &o);
        assert_eq!(p.built(), 0);
        let (r, len) = p.lookup(&o).expect("built");
        assert_eq!(len, 13);
        assert_eq!(copy(r, len), b"HEAD\r\n\r\n01234");
        let (r, len) = p.lookup(&o).expect("still there");
        assert_eq!(copy(r, len), b"HEAD\r\n\r\n01234", "copies leave it whole");
    }

    #[test]
    fn a_new_head_starts_the_count_over() {
        let f = file(b"0123456789");
        let mut p = Prebuilt::new(Instant::now(), 1, 1 << 20);
        let a = out(&f, 1, b"Date: 1\r\n\r\n");
        let b = out(&f, 1, b"Date: 2\r\n\r\n");
        warm(&mut p, &a);
        assert!(p.lookup(&b).is_none());
        assert!(p.lookup(&a).is_none(), "counted from one again");
        assert_eq!(p.built(), 0);
    }

    #[test]
    fn a_hot_copy_is_renewed_at_once_but_once_a_sweep() {
        let f = file(b"0123456789");
        let t0 = Instant::now();
        let mut p = Prebuilt::new(t0, 1, 1 << 20);
        let a = out(&f, 1, b"Date: 1\r\n\r\n");
        let b = out(&f, 1, b"Date: 2\r\n\r\n");
        warm(&mut p, &a);
        let pipe = p.lookup(&a).map(|(r, _)| r.as_raw_fd());
        let (r, len) = p.lookup(&b).expect("renewed for the new head");
        assert_eq!(Some(r.as_raw_fd()), pipe, "refilled in place");
        assert_eq!(copy(r, len), b"Date: 2\r\n\r\n0123456789");
        assert!(p.lookup(&a).is_none(), "not twice in one sweep");
        assert_eq!(p.built(), 0);
        for _ in 2..BUILD_AT {
            assert!(p.lookup(&a).is_none());
        }
        assert!(p.lookup(&a).is_some(), "built the usual way");
        p.sweep(t0 + SWEEP);
        assert!(p.lookup(&b).is_some(), "renewed again in the next sweep");
    }

    #[test]
    fn versions_are_kept_apart() {
        let f = file(b"0123456789");
        let mut p = Prebuilt::new(Instant::now(), 1, 1 << 20);
        let (v1, v2) = (out(&f, 1, b"H\r\n\r\n"), out(&f, 2, b"H\r\n\r\n"));
        warm(&mut p, &v1);
        warm(&mut p, &v2);
        assert!(p.lookup(&v1).is_some());
        assert!(p.lookup(&v2).is_some());
        assert_eq!(p.built(), 2);
    }

    #[test]
    fn only_a_whole_stored_file_after_its_head_qualifies() {
        let f = file(&[7; 100]);
        let big = file(&vec![7; MAX_LEN]);
        let mut p = Prebuilt::new(Instant::now(), 1, 1 << 20);
        let mut two = out(&f, 1, b"H\r\n\r\n");
        two.chunks.push(Chunk::File { offset: 0, len: 1 });
        let mut partial = out(&f, 2, b"H\r\n\r\n");
        partial.status = Status::PartialContent;
        let mut generated = out(&f, 3, b"H\r\n\r\n");
        generated.version = None;
        let mut started = out(&f, 4, b"H\r\n\r\n");
        started.cursor = (0, 1);
        let long_head = out(&f, 5, &[b'h'; MAX_HEAD + 1]);
        let big = out(&big, 6, b"H\r\n\r\n");
        for _ in 0..BUILD_AT {
            for o in [&two, &partial, &generated, &started, &long_head, &big] {
                assert!(p.lookup(o).is_none());
            }
        }
    }

    #[test]
    fn a_file_shorter_than_planned_is_not_built() {
        let f = file(b"short");
        let mut p = Prebuilt::new(Instant::now(), 1, 1 << 20);
        let mut o = out(&f, 1, b"H\r\n\r\n");
        o.chunks[1] = Chunk::File {
            offset: 0,
            len: 100,
        };
        warm(&mut p, &o);
        assert!(p.lookup(&o).is_none(), "the splice came up short");
        assert_eq!(p.built(), 0);
    }

    #[test]
    fn copies_stay_within_the_page_budget() {
        let f = file(b"ff");
        let t0 = Instant::now();
        // A budget of two pages: one small copy (a page for the head, one for the body).
        let mut p = Prebuilt::new(t0, SERVER_PAGES / 2, 1 << 20);
        let (a, b) = (out(&f, 1, b"H\r\n\r\n"), out(&f, 2, b"H\r\n\r\n"));
        warm(&mut p, &a);
        assert!(p.lookup(&a).is_some());
        warm(&mut p, &b);
        assert!(p.lookup(&b).is_none(), "over budget");
        let renewed = p.lookup(&out(&f, 1, b"New\r\n\r\n"));
        assert!(
            renewed.is_some(),
            "a renewal reuses the pages it gives back"
        );
        p.sweep(t0 + SWEEP);
        assert!(p.lookup(&b).is_none(), "still over budget");
        p.sweep(t0 + SWEEP * 2);
        assert!(
            p.lookup(&b).is_some(),
            "a was dropped and its pages given back"
        );
    }

    #[test]
    fn copies_stay_within_their_share_of_descriptors() {
        let f = file(b"ff");
        let mut p = Prebuilt::new(Instant::now(), 1, FD_SHARE * 2);
        let (a, b) = (out(&f, 1, b"H\r\n\r\n"), out(&f, 2, b"H\r\n\r\n"));
        warm(&mut p, &a);
        assert!(
            p.lookup(&a).is_some(),
            "two descriptors of {}",
            FD_SHARE * 2
        );
        warm(&mut p, &b);
        assert!(p.lookup(&b).is_none(), "a second would exceed the share");
    }

    #[test]
    fn unused_entries_go_after_two_sweeps() {
        let f = file(b"ff");
        let t0 = Instant::now();
        let mut p = Prebuilt::new(t0, 1, 1 << 20);
        let (a, b) = (out(&f, 1, b"H\r\n\r\n"), out(&f, 2, b"H\r\n\r\n"));
        for o in [&a, &b] {
            warm(&mut p, o);
            assert!(p.lookup(o).is_some());
        }
        assert_eq!(p.built(), 2);
        p.sweep(t0 + SWEEP);
        p.lookup(&a);
        p.sweep(t0 + SWEEP * 2);
        assert_eq!(p.built(), 1, "b unused for two sweeps");
        assert!(p.lookup(&a).is_some());
        warm(&mut p, &b);
        assert!(p.lookup(&b).is_some(), "tracked again, in the freed entry");
        assert_eq!(p.entries.len(), 2);
    }
}
