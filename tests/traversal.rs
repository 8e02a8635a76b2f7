//! Nothing outside the root is ever served: dot-dot tricks, encoded separators, NUL bytes,
//! symlinks leaving the root; plus dotfiles and special files inside it.

mod common;

use common::*;

backend_tests!(
    dot_dot_variants_never_escape,
    symlink_inside_served,
    symlinks_leaving_root_404,
    dotfiles_hidden_by_default,
    dotfiles_served_with_flag,
    fifo_refused_without_hanging,
);

/// Fetches `target` on a new connection (with `Connection: close`); returns the response and
/// asserts that nothing the server sent, up to the close, contains the secret.
fn fetch_no_secret(server: &Server, target: &str) -> Response {
    let mut conn = server.connect();
    conn.send(req("GET", target, &["Connection: close"]));
    let resp = conn.read_response(false);
    let rest = conn.read_until_closed();
    let secret = Corpus::SECRET_TEXT.as_bytes();
    for bytes in [&resp.body, &rest] {
        assert!(
            memchr::memmem::find(bytes, secret).is_none(),
            "{target} leaked the secret: {resp:?}"
        );
    }
    resp
}

fn dot_dot_variants_never_escape(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    for target in [
        "/../secret",
        "/%2e%2e/secret",
        "/.%2e/secret",
        "/%2E%2E/secret",
        "/a/../../secret",
        "/a/%2e%2e/%2e%2e/secret",
        "/%2e%2e%2fsecret",
        "/..%2fsecret",
        "/..\\secret",
        "/%5c..%5csecret",
        "/..%5csecret",
        "/a%00b",
        "/one.txt%00.html",
        "/../../../../../../etc/passwd",
    ] {
        let resp = fetch_no_secret(&server, target);
        assert!(matches!(resp.status, 400 | 404), "{target}: {resp:?}");
    }
    // Still serving.
    assert_eq!(server.fetch(&get(&format!("/{ONE}"))).body, b"x");
}

fn symlink_inside_served(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let resp = fetch_no_secret(&server, "/link-inside.html");
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(resp.body == corpus.read(PAGE));
}

fn symlinks_leaving_root_404(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    for target in [
        "/link-outside",
        "/link-abs-outside",
        "/linkdir-outside/secret",
    ] {
        let resp = fetch_no_secret(&server, target);
        assert_eq!(resp.status, 404, "{target}: {resp:?}");
    }
}

fn dotfiles_hidden_by_default(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    for target in ["/.hidden", "/%2ehidden", "/.private/data.txt"] {
        let resp = fetch_no_secret(&server, target);
        assert_eq!(resp.status, 404, "{target}: {resp:?}");
    }
}

fn dotfiles_served_with_flag(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &["--dotfiles"]);
    for (target, name) in [
        ("/.hidden", ".hidden"),
        ("/.private/data.txt", ".private/data.txt"),
    ] {
        let resp = fetch_no_secret(&server, target);
        assert_eq!(resp.status, 200, "{target}: {resp:?}");
        assert!(resp.body == corpus.read(name), "{target}");
    }
    // --dotfiles does not open a way out of the root.
    let resp = fetch_no_secret(&server, "/../secret");
    assert!(matches!(resp.status, 400 | 404), "{resp:?}");
}

fn fifo_refused_without_hanging(backend: Backend) {
    let corpus = Corpus::new();
    corpus.mkfifo("pipe");
    let server = Server::start(backend, corpus.root(), &[]);
    // Several connections, so that each worker most likely gets one; a worker blocking in
    // open(2) on the FIFO would leave these (or the requests below) unanswered.
    let mut conns: Vec<Conn> = (0..4).map(|_| server.connect()).collect();
    for conn in &mut conns {
        conn.send(get("/pipe"));
    }
    for conn in &mut conns {
        let resp = conn.read_response(false);
        assert!(matches!(resp.status, 403 | 404), "{resp:?}");
    }
    for _ in 0..10 {
        let resp = server.fetch(&get(&format!("/{PAGE}")));
        assert!(
            resp.status == 200 && resp.body == corpus.read(PAGE),
            "{resp:?}"
        );
    }
}
