//! Robustness: clients vanishing mid-response or mid-request, and many concurrent connections.

mod common;

use common::*;

backend_tests!(
    client_abort_mid_body,
    half_request_then_close,
    thousand_keepalive_connections,
    rst_storm_while_others_download,
);

/// Asserts the server still answers 20 requests on new connections, byte-exact.
fn still_serving(server: &Server, corpus: &Corpus) {
    let page = corpus.read(PAGE);
    for i in 0..20 {
        let resp = server.fetch(&get(&format!("/{PAGE}")));
        assert!(
            resp.status == 200 && resp.body == page,
            "request {i}: {resp:?}"
        );
    }
}

fn client_abort_mid_body(backend: Backend) {
    let corpus = Corpus::new();
    let mut server = Server::start(backend, corpus.root(), &[]);
    for _ in 0..3 {
        let mut conn = server.connect();
        conn.send(get(&format!("/{BIG}")));
        conn.fill(1 << 20);
        // Closing with unread data in the receive buffer makes the kernel send a RST.
        drop(conn);
    }
    // Aborted in the middle of a pipeline, too.
    let mut conn = server.connect();
    conn.send(get(&format!("/{MIB}")) + &get(&format!("/{BIG}")) + &get(&format!("/{MIB}")));
    conn.fill(3 << 20);
    drop(conn);
    still_serving(&server, &corpus);
    assert!(server.is_running());
}

fn half_request_then_close(backend: Backend) {
    let corpus = Corpus::new();
    let mut server = Server::start(backend, corpus.root(), &[]);
    let halves = [
        "GET /page.html HTTP/1.1\r\nHo".to_string(),
        "GET /page.ht".to_string(),
        // A complete head whose announced body never fully arrives.
        req("GET", &format!("/{PAGE}"), &["Content-Length: 100"]) + "abc",
    ];
    for _ in 0..3 {
        for half in &halves {
            let mut conn = server.connect();
            conn.send(half);
        }
    }
    still_serving(&server, &corpus);
    assert!(server.is_running());
}

fn thousand_keepalive_connections(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let names = [EMPTY, ONE, PAGE, CSS, PNG, UNKNOWN];
    let files: Vec<Vec<u8>> = names.iter().map(|n| corpus.read(n)).collect();
    // Open all connections first, so they are all open at once.
    let mut conns: Vec<Conn> = (0..1000).map(|_| server.connect()).collect();
    for round in 0..2 {
        let pick = |i: usize| (i + round) % names.len();
        for (i, conn) in conns.iter_mut().enumerate() {
            conn.send(get(&format!("/{}", names[pick(i)])));
        }
        for (i, conn) in conns.iter_mut().enumerate() {
            let resp = conn.read_response(false);
            assert!(
                resp.status == 200 && resp.body == files[pick(i)],
                "round {round}, connection {i}: {resp:?}"
            );
            assert!(!resp.closes(), "round {round}, connection {i}: {resp:?}");
        }
    }
}

/// Descriptors the process holds.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// A storm of clients that reset their connections — 2,000 in all from four threads: half
/// connect and reset at once, half reset mid-download or mid-request — while another
/// client downloads a large file on a kept-alive connection: its bytes are exact, the
/// server serves on, and every descriptor of the storm is given back.
fn rst_storm_while_others_download(backend: Backend) {
    use std::io::Write;
    let corpus = Corpus::new();
    let mut server = Server::start(backend, corpus.root(), &[]);
    still_serving(&server, &corpus);
    let rest = fds(server.pid());
    let addr = server.addr();
    let big = corpus.read(BIG);
    let mut downloader = server.connect();
    downloader.send(get(&format!("/{BIG}")));
    let storm: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let requests = [
                    get(&format!("/{BIG}")),
                    get(&format!("/{PAGE}")),
                    "GET /page.html HTTP/1.1\r\nHo".to_string(),
                ];
                for i in 0..500 {
                    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
                        continue;
                    };
                    if i % 2 == 1 {
                        let _ = s.write_all(requests[(i / 2 + t) % requests.len()].as_bytes());
                    }
                    // Closing with SO_LINGER 0 sends a RST instead of a FIN.
                    let _ = socket2::SockRef::from(&s).set_linger(Some(std::time::Duration::ZERO));
                }
            })
        })
        .collect();
    let got = downloader.read_response(false);
    for t in storm {
        t.join().unwrap();
    }
    assert!(
        got.status == 200 && got.body == big,
        "download: {}",
        got.status
    );
    still_serving(&server, &corpus);
    let started = std::time::Instant::now();
    while fds(server.pid()) > rest + 1 {
        assert!(
            started.elapsed() < IO_TIMEOUT,
            "{} descriptors, {rest} before the storm",
            fds(server.pid())
        );
        std::thread::yield_now();
    }
    assert!(server.is_running());
}
