//! The automatic fallback to epoll, proven under a real seccomp filter: `io_uring_setup`
//! fails with EPERM exactly as under Docker's default profile, and the unmodified binary must
//! notice, say so, and serve.

mod common;

use std::collections::BTreeMap;
use std::thread;
use std::time::Duration;

use common::{get, Backend, Corpus, Server};
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter};

/// Runs `f` on a fresh thread whose seccomp filter makes `io_uring_setup` fail with EPERM.
/// Filters are per thread and inherited by children, so a server spawned inside `f` runs
/// under it while the rest of the test process is unaffected.
fn without_io_uring<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    thread::spawn(move || {
        let rules = BTreeMap::from([(libc::SYS_io_uring_setup, vec![])]);
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::EPERM as u32),
            std::env::consts::ARCH.try_into().expect("supported arch"),
        )
        .expect("filter");
        let program: BpfProgram = filter.try_into().expect("compile filter");
        seccompiler::apply_filter(&program).expect("apply filter");
        f()
    })
    .join()
    .expect("filtered thread")
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
