//! Files that change under a transfer: truncated, replaced or grown while being sent. The
//! response is never padded or mixed: cut short and closed at once when the file shrinks
//! (as nginx does), otherwise the bytes of the version that was opened. The server leaks no
//! descriptor and goes on serving.

mod common;

use common::*;

backend_tests!(
    truncated_mid_transfer_is_cut_short_and_closed,
    replaced_mid_transfer_sends_the_version_opened,
    grown_mid_transfer_sends_the_length_announced,
);

const SIZE: usize = 64 << 20;

/// Descriptors the process holds.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// A server on a root holding `big.bin` (`data`) and `small.txt`, warmed so that both are in
/// its open-file cache; with its descriptor count at rest.
fn setup(backend: Backend, data: &[u8]) -> (Corpus, Server, usize) {
    let corpus = Corpus::new();
    std::fs::write(corpus.root().join("big.bin"), data).unwrap();
    std::fs::write(corpus.root().join("small.txt"), "small").unwrap();
    let server = Server::start(backend, corpus.root(), &["--workers", "1"]);
    assert_eq!(server.fetch(&req("HEAD", "/big.bin", &[])).status, 200);
    assert_eq!(server.fetch(&get("/small.txt")).body, b"small");
    let rest = fds(server.pid());
    (corpus, server, rest)
}

/// Starts `GET /big.bin` and reads its head and the first MiB of its body.
fn start_download(server: &Server) -> (Conn, Response) {
    let mut conn = server.connect();
    conn.send(get("/big.bin"));
    let head = conn.read_response(true);
    assert_eq!(head.content_length(), Some(SIZE as u64));
    conn.fill(1 << 20);
    (conn, head)
}

/// After a fault: the server still serves, and holds no more descriptors than before (the
/// count before may include connections of the warm-up the server had not closed yet).
fn still_fine(server: &Server, rest: usize) {
    assert_eq!(server.fetch(&get("/small.txt")).body, b"small");
    let started = std::time::Instant::now();
    while fds(server.pid()) > rest {
        assert!(
            started.elapsed() < IO_TIMEOUT,
            "{} descriptors, {rest} before",
            fds(server.pid())
        );
        std::thread::yield_now();
    }
}

fn truncated_mid_transfer_is_cut_short_and_closed(backend: Backend) {
    let data = noise("truncated", SIZE);
    let (corpus, server, rest) = setup(backend, &data);
    let (mut conn, _) = start_download(&server);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(corpus.root().join("big.bin"))
        .unwrap();
    file.set_len(16 << 20).unwrap();
    // Closed within the client's read timeout (10 s), not after the send timeout.
    let body = conn.read_until_closed();
    assert!(body.len() < SIZE, "the whole file came: padded?");
    assert!(data.starts_with(&body), "bytes differ from the file's");
    still_fine(&server, rest);
}

fn replaced_mid_transfer_sends_the_version_opened(backend: Backend) {
    let data = noise("first", SIZE);
    let (corpus, server, rest) = setup(backend, &data);
    let (mut conn, _) = start_download(&server);
    let next = corpus.root().join("big.bin.new");
    std::fs::write(&next, noise("second", SIZE)).unwrap();
    std::fs::rename(&next, corpus.root().join("big.bin")).unwrap();
    let body = conn.read_exact_body(SIZE);
    assert!(
        body == data,
        "not the version opened ({} bytes)",
        body.len()
    );
    drop(conn);
    still_fine(&server, rest);
}

fn grown_mid_transfer_sends_the_length_announced(backend: Backend) {
    let data = noise("grown", SIZE);
    let (corpus, server, rest) = setup(backend, &data);
    let (mut conn, _) = start_download(&server);
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(corpus.root().join("big.bin"))
        .unwrap();
    file.write_all(&noise("more", 1 << 20)).unwrap();
    let body = conn.read_exact_body(SIZE);
    assert!(
        body == data,
        "not the announced bytes ({} bytes)",
        body.len()
    );
    drop(conn);
    still_fine(&server, rest);
}
