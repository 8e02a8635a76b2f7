//! `multipart/byteranges` bodies (RFC 9110 §14.6) for 206 responses with several ranges.
//!
//! Key design decision: the part headers are written into the response buffer and the part
//! contents stay in the file, so the body is a list of interleaved `Chunk::Mem` and
//! `Chunk::File` entries and file bytes are still sent zero-copy. Because every piece has a
//! length known in advance, [`body_len`] gives the exact `Content-Length` before anything is
//! written. One random boundary is chosen per process: it never needs to be unique per
//! response, only absent from the content, which 20 random hex digits make vanishingly
//! unlikely.

use std::hash::BuildHasher;
use std::sync::OnceLock;

use super::head::{content_range, content_range_len, push_mem};
use super::range::ByteRange;
use super::Chunk;

/// Number of hex digits in the boundary.
const BOUNDARY_LEN: usize = 20;

/// Bytes of a part header other than the boundary, MIME type and Content-Range line:
/// `\r\n--` `\r\nContent-Type: ` `\r\n` (then Content-Range) `\r\n`.
const PART_OVERHEAD: usize = 4 + 16 + 2 + 2;

/// Length of the closing delimiter `\r\n--BOUNDARY--\r\n`.
const CLOSE_LEN: usize = 4 + BOUNDARY_LEN + 4;

/// The process-wide boundary string: 20 lowercase hex digits from the randomly keyed
/// `RandomState` hasher (std's per-process random keys; no extra dependency).
pub fn boundary() -> &'static [u8] {
    static BOUNDARY: OnceLock<[u8; BOUNDARY_LEN]> = OnceLock::new();
    BOUNDARY.get_or_init(|| {
        let state = std::collections::hash_map::RandomState::new();
        let hi = state.hash_one(0u8);
        let lo = state.hash_one(1u8);
        let bits = (u128::from(hi) << 64) | u128::from(lo);
        let mut out = [0u8; BOUNDARY_LEN];
        for (i, digit) in out.iter_mut().enumerate() {
            *digit = b"0123456789abcdef"[(bits >> (4 * i)) as usize & 0xf];
        }
        out
    })
}

/// Appends the response's `Content-Type: multipart/byteranges; boundary=...` line.
pub fn content_type(out: &mut Vec<u8>) {
    out.extend_from_slice(b"Content-Type: multipart/byteranges; boundary=");
    out.extend_from_slice(boundary());
    out.extend_from_slice(b"\r\n");
}

/// Exact length of the body [`write_body`] describes, for `Content-Length`.
pub fn body_len(ranges: &[ByteRange], mime: &str, len: u64) -> u64 {
    // Saturating so that no length can panic; real files (below 2^63 bytes) never get near.
    ranges.iter().fold(CLOSE_LEN as u64, |acc, &r| {
        acc.saturating_add(part_header_len(r, mime, len) as u64)
            .saturating_add(r.size())
    })
}

/// Appends the body layout: for each range a part header (written into `out`) followed by
/// the range of the file, then the closing delimiter. `len` is the file length and `mime`
/// its type, both repeated in every part. The first delimiter starts with a CRLF, which
/// multipart parsers take as the end of an empty preamble (nginx does the same).
pub fn write_body(
    ranges: &[ByteRange],
    mime: &str,
    len: u64,
    out: &mut Vec<u8>,
    chunks: &mut Vec<Chunk>,
) {
    for &r in ranges {
        let start = out.len();
        delimiter(out);
        out.extend_from_slice(b"\r\nContent-Type: ");
        out.extend_from_slice(mime.as_bytes());
        out.extend_from_slice(b"\r\n");
        content_range(out, r, len);
        out.extend_from_slice(b"\r\n");
        push_mem(chunks, start, out.len());
        chunks.push(Chunk::File {
            offset: r.first,
            len: r.size(),
        });
    }
    let start = out.len();
    delimiter(out);
    out.extend_from_slice(b"--\r\n");
    push_mem(chunks, start, out.len());
}

/// `\r\n--BOUNDARY`
fn delimiter(out: &mut Vec<u8>) {
    out.extend_from_slice(b"\r\n--");
    out.extend_from_slice(boundary());
}

