//! Robustness: clients vanishing mid-response or mid-request, and many concurrent connections.

mod common;

use common::*;

backend_tests!(
    client_abort_mid_body,
    half_request_then_close,
    thousand_keepalive_connections,
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
