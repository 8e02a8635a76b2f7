//! Plain GET/HEAD/OPTIONS serving, keep-alive, pipelining and directories.

mod common;

use common::*;
use std::time::{Duration, SystemTime};

backend_tests!(
    get_files_byte_exact_with_headers,
    get_big_sparse_file,
    odd_names_percent_encoded,
    validators_stable_and_distinct,
    head_same_headers_no_body,
    options_allows_get_head_options,
    other_methods_405,
    not_found_404,
    keepalive_many_requests,
    http10_closes_by_default,
    http10_keepalive_on_request,
    later_minor_version_served_as_http11,
    connection_close_honoured,
    last_response_carries_the_fin,
    close_with_input_unread_lingers,
    keepalive_requests_limit,
    pipelining_100_in_one_write,
    directory_redirect_keeps_query,
    directory_index,
);

/// Asserts a 200 response carries exactly `expected` with all the headers of a file response.
fn check_file_response(resp: &Response, name: &str, expected: &[u8]) {
    assert_eq!(resp.status, 200, "{name}: {resp:?}");
    assert_eq!(resp.content_length(), Some(expected.len() as u64), "{name}");
    assert!(resp.body == expected, "{name}: body differs from the file");
    check_file_headers(resp, name);
}

/// Asserts the representation headers every 200 (and HEAD) response for a file carries.
fn check_file_headers(resp: &Response, name: &str) {
    let ctype = resp.expect_header("Content-Type");
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => assert_eq!(ctype, "text/html; charset=utf-8", "{name}"),
        Some("css") => assert!(ctype.starts_with("text/css"), "{name}: {ctype}"),
        Some("png") => assert_eq!(ctype, "image/png", "{name}"),
        Some("qzx") => assert_eq!(ctype, "application/octet-stream", "{name}"),
        _ => {}
    }
    assert_eq!(resp.header("Accept-Ranges"), Some("bytes"), "{name}");
    assert_eq!(
        resp.header("Last-Modified"),
        Some(last_modified().as_str()),
        "{name}"
    );
    let etag = resp.expect_header("ETag");
    assert!(
        etag.len() > 2 && etag.starts_with('"') && etag.ends_with('"'),
        "{name}: ETag {etag:?} is not a strong tag"
    );
    let date = resp.expect_header("Date");
    let parsed = httpdate::parse_http_date(date).unwrap_or_else(|e| panic!("Date {date:?}: {e}"));
    assert_eq!(
        httpdate::fmt_http_date(parsed),
        date,
        "Date not IMF-fixdate"
    );
    let skew = match parsed.duration_since(SystemTime::now()) {
        Ok(ahead) => ahead,
        Err(e) => e.duration(),
    };
    assert!(
        skew < Duration::from_secs(60),
        "Date {date} is off by {skew:?}"
    );
    assert!(!resp.expect_header("Server").is_empty(), "empty Server");
}

fn get_files_byte_exact_with_headers(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let mut conn = server.connect();
    for name in [EMPTY, ONE, PAGE, MIB, CSS, PNG, UNKNOWN, "dir/inner.txt"] {
        let resp = conn.roundtrip(&get(&format!("/{name}")));
        check_file_response(&resp, name, &corpus.read(name));
    }
}

fn get_big_sparse_file(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let resp = server.fetch(&get(&format!("/{BIG}")));
    let expected = corpus.read(BIG);
    assert_eq!(expected.len() as u64, BIG_LEN);
    check_file_response(&resp, BIG, &expected);
}

fn odd_names_percent_encoded(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let mut conn = server.connect();
    let long = long_name();
    let long_url = format!("/{long}");
    let cases = ODD_NAMES
        .iter()
        .copied()
        .chain([(long.as_str(), long_url.as_str())]);
    for (name, url) in cases {
        let resp = conn.roundtrip(&get(url));
        check_file_response(&resp, name, &corpus.read(name));
    }
}

fn validators_stable_and_distinct(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let mut conn = server.connect();
    let etag = |conn: &mut Conn, name: &str| {
        let resp = conn.roundtrip(&get(&format!("/{name}")));
        resp.expect_header("ETag").to_string()
    };
    let first = etag(&mut conn, PAGE);
    assert_eq!(
        etag(&mut conn, PAGE),
        first,
        "ETag changed between requests"
    );
    assert_ne!(etag(&mut conn, MIB), first, "two files share an ETag");
}

