//! Response buffers (head bytes and body layout) lent to connections only while a response is
//! being planned and sent.
//!
//! Key decision: a connection between requests holds no buffer. The one it used goes back to
//! its worker's pool when the response is handed to the kernel, and the next response on any
//! connection takes it again. So an idle keep-alive connection costs no buffer memory, a new
//! connection costs no allocation once the pool is warm, and a steady stream of requests just
//! moves the same few buffers between the pool and the connections.

use crate::http::Chunk;

/// Buffers kept at most; more are freed.
const KEEP: usize = 256;

/// A buffer grown past this (a large multipart head, say) is freed rather than kept.
const MAX_KEPT_BYTES: usize = 64 * 1024;

/// One response's buffers.
#[derive(Debug, Default)]
pub struct OutBuf {
    /// Head and in-memory body bytes.
    pub bytes: Vec<u8>,
    /// Body layout, in send order.
    pub chunks: Vec<Chunk>,
}

/// A worker's spare response buffers.
#[derive(Debug)]
pub struct OutPool {
    spare: Vec<OutBuf>,
}

impl Default for OutPool {
    fn default() -> Self {
        OutPool {
            spare: Vec::with_capacity(KEEP),
        }
    }
}

impl OutPool {
    /// An empty buffer, recycled when one is spare.
    pub fn take(&mut self) -> OutBuf {
        self.spare.pop().unwrap_or_default()
    }

    /// Takes back a buffer (cleared here); it is freed instead if the pool is full or the
    /// buffer has grown large, or if it never held anything.
    pub fn give(&mut self, mut buf: OutBuf) {
        if buf.bytes.capacity() == 0
            || buf.bytes.capacity() > MAX_KEPT_BYTES
            || self.spare.len() >= KEEP
        {
            return;
        }
        buf.bytes.clear();
        buf.chunks.clear();
        self.spare.push(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_recycled_with_their_capacity() {
        let mut pool = OutPool::default();
        let mut buf = pool.take();
        buf.bytes.extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\n");
        buf.chunks.push(Chunk::Mem { start: 0, end: 19 });
        let cap = buf.bytes.capacity();
        pool.give(buf);
        assert_eq!(pool.spare.len(), 1);
        let again = pool.take();
        assert!(again.bytes.is_empty() && again.chunks.is_empty());
        assert_eq!(again.bytes.capacity(), cap);
        assert!(pool.spare.is_empty());
    }

    #[test]
    fn empty_large_or_surplus_buffers_are_freed() {
        let mut pool = OutPool::default();
        pool.give(OutBuf::default());
        pool.give(OutBuf {
            bytes: Vec::with_capacity(MAX_KEPT_BYTES + 1),
            chunks: Vec::new(),
        });
        assert!(pool.spare.is_empty());
        for _ in 0..KEEP + 10 {
            pool.give(OutBuf {
                bytes: Vec::with_capacity(16),
                chunks: Vec::new(),
            });
        }
        assert_eq!(pool.spare.len(), KEEP);
    }
}
