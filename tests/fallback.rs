//! The automatic fallback to epoll, proven under a real seccomp filter: `io_uring_setup`
//! fails with EPERM exactly as under Docker's default profile, and the unmodified binary must
//! notice, say so, and serve.

mod common;

use std::time::Duration;

use common::{get, Backend, Corpus, Server};

/// Runs `f` with `io_uring_setup` failing with EPERM, as under Docker's default profile.
fn without_io_uring<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    common::with_denied(&[libc::SYS_io_uring_setup], f)
}

#[test]
fn auto_falls_back_to_epoll_when_io_uring_setup_is_denied() {
    let corpus = Corpus::new();
    let root = corpus.root().to_path_buf();
    let server =
        without_io_uring(move || Server::start(Backend::Epoll, &root, &["--backend", "auto"]));
    let workers: Vec<String> = server
        .stderr_lines()
        .into_iter()
        .filter(|l| l.starts_with("ringserve: worker "))
        .collect();
    assert_eq!(workers.len(), 2, "{workers:?}");
    for line in &workers {
        assert!(
            line.contains("backend epoll") && line.contains("Operation not permitted"),
            "worker line should report epoll and why: {line}"
        );
    }
    for name in [common::PAGE, common::MIB] {
        let resp = server.fetch(&get(&format!("/{name}")));
        assert_eq!(resp.status, 200);
        assert!(resp.body == corpus.read(name), "{name}: bytes differ");
    }
}

#[test]
fn forced_uring_fails_clearly_when_io_uring_setup_is_denied() {
    let corpus = Corpus::new();
    let root = corpus.root().to_path_buf();
    let (status, stderr) = without_io_uring(move || {
        Server::run_to_exit(Backend::Uring, &root, &[], Duration::from_secs(10))
    });
    assert!(!status.success());
    assert!(
        stderr
            .iter()
            .any(|l| l.starts_with("ringserve: error:") && l.contains("uring")),
        "{stderr:?}"
    );
}
