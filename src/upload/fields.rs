//! The request fields uploads read, parsed: `Upload-*` (tus and the IETF draft),
//! `Content-Range` on a `PUT`, checksums and digests, the bearer token.
//!
//! Uploads are rare next to downloads, so these fields are not collected by the request
//! parser on every request: they are read here from the kept head, once per upload request.
//! Every parser is strict and bounded: a value that is not exactly of its form is an error,
//! never a guess.

use base64::Engine;

use crate::http::request;
use crate::http::{parse_decimal, Request};

use super::checksum::Algorithm;

/// The upload-related fields of one request; a field sent twice is malformed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields<'a> {
    /// `Tus-Resumable`
    pub tus_resumable: Option<&'a [u8]>,
    /// `Upload-Offset`
    pub upload_offset: Option<&'a [u8]>,
    /// `Upload-Length`
    pub upload_length: Option<&'a [u8]>,
    /// `Upload-Defer-Length`
    pub upload_defer_length: Option<&'a [u8]>,
    /// `Upload-Metadata`
    pub upload_metadata: Option<&'a [u8]>,
    /// `Upload-Checksum`
    pub upload_checksum: Option<&'a [u8]>,
    /// `Content-Type`
    pub content_type: Option<&'a [u8]>,
    /// `Content-Range`
    pub content_range: Option<&'a [u8]>,
    /// `Authorization`
    pub authorization: Option<&'a [u8]>,
    /// `Repr-Digest` (RFC 9530)
    pub repr_digest: Option<&'a [u8]>,
    /// `Content-Digest` (RFC 9530)
    pub content_digest: Option<&'a [u8]>,
    /// `Upload-Complete` (the IETF draft)
    pub upload_complete: Option<&'a [u8]>,
    /// `Content-Disposition` (the IETF draft's file name)
    pub content_disposition: Option<&'a [u8]>,
}

impl<'a> Fields<'a> {
    /// Reads the fields from the request's head; `None` when one of them is repeated.
    pub fn read(req: &Request<'a>) -> Option<Fields<'a>> {
        let mut f = Fields::default();
        for (name, value) in request::fields(req.head) {
            let slot = match name.to_ascii_lowercase().as_slice() {
                b"tus-resumable" => &mut f.tus_resumable,
                b"upload-offset" => &mut f.upload_offset,
                b"upload-length" => &mut f.upload_length,
                b"upload-defer-length" => &mut f.upload_defer_length,
                b"upload-metadata" => &mut f.upload_metadata,
                b"upload-checksum" => &mut f.upload_checksum,
                b"content-type" => &mut f.content_type,
                b"content-range" => &mut f.content_range,
                b"authorization" => &mut f.authorization,
                b"repr-digest" => &mut f.repr_digest,
                b"content-digest" => &mut f.content_digest,
                b"upload-complete" => &mut f.upload_complete,
                b"content-disposition" => &mut f.content_disposition,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return None;
            }
        }
        Some(f)
    }

    /// The bearer token of `Authorization: Bearer TOKEN`, if that is what was sent.
    pub fn bearer(&self) -> Option<&'a [u8]> {
        let value = self.authorization?;
        let (scheme, token) = value.split_at_checked(7)?;
        (scheme.eq_ignore_ascii_case(b"bearer ") && !token.is_empty()).then(|| token.trim_ascii())
    }

    /// The media type of `Content-Type` without parameters, lower-cased comparison left to
    /// the caller through [`Fields::content_type_is`].
    pub fn content_type_is(&self, mime: &str) -> bool {
        self.content_type.is_some_and(|v| {
            let essence = v.split(|&b| b == b';').next().unwrap_or(v).trim_ascii();
            essence.eq_ignore_ascii_case(mime.as_bytes())
        })
    }
}

/// A non-negative decimal (`Upload-Offset`, `Upload-Length`); `None` if malformed.
pub fn number(value: &[u8]) -> Option<u64> {
    parse_decimal(value)
}

/// What a `PUT`'s `Content-Range` says (RFC 9110 §14.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutRange {
    /// `bytes first-last/complete` (`complete` is `None` for `*`).
    Bytes {
        /// Offset of the first byte of the body.
        first: u64,
        /// Offset of its last byte.
        last: u64,
        /// The whole file's length, when known.
        complete: Option<u64>,
    },
    /// `bytes */complete`: no bytes, the whole length declared.
    Length(u64),
}

/// Parses a `Content-Range` value; `None` if malformed or `last < first`.
pub fn content_range(value: &[u8]) -> Option<PutRange> {
    let rest = value.strip_prefix(b"bytes ")?;
    let slash = memchr::memchr(b'/', rest)?;
    let (range, complete) = (&rest[..slash], &rest[slash + 1..]);
    let complete = match complete {
        b"*" => None,
        n => Some(parse_decimal(n)?),
    };
    if range == b"*" {
        return complete.map(PutRange::Length);
    }
    let dash = memchr::memchr(b'-', range)?;
    let first = parse_decimal(&range[..dash])?;
    let last = parse_decimal(&range[dash + 1..])?;
    let fits = complete.is_none_or(|len| last < len);
    (first <= last && fits).then_some(PutRange::Bytes {
        first,
        last,
        complete,
    })
}

