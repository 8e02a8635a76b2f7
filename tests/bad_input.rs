//! Malformed and hostile requests: each is answered with an error status and the connection is
//! closed (the framing can no longer be trusted); request bodies and absolute-form targets.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::*;

backend_tests!(
    garbage_request_line_400,
    missing_host_400,
    oversized_head_431,
    refusal_survives_ongoing_upload_413,
    lingering_ends_without_the_client,
    lingering_waits_between_inputs,
    large_head_under_limit_ok,
    content_length_and_chunked_400_no_smuggling,
    differing_content_lengths_400,
    content_length_list_400,
    obs_fold_400,
    other_coding_501,
    chunked_get_body_drained,
    chunked_bad_framing_closes,
    http2_version_505,
    get_body_drained,
    get_body_drained_across_writes,
    absolute_form_served,
    malformed_host_400,
);

/// Sends `raw` on a new connection; asserts the answer is `status`, and that nothing follows
/// it before the server closes the connection cleanly (a FIN, not a reset) once the client
/// has closed its side, and that the server still serves afterwards.
fn expect_error_and_close(backend: Backend, raw: &[u8], status: u16) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let mut conn = server.connect();
    conn.send_lossy(raw);
    let resp = conn.read_response(false);
    assert_eq!(resp.status, status, "request {}: {resp:?}", lossy(raw));
    conn.stream().shutdown(std::net::Shutdown::Write).unwrap();
    let rest = conn.read_until_eof();
    assert!(rest.is_empty(), "more after the error: {}", lossy(&rest));
    let resp = server.fetch(&get(&format!("/{ONE}")));
    assert_eq!(resp.body, b"x", "server unusable after {}", lossy(raw));
}

fn garbage_request_line_400(backend: Backend) {
    expect_error_and_close(backend, b"this is not http\r\n\r\n", 400);
    // The start of a TLS ClientHello.
    expect_error_and_close(
        backend,
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\r\n\r\n",
        400,
    );
}

fn missing_host_400(backend: Backend) {
    expect_error_and_close(
        backend,
        format!("GET /{PAGE} HTTP/1.1\r\n\r\n").as_bytes(),
        400,
    );
}

fn oversized_head_431(backend: Backend) {
    let filler = "a".repeat(20 * 1024);
    let raw = req(
        "GET",
        &format!("/{PAGE}"),
        &[&format!("X-Filler: {filler}")],
    );
    expect_error_and_close(backend, raw.as_bytes(), 431);
}

/// A body too large to skip is refused with 413 while the client is still uploading it: the
/// server reads and drops the rest (closing with it unread would reset the connection,
/// which can destroy the 413 before the client reads it, and would fail the upload's writes)
/// and closes cleanly once the client is done.
fn refusal_survives_ongoing_upload_413(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let mut conn = server.connect();
    let head = req("GET", &format!("/{PAGE}"), &["Content-Length: 2000000"]);
    let mut upload = head.into_bytes();
    upload.resize(upload.len() + 2_000_000, b'u');
    let writer = conn.send_in_background(upload);
    let resp = conn.read_response(false);
    assert_eq!(resp.status, 413, "{resp:?}");
    assert!(resp.closes(), "{resp:?}");
    assert!(conn.read_until_eof().is_empty());
    writer.join().unwrap().expect("the whole upload was taken");
}

/// After a 431 the server shuts its side down at once but keeps taking (and dropping) what
/// the client sends, then closes: a client that keeps sending is cut off after
/// `--lingering-time`, and `--lingering-timeout 0` closes at once. Writes probe for the close:
/// once the server has closed, they are refused.
fn lingering_ends_without_the_client(backend: Backend) {
    let args = ["--lingering-timeout", "30s", "--lingering-time", "2s"];
    let (_corpus, _server, mut conn) = answered_431(backend, &args);
    let took = write_until_refused(&mut conn, Duration::from_millis(50));
    assert!(
        took >= Duration::from_secs(1),
        "closed after {took:?}: did not linger"
    );
    let (_corpus, _server, mut conn) = answered_431(backend, &["--lingering-timeout", "0"]);
    let took = write_until_refused(&mut conn, Duration::from_millis(50));
    assert!(
        took < Duration::from_secs(1),
        "closed after {took:?} with lingering off"
    );
}

/// `--lingering-timeout` is the longest silence between inputs, as nginx's: input that keeps
/// coming keeps the closing connection taking it (past the timeout, up to
/// `--lingering-time`), and once the client falls silent the server closes.
fn lingering_waits_between_inputs(backend: Backend) {
    let args = ["--lingering-timeout", "1s", "--lingering-time", "60s"];
    let (_corpus, _server, mut conn) = answered_431(backend, &args);
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        conn.stream()
            .write_all(b"z")
            .expect("still taken while the client keeps sending");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(3));
    let took = write_until_refused(&mut conn, Duration::from_millis(50));
    assert!(
        took < Duration::from_secs(5),
        "still open {took:?} after 3 s of silence"
    );
}

/// A server started with `args` (and its files), and a connection of it whose oversized
/// request head was answered 431, the server's side shut down.
fn answered_431(backend: Backend, args: &[&str]) -> (Corpus, Server, Conn) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), args);
    let mut conn = server.connect();
    let filler = "a".repeat(20 * 1024);
    conn.send(req("GET", "/", &[&format!("X-Filler: {filler}")]));
    assert_eq!(conn.read_response(false).status, 431);
    assert!(conn.read_until_closed().is_empty());
    (corpus, server, conn)
}

