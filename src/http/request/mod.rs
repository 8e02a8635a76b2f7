//! Request-head parsing (RFC 9112 §2–§6) on top of `httparse`.
//!
//! Key design decision: httparse does the byte-level grammar into a fixed array of 64 field
//! slots on the stack, and this module applies the HTTP semantics on top in one pass over
//! the fields, keeping borrowed slices of the few we act on; nothing is allocated, and any
//! ambiguity about message framing is an error that closes the connection.

use std::mem::MaybeUninit;

use super::{parse_decimal, trim_ows, Limits, Status};

/// Request methods the server distinguishes; everything else is answered 405.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`: as GET, without the body.
    Head,
    /// `OPTIONS`
    Options,
    /// Any other syntactically valid method.
    Other,
}

/// Protocol version of the request (only major version 1 is served; others get 505).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: keep-alive only on request.
    Http10,
    /// HTTP/1.1: keep-alive unless `Connection: close`.
    Http11,
}

/// A parsed request head, borrowing from the connection's receive buffer.
///
/// Only the header fields the server acts on are kept; all are raw bytes (trimmed of
/// surrounding whitespace) so parsing them is deferred to whoever needs them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// Method, classified.
    pub method: Method,
    /// Method as sent (for the access log).
    pub method_raw: &'a str,
    /// Request target in origin form (`/path?query`); an absolute-form target
    /// (`http://host/path?q`) is reduced to its origin form here, `*` is kept as is.
    pub target: &'a [u8],
    /// Request target exactly as sent (for the access log).
    pub target_raw: &'a [u8],
    /// HTTP version.
    pub version: Version,
    /// `Host` header (or the authority of an absolute-form target, which takes precedence).
    pub host: Option<&'a [u8]>,
    /// Whether the client allows the connection to stay open after this response
    /// (version default, overridden by `Connection: close` / `keep-alive` tokens).
    pub keep_alive: bool,
    /// `Range`
    pub range: Option<&'a [u8]>,
    /// `If-Range`
    pub if_range: Option<&'a [u8]>,
    /// `If-Match`
    pub if_match: Option<&'a [u8]>,
    /// `If-None-Match`
    pub if_none_match: Option<&'a [u8]>,
    /// `If-Modified-Since`
    pub if_modified_since: Option<&'a [u8]>,
    /// `If-Unmodified-Since`
    pub if_unmodified_since: Option<&'a [u8]>,
    /// `Referer` (for the access log).
    pub referer: Option<&'a [u8]>,
    /// `User-Agent` (for the access log).
    pub user_agent: Option<&'a [u8]>,
    /// `Accept` (directory listings: HTML or JSON); `None` when sent more than once, which
    /// falls back to HTML.
    pub accept: Option<&'a [u8]>,
    /// `Accept-Encoding` (precompressed files); `None` when sent more than once, which falls
    /// back to the unencoded file rather than joining the lines (that would allocate).
    pub accept_encoding: Option<&'a [u8]>,
    /// `Want-Repr-Digest` (RFC 9530: a digest of the file is wanted); `None` when sent more
    /// than once.
    pub want_repr_digest: Option<&'a [u8]>,
    /// `Want-Content-Digest` (a digest of the message content); `None` when sent more than
    /// once.
    pub want_content_digest: Option<&'a [u8]>,
    /// Length of the request body announced by `Content-Length` (0 without one, and for a
    /// chunked body).
    pub body_len: u64,
    /// The body is sent with the chunked transfer coding (RFC 9112 §7.1), its end found by
    /// decoding it ([`super::chunked`]).
    pub chunked: bool,
    /// `Expect: 100-continue`: the client waits for an interim 100 before sending its body.
    pub expect_continue: bool,
    /// The whole head as received, for the rare requests (uploads) that read fields beyond
    /// the ones kept here ([`fields`]).
    pub head: &'a [u8],
    /// Number of bytes of the buffer taken by the head (request line, fields, final CRLF).
    pub head_len: usize,
}

