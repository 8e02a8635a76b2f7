//! Request heads: parsing and framing checks (the fields the server reads: `fields.rs`).

use super::*;
use proptest::prelude::*;

mod fields;

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
    for bad in ["[::1", "[zz]:80", "a:8x", "a:99999", "a:b:c", "%zz"] {
        let head = format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n");
        assert_eq!(invalid(head.as_bytes()), Status::BadRequest, "{bad}");
    }
    assert_eq!(
        ok("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n").host,
        Some(&b"[::1]:80"[..])
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
    // How much body is accepted is the session's decision (uploads take large ones).
    let big = ok("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999\r\n\r\n");
    assert_eq!((big.body_len, big.chunked), (99_999_999_999, false));
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
    for te in [
        "gzip, chunked",
        "identity",
        "chunked, chunked",
        "chunked\r\nTransfer-Encoding: chunked",
        "",
    ] {
        let head = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {te}\r\n\r\n");
        assert_eq!(invalid(head.as_bytes()), Status::NotImplemented, "{te:?}");
    }
    // RFC 9112 §6.1: a transfer coding in HTTP/1.0 is faulty framing.
    assert_eq!(
        invalid(b"GET / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Status::BadRequest
    );
}

#[test]
fn chunked_and_expect() {
    for te in ["chunked", "CHUNKED", " Chunked "] {
        let head = format!("PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:{te}\r\n\r\n");
        let req = ok(&head);
        assert!(req.chunked && req.body_len == 0, "{te:?}");
    }
    let req = ok("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n");
    assert!(req.expect_continue && !req.chunked);
    assert!(!ok("GET / HTTP/1.1\r\nHost: a\r\n\r\n").expect_continue);
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

#[test]
fn later_minor_versions_are_read_as_1_1() {
    let head = "\r\nGET /x?y HTTP/1.2\r\nHost: a\r\nRange: bytes=0-1\r\n\r\nGET";
    let req = ok(head);
    assert_eq!(req.version, Version::Http11);
    assert_eq!((req.method, req.target), (Method::Get, &b"/x?y"[..]));
    assert_eq!(req.range, Some(&b"bytes=0-1"[..]));
    assert!(req.keep_alive);
    assert_eq!(req.head_len, head.len() - 3);
    assert!(!ok("HEAD / HTTP/1.9\r\nHost: a\r\nConnection: close\r\n\r\n").keep_alive);
    // Read as HTTP/1.1, so Host is required.
    assert_eq!(invalid(b"GET / HTTP/1.2\r\n\r\n"), Status::BadRequest);
    assert_eq!(
        invalid(b"GET / x HTTP/1.2\r\nHost: a\r\n\r\n"),
        Status::BadRequest
    );
    assert!(matches!(
        parse(b"GET / HTTP/1.2\r\nHost: a\r\n", &limits()),
        Parse::Partial
    ));
}
