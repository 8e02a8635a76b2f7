//! Sans-I/O HTTP/1.1 core.
//!
//! Bytes in, decisions out: [`request::parse`] turns a buffer into a [`Request`] (or says it
//! needs more bytes, or that the input is bad and the connection must close), and the
//! [`response`] functions write a response head into a caller-owned buffer and describe the
//! body as a list of [`Chunk`]s — bytes already in that buffer, or ranges of the file — for the
//! engine to send however its backend does best. Nothing here touches a socket or a file, so
//! every rule is unit-tested without I/O and shared by both backends.

pub mod chunked;
pub mod conditional;
pub mod date;
pub mod digest;
pub mod disposition;
pub mod escape;
pub mod h1;
pub mod head;
pub mod host;
pub mod multipart;
pub mod negotiate;
pub mod path;
pub mod query;
pub mod range;
pub mod request;
pub mod response;
pub mod status;

pub use date::Fixdate;
pub use request::{Method, Parse, Request, Version};
pub use status::Status;

/// What the protocol core needs to know about a file to answer for it: its length and
/// validators. Filled in by [`crate::fs`] from `fstat`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Representation {
    /// Length of the file in bytes.
    pub len: u64,
    /// Modification time, whole seconds since the Unix epoch, with the `Last-Modified` value
    /// it is sent as (formatted once per opening of the file, not per response).
    pub mtime: Fixdate,
    /// Strong entity tag sent, quotes included, e.g. `"5f1c2e3a-1000"` (empty with
    /// `--etag off`: none is sent).
    pub etag: ETag,
    /// The file version's identity inside the server (mtime, length and inode, whatever the
    /// ETag's form): what keys the prebuilt copies, so a file replaced by another of the same
    /// size within the same second is never answered from the old one's copy.
    pub version: ETag,
    /// `Content-Type` value.
    pub mime: &'static str,
}

/// The form of the entity tags sent (`--etag`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum EtagForm {
    /// nginx's `"<mtime hex>-<length hex>"`: the same on every node holding the same file
    /// with the same mtime (`rsync -t`), so validators agree behind a balancer.
    #[default]
    MtimeSize,
    /// `"<mtime hex>-<length hex>-<inode hex>"`: also tells apart a file replaced by another of
    /// the same length within the same second, but differs between nodes.
    Inode,
    /// No `ETag` at all (`Last-Modified` only).
    Off,
}

impl EtagForm {
    /// The tag of a file of `len` bytes modified at `mtime`, with inode `inode`.
    pub fn tag(self, mtime: u64, len: u64, inode: u64) -> ETag {
        match self {
            EtagForm::MtimeSize => ETag::nginx(mtime, len),
            EtagForm::Inode => ETag::from_parts(mtime, len, inode),
            EtagForm::Off => ETag::NONE,
        }
    }
}

/// A strong entity tag stored inline (no heap), quotes included.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ETag {
    bytes: [u8; ETag::CAP],
    len: u8,
}

impl ETag {
    /// Longest tag we ever build: three 16-digit hex numbers, two dashes and two quotes (52
    /// bytes), plus room for a coding marker (see [`ETag::marked`]).
    pub const CAP: usize = 64;

    /// Builds the tag `"<mtime hex>-<len hex>-<inode hex>"` (nginx uses mtime-len; the inode
    /// distinguishes a file replaced by another of the same size within the same second).
    pub fn from_parts(mtime: u64, len: u64, inode: u64) -> ETag {
        use std::io::Write;
        let mut bytes = [0u8; ETag::CAP];
        let mut cur = std::io::Cursor::new(&mut bytes[..]);
        write!(cur, "\"{mtime:x}-{len:x}-{inode:x}\"").expect("ETag::CAP fits three u64s");
        let len = cur.position() as u8;
        ETag { bytes, len }
    }

    /// No tag: nothing is sent, and no condition on a tag can match it.
    pub const NONE: ETag = ETag {
        bytes: [0; ETag::CAP],
        len: 0,
    };