/// Outcome of [`parse`].
// Returned by value once per request and consumed at once; boxing the large variant would
// put an allocation on the hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq, Eq)]
pub enum Parse<'a> {
    /// The buffer holds no complete head yet (and is below the head size limit).
    Partial,
    /// A complete, valid head.
    Complete(Request<'a>),
    /// The input is not an acceptable request; answer with this status and close, since the
    /// message framing can no longer be trusted.
    Invalid(Status),
}

/// Longest request target accepted; longer ones are answered 414 (nginx's default large
/// header buffer is 8 KiB too).
pub const MAX_TARGET: usize = 8 * 1024;

/// Most header fields in one request; more are answered 431.
pub const MAX_HEADERS: usize = 64;

/// Parses the request head at the start of `buf`.
///
/// Only the first `limits.max_head` bytes are looked at: a head that does not end within
/// them is answered 431, whether it is still arriving or not. Everything that could let a
/// front-end and this server disagree about where a message ends (RFC 9112 §6.3, §11.2) is
/// rejected and closes the connection: duplicate or non-numeric `Content-Length`,
/// `Transfer-Encoding` beside `Content-Length` or in HTTP/1.0 (400), a coding other than a
/// single `chunked` (501), obs-fold, missing or duplicate `Host`. How large a body may be
/// is not decided here: the session asks whether the server takes it ([`super::h1`]). Duplicated singleton fields are resolved without allocating:
/// `If-Match` / `If-None-Match` keep their first line (which can only turn a 304 into a 200
/// or a success into a 412, never serve what the client excluded), duplicate dates are
/// ignored (RFC 9110 §13.1.3–4), and a duplicate `Range` or `If-Range` drops the range
/// request, answering with the whole file.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Parse<'a> {
    let window = &buf[..buf.len().min(limits.max_head)];
    // Left uninitialised: filling 64 empty slots (2 KiB of stack) was a fifth of the session's
    // own samples under load.
    let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut raw = httparse::Request::new(&mut []);
    let head_len = match raw.parse_with_uninit_headers(window, &mut headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return partial(window, limits),
        Err(httparse::Error::TooManyHeaders) => {
            return Parse::Invalid(Status::HeaderFieldsTooLarge)
        }
        Err(httparse::Error::Version) => {
            if let Some(parsed) = parse_later_minor(window, limits) {
                return parsed;
            }
            match version_error(window) {
                Some(status) => return Parse::Invalid(status),
                None => return partial(window, limits),
            }
        }
        Err(_) => return Parse::Invalid(Status::BadRequest),
    };
    let (Some(method_raw), Some(target_raw), Some(minor)) = (raw.method, raw.path, raw.version)
    else {
        return Parse::Invalid(Status::BadRequest);
    };
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    build(
        method_raw,
        target_raw,
        version,
        raw.headers,
        &window[..head_len],
    )
}

/// Parses a head whose request line says `HTTP/1.D` with D from 2 to 9, which httparse
/// refuses: RFC 9110 §2.5 has a server process a higher minor version as the highest it
/// implements, so it is read as HTTP/1.1. `None` when the line is not of that form.
fn parse_later_minor<'a>(window: &'a [u8], limits: &Limits) -> Option<Parse<'a>> {
    let start = window.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let line_end = start + memchr::memchr(b'\n', &window[start..])?;
    let line = &window[start..line_end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let later = matches!(
        version,
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'2'..=b'9']
    );
    let tchar = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    let visible = |b: &u8| b.is_ascii_graphic();
    let well_formed = parts.next().is_none()
        && !method.is_empty()
        && method.iter().all(tchar)
        && !target.is_empty()
        && target.iter().all(visible);
    if !(later && well_formed) {
        return None;
    }
    let (method, target) = (
        std::str::from_utf8(method).ok()?,
        std::str::from_utf8(target).ok()?,
    );
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let rest = &window[line_end + 1..];
    Some(match httparse::parse_headers(rest, &mut headers) {
        Ok(httparse::Status::Complete((n, headers))) => build(
            method,
            target,
            Version::Http11,
            headers,
            &window[..line_end + 1 + n],
        ),
        Ok(httparse::Status::Partial) => partial(window, limits),
        Err(httparse::Error::TooManyHeaders) => Parse::Invalid(Status::HeaderFieldsTooLarge),
        Err(_) => Parse::Invalid(Status::BadRequest),
    })
}

