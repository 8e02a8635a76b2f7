//! Response heads and plans for every kind of request, byte-exact.

use super::*;
use crate::http::multipart::tests::{materialise, parse_multipart};
use crate::http::request::parse;
use crate::http::{ETag, Fixdate, Parse};

const DATE: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";
const MTIME: u64 = 784_111_777;
const LAST_MODIFIED: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

fn rep(len: u64) -> Representation {
    Representation {
        len,
        mtime: Fixdate::new(MTIME),
        etag: ETag::from_parts(MTIME, len, 1),
        version: ETag::from_parts(MTIME, len, 1),
        mime: "text/plain",
    }
}

fn etag(len: u64) -> String {
    String::from_utf8(rep(len).etag.as_bytes().to_vec()).unwrap()
}

fn cx(limits: &Limits, keep_alive: bool) -> Context<'_> {
    Context {
        date: DATE,
        limits,
        keep_alive,
        server: b"ringserve",
        hsts: None,
    }
}

/// The output of one builder call, with a file of `(i % 251)` bytes to resolve chunks.
struct Out {
    planned: Planned,
    out: Vec<u8>,
    chunks: Vec<Chunk>,
    file: Vec<u8>,
}

impl Out {
    /// Everything the engine would send.
    fn wire(&self) -> Vec<u8> {
        materialise(&self.out, &self.chunks, &self.file)
    }

    /// The response head, checked to be a valid HTTP/1.1 response head.
    fn head(&self) -> String {
        let wire = self.wire();
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        let len = match resp.parse(&wire) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!("bad head {other:?}: {:?}", String::from_utf8_lossy(&wire)),
        };
        assert_eq!(resp.code, Some(self.planned.status.code()));
        String::from_utf8(wire[..len].to_vec()).unwrap()
    }

    fn body(&self) -> Vec<u8> {
        let head_len = self.head().len();
        self.wire()[head_len..].to_vec()
    }

    fn field(&self, name: &str) -> Option<String> {
        let head = self.head();
        let mut found = head.split("\r\n").filter_map(|line| {
            let (n, v) = line.split_once(": ")?;
            n.eq_ignore_ascii_case(name).then(|| v.to_string())
        });
        let first = found.next();
        assert!(found.next().is_none(), "duplicate {name}");
        first
    }
}

fn file_response(head: &str, len: u64, limits: &Limits, server_keep_alive: bool) -> Out {
    let req = match parse(head.as_bytes(), limits) {
        Parse::Complete(req) => req,
        other => panic!("{other:?}"),
    };
    let (mut out, mut chunks, mut ranges) = (Vec::new(), Vec::new(), Vec::new());
    let planned = file(
        &req,
        &rep(len),
        &Extra::default(),
        &cx(limits, server_keep_alive),
        &mut out,
        &mut chunks,
        &mut ranges,
    );
    let file = (0..len).map(|i| (i % 251) as u8).collect();
    Out {
        planned,
        out,
        chunks,
        file,
    }
}

fn get(fields: &str, len: u64) -> Out {
    file_response(
        &format!("GET /f HTTP/1.1\r\nHost: h\r\n{fields}\r\n"),
        len,
        &Limits::default(),
        true,
    )
}

fn head_req(fields: &str, len: u64) -> Out {
    file_response(
        &format!("HEAD /f HTTP/1.1\r\nHost: h\r\n{fields}\r\n"),
        len,
        &Limits::default(),
        true,
    )
}

