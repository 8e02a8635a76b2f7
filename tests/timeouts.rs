//! `--header-timeout` and `--keepalive-timeout`. The server is configured with 1 s; closing is
//! expected well within the 10 s read timeout, and not before 0.5 s.

mod common;

use common::*;
use std::time::{Duration, Instant};

backend_tests!(
    header_timeout_closes_stalled_head,
    keepalive_timeout_closes_idle
);

/// Earliest acceptable close for a 1 s timeout (loose, timers may be coarse).
const NOT_BEFORE: Duration = Duration::from_millis(500);

fn header_timeout_closes_stalled_head(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &["--header-timeout", "1s"]);
    let mut stalled = server.connect();
    let start = Instant::now();
    stalled.send(format!("GET /{PAGE} HTTP/1.1\r\nHost: localhost\r\n"));
    // Meanwhile another connection is served normally.
    let resp = server.fetch(&get(&format!("/{PAGE}")));
    assert!(
        resp.status == 200 && resp.body == corpus.read(PAGE),
        "{resp:?}"
    );
    let rest = stalled.read_until_closed();
    let elapsed = start.elapsed();
    assert!(elapsed >= NOT_BEFORE, "closed after only {elapsed:?}");
    // The server may say 408 before closing; it must not serve the half request.
    assert!(
        rest.is_empty() || rest.starts_with(b"HTTP/1.1 408 "),
        "{}",
        lossy(&rest)
    );
}

fn keepalive_timeout_closes_idle(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &["--keepalive-timeout", "1s"]);
    let mut conn = server.connect();
    for _ in 0..2 {
        assert_eq!(conn.roundtrip(&get(&format!("/{ONE}"))).body, b"x");
    }
    let idle_since = Instant::now();
    let rest = conn.read_until_closed();
    let elapsed = idle_since.elapsed();
    assert!(rest.is_empty(), "{}", lossy(&rest));
    assert!(elapsed >= NOT_BEFORE, "closed after only {elapsed:?}");
}
