//! The state of a response in progress — its head bytes and body layout, how far it got, its
//! file, pacing and access-log record — lent to a connection only while that response is
//! being planned and sent.
//!
//! Key decision: a connection between requests holds none of it, only an empty pointer. The
//! state goes back to its worker's pool when the response is handed to the kernel (or the
//! connection closes), and the next response on any connection takes it again. So an idle
//! keep-alive connection costs a few dozen bytes of the connection table rather than
//! hundreds plus buffers, a new connection costs no allocation once the pool is warm, and a
//! steady stream of requests just moves the same few states between the pool and the
//! connections.

use std::fs::File;
use std::sync::Arc;
use std::time::Instant;

use crate::http::{Chunk, ETag, Method, Status};
use crate::metrics::access_log::Record;
use crate::policy::Pacing;

/// States kept at most; more are freed.
const KEEP: usize = 256;

/// A state whose byte buffer grew past this (a large multipart head, say) is freed rather
/// than kept.
const MAX_KEPT_BYTES: usize = 64 * 1024;

/// One response in progress.
#[derive(Debug)]
pub struct Out {
    /// Head and in-memory body bytes.
    pub bytes: Vec<u8>,
    /// Body layout, in send order.
    pub chunks: Vec<Chunk>,
    /// Index of the chunk being sent and bytes of it already sent.
    pub cursor: (usize, u64),
    /// The file behind the `Chunk::File`s.
    pub file: Option<Arc<File>>,
    /// Its version, when it is a stored file (see [`crate::serve::Response::version`]).
    pub version: Option<ETag>,
    /// The response is being sent from the worker's prebuilt copy of it (see
    /// [`super::prebuilt`]): `file` is that copy, and one file chunk its head and body.
    pub prebuilt: bool,
    /// Pacing, when a rate limits the response.
    pub pacing: Option<Pacing>,
    /// Method and status, counted in the metrics once the response is done.
    pub method: Method,
    /// See `method`.
    pub status: Status,
    /// When the request was answered (for the request-duration metric).
    pub started: Option<Instant>,
    /// Access-log fields, written once the response is done.
    pub record: Record,
}

impl Default for Out {
    fn default() -> Self {
        Out {
            bytes: Vec::new(),
            chunks: Vec::new(),
            cursor: (0, 0),
            file: None,
            version: None,
            prebuilt: false,
            pacing: None,
            method: Method::Other,
            status: Status::Ok,
            started: None,
            record: Record::default(),
        }
    }
}

/// A worker's spare response states.
#[derive(Debug)]
pub struct OutPool {
    // Boxed: connections hold the state by pointer, so lending and returning moves a pointer.
    #[allow(clippy::vec_box)]
    spare: Vec<Box<Out>>,
}

impl Default for OutPool {
    fn default() -> Self {
        OutPool {
            spare: Vec::with_capacity(KEEP),
        }
    }
}

impl OutPool {
    /// An empty state, recycled when one is spare.
    pub fn take(&mut self) -> Box<Out> {
        self.spare.pop().unwrap_or_default()
    }

    /// Takes back a state whose record has been written, emptied here (its file and pacing
    /// share are let go at once); it is freed instead if the pool is full or its buffer has
    /// grown large.
    pub fn give(&mut self, mut out: Box<Out>) {
        if out.bytes.capacity() > MAX_KEPT_BYTES || self.spare.len() >= KEEP {
            return;
        }
        out.bytes.clear();
        out.chunks.clear();
        out.cursor = (0, 0);
        out.file = None;
        out.version = None;
        out.prebuilt = false;
        out.pacing = None;
        out.started = None;
        self.spare.push(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_recycled_with_their_capacity() {
        let mut pool = OutPool::default();
        let mut out = pool.take();
        out.bytes.extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\n");
        out.chunks.push(Chunk::Mem { start: 0, end: 19 });
        out.cursor = (1, 0);
        let cap = out.bytes.capacity();
        pool.give(out);
        assert_eq!(pool.spare.len(), 1);
        let again = pool.take();
        assert!(again.bytes.is_empty() && again.chunks.is_empty());
        assert_eq!(again.cursor, (0, 0));
        assert_eq!(again.bytes.capacity(), cap);
        assert!(pool.spare.is_empty());
    }

    #[test]
    fn large_or_surplus_states_are_freed() {
        let mut pool = OutPool::default();
        let mut big = Box::<Out>::default();
        big.bytes.reserve(MAX_KEPT_BYTES + 1);
        pool.give(big);
        assert!(pool.spare.is_empty());
        for _ in 0..KEEP + 10 {
            pool.give(Box::default());
        }
        assert_eq!(pool.spare.len(), KEEP);
    }
}