/// Parses tus `Upload-Checksum: ALGORITHM BASE64`; `Err(true)` for an algorithm we do not
/// support (tus answers 400), `Err(false)` for a malformed value.
pub fn tus_checksum(value: &[u8]) -> Result<(Algorithm, Vec<u8>), bool> {
    let space = memchr::memchr(b' ', value).ok_or(false)?;
    let algorithm = Algorithm::from_tus(&value[..space]).ok_or(true)?;
    let digest = base64::engine::general_purpose::STANDARD
        .decode(value[space + 1..].trim_ascii())
        .map_err(|_| false)?;
    if digest.len() != algorithm.digest_len() {
        return Err(false);
    }
    Ok((algorithm, digest))
}

/// Parses an RFC 9530 digest field (`sha-256=:BASE64:, md5=:BASE64:`), keeping the
/// strongest algorithm we support; `Ok(None)` when it names none we support, `Err` when it
/// is malformed.
#[allow(clippy::result_unit_err)]
pub fn rfc9530_digest(value: &[u8]) -> Result<Option<(Algorithm, Vec<u8>)>, ()> {
    let mut best: Option<(Algorithm, Vec<u8>)> = None;
    for member in value.split(|&b| b == b',') {
        let member = member.trim_ascii();
        let eq = memchr::memchr(b'=', member).ok_or(())?;
        let (key, rest) = (&member[..eq], &member[eq + 1..]);
        let bytes = rest
            .strip_prefix(b":")
            .and_then(|r| r.strip_suffix(b":"))
            .ok_or(())?;
        let Some(algorithm) = Algorithm::from_rfc9530(key) else {
            continue;
        };
        let digest = base64::engine::general_purpose::STANDARD
            .decode(bytes)
            .map_err(|_| ())?;
        if digest.len() != algorithm.digest_len() {
            return Err(());
        }
        if best.as_ref().is_none_or(|(b, _)| algorithm > *b) {
            best = Some((algorithm, digest));
        }
    }
    Ok(best)
}

/// The `filename` of tus `Upload-Metadata` (`key base64,key base64,key`), decoded;
/// `Ok(None)` without one, `Err` when the metadata is malformed (bad key, bad base64,
/// duplicate key) or the name is not UTF-8.
#[allow(clippy::result_unit_err)]
pub fn metadata_filename(value: &[u8]) -> Result<Option<String>, ()> {
    let mut name = None;
    let mut keys: Vec<&[u8]> = Vec::new();
    if value.trim_ascii().is_empty() {
        return Ok(None);
    }
    for pair in value.split(|&b| b == b',') {
        let pair = pair.trim_ascii();
        let (key, encoded) = match memchr::memchr(b' ', pair) {
            Some(sp) => (&pair[..sp], pair[sp + 1..].trim_ascii()),
            None => (pair, &b""[..]),
        };
        let key_ok = !key.is_empty() && key.iter().all(|b| b.is_ascii_graphic() && *b != b',');
        if !key_ok || keys.contains(&key) {
            return Err(());
        }
        keys.push(key);
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| ())?;
        if key == b"filename" {
            name = Some(String::from_utf8(decoded).map_err(|_| ())?);
        }
    }
    Ok(name)
}

/// The `filename` parameter of a `Content-Disposition` value (RFC 6266: a token or a
/// quoted-string; `filename*` is not read), unescaped; `None` if absent or malformed.
pub fn content_disposition_filename(value: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?;
    let mut params = text.split(';').skip(1);
    params.find_map(|p| {
        let (key, v) = p.trim().split_once('=')?;
        if !key.trim().eq_ignore_ascii_case("filename") {
            return None;
        }
        let v = v.trim();
        match v.strip_prefix('"') {
            Some(rest) => {
                let mut out = String::new();
                let mut chars = rest.chars();
                loop {
                    match chars.next()? {
                        '"' => return chars.as_str().trim().is_empty().then_some(out),
                        '\\' => out.push(chars.next()?),
                        c => out.push(c),
                    }
                }
            }
            None => (!v.is_empty() && !v.contains(['"', ' '])).then(|| v.to_owned()),
        }
    })
}