/// Writes a byte every `every` until a write is refused (the server has closed); returns
/// how long that took.
fn write_until_refused(conn: &mut Conn, every: Duration) -> Duration {
    let started = Instant::now();
    let mut stream = conn.stream();
    while stream.write(b"z").is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still open after 20 s"
        );
        std::thread::sleep(every);
    }
    started.elapsed()
}

fn large_head_under_limit_ok(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let filler = "a".repeat(12 * 1024);
    let resp = server.fetch(&req(
        "GET",
        &format!("/{PAGE}"),
        &[&format!("X-Filler: {filler}")],
    ));
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(resp.body == corpus.read(PAGE));
}

fn content_length_and_chunked_400_no_smuggling(backend: Backend) {
    // Whichever framing a confused server picked, the GET of /one.txt would be seen as a
    // second request: it must not be answered.
    let smuggled = get(&format!("/{ONE}"));
    let raw = format!(
        "GET /{PAGE} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\
         Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
    );
    expect_error_and_close(backend, raw.as_bytes(), 400);
}

fn differing_content_lengths_400(backend: Backend) {
    let raw = format!(
        "GET /{PAGE} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\
         Content-Length: 6\r\n\r\nhello!"
    );
    expect_error_and_close(backend, raw.as_bytes(), 400);
}

fn content_length_list_400(backend: Backend) {
    let raw = req("GET", &format!("/{PAGE}"), &["Content-Length: 1,1"]) + "x";
    expect_error_and_close(backend, raw.as_bytes(), 400);
}

fn obs_fold_400(backend: Backend) {
    let raw = req(
        "GET",
        &format!("/{PAGE}"),
        &["X-Folded: first", " continued"],
    );
    expect_error_and_close(backend, raw.as_bytes(), 400);
}

fn other_coding_501(backend: Backend) {
    let raw = req(
        "GET",
        &format!("/{PAGE}"),
        &["Transfer-Encoding: gzip, chunked"],
    ) + "0\r\n\r\n";
    expect_error_and_close(backend, raw.as_bytes(), 501);
}

fn chunked_get_body_drained(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let mut conn = server.connect();
    let first = req("GET", &format!("/{PAGE}"), &["Transfer-Encoding: chunked"]);
    let body = "5;ext=\"a b\"\r\nhello\r\n3\r\n GE\r\n0\r\nX-Trailer: 1\r\n\r\n";
    conn.send(first + body + &get(&format!("/{ONE}")));
    expect_page_then_one(&mut conn, &corpus);
}

fn chunked_bad_framing_closes(backend: Backend) {
    for body in ["5\r\nhelloXX0\r\n\r\n", "zz\r\n", "5\rhello\r\n0\r\n\r\n"] {
        let raw = req("GET", &format!("/{PAGE}"), &["Transfer-Encoding: chunked"]) + body;
        let corpus = Corpus::new();
        let server = Server::start(backend, corpus.root(), &[]);
        let mut conn = server.connect();
        conn.send(raw);
        // The GET was answered before its body was read: the broken framing just closes.
        let resp = conn.read_response(false);
        assert_eq!(resp.status, 200, "{body:?}");
        assert!(conn.read_until_eof().is_empty(), "{body:?}");
    }
}

fn http2_version_505(backend: Backend) {
    expect_error_and_close(backend, b"GET / HTTP/2.0\r\nHost: localhost\r\n\r\n", 505);
}

fn get_body_drained(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let mut conn = server.connect();
    let first = req("GET", &format!("/{PAGE}"), &["Content-Length: 5"]);
    conn.send(first + "hello" + &get(&format!("/{ONE}")));
    expect_page_then_one(&mut conn, &corpus);
}

/// Reads the answers to a GET of [`PAGE`] (whose body was drained) and a GET of [`ONE`].
fn expect_page_then_one(conn: &mut Conn, corpus: &Corpus) {
    let resp = conn.read_response(false);
    assert!(
        resp.status == 200 && resp.body == corpus.read(PAGE),
        "{resp:?}"
    );
    // Had the body been parsed as the start of a request, this would not be a 200 for /one.txt.
    let resp = conn.read_response(false);
    assert_eq!(
        (resp.status, resp.body.as_slice()),
        (200, &b"x"[..]),
        "{resp:?}"
    );
}

fn get_body_drained_across_writes(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let mut conn = server.connect();
    // The body arrives in two writes, the second together with the next request.
    conn.send(req("GET", &format!("/{PAGE}"), &["Content-Length: 5"]) + "hel");
    conn.send("lo".to_string() + &get(&format!("/{ONE}")));
    expect_page_then_one(&mut conn, &corpus);
}

fn absolute_form_served(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let mut conn = server.connect();
    let resp = conn.roundtrip(&get(&format!("http://localhost/{PAGE}")));
    assert!(
        resp.status == 200 && resp.body == corpus.read(PAGE),
        "{resp:?}"
    );
    let resp = conn.roundtrip(&get("http://localhost/dir/inner.txt?q=1"));
    assert!(
        resp.status == 200 && resp.body == corpus.read("dir/inner.txt"),
        "{resp:?}"
    );
}

fn malformed_host_400(backend: Backend) {
    for host in [
        "[::1",
        "[zz]",
        "localhost:8x",
        "localhost:99999",
        "a:b:c",
        "%zz",
    ] {
        let raw = format!("GET /{ONE} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        expect_error_and_close(backend, raw.as_bytes(), 400);
    }
    expect_error_and_close(
        backend,
        b"GET http://[::1/x HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
    );
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    for host in ["[::1]:8080", "127.0.0.1", "localhost:"] {
        let raw = format!("GET /{ONE} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        assert_eq!(server.fetch(&raw).status, 200, "{host}");
    }
}
