//! Conditional requests: If-None-Match, If-Modified-Since, If-Match, If-Unmodified-Since.

mod common;

use common::*;
use std::time::Duration;

backend_tests!(
    if_none_match_304,
    if_none_match_other_tag_200,
    if_modified_since,
    if_match,
    if_unmodified_since,
    if_none_match_takes_precedence,
);

/// Starts a server and fetches the current ETag of [`PAGE`].
fn setup(backend: Backend) -> (Corpus, Server, Conn, String) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let mut conn = server.connect();
    let etag = conn
        .roundtrip(&get(&format!("/{PAGE}")))
        .expect_header("ETag")
        .to_string();
    (corpus, server, conn, etag)
}

/// Sends a conditional request for [`PAGE`] (as `method`) with a GET of [`ONE`] pipelined
/// right behind it, checks the GET (so a stray body after a 304 shows) and returns the first
/// response.
fn conditional(conn: &mut Conn, method: &str, headers: &[&str]) -> Response {
    conn.send(req(method, &format!("/{PAGE}"), headers) + &get(&format!("/{ONE}")));
    let resp = conn.read_response(method == "HEAD");
    let next = conn.read_response(false);
    assert_eq!(
        (next.status, next.body.as_slice()),
        (200, &b"x"[..]),
        "response after {headers:?}: {next:?}"
    );
    resp
}

/// Asserts `resp` is a 304 with the validators and no body.
fn assert_not_modified(resp: &Response, etag: &str, what: &str) {
    assert_eq!(resp.status, 304, "{what}: {resp:?}");
    assert_eq!(resp.header("ETag"), Some(etag), "{what}");
    assert!(resp.body.is_empty());
}

/// Asserts `resp` is a 200 with the whole [`PAGE`].
fn assert_full(resp: &Response, corpus: &Corpus, what: &str) {
    assert_eq!(resp.status, 200, "{what}: {resp:?}");
    assert!(resp.body == corpus.read(PAGE), "{what}: wrong body");
}

/// Last-Modified minus one day.
fn older() -> String {
    httpdate::fmt_http_date(mtime() - Duration::from_secs(86_400))
}

fn if_none_match_304(backend: Backend) {
    let (_corpus, _server, mut conn, etag) = setup(backend);
    for value in [
        etag.clone(),
        format!("W/{etag}"),
        "*".to_string(),
        format!("\"other\", {etag}"),
    ] {
        let header = format!("If-None-Match: {value}");
        for method in ["GET", "HEAD"] {
            let resp = conditional(&mut conn, method, &[&header]);
            assert_not_modified(&resp, &etag, &format!("{method} {header}"));
        }
    }
}

fn if_none_match_other_tag_200(backend: Backend) {
    let (corpus, _server, mut conn, _etag) = setup(backend);
    let resp = conditional(
        &mut conn,
        "GET",
        &["If-None-Match: \"other\", W/\"another\""],
    );
    assert_full(&resp, &corpus, "non-matching If-None-Match");
}

fn if_modified_since(backend: Backend) {
    let (corpus, _server, mut conn, etag) = setup(backend);
    let header = format!("If-Modified-Since: {}", last_modified());
    let resp = conditional(&mut conn, "GET", &[&header]);
    assert_not_modified(&resp, &etag, &header);
    let header = format!("If-Modified-Since: {}", older());
    assert_full(&conditional(&mut conn, "GET", &[&header]), &corpus, &header);
}

fn if_match(backend: Backend) {
    let (corpus, _server, mut conn, etag) = setup(backend);
    let resp = conditional(&mut conn, "GET", &["If-Match: \"wrong\""]);
    assert_eq!(resp.status, 412, "{resp:?}");
    for value in [etag.as_str(), "*"] {
        let header = format!("If-Match: {value}");
        assert_full(&conditional(&mut conn, "GET", &[&header]), &corpus, &header);
    }
}

fn if_unmodified_since(backend: Backend) {
    let (corpus, _server, mut conn, _etag) = setup(backend);
    let header = format!("If-Unmodified-Since: {}", older());
    let resp = conditional(&mut conn, "GET", &[&header]);
    assert_eq!(resp.status, 412, "{header}: {resp:?}");
    let header = format!("If-Unmodified-Since: {}", last_modified());
    assert_full(&conditional(&mut conn, "GET", &[&header]), &corpus, &header);
}

fn if_none_match_takes_precedence(backend: Backend) {
    let (corpus, _server, mut conn, etag) = setup(backend);
    // A non-matching If-None-Match wins over a matching If-Modified-Since...
    let ims = format!("If-Modified-Since: {}", last_modified());
    let resp = conditional(&mut conn, "GET", &["If-None-Match: \"other\"", &ims]);
    assert_full(
        &resp,
        &corpus,
        "If-None-Match mismatch + If-Modified-Since match",
    );
    // ...and a matching one over a non-matching If-Modified-Since.
    let inm = format!("If-None-Match: {etag}");
    let old_ims = format!("If-Modified-Since: {}", older());
    let resp = conditional(&mut conn, "GET", &[&inm, &old_ims]);
    assert_not_modified(&resp, &etag, "If-None-Match match + old If-Modified-Since");
    // A matching If-None-Match also wins over Range.
    let resp = conditional(&mut conn, "GET", &[&inm, "Range: bytes=0-9"]);
    assert_not_modified(&resp, &etag, "If-None-Match match + Range");
}
