//! Per-worker pool of pipes for the splice body path (file → pipe → socket).
//!
//! Key decision: a connection borrows a pipe only while file bytes sit in it, and gives it
//! back empty, so 10,000 connections need as many pipes as there are transfers stalled
//! half-way, not one each (the per-user pipe budget allows ~1,024 of 64 KiB). A pipe that still
//! holds bytes when its connection dies is closed, never reused.
//!
//! The pool counts the pipes it has open (lent and free) and publishes the count to the
//! worker's `pipes_in_use` gauge whenever it changes, which is only when a pipe is created or
//! closed: nothing at all happens when the splice body path is not used.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::metrics::WorkerHandle;
use crate::sys;

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

/// Empty pipes ready to lend, and the count of all pipes open.
pub struct PipePool {
    free: Vec<Pipe>,
    /// Pipes open: lent out or free.
    open: u64,
    metrics: WorkerHandle,
}

impl PipePool {
    /// An empty pool publishing its count to `metrics`.
    pub fn new(metrics: WorkerHandle) -> PipePool {
        PipePool {
            free: Vec::new(),
            open: 0,
            metrics,
        }
    }

    /// Lends an empty pipe, creating one if none is free.
    pub fn take(&mut self) -> io::Result<Pipe> {
        if let Some(p) = self.free.pop() {
            return Ok(p);
        }
        let (r, w) = sys::pipe(PIPE_SIZE)?;
        self.open += 1;
        self.metrics.pipes_in_use(self.open);
        Ok(Pipe { r, w, filled: 0 })
    }

    /// Takes back a pipe; only empty ones are kept, the others are closed.
    pub fn give(&mut self, p: Pipe) {
        if p.filled == 0 && self.free.len() < KEEP {
            self.free.push(p);
        } else {
            drop(p);
            self.open -= 1;
            self.metrics.pipes_in_use(self.open);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::WorkerMetrics;

    /// The value of the `ringserve_pipes_in_use` gauge.
    fn gauge(all: &[WorkerMetrics]) -> String {
        let mut text = String::new();
        crate::metrics::render(all, false, &mut text);
        let line = text
            .lines()
            .find(|l| l.starts_with("ringserve_pipes_in_use "));
        line.unwrap().rsplit(' ').next().unwrap().to_string()
    }

    #[test]
    fn gauge_counts_open_pipes() {
        let all = WorkerMetrics::for_workers(1);
        let mut pool = PipePool::new(WorkerHandle::new(&all, 0).unwrap());
        assert_eq!(gauge(&all), "0");
        let (a, mut b) = (pool.take().unwrap(), pool.take().unwrap());
        assert_eq!(gauge(&all), "2");
        pool.give(a);
        assert_eq!(gauge(&all), "2", "an empty pipe is kept for reuse");
        let again = pool.take().unwrap();
        assert_eq!(gauge(&all), "2", "reused, not created");
        b.filled = 1;
        pool.give(b);
        assert_eq!(gauge(&all), "1", "a pipe holding bytes is closed");
        pool.give(again);
        assert_eq!(gauge(&all), "1");
    }
}
