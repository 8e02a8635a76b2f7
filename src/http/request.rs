//! Request-head parsing (RFC 9112 §2–§6) on top of `httparse`.
//!
//! Key design decision: httparse does the byte-level grammar into a fixed array of 64 field
//! slots on the stack, and this module applies the HTTP semantics on top in one pass over
//! the fields, keeping borrowed slices of the few we act on; nothing is allocated, and any
//! ambiguity about message framing is an error that closes the connection.

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
    /// Length of the request body announced by `Content-Length` (0 without one); the engine
    /// reads and discards that many bytes after the head before parsing the next request.
    pub body_len: u64,
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
/// `Transfer-Encoding` (with `Content-Length`: 400; alone: 501), obs-fold, missing or
/// duplicate `Host`. Duplicated singleton fields are resolved without allocating:
/// `If-Match` / `If-None-Match` keep their first line (which can only turn a 304 into a 200
/// or a success into a 412, never serve what the client excluded), duplicate dates are
/// ignored (RFC 9110 §13.1.3–4), and a duplicate `Range` or `If-Range` drops the range
/// request, answering with the whole file.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Parse<'a> {
    let window = &buf[..buf.len().min(limits.max_head)];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut raw = httparse::Request::new(&mut headers);
    let head_len = match raw.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return partial(window, limits),
        Err(httparse::Error::TooManyHeaders) => {
            return Parse::Invalid(Status::HeaderFieldsTooLarge)
        }
        Err(httparse::Error::Version) => match version_error(window) {
            Some(status) => return Parse::Invalid(status),
            None => return partial(window, limits),
        },
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
    let target_raw = target_raw.as_bytes();
    if target_raw.len() > MAX_TARGET {
        return Parse::Invalid(Status::UriTooLong);
    }
    let Some((target, authority)) = split_target(target_raw) else {
        return Parse::Invalid(Status::BadRequest);
    };

    let f = Fields::scan(raw.headers);

    // RFC 9112 §3.2: exactly one valid Host in HTTP/1.1, at most one in HTTP/1.0.
    if f.host.repeated
        || f.host.value.is_some_and(|h| !valid_host(h))
        || (version == Version::Http11 && f.host.value.is_none())
    {
        return Parse::Invalid(Status::BadRequest);
    }
    let body_len = match (f.content_length.value, f.transfer_encoding) {
        _ if f.content_length.repeated => return Parse::Invalid(Status::BadRequest),
        (Some(_), true) => return Parse::Invalid(Status::BadRequest),
        (None, true) => return Parse::Invalid(Status::NotImplemented),
        (None, false) => 0,
        (Some(cl), false) => match parse_decimal(cl) {
            Some(n) => n,
            None => return Parse::Invalid(Status::BadRequest),
        },
    };
    if body_len > limits.max_discard_body {
        return Parse::Invalid(Status::PayloadTooLarge);
    }

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
        body_len,
        head_len,
    })
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

/// Whether `host` is a plausible `uri-host [":" port]` (RFC 3986 reg-name, IPv4 or
/// bracketed IPv6 characters); userinfo (`@`), paths and whitespace are rejected.
fn valid_host(host: &[u8]) -> bool {
    host.iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:%[]".contains(&b))
}

/// Header fields the parser acts on.
#[derive(Clone, Copy)]
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
}

const FIELDS: [(&str, Field); 14] = [
    ("host", Field::Host),
    ("content-length", Field::ContentLength),
    ("transfer-encoding", Field::TransferEncoding),
    ("connection", Field::Connection),
    ("range", Field::Range),
    ("if-range", Field::IfRange),
    ("if-match", Field::IfMatch),
    ("if-none-match", Field::IfNoneMatch),
    ("if-modified-since", Field::IfModifiedSince),
    ("if-unmodified-since", Field::IfUnmodifiedSince),
    ("referer", Field::Referer),
    ("user-agent", Field::UserAgent),
    ("accept", Field::Accept),
    ("accept-encoding", Field::AcceptEncoding),
];