/// Builds the request from its parsed request line and header fields, checking what framing
/// and the server need (see [`parse`]); `head` is the whole head.
fn build<'a>(
    method_raw: &'a str,
    target_raw: &'a str,
    version: Version,
    headers: &[httparse::Header<'a>],
    head: &'a [u8],
) -> Parse<'a> {
    let target_raw = target_raw.as_bytes();
    if target_raw.len() > MAX_TARGET {
        return Parse::Invalid(Status::UriTooLong);
    }
    let Some((target, authority)) = split_target(target_raw) else {
        return Parse::Invalid(Status::BadRequest);
    };

    let f = Fields::scan(headers);

    // RFC 9112 §3.2: exactly one valid Host in HTTP/1.1, at most one in HTTP/1.0.
    if f.host.repeated
        || f.host.value.is_some_and(|h| !valid_host(h))
        || (version == Version::Http11 && f.host.value.is_none())
    {
        return Parse::Invalid(Status::BadRequest);
    }
    // RFC 9112 §6.1-§6.3: `chunked` must be the final (here: only) coding; Content-Length
    // beside it, or any transfer coding in HTTP/1.0, leaves the framing in doubt.
    let (body_len, chunked) = match (f.content_length.value, f.transfer_encoding) {
        _ if f.content_length.repeated => return Parse::Invalid(Status::BadRequest),
        (Some(_), Coding::Chunked | Coding::Other) => return Parse::Invalid(Status::BadRequest),
        (None, Coding::Chunked | Coding::Other) if version == Version::Http10 => {
            return Parse::Invalid(Status::BadRequest)
        }
        (None, Coding::Other) => return Parse::Invalid(Status::NotImplemented),
        (None, Coding::Chunked) => (0, true),
        (None, Coding::None) => (0, false),
        (Some(cl), Coding::None) => match parse_decimal(cl) {
            Some(n) => (n, false),
            None => return Parse::Invalid(Status::BadRequest),
        },
    };

    let range_ok = !f.range.repeated && !f.if_range.repeated;
    Parse::Complete(Request {
        method: match method_raw {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        },
        method_raw,
        target,
        target_raw,
        version,
        host: authority.or(f.host.value),
        keep_alive: !f.close && (version == Version::Http11 || f.keep_alive),
        range: f.range.value.filter(|_| range_ok),
        if_range: f.if_range.unique(),
        if_match: f.if_match.value,
        if_none_match: f.if_none_match.value,
        if_modified_since: f.if_modified_since.unique(),
        if_unmodified_since: f.if_unmodified_since.unique(),
        referer: f.referer.value,
        user_agent: f.user_agent.value,
        accept: f.accept.unique(),
        accept_encoding: f.accept_encoding.unique(),
        want_repr_digest: f.want_repr_digest.unique(),
        want_content_digest: f.want_content_digest.unique(),
        body_len,
        chunked,
        expect_continue: f.expect_continue,
        head,
        head_len: head.len(),
    })
}

/// The header field lines of a parsed `head` as `(name, value)` with the value trimmed, in
/// order: for the fields [`Request`] does not keep. The head was validated by [`parse`] (no
/// obs-fold, every line a field), so splitting lines is exact.
pub fn fields(head: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    head.split(|&b| b == b'\n')
        .skip_while(|line| line.is_empty() || *line == b"\r")
        .skip(1)
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = memchr::memchr(b':', line)?;
            Some((&line[..colon], trim_ows(&line[colon + 1..])))
        })
}

/// The value of the header field `name` (case-insensitive) in `head`; `Err(())` when it
/// appears more than once.
#[allow(clippy::result_unit_err)]
pub fn field<'a>(head: &'a [u8], name: &str) -> Result<Option<&'a [u8]>, ()> {
    let mut found = None;
    for (n, v) in fields(head) {
        if n.eq_ignore_ascii_case(name.as_bytes()) {
            if found.is_some() {
                return Err(());
            }
            found = Some(v);
        }
    }
    Ok(found)
}

