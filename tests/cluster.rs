//! The fleet as an operator runs it: `scripts/cluster.sh` puts HAProxy (`balance uri`,
//! consistent hashing, health checks on `/readyz`) in front of three nodes serving `rsync -a`
//! copies of one tree, then checks that every file has one ETag on all nodes, that `If-Range`
//! with one node's ETag gets 206 from another, that aria2c `-x8` through the balancer and a
//! `curl -C -` resumed on another node give the file's sha256, and that a rolling restart of
//! every node under a steady wrk load fails no request. Needs haproxy, rsync, aria2c, curl and
//! wrk (installed by `.ci/run`). Without `--drain-delay` the same restart loses requests (the
//! script's `--drain 0s`), so the last check can fail.

mod common;

use std::process::Command;

use common::{uring_available, Backend};

fn cluster(backend: Backend) {
    let backend = backend.as_arg();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cluster.sh");
    let out = Command::new(script)
        .args(["--bin", env!("CARGO_BIN_EXE_ringserve"), "--quick"])
        .args(["--backend", backend])
        .output()
        .expect("run scripts/cluster.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("\nfailed requests: 0\n"),
        "scripts/cluster.sh --backend {backend}: {}\n{stdout}\n{stderr}",
        out.status
    );
    for check in [
        "validators",
        "if-range",
        "aria2c -x8",
        "curl -C -",
        "rolling restart",
    ] {
        assert!(
            stdout.contains(&format!("ok    {check}:")),
            "{check} not passed"
        );
    }
}

/// Both backends, one after the other: each cluster runs a load that takes both cores.
#[test]
fn a_fleet_behind_haproxy_agrees_resumes_and_restarts_without_failures() {
    if uring_available() {
        cluster(Backend::Uring);
    } else {
        eprintln!("io_uring is not available here: the uring cluster skipped");
    }
    cluster(Backend::Epoll);
}