/// Whether `name` may be the name of a published file: one path segment, no dot-segment,
/// no control characters or backslashes, not a dotfile unless `dotfiles`, and short
/// enough for a file system (255 bytes).
pub fn safe_name(name: &str, dotfiles: bool) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && (dotfiles || !name.starts_with('.'))
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::{parse, Parse};
    use crate::http::Limits;

    fn with_head(head: &str, check: impl FnOnce(Option<Fields<'_>>)) {
        let limits = Limits::default();
        let Parse::Complete(req) = parse(head.as_bytes(), &limits) else {
            panic!("not a request: {head:?}");
        };
        check(Fields::read(&req));
    }

    #[test]
    fn fields_are_read_once() {
        with_head(
            "PATCH /u HTTP/1.1\r\nHost: a\r\nTus-Resumable: 1.0.0\r\nupload-offset: 5\r\n\
             Authorization: Bearer  s3cret \r\nContent-Type: application/offset+octet-stream; x=1\r\n\r\n",
            |f| {
                let f = f.unwrap();
                assert_eq!(f.tus_resumable, Some(&b"1.0.0"[..]));
                assert_eq!(f.upload_offset.and_then(number), Some(5));
                assert_eq!(f.bearer(), Some(&b"s3cret"[..]));
                assert!(f.content_type_is("application/offset+octet-stream"));
                assert!(!f.content_type_is("application/octet-stream"));
            },
        );
        with_head(
            "PATCH /u HTTP/1.1\r\nHost: a\r\nUpload-Offset: 5\r\nUpload-Offset: 6\r\n\r\n",
            |f| assert!(f.is_none()),
        );
        with_head(
            "PATCH /u HTTP/1.1\r\nHost: a\r\nAuthorization: Basic eDp5\r\n\r\n",
            |f| assert_eq!(f.unwrap().bearer(), None),
        );
    }

    #[test]
    fn content_ranges() {
        let r = |s: &str| content_range(s.as_bytes());
        assert_eq!(
            r("bytes 0-99/1000"),
            Some(PutRange::Bytes {
                first: 0,
                last: 99,
                complete: Some(1000)
            })
        );
        assert_eq!(
            r("bytes 5-5/*"),
            Some(PutRange::Bytes {
                first: 5,
                last: 5,
                complete: None
            })
        );
        assert_eq!(r("bytes */1000"), Some(PutRange::Length(1000)));
        for bad in [
            "bytes 9-1/10",
            "bytes 0-10/10",
            "bytes 0-1",
            "bytes -1/10",
            "bytes 0-/10",
            "items 0-1/10",
            "bytes */*",
            "bytes 0-1/1x",
            "bytes  0-1/10",
        ] {
            assert_eq!(r(bad), None, "{bad}");
        }
    }

    #[test]
    fn checksums() {
        let sha256 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let (alg, digest) = tus_checksum(format!("sha256 {sha256}").as_bytes()).unwrap();
        assert_eq!((alg, digest), (Algorithm::Sha256, vec![7u8; 32]));
        assert_eq!(tus_checksum(b"crc32 AAAA"), Err(true));
        assert_eq!(tus_checksum(b"sha256 !!"), Err(false));
        assert_eq!(tus_checksum(b"sha1 AAAA"), Err(false), "wrong length");
        assert_eq!(tus_checksum(b"sha256"), Err(false));
        let md5 = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
        let both = format!("md5=:{md5}:, sha-256=:{sha256}:, unknown=:AA==:");
        assert_eq!(
            rfc9530_digest(both.as_bytes()),
            Ok(Some((Algorithm::Sha256, vec![7u8; 32])))
        );
        assert_eq!(rfc9530_digest(b"crc32c=:AAAAAA==:"), Ok(None));
        assert_eq!(rfc9530_digest(b"sha-256=AAAA"), Err(()));
        assert_eq!(rfc9530_digest(b"sha-256=:AAAA:"), Err(()));
    }

    #[test]
    fn metadata() {
        let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let value = format!("filetype {},filename {},flag", enc("x/y"), enc("a b.iso"));
        assert_eq!(
            metadata_filename(value.as_bytes()),
            Ok(Some("a b.iso".into()))
        );
        assert_eq!(metadata_filename(b"filetype eC95"), Ok(None));
        assert_eq!(metadata_filename(b""), Ok(None));
        assert_eq!(metadata_filename(b"filename !!"), Err(()));
        assert_eq!(metadata_filename(b"a YQ==,a YQ=="), Err(()));
        assert_eq!(metadata_filename(b",filename YQ=="), Err(()));
    }

    #[test]
    fn dispositions() {
        let f = |s: &str| content_disposition_filename(s.as_bytes());
        assert_eq!(f("inline; filename=a.iso"), Some("a.iso".into()));
        assert_eq!(
            f("attachment; FileName=\"a \\\"b\\\".iso\""),
            Some("a \"b\".iso".into())
        );
        assert_eq!(f("inline"), None);
        assert_eq!(f("inline; filename=\"open"), None);
        assert_eq!(f("inline; filename=\"x\"junk"), None);
    }

    #[test]
    fn names() {
        for ok in ["a.iso", "a b", "ünï", "x.."] {
            assert!(safe_name(ok, false), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a\\b",
            ".hidden",
            "a\nb",
            &"x".repeat(256),
        ] {
            assert!(!safe_name(bad, false), "{bad:?}");
        }
        assert!(safe_name(".hidden", true));
        assert!(!safe_name("..", true));
    }
}