/// No complete head in `window`: wait for more, unless the window is already full.
fn partial<'a>(window: &[u8], limits: &Limits) -> Parse<'a> {
    if window.len() >= limits.max_head {
        Parse::Invalid(Status::HeaderFieldsTooLarge)
    } else {
        Parse::Partial
    }
}

/// Shape of an HTTP-version (RFC 9112 §2.3), `#` standing for a digit.
const VERSION_SHAPE: &[u8; 8] = b"HTTP/#.#";

/// Classifies a request line httparse rejected for its version: a well-formed
/// `HTTP/DIGIT.DIGIT` (necessarily not 1.0 or 1.1, e.g. `HTTP/2.0`) is 505, anything else
/// 400; `None` while the line is incomplete but still looks like such a version.
fn version_error(buf: &[u8]) -> Option<Status> {
    // httparse skips empty lines before the request line (RFC 9112 §2.2) and has already
    // accepted the method and target, neither of which contains a space.
    let Some(start) = buf.iter().position(|&b| b != b'\r' && b != b'\n') else {
        return Some(Status::BadRequest);
    };
    let line = &buf[start..];
    let (line, complete) = match memchr::memchr(b'\n', line) {
        Some(end) => (&line[..end], true),
        None => (line, false),
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(version) = line.splitn(3, |&b| b == b' ').nth(2) else {
        return Some(Status::BadRequest);
    };
    let prefix_ok = version.len() <= VERSION_SHAPE.len()
        && version.iter().zip(VERSION_SHAPE).all(|(&b, &p)| {
            if p == b'#' {
                b.is_ascii_digit()
            } else {
                b == p
            }
        });
    match (prefix_ok, complete) {
        (true, true) if version.len() == VERSION_SHAPE.len() => Some(Status::VersionNotSupported),
        (true, false) => None,
        _ => Some(Status::BadRequest),
    }
}

/// Splits a request target into its origin form and, for absolute form, its authority.
/// `None` for anything but origin form, `*` or an `http(s)://` absolute form with a valid
/// authority. `http://host?q` has no path to borrow a `/?q` from, so it becomes `/`, which
/// only loses the query (which file serving ignores).
fn split_target(target: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    match target {
        [b'/', ..] | [b'*'] => Some((target, None)),
        _ => {
            let rest = strip_prefix_ignore_case(target, b"http://")
                .or_else(|| strip_prefix_ignore_case(target, b"https://"))?;
            let end = rest
                .iter()
                .position(|&b| matches!(b, b'/' | b'?' | b'#'))
                .unwrap_or(rest.len());
            let (authority, path) = rest.split_at(end);
            if authority.is_empty() || !valid_host(authority) {
                return None;
            }
            let path = if path.first() == Some(&b'/') {
                path
            } else {
                &b"/"[..]
            };
            Some((path, Some(authority)))
        }
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let (head, rest) = s.split_at_checked(prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then_some(rest)
}

/// Whether `host` is a `uri-host [":" port]` (see [`super::host`]).
fn valid_host(host: &[u8]) -> bool {
    super::host::parse(host).is_some()
}

/// Header fields the parser acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    Range,
    IfRange,
    IfMatch,
    IfNoneMatch,
    IfModifiedSince,
    IfUnmodifiedSince,
    Referer,
    UserAgent,
    Accept,
    AcceptEncoding,
    Expect,
    WantReprDigest,
    WantContentDigest,
}

/// The field `name` names (case-insensitively), if the parser acts on it. The names are
/// grouped by length, so that a field line is compared with one or two names rather than all.
fn classify(name: &str) -> Option<Field> {
    use Field::*;
    let candidates: &[(&str, Field)] = match name.len() {
        4 => &[("host", Host)],
        5 => &[("range", Range)],
        6 => &[("accept", Accept), ("expect", Expect)],
        7 => &[("referer", Referer)],
        8 => &[("if-range", IfRange), ("if-match", IfMatch)],
        10 => &[("connection", Connection), ("user-agent", UserAgent)],
        13 => &[("if-none-match", IfNoneMatch)],
        14 => &[("content-length", ContentLength)],
        15 => &[("accept-encoding", AcceptEncoding)],
        16 => &[("want-repr-digest", WantReprDigest)],
        17 => &[
            ("transfer-encoding", TransferEncoding),
            ("if-modified-since", IfModifiedSince),
        ],
        19 => &[
            ("if-unmodified-since", IfUnmodifiedSince),
            ("want-content-digest", WantContentDigest),
        ],
        _ => &[],
    };
    // The names are lowercase letters and `-`: a byte of a token (httparse checked the name)
    // with bit 5 set equals one of them only if it is that letter in either case, or `-`.
    let name = name.as_bytes();
    candidates
        .iter()
        .find(|(n, _)| n.bytes().zip(name).all(|(l, &c)| l == c | 0x20))
        .map(|&(_, f)| f)
}

/// A field that should appear once: its first value, and whether more lines followed.
#[derive(Default, Clone, Copy)]
struct Once<'a> {
    value: Option<&'a [u8]>,
    repeated: bool,
}

impl<'a> Once<'a> {
    fn add(&mut self, value: &'a [u8]) {
        if self.value.is_some() {
            self.repeated = true;
        } else {
            self.value = Some(value);
        }
    }

    /// The value, or `None` when the field was repeated (and so must be ignored).
    fn unique(self) -> Option<&'a [u8]> {
        self.value.filter(|_| !self.repeated)
    }
}

