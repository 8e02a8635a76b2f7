//! Per-worker pool of pipes for the splice body path (file → pipe → socket).
//!
//! Key decision: a connection borrows a pipe only while file bytes sit in it, and gives it
//! back empty, so 10,000 connections need as many pipes as there are transfers stalled
//! half-way, not one each (the per-user pipe budget allows ~1,024 of 64 KiB). A pipe that still
//! holds bytes when its connection dies is closed, never reused.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::sys;

/// Capacity asked for each pipe: the bytes one splice round can move.
pub const PIPE_SIZE: usize = 256 * 1024;
/// Empty pipes kept for reuse; more are closed when returned.
const KEEP: usize = 64;

/// A pipe and how many bytes are in it.
pub struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
    /// Bytes spliced in and not yet spliced out.
    pub filled: usize,
}

impl Pipe {
    /// Read end.
    pub fn r(&self) -> BorrowedFd<'_> {
        self.r.as_fd()
    }

    /// Write end.
    pub fn w(&self) -> BorrowedFd<'_> {
        self.w.as_fd()
    }
}

/// Empty pipes ready to lend.
#[derive(Default)]
pub struct PipePool {
    free: Vec<Pipe>,
}

impl PipePool {
    /// Lends an empty pipe, creating one if none is free.
    pub fn take(&mut self) -> io::Result<Pipe> {
        if let Some(p) = self.free.pop() {
            return Ok(p);
        }
        let (r, w) = sys::pipe(PIPE_SIZE)?;
        Ok(Pipe { r, w, filled: 0 })
    }

    /// Takes back a pipe; only empty ones are kept.
    pub fn give(&mut self, p: Pipe) {
        if p.filled == 0 && self.free.len() < KEEP {
            self.free.push(p);
        }
    }
}