    /// nginx's tag `"<mtime hex>-<len hex>"`.
    pub fn nginx(mtime: u64, len: u64) -> ETag {
        use std::io::Write;
        let mut bytes = [0u8; ETag::CAP];
        let mut cur = std::io::Cursor::new(&mut bytes[..]);
        write!(cur, "\"{mtime:x}-{len:x}\"").expect("ETag::CAP fits two u64s");
        let len = cur.position() as u8;
        ETag { bytes, len }
    }

    /// Whether this is [`ETag::NONE`].
    pub fn is_none(&self) -> bool {
        self.len == 0
    }

    /// This tag with `-marker` added inside the quotes, e.g. `"5f1c-1000-2b1-gz"`: the tag of
    /// a different representation (a precompressed variant) that must never compare equal to
    /// this one. A marker that would not fit leaves the tag unchanged.
    pub fn marked(&self, marker: &[u8]) -> ETag {
        if self.is_none() {
            return *self;
        }
        let mut tag = *self;
        let end = usize::from(self.len) - 1;
        let new_len = end + 1 + marker.len() + 1;
        if new_len <= ETag::CAP {
            tag.bytes[end] = b'-';
            tag.bytes[end + 1..end + 1 + marker.len()].copy_from_slice(marker);
            tag.bytes[new_len - 1] = b'"';
            tag.len = new_len as u8;
        }
        tag
    }

    /// The tag as sent on the wire, quotes included.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl std::fmt::Debug for ETag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

/// One piece of a response body, in send order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Bytes `start..end` of the response buffer the head was written into (the head itself,
    /// multipart part headers, or a small generated body such as an error page).
    Mem {
        /// Index of the first byte in the buffer.
        start: usize,
        /// Index one past the last byte.
        end: usize,
    },
    /// `len` bytes of the file starting at `offset`, sent zero-copy by the engine.
    File {
        /// Offset of the first byte in the file.
        offset: u64,
        /// Number of bytes (never zero).
        len: u64,
    },
}

/// Settings of the protocol core that come from the command line.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request head accepted; beyond it the answer is 431 and the connection closes.
    pub max_head: usize,
    /// Most ranges honoured in one Range header (nginx `max_ranges`); more are answered 200.
    pub max_ranges: usize,
    /// Largest request body (Content-Length) drained and discarded; beyond it 413 and close.
    pub max_discard_body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 16 * 1024,
            max_ranges: 64,
            max_discard_body: 64 * 1024,
        }
    }
}

/// Strips optional whitespace (SP and HTAB, RFC 9110 §5.6.3) from both ends of a field value
/// or list element; shared by every header parser here.
pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = s.iter().position(|b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !is_ows(b)).map_or(start, |i| i + 1);
    &s[start..end]
}

/// Parses `1*DIGIT` (as in `Content-Length` and byte ranges) into a u64; `None` for an empty
/// string, any other byte (sign, space, comma) or overflow, so malformed numbers are never
/// silently reinterpreted.
pub(crate) fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_only_ows() {
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(trim_ows(b""), b"");
        assert_eq!(trim_ows(b"\x0ca\r"), b"\x0ca\r");
    }

    #[test]
    fn decimal_numbers() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"007"), Some(7));
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"18446744073709551616",
            b"+1",
            b"-1",
            b"1 ",
            b"1,1",
            b"0x1",
        ] {
            assert_eq!(parse_decimal(bad), None);
        }
    }

    #[test]
    fn etag_holds_largest_parts() {
        let tag = ETag::from_parts(u64::MAX, u64::MAX, u64::MAX);
        assert_eq!(tag.as_bytes().len(), 3 * 16 + 4);
        assert!(tag.as_bytes().len() <= ETag::CAP);
        assert_eq!(ETag::from_parts(1, 2, 3).as_bytes(), b"\"1-2-3\"");
    }

    #[test]
    fn marked_etags_differ() {
        let tag = ETag::from_parts(1, 2, 3);
        assert_eq!(tag.marked(b"gz").as_bytes(), b"\"1-2-3-gz\"");
        assert_ne!(tag.marked(b"gz"), tag);
        let big = ETag::from_parts(u64::MAX, u64::MAX, u64::MAX);
        assert_eq!(big.marked(b"zst").as_bytes().len(), 52 + 4);
        assert_eq!(big.marked(&[b'x'; 20]), big, "too long to fit");
    }
}
