//! Prebuilt responses: a small file asked for again and again is sent from a copy of its
//! whole response held in a memfd (one `sendfile`, or through a pipe for a connection's last
//! response). The copies must be byte-exact, also
//! pipelined and between ranges and HEADs of the same file, and never outlive a change of the
//! file, even one the open-file cache is told to notice at once. `--workers 1` keeps
//! every request on the worker holding the copy, and the admin listener's
//! `ringserve_sent_bytes_total{path="prebuilt"}` shows that the copies were used.

mod common;

use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{backend_tests, get, req, Backend, Conn, Corpus, Server, CSS, MIB, PAGE};

backend_tests!(
    hot_files_are_sent_from_their_copies,
    a_changed_file_is_not_sent_from_its_old_copy,
    copies_survive_a_client_that_reads_late,
    a_last_response_leaves_with_the_fin
);

/// A server on `root` with one worker and an admin listener, and the admin address.
fn start(backend: Backend, root: &Path, extra: &[&str]) -> (Server, SocketAddr) {
    let mut args = vec!["--workers", "1", "--admin", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let server = Server::start(backend, root, &args);
    let admin = server
        .wait_line("ringserve: admin listening on ")
        .trim()
        .parse()
        .expect("admin address");
    (server, admin)
}

/// File bytes the server has sent from prebuilt copies so far.
fn teed(admin: SocketAddr) -> u64 {
    let metrics = Conn::connect(admin).roundtrip(&get("/metrics"));
    let text = String::from_utf8(metrics.body).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("ringserve_sent_bytes_total{path=\"prebuilt\"}"))
        .expect("prebuilt counter");
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn hot_files_are_sent_from_their_copies(backend: Backend) {
    for body in ["sendfile", "splice"] {
        hot_files_with_body_path(backend, body);
    }
}

fn hot_files_with_body_path(backend: Backend, body: &str) {
    let corpus = Corpus::new();
    let (server, admin) = start(backend, corpus.root(), &["--body", body]);
    let page = corpus.read(PAGE);
    let mut conn = server.connect();
    for i in 0..20 {
        let resp = conn.roundtrip(&get(&format!("/{PAGE}")));
        assert_eq!(resp.status, 200);
        assert!(resp.body == page, "request {i}: bytes differ");
        let range = conn.roundtrip(&req("GET", &format!("/{PAGE}"), &["Range: bytes=100-1099"]));
        assert_eq!(range.status, 206);
        assert!(range.body == page[100..1100], "range {i}: bytes differ");
        let head = conn.roundtrip(&req("HEAD", &format!("/{PAGE}"), &[]));
        assert_eq!((head.status, head.body.len()), (200, 0));
    }
    assert!(teed(admin) > 0, "no response came from a copy");

    // Pipelined: twenty requests in one write, the copies teed back to back.
    let css = corpus.read(CSS);
    let before = teed(admin);
    conn.send(get(&format!("/{CSS}")).repeat(20));
    for i in 0..20 {
        let resp = conn.read_response(false);
        assert_eq!(resp.status, 200);
        assert!(resp.body == css, "pipelined {i}: bytes differ");
    }
    assert!(
        teed(admin) > before,
        "no pipelined response came from a copy"
    );

    // Too large to prebuild: sent the usual way, and exact. (The round trip first: the
    // worker counts a response's last bytes just after sending them, so only once it has
    // answered the next request on this connection is the count of the pipelined ones final.)
    assert_eq!(conn.roundtrip(&get("/missing")).status, 404);
    let before = teed(admin);
    for _ in 0..6 {
        assert!(conn.roundtrip(&get(&format!("/{MIB}"))).body == corpus.read(MIB));
    }
    assert_eq!(teed(admin), before);
}

/// `Connection: close` responses, the first ones sent the usual way and the later ones from
/// the copy, on both body paths: each leaves in the same segment as the FIN (the client gets
/// no segment without data besides the SYN-ACK and the acknowledgement of its request). The
/// copy's `splice` and the splice body path hold the tail back with `SPLICE_F_MORE`, the
/// head's `send` with `MSG_MORE`, `sendfile` with the cork.
fn a_last_response_leaves_with_the_fin(backend: Backend) {
    for body in ["sendfile", "splice"] {
        let corpus = Corpus::new();
        let (server, admin) = start(backend, corpus.root(), &["--body", body]);
        let page = corpus.read(PAGE);
        for i in 0..8 {
            let mut conn = server.connect();
            conn.send(req("GET", &format!("/{PAGE}"), &["Connection: close"]));
            let resp = conn.read_response(false);
            assert!(resp.body == page, "{body} {i}: bytes differ");
            assert!(resp.closes(), "{body} {i}: {resp:?}");
            assert!(conn.read_until_eof().is_empty());
            conn.assert_fin_came_with_data(&format!("{body} {i}"));
        }
        assert!(teed(admin) > 0, "{body}: no response came from a copy");
    }
}

fn a_changed_file_is_not_sent_from_its_old_copy(backend: Backend) {
    let corpus = Corpus::new();
    let (server, admin) = start(backend, corpus.root(), &["--open-file-cache-valid", "0s"]);
    let path = corpus.path("hot.txt");
    let mut conn = server.connect();
    let versions: [(&[u8], u64); 3] = [
        (b"first version\n", 1_000_000_000),
        (b"FIRST VERSION\n", 1_000_000_060),
        (b"third, and longer than both\n", 1_000_000_060),
    ];
    for (content, secs) in versions {
        fs::write(&path, content).unwrap();
        let file = File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
            .unwrap();
        drop(file);
        let before = teed(admin);
        for i in 0..10 {
            let resp = conn.roundtrip(&get("/hot.txt"));
            assert_eq!(resp.status, 200);
            assert!(
                resp.body == content,
                "request {i}: got {:?}, want {:?}",
                common::lossy(&resp.body),
                common::lossy(content)
            );
        }
        assert!(teed(admin) > before, "this version never came from a copy");
    }
}

/// 150 pipelined requests for a 40 KB file (6 MB of responses) sent before reading any: the
/// socket fills, so copies are cut short mid-pipe and finished when the client reads again.
fn copies_survive_a_client_that_reads_late(backend: Backend) {
    let corpus = Corpus::new();
    let content = common::noise("mid", 40_000);
    fs::write(corpus.path("mid.bin"), &content).unwrap();
    let (server, admin) = start(backend, corpus.root(), &[]);
    let mut conn = server.connect();
    conn.send(get("/mid.bin").repeat(150));
    for i in 0..150 {
        let resp = conn.read_response(false);
        assert_eq!(resp.status, 200);
        assert!(resp.body == content, "response {i}: bytes differ");
    }
    assert!(teed(admin) > 0, "no response came from a copy");
}

/// Where `memfd_create` is refused (a seccomp filter returning EPERM), hot files are sent the
/// usual way, byte-exact, and no copy is used.
#[test]
fn refused_memfd_falls_back_to_the_usual_path() {
    let corpus = Corpus::new();
    let root = corpus.root().to_path_buf();
    let (server, admin) = common::with_denied(&[libc::SYS_memfd_create], move || {
        start(Backend::Epoll, &root, &[])
    });
    let page = corpus.read(PAGE);
    let mut conn = server.connect();
    for i in 0..20 {
        let resp = conn.roundtrip(&get(&format!("/{PAGE}")));
        assert!(resp.body == page, "request {i}: bytes differ");
    }
    assert_eq!(teed(admin), 0);
}