fn built(f: impl FnOnce(&Context<'_>, &mut Vec<u8>, &mut Vec<Chunk>) -> Planned) -> Out {
    let limits = Limits::default();
    let (mut out, mut chunks) = (Vec::new(), Vec::new());
    let planned = f(&cx(&limits, true), &mut out, &mut chunks);
    Out {
        planned,
        out,
        chunks,
        file: Vec::new(),
    }
}

#[test]
fn full_file_exact_head() {
    let r = get("", 1000);
    let expect = format!(
        "HTTP/1.1 200 OK\r\nServer: ringserve\r\nDate: {}\r\nContent-Type: text/plain\r\n\
         Content-Length: 1000\r\nLast-Modified: {LAST_MODIFIED}\r\nETag: {}\r\n\
         Accept-Ranges: bytes\r\n\r\n",
        std::str::from_utf8(DATE).unwrap(),
        etag(1000)
    );
    assert_eq!(r.head(), expect);
    assert_eq!(
        r.chunks,
        [
            Chunk::Mem {
                start: 0,
                end: expect.len()
            },
            Chunk::File {
                offset: 0,
                len: 1000
            }
        ]
    );
    assert_eq!(
        r.planned,
        Planned {
            status: Status::Ok,
            keep_alive: true,
            body_len: 1000
        }
    );
    assert_eq!(r.body(), r.file);
}

#[test]
fn refusals_carry_retry_after() {
    let r = built(|cx, out, chunks| {
        refuse(
            Status::TooManyRequests,
            Some(3),
            false,
            true,
            cx,
            out,
            chunks,
        )
    });
    assert_eq!(r.planned.status, Status::TooManyRequests);
    assert!(r.planned.keep_alive);
    assert_eq!(r.field("Retry-After").as_deref(), Some("3"));
    assert_eq!(r.body(), Status::TooManyRequests.page());
    let r = built(|cx, out, chunks| refuse(Status::Gone, None, true, false, cx, out, chunks));
    assert_eq!(r.field("Retry-After"), None);
    assert_eq!(r.field("Connection").as_deref(), Some("close"));
    assert!(r.body().is_empty());
}

#[test]
fn empty_file_has_no_file_chunk() {
    let r = get("", 0);
    assert_eq!(r.field("Content-Length").as_deref(), Some("0"));
    assert_eq!(r.chunks.len(), 1);
    assert_eq!(r.planned.body_len, 0);
    // A range on an empty file is ignored (suffix) or unsatisfiable.
    assert_eq!(get("Range: bytes=-5\r\n", 0).planned.status, Status::Ok);
    assert_eq!(
        get("Range: bytes=0-5\r\n", 0).planned.status,
        Status::RangeNotSatisfiable
    );
}

#[test]
fn head_matches_get_without_body() {
    let g = get("", 1000);
    let h = head_req("", 1000);
    assert_eq!(h.head(), g.head());
    assert_eq!(h.chunks.len(), 1);
    assert!(h.body().is_empty());
    assert_eq!(
        h.planned,
        Planned {
            status: Status::Ok,
            keep_alive: true,
            body_len: 0
        }
    );
    // Range is only for GET.
    let h = head_req("Range: bytes=0-9\r\n", 1000);
    assert_eq!(h.planned.status, Status::Ok);
    assert_eq!(h.field("Content-Length").as_deref(), Some("1000"));
}

#[test]
fn not_modified() {
    for r in [
        get(&format!("If-None-Match: {}\r\n", etag(10)), 10),
        get(&format!("If-Modified-Since: {LAST_MODIFIED}\r\n"), 10),
        head_req(&format!("If-None-Match: W/{}\r\n", etag(10)), 10),
    ] {
        assert_eq!(
            r.planned,
            Planned {
                status: Status::NotModified,
                keep_alive: true,
                body_len: 0
            }
        );
        assert_eq!(r.field("Content-Length"), None);
        assert_eq!(r.field("ETag"), Some(etag(10)));
        assert_eq!(r.field("Last-Modified").as_deref(), Some(LAST_MODIFIED));
        assert!(r.field("Date").is_some());
        assert_eq!(r.chunks.len(), 1);
        assert!(r.body().is_empty());
    }
}

#[test]
fn precondition_failed() {
    let r = get("If-Match: \"nope\"\r\n", 10);
    assert_eq!(r.planned.status, Status::PreconditionFailed);
    assert!(r.planned.keep_alive);
    assert_eq!(r.body(), Status::PreconditionFailed.page());
    assert_eq!(r.field("Content-Type").as_deref(), Some("text/html"));
    let h = head_req("If-Match: \"nope\"\r\n", 10);
    assert!(h.body().is_empty());
    assert_eq!(h.field("Content-Length"), r.field("Content-Length"));
    // A failed If-Match wins over a Range.
    assert_eq!(
        get("If-Match: \"x\"\r\nRange: bytes=0-1\r\n", 10)
            .planned
            .status,
        Status::PreconditionFailed
    );
}

#[test]
fn single_range() {
    let r = get("Range: bytes=10-19\r\n", 100);
    assert_eq!(
        r.planned,
        Planned {
            status: Status::PartialContent,
            keep_alive: true,
            body_len: 10
        }
    );
    assert_eq!(r.field("Content-Range").as_deref(), Some("bytes 10-19/100"));
    assert_eq!(r.field("Content-Length").as_deref(), Some("10"));
    assert_eq!(r.field("Content-Type").as_deref(), Some("text/plain"));
    assert_eq!(
        r.chunks[1..],
        [Chunk::File {
            offset: 10,
            len: 10
        }]
    );
    assert_eq!(r.body(), &r.file[10..20]);
    // Coalesced ranges become a single part.
    let r = get("Range: bytes=0-4,5-9\r\n", 100);
    assert_eq!(r.field("Content-Range").as_deref(), Some("bytes 0-9/100"));
    assert_eq!(
        get("Range: bytes=-1\r\n", 100)
            .field("Content-Range")
            .as_deref(),
        Some("bytes 99-99/100")
    );
}

#[test]
fn multiple_ranges() {
    let r = get("Range: bytes=50-59, 0-4, 90-\r\n", 100);
    assert_eq!(r.planned.status, Status::PartialContent);
    let ct = r.field("Content-Type").unwrap();
    let boundary = ct.strip_prefix("multipart/byteranges; boundary=").unwrap();
    assert_eq!(boundary.as_bytes(), multipart::boundary());
    assert_eq!(r.field("Content-Range"), None);
    let body = r.body();
    assert_eq!(r.field("Content-Length").unwrap(), body.len().to_string());
    assert_eq!(r.planned.body_len, body.len() as u64);
    let parts = parse_multipart(&body, boundary.as_bytes());
    let expect = [(0u64, 4u64), (50, 59), (90, 99)];
    assert_eq!(parts.len(), expect.len());
    for ((headers, content), (first, last)) in parts.iter().zip(expect) {
        assert!(headers.contains(&format!("Content-Range: bytes {first}-{last}/100")));
        assert!(headers.contains("Content-Type: text/plain"));
        assert_eq!(&content[..], &r.file[first as usize..=last as usize]);
    }
    // File chunks interleave with in-memory part headers.
    let files: Vec<_> = r
        .chunks
        .iter()
        .filter(|c| matches!(c, Chunk::File { .. }))
        .collect();
    assert_eq!(files.len(), 3);
}

#[test]
fn unsatisfiable_range() {
    let r = get("Range: bytes=100-\r\n", 100);
    assert_eq!(r.planned.status, Status::RangeNotSatisfiable);
    assert!(r.planned.keep_alive);
    assert_eq!(r.field("Content-Range").as_deref(), Some("bytes */100"));
    assert_eq!(r.body(), Status::RangeNotSatisfiable.page());
    assert_eq!(r.chunks.len(), 1, "head and page share one chunk");
}

#[test]
fn ignored_ranges_serve_200() {
    for range in ["bytes=5-1", "items=0-1", "bytes=0-,0-", "bytes=a"] {
        let r = get(&format!("Range: {range}\r\n"), 100);
        assert_eq!(r.planned.status, Status::Ok, "{range}");
        assert_eq!(r.planned.body_len, 100);
    }
    let limits = Limits {
        max_ranges: 1,
        ..Limits::default()
    };
    let head = "GET / HTTP/1.1\r\nHost: h\r\nRange: bytes=0-0,5-5\r\n\r\n";
    assert_eq!(
        file_response(head, 100, &limits, true).planned.status,
        Status::Ok
    );
}

#[test]
fn if_range() {
    let t = etag(100);
    let range = "Range: bytes=0-9\r\n";
    assert_eq!(
        get(&format!("{range}If-Range: {t}\r\n"), 100)
            .planned
            .status,
        Status::PartialContent
    );
    assert_eq!(
        get(&format!("{range}If-Range: W/{t}\r\n"), 100)
            .planned
            .status,
        Status::Ok
    );
    assert_eq!(
        get(&format!("{range}If-Range: \"old\"\r\n"), 100)
            .planned
            .status,
        Status::Ok
    );
    let date = format!("{range}If-Range: {LAST_MODIFIED}\r\n");
    assert_eq!(get(&date, 100).planned.status, Status::PartialContent);
    let stale = format!("{range}If-Range: Sun, 06 Nov 1994 08:49:38 GMT\r\n");
    assert_eq!(get(&stale, 100).planned.status, Status::Ok);
    // A mismatched If-Range also bypasses 416.
    assert_eq!(
        get("Range: bytes=500-\r\nIf-Range: \"old\"\r\n", 100)
            .planned
            .status,
        Status::Ok
    );
}

#[test]
fn keep_alive_matrix() {
    let limits = Limits::default();
    let cases = [
        ("1.1", "", true, true, None),
        ("1.1", "", false, false, Some("close")),
        ("1.1", "Connection: close\r\n", true, false, Some("close")),
        ("1.0", "", true, false, Some("close")),
        (
            "1.0",
            "Connection: keep-alive\r\n",
            true,
            true,
            Some("keep-alive"),
        ),
        (
            "1.0",
            "Connection: keep-alive\r\n",
            false,
            false,
            Some("close"),
        ),
    ];
    for (version, fields, server, expect, header) in cases {
        let head = format!("GET / HTTP/{version}\r\nHost: h\r\n{fields}\r\n");
        let r = file_response(&head, 10, &limits, server);
        assert_eq!(r.planned.keep_alive, expect, "{head:?} server {server}");
        assert_eq!(
            r.field("Connection").as_deref(),
            header,
            "{head:?} server {server}"
        );
        // Always answered as HTTP/1.1.
        assert!(r.head().starts_with("HTTP/1.1 200 OK\r\n"));
    }
}

#[test]
fn error_page() {
    let r = built(|cx, out, chunks| error(Status::NotFound, false, true, cx, out, chunks));
    let page = Status::NotFound.page();
    assert_eq!(page, b"<html><head><title>404 Not Found</title></head><body><h1>404 Not Found</h1></body></html>\n");
    assert_eq!(
        r.planned,
        Planned {
            status: Status::NotFound,
            keep_alive: true,
            body_len: page.len() as u64
        }
    );
    assert_eq!(
        r.chunks,
        [Chunk::Mem {
            start: 0,
            end: r.out.len()
        }]
    );
    assert_eq!(r.body(), page);
    assert_eq!(r.field("Content-Length").unwrap(), page.len().to_string());
    assert_eq!(r.field("Content-Type").as_deref(), Some("text/html"));
    assert_eq!(r.field("Connection").as_deref(), Some("keep-alive"));
    assert_eq!(r.field("Allow"), None);

    let h = built(|cx, out, chunks| error(Status::NotFound, true, true, cx, out, chunks));
    assert!(h.body().is_empty());
    assert_eq!(h.planned.body_len, 0);
    assert_eq!(h.field("Content-Length"), r.field("Content-Length"));

    let m = built(|cx, out, chunks| error(Status::MethodNotAllowed, false, true, cx, out, chunks));
    assert_eq!(m.field("Allow").as_deref(), Some("GET, HEAD, OPTIONS"));
}

#[test]
fn closing_errors_force_close() {
    for &status in Status::ALL.iter().filter(|s| s.code() >= 400) {
        let r = built(|cx, out, chunks| error(status, false, true, cx, out, chunks));
        assert_eq!(
            r.planned.keep_alive,
            !status.closes_connection(),
            "{status:?}"
        );
        let conn = if status.closes_connection() {
            "close"
        } else {
            "keep-alive"
        };
        assert_eq!(r.field("Connection").as_deref(), Some(conn));
        assert_eq!(r.body(), status.page());
    }
    let r = built(|cx, out, chunks| error(Status::NotFound, false, false, cx, out, chunks));
    assert!(!r.planned.keep_alive);
    assert_eq!(r.field("Connection").as_deref(), Some("close"));
}

#[test]
fn appends_after_existing_bytes() {
    let limits = Limits::default();
    let cx = cx(&limits, true);
    let mut out = b"previous response".to_vec();
    let mut chunks = vec![Chunk::File { offset: 0, len: 1 }];
    error(Status::NotFound, false, true, &cx, &mut out, &mut chunks);
    assert!(out.starts_with(b"previous response"));
    assert_eq!(
        chunks[1],
        Chunk::Mem {
            start: 17,
            end: out.len()
        }
    );
    assert!(out[17..].starts_with(b"HTTP/1.1 404 Not Found\r\n"));
}

mod heads;