fn classify(name: &str) -> Option<Field> {
    FIELDS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
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

/// What the field scan collected.
#[derive(Default)]
struct Fields<'a> {
    host: Once<'a>,
    content_length: Once<'a>,
    transfer_encoding: bool,
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
                Some(Field::TransferEncoding) => f.transfer_encoding = true,
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
                None => {}
            }
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits() -> Limits {
        Limits::default()
    }

    fn ok(head: &str) -> Request<'_> {
        match parse(head.as_bytes(), &limits()) {
            Parse::Complete(req) => req,
            other => panic!("{head:?}: {other:?}"),
        }
    }

    fn invalid(head: &[u8]) -> Status {
        match parse(head, &limits()) {
            Parse::Invalid(status) => status,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(head)),
        }
    }

    #[test]
    fn simple_get() {
        let head = "GET /a/b.txt?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8\r\n\r\n";
        let req = ok(head);
        assert_eq!(req.method, Method::Get);
        assert_eq!(req.method_raw, "GET");
        assert_eq!(req.target, b"/a/b.txt?x=1");
        assert_eq!(req.target_raw, b"/a/b.txt?x=1");
        assert_eq!(req.version, Version::Http11);
        assert_eq!(req.host, Some(&b"example.com"[..]));
        assert_eq!(req.user_agent, Some(&b"curl/8"[..]));
        assert!(req.keep_alive);
        assert_eq!(req.body_len, 0);
        assert_eq!(req.head_len, head.len());
        assert_eq!(req.range, None);
    }

    #[test]
    fn head_len_excludes_pipelined_bytes() {
        let first = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let both = format!("{first}GET /next HTTP/1.1\r\n");
        assert_eq!(ok(&both).head_len, first.len());
    }

    #[test]
    fn negotiation_fields_kept_once() {
        let req = ok("GET / HTTP/1.1\r\nHost: a\r\nAccept: application/json\r\nAccept-Encoding:  gzip, br \r\n\r\n");
        assert_eq!(req.accept, Some(&b"application/json"[..]));
        assert_eq!(req.accept_encoding, Some(&b"gzip, br"[..]));
        let twice = "GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\nAccept-Encoding: br\r\nAccept: a/b\r\naccept: c/d\r\n\r\n";
        let req = ok(twice);
        assert_eq!((req.accept, req.accept_encoding), (None, None));
    }

    #[test]
    fn methods() {
        assert_eq!(
            ok("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n").method,
            Method::Head
        );
        assert_eq!(
            ok("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").method,
            Method::Options
        );
        let post = ok("POST / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!((post.method, post.method_raw), (Method::Other, "POST"));
        // Methods are case-sensitive.
        assert_eq!(
            ok("get / HTTP/1.1\r\nHost: a\r\n\r\n").method,
            Method::Other
        );
        assert_eq!(
            ok("Head / HTTP/1.1\r\nHost: a\r\n\r\n").method,
            Method::Other
        );
    }

    #[test]
    fn partial_heads() {
        let full = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        for n in 0..full.len() {
            assert_eq!(parse(&full[..n], &limits()), Parse::Partial, "{n}");
        }
        assert!(matches!(parse(full, &limits()), Parse::Complete(_)));
    }

    #[test]
    fn leading_empty_lines_are_skipped() {
        let head = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let req = ok(head);
        assert_eq!(req.target, b"/");
        assert_eq!(req.head_len, head.len());
    }

    #[test]
    fn bare_lf_is_accepted_like_httparse() {
        let head = "GET / HTTP/1.1\nHost: a\n\n";
        assert_eq!(ok(head).head_len, head.len());
        // A bare CR is not a line ending.
        assert_eq!(
            invalid(b"GET / HTTP/1.1\rHost: a\r\n\r\n"),
            Status::BadRequest
        );
        assert_eq!(
            invalid(b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n"),
            Status::BadRequest
        );
    }

    #[test]
    fn head_size_limit() {
        let small = Limits {
            max_head: 64,
            ..limits()
        };
        let long = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "y".repeat(100)
        );
        // Complete but too long.
        assert_eq!(
            parse(long.as_bytes(), &small),
            Parse::Invalid(Status::HeaderFieldsTooLarge)
        );
        // Incomplete and already at the limit.
        assert_eq!(
            parse(&long.as_bytes()[..64], &small),
            Parse::Invalid(Status::HeaderFieldsTooLarge)
        );
        assert_eq!(parse(&long.as_bytes()[..63], &small), Parse::Partial);
        // Exactly at the limit is fine, even with pipelined bytes behind it.
        let exact = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "y".repeat(64 - 32)
        );
        assert_eq!(exact.len(), 64);
        let pipelined = format!("{exact}GET / HTTP/1.1\r\n");
        match parse(pipelined.as_bytes(), &small) {
            Parse::Complete(req) => assert_eq!(req.head_len, 64),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn too_many_headers() {
        let mut head = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 0..MAX_HEADERS {
            head += &format!("X-{i}: v\r\n");
        }
        head += "\r\n";
        assert_eq!(invalid(head.as_bytes()), Status::HeaderFieldsTooLarge);
        // Detected even before the head is complete.
        assert_eq!(
            invalid(&head.as_bytes()[..head.len() - 2]),
            Status::HeaderFieldsTooLarge
        );
        let mut fits = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 0..MAX_HEADERS - 1 {
            fits += &format!("X-{i}: v\r\n");
        }
        ok(&(fits + "\r\n"));
    }

    #[test]
    fn malformed_heads() {
        for head in [
            &b"GET\r\n\r\n"[..],
            b"GET /\r\n\r\n",
            b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHo st: a\r\n\r\n",
            b"GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n",
            b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / http/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1x\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.10\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.\r\nHost: a\r\n\r\n",
            b"GET / HTTP/2\r\nHost: a\r\n\r\n",
            b"GET / HTTP/a.b\r\nHost: a\r\n\r\n",
            b"GET / FTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert_eq!(
                invalid(head),
                Status::BadRequest,
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn obs_fold_is_rejected() {
        assert_eq!(
            invalid(b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: part1\r\n part2\r\n\r\n"),
            Status::BadRequest
        );
        assert_eq!(
            invalid(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\t5\r\n\r\n"),
            Status::BadRequest
        );
    }

    #[test]
    fn other_major_versions_get_505() {
        for head in [
            &b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"[..],
            b"GET / HTTP/3.0\r\n\r\n",
            b"GET / HTTP/0.9\r\n\r\n",
            b"GET / HTTP/1.2\r\n\r\n",
            b"GET / HTTP/9.9\n\n",
            b"\r\nGET / HTTP/2.0\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            // Only the request line is needed to decide.
            b"GET / HTTP/2.0\r\n",
        ] {
            assert_eq!(
                invalid(head),
                Status::VersionNotSupported,
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
        // Incomplete request lines that may still turn out to be versions wait for more.
        for head in [
            &b"GET / HTTP/2"[..],
            b"GET / HTTP/2.",
            b"GET / HTTP/2.0",
            b"GET / HTTP/2.0\r",
        ] {
            assert_eq!(
                parse(head, &limits()),
                Parse::Partial,
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
        assert_eq!(invalid(b"GET / HTTP/2.00"), Status::BadRequest);
        assert_eq!(invalid(b"GET / HTTPS"), Status::BadRequest);
        // ... unless the window is full.
        let tiny = Limits {
            max_head: 12,
            ..limits()
        };
        assert_eq!(
            parse(b"GET / HTTP/2.0", &tiny),
            Parse::Invalid(Status::HeaderFieldsTooLarge)
        );
    }

    #[test]
    fn http10() {
        let req = ok("GET / HTTP/1.0\r\n\r\n");
        assert_eq!(req.version, Version::Http10);
        assert_eq!(req.host, None);
        assert!(!req.keep_alive);
        assert_eq!(
            ok("GET / HTTP/1.0\r\nHost: h\r\n\r\n").host,
            Some(&b"h"[..])
        );
    }

    #[test]
    fn host_rules() {
        assert_eq!(invalid(b"GET / HTTP/1.1\r\n\r\n"), Status::BadRequest);
        assert_eq!(
            invalid(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
            Status::BadRequest
        );
        assert_eq!(
            invalid(b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"),
            Status::BadRequest
        );
        assert_eq!(
            invalid(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"),
            Status::BadRequest
        );
        assert_eq!(
            invalid(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
            Status::BadRequest
        );
        assert_eq!(
            invalid(b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"),
            Status::BadRequest
        );
        assert_eq!(
            invalid(b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"),
            Status::BadRequest
        );
        assert_eq!(
            ok("GET / HTTP/1.1\r\nHOST:   a:8080  \r\n\r\n").host,
            Some(&b"a:8080"[..])
        );
        assert_eq!(
            ok("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n").host,
            Some(&b"[::1]:80"[..])
        );
        // An empty Host is allowed (RFC 9112 §3.2: authority without a host).
        assert_eq!(ok("GET / HTTP/1.1\r\nHost:\r\n\r\n").host, Some(&b""[..]));
    }

    #[test]
    fn content_length() {
        assert_eq!(
            ok("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n").body_len,
            5
        );
        assert_eq!(
            ok("GET / HTTP/1.1\r\nHost: a\r\ncontent-length:  0 \r\n\r\n").body_len,
            0
        );
        assert_eq!(
            ok("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n").body_len,
            7
        );
        let max = limits().max_discard_body;
        let at_max = format!("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: {max}\r\n\r\n");
        assert_eq!(ok(&at_max).body_len, max);
        let over = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
            max + 1
        );
        assert_eq!(invalid(over.as_bytes()), Status::PayloadTooLarge);
        assert_eq!(
            invalid(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n"),
            Status::BadRequest
        );
    }

    #[test]
    fn smuggling_vectors() {
        for cl in [
            "Content-Length: 1,1",
            "Content-Length: 1, 1",
            "Content-Length: +5",
            "Content-Length: -5",
            "Content-Length: 5 5",
            "Content-Length: 0x5",
            "Content-Length: 5.0",
            "Content-Length:",
            "Content-Length: 5\r\nContent-Length: 5",
            "Content-Length: 5\r\ncontent-length: 6",
            "Content-Length: 5\r\nTransfer-Encoding: chunked",
            "Transfer-Encoding: chunked\r\nContent-Length: 5",
            "Transfer-Encoding: chunked\r\nContent-Length: 0",
            "Transfer-Encoding: identity\r\nContent-Length: 5",
        ] {
            let head = format!("GET / HTTP/1.1\r\nHost: a\r\n{cl}\r\n\r\n");
            assert_eq!(invalid(head.as_bytes()), Status::BadRequest, "{cl:?}");
        }
        for te in ["chunked", "gzip, chunked", "identity", "CHUNKED", ""] {
            let head = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {te}\r\n\r\n");
            assert_eq!(invalid(head.as_bytes()), Status::NotImplemented, "{te:?}");
        }
        assert_eq!(
            invalid(b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Status::NotImplemented
        );
    }

    #[test]
    fn keep_alive_matrix() {
        let cases = [
            ("1.1", "", true),
            ("1.1", "Connection: close\r\n", false),
            ("1.1", "Connection: CLOSE\r\n", false),
            ("1.1", "Connection: keep-alive\r\n", true),
            ("1.1", "Connection: keep-alive, close\r\n", false),
            ("1.1", "Connection: upgrade ,  Close \r\n", false),
            (
                "1.1",
                "Connection: keep-alive\r\nConnection: close\r\n",
                false,
            ),
            ("1.1", "Connection: closed\r\n", true),
            ("1.1", "Connection: foo\r\n", true),
            ("1.0", "", false),
            ("1.0", "Connection: keep-alive\r\n", true),
            ("1.0", "Connection: Keep-Alive\r\n", true),
            ("1.0", "Connection: te, keep-alive\r\n", true),
            ("1.0", "Connection: keep-alive, close\r\n", false),
            (
                "1.0",
                "Connection: close\r\nConnection: keep-alive\r\n",
                false,
            ),
            ("1.0", "Connection: keep-alive-ish\r\n", false),
            ("1.0", "Keep-Alive: timeout=5\r\n", false),
        ];
        for (version, fields, expect) in cases {
            let head = format!("GET / HTTP/{version}\r\nHost: a\r\n{fields}\r\n");
            assert_eq!(ok(&head).keep_alive, expect, "{head:?}");
        }
    }

    #[test]
    fn copied_fields_are_trimmed_and_case_insensitive() {
        let req = ok(
            "GET / HTTP/1.1\r\nhost: h\r\nRANGE: bytes=0-1 \r\nif-range:\t\"x\"\r\n\
             If-Match: \"a\"\r\nIF-NONE-MATCH: \"b\"\r\nIf-Modified-Since: d1\r\n\
             If-Unmodified-Since: d2\r\nReferer: http://r/\r\nUser-Agent: ua 1\r\n\r\n",
        );
        assert_eq!(req.host, Some(&b"h"[..]));
        assert_eq!(req.range, Some(&b"bytes=0-1"[..]));
        assert_eq!(req.if_range, Some(&b"\"x\""[..]));
        assert_eq!(req.if_match, Some(&b"\"a\""[..]));
        assert_eq!(req.if_none_match, Some(&b"\"b\""[..]));
        assert_eq!(req.if_modified_since, Some(&b"d1"[..]));
        assert_eq!(req.if_unmodified_since, Some(&b"d2"[..]));
        assert_eq!(req.referer, Some(&b"http://r/"[..]));
        assert_eq!(req.user_agent, Some(&b"ua 1"[..]));
    }

    #[test]
    fn duplicate_fields() {
        let req = ok("GET / HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1\r\nRange: bytes=2-3\r\n\r\n");
        assert_eq!(req.range, None);
        let req = ok("GET / HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1\r\nIf-Range: \"a\"\r\nIf-Range: \"a\"\r\n\r\n");
        assert_eq!((req.range, req.if_range), (None, None));
        let req = ok(
            "GET / HTTP/1.1\r\nHost: h\r\nIf-Match: \"a\"\r\nIf-Match: \"b\"\r\n\
             If-None-Match: \"c\"\r\nIf-None-Match: \"d\"\r\nIf-Modified-Since: x\r\n\
             If-Modified-Since: x\r\nIf-Unmodified-Since: y\r\nIf-Unmodified-Since: y\r\n\
             User-Agent: u1\r\nUser-Agent: u2\r\n\r\n",
        );
        assert_eq!(req.if_match, Some(&b"\"a\""[..]));
        assert_eq!(req.if_none_match, Some(&b"\"c\""[..]));
        assert_eq!(req.if_modified_since, None);
        assert_eq!(req.if_unmodified_since, None);
        assert_eq!(req.user_agent, Some(&b"u1"[..]));
    }

    #[test]
    fn targets() {
        assert_eq!(ok("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").target, b"*");
        for bad in [
            "a/b",
            "*x",
            "**",
            "ftp://h/x",
            "http:/h/x",
            "http://",
            "http:///x",
            "http://u@h/x",
            "h:80",
        ] {
            let head = format!("GET {bad} HTTP/1.1\r\nHost: a\r\n\r\n");
            assert_eq!(invalid(head.as_bytes()), Status::BadRequest, "{bad:?}");
        }
        let long = format!(
            "GET /{} HTTP/1.1\r\nHost: a\r\n\r\n",
            "x".repeat(MAX_TARGET)
        );
        assert_eq!(invalid(long.as_bytes()), Status::UriTooLong);
        let fits = format!(
            "GET /{} HTTP/1.1\r\nHost: a\r\n\r\n",
            "x".repeat(MAX_TARGET - 1)
        );
        assert_eq!(ok(&fits).target.len(), MAX_TARGET);
    }

    #[test]
    fn absolute_form() {
        let req = ok("GET http://example.com:8080/a/b?q=1 HTTP/1.1\r\nHost: other\r\n\r\n");
        assert_eq!(req.target, b"/a/b?q=1");
        assert_eq!(req.target_raw, b"http://example.com:8080/a/b?q=1");
        assert_eq!(req.host, Some(&b"example.com:8080"[..]));
        let req = ok("GET HTTPS://Example.com HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            (req.target, req.host),
            (&b"/"[..], Some(&b"Example.com"[..]))
        );
        assert_eq!(
            ok("GET hTtP://h?q HTTP/1.1\r\nHost: h\r\n\r\n").target,
            b"/"
        );
        assert_eq!(ok("GET http://h HTTP/1.0\r\n\r\n").host, Some(&b"h"[..]));
        // Host is still required in HTTP/1.1.
        assert_eq!(
            invalid(b"GET http://h/ HTTP/1.1\r\n\r\n"),
            Status::BadRequest
        );
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..300), max_head in 0usize..400) {
            let limits = Limits { max_head, ..Limits::default() };
            if let Parse::Complete(req) = parse(&buf, &limits) {
                prop_assert!(req.head_len <= buf.len() && req.head_len <= max_head);
            }
        }

        #[test]
        fn never_panics_on_near_valid_heads(
            line in "(GET|HEAD|OPTIONS|X) (/[a-z?/]{0,8}|\\*|https?://[a-z:@]{0,6}/?) HTTP/[0-9]\\.[0-9]",
            fields in proptest::collection::vec(
                "(Host|Content-Length|Transfer-Encoding|Connection|Range|If-Range|If-Match): [ -~]{0,12}",
                0..6,
            ),
            cut in any::<prop::sample::Index>(),
        ) {
            let head = format!("{line}\r\n{}\r\n", fields.iter().map(|f| format!("{f}\r\n")).collect::<String>());
            let bytes = head.as_bytes();
            let _ = parse(bytes, &limits());
            let _ = parse(&bytes[..cut.index(bytes.len() + 1)], &limits());
        }
    }
}
