//! Prebuilt responses for hot small files: the whole response — head, then the file's bytes —
//! held in a memfd (a file in memory), and sent with one `sendfile(2)`.
//!
//! Key decision: a small file sent the usual way goes through TCP's send path twice (`send`
//! of the head, `sendfile` of the body) and looks its pages up in the page cache each time.
//! A prebuilt response goes out in one call: one trip through TCP. Copies held in pipes
//! (`tee` into the connection's pipe, then `splice`) took 14 % off the server's CPU per 1 KiB
//! keep-alive request and 8 % off `Connection: close` churn; one `sendfile` from a memfd took
//! another 4 % off keep-alive requests, for one file and over 1,000 small files
//! (perf/RESULTS.md). No file byte enters user space: the kernel copies the file's bytes into
//! the memfd (a `sendfile` into it), once per copy. A connection's last response, whose tail
//! waits to leave with the FIN, goes from the copy through the connection's pipe with
//! `SPLICE_F_MORE` instead: corking the socket for a `sendfile` cost 3 % more there.
//!
//! An entry is keyed by the file's version — its entity tag, which names mtime, size and
//! inode — so the copy follows the file across the open-file cache's reopenings and is never
//! used for another version. Its head carries the `Date`, so a copy serves for one second at
//! most and is renewed, from the file as it is then, for the next head. A copy is never
//! written once built: TCP may still hold references to its pages (a retransmission sends them
//! again), so a renewed copy is a new memfd, and a connection still sending the old one keeps
//! it open until done. A copy is first built only after [`BUILD_AT`] identical responses in a
//! row: a file asked for less often costs a comparison, and one served alternately with two
//! heads (keep-alive and close, say) is rebuilt at most once a second. Entries left unused for
//! two sweeps (seconds) are dropped, so the copies — a descriptor and their pages of memory
//! each — follow the hot set, within budgets of pages and descriptors.

use std::collections::HashMap;
use std::fs::File;
use std::hash::BuildHasher;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;

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
/// Pages of memory the copies of all workers may hold together (16 MiB of 4 KiB pages),
/// shared out evenly.
const SERVER_PAGES: usize = 4096;
/// Share of the descriptor limit (`RLIMIT_NOFILE`) the copies of all workers may hold
/// together (one descriptor each), so they never starve accepts and opens.
const FD_SHARE: usize = 16;

/// A worker's prebuilt responses.
pub struct Prebuilt {
    /// Entry of each file version, by hash of its tag. Foldhash rather than std's SipHash
    /// (cheaper per lookup): the tags are those of files on disk, not chosen by a client, and
    /// two with the same hash only leave one of them without a copy.
    index: HashMap<u64, u32, RandomState>,
    hasher: RandomState,
    /// Entries; those of `free` are unused. Grown to the largest hot set seen (at most
    /// [`MAX_ENTRIES`]) and reused after, so steady serving allocates nothing.
    entries: Vec<Entry>,
    free: Vec<u32>,
    /// Sweeps so far; an entry records the one it was last used in.
    epoch: u32,
    next_sweep: Instant,
    /// Set when `memfd_create` is refused (a seccomp filter, say): the worker then sends every
    /// response the usual way.
    off: bool,
    page: usize,
    /// What the built copies hold, and this worker's share of [`SERVER_PAGES`] and of the
    /// descriptor limit.
    held: Held,
    budget: Held,
}

/// Pages and copies (a descriptor each).
#[derive(Clone, Copy, Default)]
struct Held {
    pages: usize,
    copies: usize,
}

impl Held {
    /// Whether one more copy of `pages` stays within `budget`.
    fn fits(&self, pages: usize, budget: &Held) -> bool {
        self.pages + pages <= budget.pages && self.copies < budget.copies
    }

    /// A copy of `pages` pages was dropped (none: there was no copy).
    fn release(&mut self, pages: usize) {
        if pages > 0 {
            self.pages -= pages;
            self.copies -= 1;
        }
    }
}

/// One file version's response: its head, and once it is hot, the copy holding it.
struct Entry {
    version: ETag,
    offset: u64,
    len: u64,
    head: [u8; MAX_HEAD],
    head_len: usize,
    /// Identical responses in a row, counted up to [`BUILD_AT`].
    seen: u32,
    copy: Option<Built>,
    used: u32,
    /// Sweep in which the copy was last rebuilt at once for a new head.
    renewed: u32,
}

/// A built response: the memfd holding head and body, its size in pages and in bytes.
struct Built {
    file: Arc<File>,
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
        self.copy.take().map_or(0, |c| c.pages)
    }
}

impl Prebuilt {
    /// No responses yet, for one of `workers` workers of a process that may open `fds`
    /// descriptors.
    pub fn new(now: Instant, workers: usize, fds: usize) -> Prebuilt {
        let workers = workers.max(1);
        Prebuilt {
            index: HashMap::default(),
            hasher: RandomState::default(),
            entries: Vec::new(),
            free: Vec::new(),
            epoch: 0,
            next_sweep: now + SWEEP,
            off: false,
            page: sys::page_size(),
            held: Held::default(),
            budget: Held {
                pages: SERVER_PAGES / workers,
                copies: fds / FD_SHARE / workers,
            },
        }
    }

