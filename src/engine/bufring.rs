//! A provided-buffer ring (`IORING_REGISTER_PBUF_RING`, Linux 5.19+): a per-worker pool of
//! receive buffers the kernel picks from when a multishot recv has data.
//!
//! Key decision: connections own no receive buffer. Data lands in a pool buffer, is parsed
//! straight from it, and the buffer goes back to the ring at once; only the rare leftover of a
//! partial request is copied into the connection. So 10,000 idle connections hold no buffers.

use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::Submitter;

/// The pool: `count` buffers of `size` bytes plus the ring of entries describing them.
pub struct BufRing {
    entries: *mut BufRingEntry,
    entries_len: usize,
    bufs: *mut u8,
    bufs_len: usize,
    count: u16,
    size: u32,
    tail: u16,
    bgid: u16,
}

fn mmap_anon(len: usize) -> io::Result<*mut u8> {
    // SAFETY: anonymous private mapping with no address hint; the result is checked.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(p.cast())
    }
}

impl BufRing {
    /// Allocates `count` (a power of two) buffers of `size` bytes and registers them with the
    /// ring as buffer group `bgid`.
    pub fn new(submitter: &Submitter<'_>, bgid: u16, count: u16, size: u32) -> io::Result<BufRing> {
        assert!(count.is_power_of_two());
        let entries_len = count as usize * std::mem::size_of::<BufRingEntry>();
        let bufs_len = count as usize * size as usize;
        let entries = mmap_anon(entries_len)?.cast::<BufRingEntry>();
        let bufs = match mmap_anon(bufs_len) {
            Ok(b) => b,
            Err(e) => {
                // SAFETY: `entries` was mapped above with this length and is not shared yet.
                unsafe { libc::munmap(entries.cast(), entries_len) };
                return Err(e);
            }
        };
        let mut ring = BufRing {
            entries,
            entries_len,
            bufs,
            bufs_len,
            count,
            size,
            tail: 0,
            bgid,
        };
        // SAFETY: the entry ring is page-aligned, `count` entries long, and stays mapped until
        // `self` is dropped, which happens after the worker's io_uring is gone (field order
        // in the worker) and after all operations using the group have completed.
        unsafe { submitter.register_buf_ring_with_flags(entries as u64, count, bgid, 0)? };
        for bid in 0..count {
            ring.recycle(bid);
        }
        ring.publish();
        Ok(ring)
    }

    /// Buffer group id to name in recv operations.
    pub fn group(&self) -> u16 {
        self.bgid
    }

    /// The first `len` bytes of buffer `bid`, which the kernel has just filled and handed
    /// over in a completion. Valid until [`BufRing::recycle`] gives it back.
    pub fn data(&self, bid: u16, len: usize) -> &[u8] {
        assert!(bid < self.count && len <= self.size as usize);
        // SAFETY: buffer `bid` lies within the mapping; the kernel wrote `len` bytes to it and
        // will not touch it again until it is recycled, which needs `&mut self` and so cannot
        // happen while the returned slice lives.
        unsafe { std::slice::from_raw_parts(self.bufs.add(bid as usize * self.size as usize), len) }
    }

    /// Puts buffer `bid` back in the ring (visible to the kernel after [`BufRing::publish`]).
    pub fn recycle(&mut self, bid: u16) {
        let mask = self.count - 1;
        // SAFETY: `tail & mask` indexes within the entry ring; the kernel only reads entries
        // between its head and the published tail, and this one is past the published tail.
        unsafe {
            let e = &mut *self.entries.add((self.tail & mask) as usize);
            e.set_addr(self.bufs.add(bid as usize * self.size as usize) as u64);
            e.set_len(self.size);
            e.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes recycled buffers visible to the kernel (one release store per loop turn).
    pub fn publish(&self) {
        // SAFETY: the tail field overlays the first entry's `resv` and is only written here;
        // the kernel reads it with acquire semantics, pairing with this release store.
        unsafe {
            let tail = BufRingEntry::tail(self.entries)
                .cast_mut()
                .cast::<AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: both regions were mapped in `new` with these lengths and nothing refers to
        // them any more (the ring that used them is gone, see `new`).
        unsafe {
            libc::munmap(self.bufs.cast(), self.bufs_len);
            libc::munmap(self.entries.cast(), self.entries_len);
        }
    }
}
