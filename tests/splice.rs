//! The splice body path (`--body splice`: file → pooled pipe → socket) serves the same bytes
//! as the default sendfile path, on both backends: whole files, a range past 64 MiB, and
//! multipart parts, over one keep-alive connection so pipes are reused.

mod common;

use common::{backend_tests, get, req, Backend, Corpus, Server, BIG, MIB, PAGE};

backend_tests!(splice_serves_exact_bytes);

fn splice_serves_exact_bytes(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &["--body", "splice"]);
    let mut conn = server.connect();
    for name in [PAGE, MIB, PAGE] {
        let resp = conn.roundtrip(&get(&format!("/{name}")));
        assert_eq!(resp.status, 200);
        assert!(resp.body == corpus.read(name), "{name}: bytes differ");
    }
    let big = corpus.read(BIG);
    let start = 64 * 1024 * 1024 + 5;
    let resp = conn.roundtrip(&req(
        "GET",
        &format!("/{BIG}"),
        &[&format!("Range: bytes={start}-")],
    ));
    assert_eq!(resp.status, 206);
    assert!(resp.body == big[start..], "range past 64 MiB differs");
    let resp = conn.roundtrip(&req(
        "GET",
        &format!("/{MIB}"),
        &["Range: bytes=0-9,500000-700000"],
    ));
    assert_eq!(resp.status, 206);
    let mib = corpus.read(MIB);
    let parts = common::parse_multipart(&resp);
    assert_eq!(parts.len(), 2);
    for part in parts {
        assert!(
            part.data == mib[part.first as usize..=part.last as usize],
            "part differs"
        );
    }
}