    /// The prebuilt copy of the response `out` is about to start sending (head and body, from
    /// its start), and its length; `None` when it has none. Only a whole stored file after its
    /// head qualifies (a 200, no pacing), up to [`MAX_LEN`] bytes. The copy is built here once
    /// `out` is the [`BUILD_AT`]th response in a row for its file version with the same head.
    pub fn lookup(&mut self, out: &Out) -> Option<(&Arc<File>, u64)> {
        if self.off || out.status != Status::Ok || out.cursor != (0, 0) || out.pacing.is_some() {
            return None;
        }
        let [Chunk::Mem { start, end }, Chunk::File { offset, len }] = out.chunks[..] else {
            return None;
        };
        let (file, version) = (out.file.as_ref()?, out.version.as_ref()?);
        let head = &out.bytes[start..end];
        let page = self.page;
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
            // A hot copy is renewed at once for its next head (the `Date` moved on). Only
            // once per sweep, though, so that a file served with two heads in turn is not
            // rebuilt each time.
            let renew = entry.copy.is_some() && entry.renewed != self.epoch;
            self.held.release(entry.drop_copy());
            if !renew {
                return None;
            }
            entry.renewed = self.epoch;
            entry.seen = BUILD_AT - 1;
        }
        if entry.copy.is_none() {
            entry.seen += 1;
            let pages = total.div_ceil(page);
            if entry.seen < BUILD_AT || !self.held.fits(pages, &self.budget) {
                return None;
            }
            match Built::new(&content, pages) {
                Ok(built) => entry.copy = Some(built),
                Err(e) => {
                    entry.seen = 0;
                    // Refused outright (a seccomp filter, say): it will not work later either.
                    if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) {
                        self.disable();
                    }
                    return None;
                }
            }
            self.held.pages += pages;
            self.held.copies += 1;
        }
        let built = self.entries[i as usize].copy.as_ref();
        built.map(|c| (&c.file, c.len as u64))
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
                    copy: None,
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

    /// Copies cannot be made: send everything the usual way from now on.
    fn disable(&mut self) {
        self.off = true;
        self.index = HashMap::default();
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
        self.entries.iter().filter(|e| e.copy.is_some()).count()
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
    fn total(&self) -> usize {
        self.head.len() + self.len
    }
}

impl Built {
    /// A new memfd of `pages` pages holding `content`: the head written, then the file's bytes
    /// copied in by the kernel.
    fn new(content: &Content<'_>, pages: usize) -> io::Result<Built> {
        let mut file = sys::memfd("ringserve-prebuilt")?;
        file.write_all(content.head)?;
        let mut done = 0;
        while done < content.len {
            let at = content.offset + done as u64;
            let left = (content.len - done) as u64;
            match sys::sendfile(file.as_fd(), content.file, at, left)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => done += n,
            }
        }
        let len = content.total();
        Ok(Built {
            file: Arc::new(file),
            pages,
            len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

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

    /// The `len` bytes of a copy, and that they are all it holds.
    fn copy(file: &File, len: u64) -> Vec<u8> {
        assert_eq!(file.metadata().unwrap().len(), len);
        let mut buf = vec![0; len as usize];
        file.read_exact_at(&mut buf, 0).unwrap();
        buf
    }

    /// The copy `out` is sent from, if any, held as a connection holds it.
    fn sent_from(p: &mut Prebuilt, out: &Out) -> Option<(Arc<File>, u64)> {
        p.lookup(out).map(|(file, len)| (Arc::clone(file), len))
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
        let (c, len) = sent_from(&mut p, &o).expect("built");
        assert_eq!(len, 13);
        assert_eq!(copy(&c, len), b"HEAD\r\n\r\n01234");
        let (again, _) = sent_from(&mut p, &o).expect("still there");
        assert!(Arc::ptr_eq(&c, &again), "the same copy");
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
        let (old, old_len) = sent_from(&mut p, &a).expect("built");
        let (new, len) = sent_from(&mut p, &b).expect("renewed for the new head");
        assert_eq!(copy(&new, len), b"Date: 2\r\n\r\n0123456789");
        // Never rewritten: a connection still sending the old copy (or TCP retransmitting its
        // pages) sees the bytes it started with.
        assert_eq!(copy(&old, old_len), b"Date: 1\r\n\r\n0123456789");
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
        assert!(p.lookup(&o).is_none(), "the copy came up short");
        assert_eq!(p.built(), 0);
    }

    #[test]
    fn copies_stay_within_the_page_budget() {
        let f = file(b"ff");
        let t0 = Instant::now();
        // A budget of one page: one small copy.
        let mut p = Prebuilt::new(t0, SERVER_PAGES, 1 << 20);
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
        let mut p = Prebuilt::new(Instant::now(), 1, FD_SHARE);
        let (a, b) = (out(&f, 1, b"H\r\n\r\n"), out(&f, 2, b"H\r\n\r\n"));
        warm(&mut p, &a);
        assert!(p.lookup(&a).is_some(), "one descriptor of {FD_SHARE}");
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
