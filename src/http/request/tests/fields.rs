//! The header fields the parser acts on: recognised by name, kept once, trimmed, and what
//! `Connection` says about keep-alive.

use super::*;

#[test]
fn every_field_acted_on_is_recognised_in_any_case() {
    use Field::*;
    let fields = [
        ("Host", Host),
        ("Content-Length", ContentLength),
        ("Transfer-Encoding", TransferEncoding),
        ("Connection", Connection),
        ("Range", Range),
        ("If-Range", IfRange),
        ("If-Match", IfMatch),
        ("If-None-Match", IfNoneMatch),
        ("If-Modified-Since", IfModifiedSince),
        ("If-Unmodified-Since", IfUnmodifiedSince),
        ("Referer", Referer),
        ("User-Agent", UserAgent),
        ("Accept", Accept),
        ("Accept-Encoding", AcceptEncoding),
        ("Expect", Expect),
        ("Want-Repr-Digest", WantReprDigest),
        ("Want-Content-Digest", WantContentDigest),
    ];
    for (name, field) in fields {
        assert_eq!(classify(name), Some(field), "{name}");
        assert_eq!(classify(&name.to_ascii_uppercase()), Some(field), "{name}");
        assert_eq!(classify(&name.to_ascii_lowercase()), Some(field), "{name}");
    }
    for other in [
        "Hosts",
        "X-Host",
        "Accept-Language",
        "Cookie",
        "",
        "If-None-Matcz",
    ] {
        assert_eq!(classify(other), None, "{other}");
    }
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
fn other_fields_are_read_from_the_head() {
    let text =
        "\r\nPATCH /u HTTP/1.1\r\nHost: a\r\nUpload-Offset:  12 \r\nx:\r\nUPLOAD-length: 3\r\n\r\n";
    let req = ok(text);
    assert_eq!(req.head.len(), text.len());
    let fields: Vec<_> = super::fields(req.head).collect();
    assert_eq!(
        fields,
        [
            (&b"Host"[..], &b"a"[..]),
            (b"Upload-Offset", b"12"),
            (b"x", b""),
            (b"UPLOAD-length", b"3"),
        ]
    );
    assert_eq!(super::field(req.head, "upload-length"), Ok(Some(&b"3"[..])));
    assert_eq!(super::field(req.head, "missing"), Ok(None));
    let twice = ok("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\na: 2\r\n\r\n");
    assert_eq!(super::field(twice.head, "a"), Err(()));
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