fn head_same_headers_no_body(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let mut conn = server.connect();
    for name in [PAGE, EMPTY, MIB] {
        let target = format!("/{name}");
        // HEAD and a GET pipelined right behind it: any stray body bytes after the HEAD
        // response would corrupt the GET response.
        conn.send(req("HEAD", &target, &[]) + &get(&target));
        let head = conn.read_response(true);
        let full = conn.read_response(false);
        check_file_response(&full, name, &corpus.read(name));
        assert_eq!(head.status, 200, "{head:?}");
        check_file_headers(&head, name);
        for field in ["Content-Length", "Content-Type", "ETag", "Last-Modified"] {
            assert_eq!(head.header(field), full.header(field), "{name}: {field}");
        }
    }
}

/// The methods listed by an `Allow` header, upper-cased.
fn allowed(resp: &Response) -> Vec<String> {
    resp.expect_header("Allow")
        .split(',')
        .map(|m| m.trim().to_ascii_uppercase())
        .collect()
}

fn options_allows_get_head_options(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let mut conn = server.connect();
    for target in [format!("/{PAGE}"), "*".to_string()] {
        let resp = conn.roundtrip(&req("OPTIONS", &target, &[]));
        assert!((200..300).contains(&resp.status), "{target}: {resp:?}");
        let allow = allowed(&resp);
        for method in ["GET", "HEAD", "OPTIONS"] {
            assert!(allow.iter().any(|m| m == method), "{target}: {allow:?}");
        }
    }
}

fn other_methods_405(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    for method in ["POST", "PUT", "DELETE"] {
        let resp = server.fetch(&req(method, &format!("/{PAGE}"), &["Content-Length: 0"]));
        assert_eq!(resp.status, 405, "{method}: {resp:?}");
        let allow = allowed(&resp);
        for allowed_method in ["GET", "HEAD"] {
            assert!(allow.iter().any(|m| m == allowed_method), "{allow:?}");
        }
        assert!(!allow.iter().any(|m| m == method), "{allow:?}");
    }
}

fn not_found_404(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let mut conn = server.connect();
    for target in ["/missing.html", "/dir/missing", "/missing/deeper.txt"] {
        let resp = conn.roundtrip(&get(target));
        assert_eq!(resp.status, 404, "{target}: {resp:?}");
    }
    // The connection stays usable after a 404.
    let resp = conn.roundtrip(&get(&format!("/{ONE}")));
    assert_eq!(resp.body, corpus.read(ONE));
}

fn keepalive_many_requests(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let mut conn = server.connect();
    for round in 0..4 {
        for name in [ONE, PAGE, MIB, EMPTY] {
            let resp = conn.roundtrip(&get(&format!("/{name}")));
            assert!(!resp.closes(), "round {round}: {resp:?}");
            check_file_response(&resp, name, &corpus.read(name));
        }
    }
}

fn http10_closes_by_default(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let mut conn = server.connect();
    conn.send(format!("GET /{PAGE} HTTP/1.0\r\n\r\n"));
    let resp = conn.read_response(false);
    check_file_response(&resp, PAGE, &corpus.read(PAGE));
    assert!(!resp.has_token("Connection", "keep-alive"), "{resp:?}");
    assert!(conn.read_until_closed().is_empty());
}

fn later_minor_version_served_as_http11(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let mut conn = server.connect();
    for _ in 0..2 {
        conn.send(format!("GET /{PAGE} HTTP/1.7\r\nHost: localhost\r\n\r\n"));
        let resp = conn.read_response(false);
        assert_eq!(resp.version, "HTTP/1.1");
        check_file_response(&resp, PAGE, &corpus.read(PAGE));
        assert!(!resp.closes(), "kept alive as HTTP/1.1: {resp:?}");
    }
}

