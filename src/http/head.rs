//! Writers for response-head lines into a caller-owned buffer.
//!
//! Everything appends to a `&mut Vec<u8>` that the connection reuses across requests, so
//! after warm-up no response allocates. Numbers go through `itoa` (no `fmt` machinery), and
//! [`dec_len`] lets callers know a line's length before writing it (multipart bodies need
//! their exact length in `Content-Length` up front).

use super::range::ByteRange;
use super::Chunk;

/// Appends `name: value\r\n`.
#[inline]
pub fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends `name: <decimal v>\r\n`, e.g. `Content-Length`.
#[inline]
pub fn header_u64(out: &mut Vec<u8>, name: &[u8], v: u64) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    write_u64(out, v);
    out.extend_from_slice(b"\r\n");
}

/// Appends `v` in decimal.
pub fn write_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Number of decimal digits of `v`, i.e. the length [`write_u64`] appends.
pub fn dec_len(v: u64) -> usize {
    v.checked_ilog10().map_or(1, |l| l as usize + 1)
}

/// Appends `Content-Range: bytes first-last/len\r\n` for a satisfied range (RFC 9110 §14.4).
pub fn content_range(out: &mut Vec<u8>, range: ByteRange, len: u64) {
    out.extend_from_slice(b"Content-Range: bytes ");
    write_u64(out, range.first);
    out.push(b'-');
    write_u64(out, range.last);
    out.push(b'/');
    write_u64(out, len);
    out.extend_from_slice(b"\r\n");
}

/// Length of the line [`content_range`] appends.
pub fn content_range_len(range: ByteRange, len: u64) -> usize {
    b"Content-Range: bytes -/\r\n".len() + dec_len(range.first) + dec_len(range.last) + dec_len(len)
}

/// Appends `Content-Range: bytes */len\r\n`, the form a 416 carries to tell the client the
/// current length (RFC 9110 §15.5.17).
pub fn content_range_unsatisfied(out: &mut Vec<u8>, len: u64) {
    out.extend_from_slice(b"Content-Range: bytes */");
    write_u64(out, len);
    out.extend_from_slice(b"\r\n");
}

/// Records bytes `start..end` of the output buffer as the next body piece, merging them
/// into the previous chunk when that one ends where they begin, so the engine sends fewer,
/// larger pieces (a head followed by a generated body becomes a single send).
pub fn push_mem(chunks: &mut Vec<Chunk>, start: usize, end: usize) {
    if start == end {
        return;
    }
    if let Some(Chunk::Mem { end: prev_end, .. }) = chunks.last_mut() {
        if *prev_end == start {
            *prev_end = end;
            return;
        }
    }
    chunks.push(Chunk::Mem { start, end });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_lines() {
        let mut out = Vec::new();
        header(&mut out, b"Server", b"ringserve");
        header_u64(&mut out, b"Content-Length", 0);
        header_u64(&mut out, b"X", u64::MAX);
        assert_eq!(
            out,
            b"Server: ringserve\r\nContent-Length: 0\r\nX: 18446744073709551615\r\n".as_slice()
        );
    }

    #[test]
    fn dec_len_matches_itoa() {
        for v in [
            0,
            1,
            9,
            10,
            99,
            100,
            12345,
            u64::MAX / 10,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            write_u64(&mut out, v);
            assert_eq!(dec_len(v), out.len(), "{v}");
        }
        for p in 0..20 {
            let v = 10u64.pow(p);
            assert_eq!(dec_len(v), p as usize + 1);
            assert_eq!(dec_len(v - 1), (p as usize).max(1));
        }
    }

    #[test]
    fn content_ranges() {
        let mut out = Vec::new();
        let r = ByteRange {
            first: 0,
            last: 499,
        };
        content_range(&mut out, r, 1234);
        assert_eq!(out, b"Content-Range: bytes 0-499/1234\r\n");
        assert_eq!(content_range_len(r, 1234), out.len());
        out.clear();
        content_range_unsatisfied(&mut out, 77);
        assert_eq!(out, b"Content-Range: bytes */77\r\n");
    }

    #[test]
    fn push_mem_merges_contiguous() {
        let mut chunks = vec![Chunk::File { offset: 0, len: 3 }];
        push_mem(&mut chunks, 0, 10);
        push_mem(&mut chunks, 10, 15);
        push_mem(&mut chunks, 15, 15);
        push_mem(&mut chunks, 20, 25);
        assert_eq!(
            chunks,
            [
                Chunk::File { offset: 0, len: 3 },
                Chunk::Mem { start: 0, end: 15 },
                Chunk::Mem { start: 20, end: 25 },
            ]
        );
    }
}
