//! Buffers lent to TLS connections only while they hold bytes: ciphertext received short of a
//! whole record, records not yet written. An idle HTTPS keep-alive connection holds none, so
//! 10,000 of them cost rustls's per-connection state and no buffers; a worker keeps a few
//! free buffers for the connections that are busy.

/// Size of a lent buffer: a whole record (16 KiB of plaintext and at most 2 KiB of
/// expansion in TLS 1.2) and room to spare, so that appending after a partial record always
/// makes progress.
pub const BUFFER: usize = 24 * 1024;

/// Free buffers a worker keeps for reuse; more given back are freed.
const KEEP: usize = 32;

/// A worker's free buffers.
#[derive(Default)]
pub struct BufferPool {
    free: Vec<Vec<u8>>,
}

impl BufferPool {
    /// A buffer of [`BUFFER`] bytes (zeroed once, when first allocated).
    fn take(&mut self) -> Vec<u8> {
        self.free.pop().unwrap_or_else(|| vec![0; BUFFER])
    }

    /// Takes back a buffer no longer in use; one grown past [`BUFFER`] (a large handshake
    /// flight) or beyond what the pool keeps is freed.
    fn give(&mut self, buf: Vec<u8>) {
        if buf.len() == BUFFER && self.free.len() < KEEP {
            self.free.push(buf);
        }
    }

    /// Buffers held free.
    #[cfg(test)]
    pub fn free(&self) -> usize {
        self.free.len()
    }
}

/// Bytes waiting in a lent buffer: `buf[start..end]`. Holds no buffer while empty.
#[derive(Default)]
pub struct Pending {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Pending {
    /// The waiting bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// The waiting bytes, for rustls to work on in place.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Whether a buffer is lent to it.
    #[cfg(test)]
    pub fn holds_buffer(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Drops the first `n` waiting bytes (they were used), giving the buffer back to `pool`
    /// once nothing waits.
    pub fn consume(&mut self, n: usize, pool: &mut BufferPool) {
        self.start = (self.start + n).min(self.end);
        if self.is_empty() {
            self.release(pool);
        }
    }

    /// Forgets what waits and gives the buffer back.
    pub fn release(&mut self, pool: &mut BufferPool) {
        (self.start, self.end) = (0, 0);
        if !self.buf.is_empty() {
            pool.give(std::mem::take(&mut self.buf));
        }
    }

    /// Room for at least `n` more bytes after the waiting ones (borrowing a buffer, moving
    /// the waiting bytes to its front, or growing it as needed): the free tail, whose first
    /// bytes [`Pending::commit`] then marks as waiting.
    pub fn room(&mut self, n: usize, pool: &mut BufferPool) -> &mut [u8] {
        if self.buf.is_empty() {
            self.buf = pool.take();
        }
        if self.buf.len() - self.end < n && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        if self.buf.len() - self.end < n {
            self.buf.resize(self.end + n, 0);
        }
        &mut self.buf[self.end..]
    }

    /// Marks `n` bytes written into [`Pending::room`] as waiting.
    pub fn commit(&mut self, n: usize) {
        self.end += n;
    }

    /// Appends as much of `data` as the buffer has room for without growing (at least one
    /// byte); returns how much.
    pub fn append(&mut self, data: &[u8], pool: &mut BufferPool) -> usize {
        let room = self.room(1, pool);
        let n = room.len().min(data.len());
        room[..n].copy_from_slice(&data[..n]);
        self.commit(n);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_is_held_only_while_bytes_wait() {
        let mut pool = BufferPool::default();
        let mut p = Pending::default();
        assert!(!p.holds_buffer());
        assert_eq!(p.append(b"hello", &mut pool), 5);
        assert!(p.holds_buffer());
        p.consume(2, &mut pool);
        assert_eq!(p.bytes(), b"llo");
        p.consume(3, &mut pool);
        assert!(!p.holds_buffer() && p.is_empty());
        assert_eq!(pool.free(), 1, "given back for the next connection");
    }

    #[test]
    fn appending_moves_waiting_bytes_to_the_front_before_growing() {
        let mut pool = BufferPool::default();
        let mut p = Pending::default();
        let data = vec![7; BUFFER];
        assert_eq!(p.append(&data, &mut pool), BUFFER, "fills the buffer");
        p.consume(BUFFER - 10, &mut pool);
        assert_eq!(
            p.append(&data, &mut pool),
            BUFFER - 10,
            "the 10 left moved up"
        );
        assert_eq!(p.bytes().len(), BUFFER);
        // Asked for more room than a buffer has, it grows; grown, it is not kept.
        let room = p.room(100, &mut pool).len();
        assert_eq!(room, 100);
        p.release(&mut pool);
        assert_eq!(pool.free(), 0);
    }
}