fn http10_keepalive_on_request(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let mut conn = server.connect();
    for name in [PAGE, ONE] {
        conn.send(format!(
            "GET /{name} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        ));
        let resp = conn.read_response(false);
        check_file_response(&resp, name, &corpus.read(name));
        assert!(resp.has_token("Connection", "keep-alive"), "{resp:?}");
    }
    // Without the token the connection closes after the response.
    conn.send(format!("GET /{EMPTY} HTTP/1.0\r\n\r\n"));
    assert_eq!(conn.read_response(false).status, 200);
    assert!(conn.read_until_closed().is_empty());
}

fn connection_close_honoured(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let mut conn = server.connect();
    let resp = conn.roundtrip(&req("GET", &format!("/{PAGE}"), &["Connection: close"]));
    check_file_response(&resp, PAGE, &corpus.read(PAGE));
    assert!(resp.closes(), "{resp:?}");
    assert!(conn.read_until_closed().is_empty());
}

/// The last response on a connection leaves in the same segment as the FIN: the client gets
/// no segment without data besides the SYN-ACK and the acknowledgement of its request.
fn last_response_carries_the_fin(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let requests = [
        req("GET", &format!("/{PAGE}"), &["Connection: close"]),
        format!("GET /{ONE} HTTP/1.0\r\n\r\n"),
        "GET /\x01 HTTP/1.1\r\n\r\n".to_string(),
    ];
    for request in requests {
        let mut conn = server.connect();
        conn.send(&request);
        let resp = conn.read_response(false);
        assert!(resp.closes(), "{request:?}: {resp:?}");
        assert!(conn.read_until_closed().is_empty());
        conn.assert_fin_came_with_data(&format!("{request:?}"));
    }
}

/// Bytes that follow a `Connection: close` request are read and dropped, not left unread:
/// the client gets its response and the server's FIN, and can go on writing for a while
/// (closed at once with input unread, the socket would reset the connection instead, and
/// the writes after the response would fail).
fn close_with_input_unread_lingers(backend: Backend) {
    use std::io::Write;
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let mut conn = server.connect();
    let mut bytes = req("GET", &format!("/{PAGE}"), &["Connection: close"]).into_bytes();
    bytes.resize(bytes.len() + 64 * 1024, b'x');
    conn.send(bytes);
    let resp = conn.read_response(false);
    check_file_response(&resp, PAGE, &corpus.read(PAGE));
    assert!(resp.closes(), "{resp:?}");
    assert!(conn.read_until_eof().is_empty());
    for i in 0..3 {
        let wrote = conn.stream().write_all(b"more");
        assert!(wrote.is_ok(), "write {i} after the response: {wrote:?}");
    }
}

fn keepalive_requests_limit(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &["--keepalive-requests", "3"]);
    let mut conn = server.connect();
    for i in 1..=3 {
        let resp = conn.roundtrip(&get(&format!("/{ONE}")));
        assert_eq!(resp.status, 200, "{resp:?}");
        assert_eq!(resp.closes(), i == 3, "request {i}: {resp:?}");
    }
    assert!(conn.read_until_closed().is_empty());
    // A fresh connection gets a fresh allowance.
    let mut conn = server.connect();
    assert!(!conn.roundtrip(&get(&format!("/{ONE}"))).closes());
}

fn pipelining_100_in_one_write(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    // (request, is HEAD, expected status, expected body)
    let mut plan = Vec::new();
    for i in 0..100 {
        let (method, target, status, body) = match i % 10 {
            7 => ("HEAD", format!("/{PAGE}"), 200, Vec::new()),
            8 => ("GET", format!("/missing-{i}"), 404, Vec::new()),
            9 => (
                "GET",
                "/dir/".to_string(),
                200,
                corpus.read("dir/index.html"),
            ),
            k => {
                let name = [EMPTY, ONE, PAGE, CSS, PNG, UNKNOWN, MIB][k];
                ("GET", format!("/{name}"), 200, corpus.read(name))
            }
        };
        plan.push((req(method, &target, &[]), method == "HEAD", status, body));
    }
    let mut conn = server.connect();
    conn.send(plan.iter().map(|p| p.0.as_str()).collect::<String>());
    for (i, (request, head, status, body)) in plan.iter().enumerate() {
        let resp = conn.read_response(*head);
        assert_eq!(
            resp.status, *status,
            "response {i} to {request:?}: {resp:?}"
        );
        if *status == 200 {
            assert!(
                resp.body == *body,
                "response {i} to {request:?}: wrong body"
            );
        }
        if *head {
            assert_eq!(resp.content_length(), Some(4096), "{resp:?}");
        }
    }
    // Nothing after the 100th response, and the connection is still usable.
    let resp = conn.roundtrip(&get(&format!("/{ONE}")));
    assert_eq!(resp.body, b"x");
}

fn directory_redirect_keeps_query(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let mut conn = server.connect();
    for (target, location) in [
        ("/dir", "/dir/"),
        ("/dir?x=1", "/dir/?x=1"),
        ("/noindex", "/noindex/"),
    ] {
        let resp = conn.roundtrip(&get(target));
        assert_eq!(resp.status, 301, "{target}: {resp:?}");
        assert_eq!(resp.header("Location"), Some(location), "{target}");
    }
}

fn directory_index(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let mut conn = server.connect();
    let resp = conn.roundtrip(&get("/dir/"));
    check_file_response(&resp, "dir/index.html", &corpus.read("dir/index.html"));
    let resp = conn.roundtrip(&get("/"));
    check_file_response(&resp, "index.html", &corpus.read("index.html"));
    let resp = conn.roundtrip(&get("/noindex/"));
    assert_eq!(resp.status, 404, "{resp:?}");
}