/// What `Transfer-Encoding` lines said.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Coding {
    /// No `Transfer-Encoding`.
    #[default]
    None,
    /// Exactly `chunked`, once.
    Chunked,
    /// Anything else: another coding, a list, or several lines.
    Other,
}

/// What the field scan collected.
#[derive(Default)]
struct Fields<'a> {
    host: Once<'a>,
    content_length: Once<'a>,
    transfer_encoding: Coding,
    expect_continue: bool,
    close: bool,
    keep_alive: bool,
    range: Once<'a>,
    if_range: Once<'a>,
    if_match: Once<'a>,
    if_none_match: Once<'a>,
    if_modified_since: Once<'a>,
    if_unmodified_since: Once<'a>,
    referer: Once<'a>,
    user_agent: Once<'a>,
    accept: Once<'a>,
    accept_encoding: Once<'a>,
    want_repr_digest: Once<'a>,
    want_content_digest: Once<'a>,
}

impl<'a> Fields<'a> {
    /// Collects the fields we act on from the parsed header lines.
    fn scan(headers: &[httparse::Header<'a>]) -> Fields<'a> {
        let mut f = Fields::default();
        for h in headers {
            let value = trim_ows(h.value);
            match classify(h.name) {
                Some(Field::Host) => f.host.add(value),
                Some(Field::ContentLength) => f.content_length.add(value),
                Some(Field::TransferEncoding) => {
                    f.transfer_encoding = match f.transfer_encoding {
                        Coding::None if value.eq_ignore_ascii_case(b"chunked") => Coding::Chunked,
                        _ => Coding::Other,
                    }
                }
                Some(Field::Expect) => {
                    f.expect_continue |= value.eq_ignore_ascii_case(b"100-continue")
                }
                Some(Field::Connection) => {
                    for token in value.split(|&b| b == b',').map(trim_ows) {
                        f.close |= token.eq_ignore_ascii_case(b"close");
                        f.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                    }
                }
                Some(Field::Range) => f.range.add(value),
                Some(Field::IfRange) => f.if_range.add(value),
                Some(Field::IfMatch) => f.if_match.add(value),
                Some(Field::IfNoneMatch) => f.if_none_match.add(value),
                Some(Field::IfModifiedSince) => f.if_modified_since.add(value),
                Some(Field::IfUnmodifiedSince) => f.if_unmodified_since.add(value),
                Some(Field::Referer) => f.referer.add(value),
                Some(Field::UserAgent) => f.user_agent.add(value),
                Some(Field::Accept) => f.accept.add(value),
                Some(Field::AcceptEncoding) => f.accept_encoding.add(value),
                Some(Field::WantReprDigest) => f.want_repr_digest.add(value),
                Some(Field::WantContentDigest) => f.want_content_digest.add(value),
                None => {}
            }
        }
        f
    }
}

#[cfg(test)]
mod tests;