fn part_header_len(r: ByteRange, mime: &str, len: u64) -> usize {
    PART_OVERHEAD + BOUNDARY_LEN + mime.len() + content_range_len(r, len)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Materialises a chunk list against an in-memory "file".
    pub(crate) fn materialise(out: &[u8], chunks: &[Chunk], file: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        for c in chunks {
            match *c {
                Chunk::Mem { start, end } => body.extend_from_slice(&out[start..end]),
                Chunk::File { offset, len } => {
                    body.extend_from_slice(&file[offset as usize..(offset + len) as usize])
                }
            }
        }
        body
    }

    /// A small RFC 2046 parser: returns each part's (headers, content).
    pub(crate) fn parse_multipart(body: &[u8], boundary: &[u8]) -> Vec<(String, Vec<u8>)> {
        let delim = [b"\r\n--", boundary].concat();
        let mut parts = Vec::new();
        // Preamble: everything before the first delimiter (empty here).
        let mut pos = find(body, &delim, 0).expect("first delimiter");
        assert_eq!(pos, 0, "empty preamble");
        loop {
            pos += delim.len();
            if body[pos..].starts_with(b"--") {
                assert_eq!(&body[pos..], b"--\r\n", "closing delimiter ends the body");
                return parts;
            }
            assert!(body[pos..].starts_with(b"\r\n"));
            pos += 2;
            let head_end = find(body, b"\r\n\r\n", pos).expect("part header end");
            let headers = String::from_utf8(body[pos..head_end].to_vec()).unwrap();
            let content_start = head_end + 4;
            let next = find(body, &delim, content_start).expect("next delimiter");
            parts.push((headers, body[content_start..next].to_vec()));
            pos = next;
        }
    }

    fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
        hay[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|i| i + from)
    }

    #[test]
    fn boundary_is_stable_hex() {
        let b = boundary();
        assert_eq!(b.len(), BOUNDARY_LEN);
        assert!(b
            .iter()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(b, boundary());
        let mut out = Vec::new();
        content_type(&mut out);
        assert_eq!(
            out,
            [
                &b"Content-Type: multipart/byteranges; boundary="[..],
                b,
                b"\r\n"
            ]
            .concat()
        );
    }

    #[test]
    fn round_trips_through_a_multipart_parser() {
        let file: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
        let len = file.len() as u64;
        let ranges = [
            ByteRange { first: 0, last: 0 },
            ByteRange {
                first: 10,
                last: 99,
            },
            ByteRange {
                first: 1000,
                last: 1999,
            },
        ];
        let mut out = b"HEAD".to_vec();
        let mut chunks = vec![Chunk::Mem { start: 0, end: 4 }];
        write_body(&ranges, "text/plain", len, &mut out, &mut chunks);

        // Mem and File chunks interleave; the first part header merged into the head chunk.
        assert_eq!(chunks.len(), 1 + 2 * ranges.len());
        assert!(matches!(chunks[0], Chunk::Mem { start: 0, .. }));
        assert_eq!(chunks[1], Chunk::File { offset: 0, len: 1 });
        assert_eq!(
            chunks[3],
            Chunk::File {
                offset: 10,
                len: 90
            }
        );
        assert_eq!(
            chunks[5],
            Chunk::File {
                offset: 1000,
                len: 1000
            }
        );

        let body = materialise(&out, &chunks[..], &file);
        let body = &body[4..];
        assert_eq!(body.len() as u64, body_len(&ranges, "text/plain", len));

        let parts = parse_multipart(body, boundary());
        assert_eq!(parts.len(), ranges.len());
        for ((headers, content), r) in parts.iter().zip(ranges) {
            let expect = format!(
                "Content-Type: text/plain\r\nContent-Range: bytes {}-{}/{}",
                r.first, r.last, len
            );
            assert_eq!(headers, &expect);
            assert_eq!(&content[..], &file[r.first as usize..=r.last as usize]);
        }
    }

    #[test]
    fn exact_byte_layout() {
        let ranges = [
            ByteRange { first: 0, last: 1 },
            ByteRange { first: 5, last: 5 },
        ];
        let mut out = Vec::new();
        let mut chunks = Vec::new();
        write_body(&ranges, "a/b", 6, &mut out, &mut chunks);
        let b = std::str::from_utf8(boundary()).unwrap();
        let body = materialise(&out, &chunks, b"012345");
        let expect = format!(
            "\r\n--{b}\r\nContent-Type: a/b\r\nContent-Range: bytes 0-1/6\r\n\r\n01\
             \r\n--{b}\r\nContent-Type: a/b\r\nContent-Range: bytes 5-5/6\r\n\r\n5\
             \r\n--{b}--\r\n"
        );
        assert_eq!(String::from_utf8(body).unwrap(), expect);
        assert_eq!(body_len(&ranges, "a/b", 6), expect.len() as u64);
    }

    #[test]
    fn body_len_handles_huge_files() {
        let len = u64::MAX;
        let ranges = [
            ByteRange { first: 0, last: 0 },
            ByteRange {
                first: len - 2,
                last: len - 2,
            },
        ];
        let mut out = Vec::new();
        let mut chunks = Vec::new();
        write_body(&ranges, "x/y", len, &mut out, &mut chunks);
        let mem: usize = chunks
            .iter()
            .map(|c| match *c {
                Chunk::Mem { start, end } => end - start,
                Chunk::File { .. } => 0,
            })
            .sum();
        assert_eq!(body_len(&ranges, "x/y", len), mem as u64 + 2);
    }
}
