//! Bandwidth pacing (`--limit-rate`, `--limit-rate-after`, `--limit-rate-total`, signed-link
//! rates) measured over real downloads of at least ~2 s. Each check allows ±10 % (±15 % where
//! several transfers share a cap), which a paced server meets easily: it sleeps most of the
//! time, so a noisy machine delays it by milliseconds, not hundreds of them.

mod common;

use common::*;
use std::thread;
use std::time::{Duration, Instant};

backend_tests!(
    limit_rate_paces_a_download,
    limit_rate_applies_to_each_connection,
    limit_rate_after_goes_unpaced_first,
    total_cap_is_shared_by_transfers,
    signed_link_carries_its_own_rate,
    pacing_takes_no_thread_per_connection,
    a_half_closed_client_gets_every_response,
);

const MIB_BYTES: usize = 1 << 20;

/// The pacer lets a full bucket (100 ms worth) go at once, so a paced body of `len` bytes at
/// `rate` takes `(len - rate / 10) / rate` seconds.
fn paced_secs(len: usize, rate: usize) -> f64 {
    (len - rate / 10) as f64 / rate as f64
}

/// Asserts `elapsed` is within `tolerance` (a fraction) of `expected` seconds.
fn assert_near(elapsed: Duration, expected: f64, tolerance: f64, what: &str) {
    let secs = elapsed.as_secs_f64();
    assert!(
        (secs - expected).abs() <= expected * tolerance,
        "{what}: took {secs:.2} s, expected {expected:.2} s ± {:.0} %",
        tolerance * 100.0
    );
}

/// Writes a file of `len` pseudo-random bytes called `name` under the root; returns them.
fn write_file(corpus: &Corpus, name: &str, len: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(corpus.path(name), &data).unwrap();
    data
}

/// Downloads `target` on a new connection; returns the body and how long it took.
fn timed_get(server: &Server, target: &str) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let resp = server.fetch(&get(target));
    assert_eq!(resp.status, 200, "{resp:?}");
    (resp.body, start.elapsed())
}

fn limit_rate_paces_a_download(backend: Backend) {
    let corpus = Corpus::new();
    let data = write_file(&corpus, "3m.bin", 3 * MIB_BYTES);
    let server = Server::start(backend, corpus.root(), &["--limit-rate", "1m"]);
    let (body, took) = timed_get(&server, "/3m.bin");
    assert!(body == data, "body differs");
    assert_near(took, paced_secs(data.len(), MIB_BYTES), 0.10, "3 MiB at 1m");
    // Responses without a file body are not held back.
    let start = Instant::now();
    assert_eq!(server.fetch(&get("/missing")).status, 404);
    assert!(start.elapsed() < Duration::from_secs(1));
}

fn limit_rate_applies_to_each_connection(backend: Backend) {
    let corpus = Corpus::new();
    let data = write_file(&corpus, "2m.bin", 2 * MIB_BYTES);
    let server = Server::start(backend, corpus.root(), &["--limit-rate", "1m"]);
    let start = Instant::now();
    let downloads: Vec<_> = (0..3)
        .map(|_| {
            let addr = server.addr();
            thread::spawn(move || {
                let resp = Conn::connect(addr).roundtrip(&get("/2m.bin"));
                (resp.body, Instant::now())
            })
        })
        .collect();
    for d in downloads {
        let (body, done) = d.join().unwrap();
        assert!(body == data, "body differs");
        // Three connections at 1 MiB/s each, not one 1 MiB/s shared among them.
        assert_near(
            done - start,
            paced_secs(data.len(), MIB_BYTES),
            0.10,
            "each of 3 connections, 2 MiB at 1m",
        );
    }
}

fn limit_rate_after_goes_unpaced_first(backend: Backend) {
    let corpus = Corpus::new();
    let data = write_file(&corpus, "4m.bin", 4 * MIB_BYTES);
    let args = ["--limit-rate", "1m", "--limit-rate-after", "2m"];
    let server = Server::start(backend, corpus.root(), &args);
    let mut conn = server.connect();
    let start = Instant::now();
    conn.send(get("/4m.bin"));
    conn.fill(2 * MIB_BYTES);
    let unpaced = start.elapsed();
    assert!(
        unpaced < Duration::from_secs(1),
        "the first 2 MiB took {unpaced:?}"
    );
    let resp = conn.read_response(false);
    assert!(resp.body == data, "body differs");
    assert_near(
        start.elapsed(),
        paced_secs(2 * MIB_BYTES, MIB_BYTES),
        0.10,
        "4 MiB at 1m after 2m",
    );
}

fn total_cap_is_shared_by_transfers(backend: Backend) {
    let corpus = Corpus::new();
    let data = write_file(&corpus, "2m.bin", 2 * MIB_BYTES);
    let server = Server::start(backend, corpus.root(), &["--limit-rate-total", "2m"]);
    // Alone, a transfer gets the whole cap.
    let (_, alone) = timed_get(&server, "/2m.bin");
    assert_near(alone, paced_secs(data.len(), 2 * MIB_BYTES), 0.10, "alone");
    // Two at once share it: 4 MiB in all at 2 MiB/s.
    let start = Instant::now();
    let downloads: Vec<_> = (0..2)
        .map(|_| {
            let addr = server.addr();
            thread::spawn(move || Conn::connect(addr).roundtrip(&get("/2m.bin")).body)
        })
        .collect();
    for d in downloads {
        assert!(d.join().unwrap() == data, "body differs");
    }
    assert_near(start.elapsed(), 2.0, 0.15, "two transfers under a 2m cap");
}

fn signed_link_carries_its_own_rate(backend: Backend) {
    let corpus = Corpus::new();
    let data = write_file(&corpus, "2m.bin", 2 * MIB_BYTES);
    let secret = corpus.outside().join("secret.key");
    std::fs::write(&secret, "pacing test secret\n").unwrap();
    let secret = secret.to_str().unwrap();
    let link = sign_link(secret, "/2m.bin", &["--rate", "2m"]);
    let args = ["--limit-rate", "256k", "--secure-link-secret-file", secret];
    let server = Server::start(backend, corpus.root(), &args);
    let (body, took) = timed_get(&server, &link);
    assert!(body == data, "body differs");
    // 0.9 s at the link's 2m, where --limit-rate would take 8 s.
    assert_near(took, paced_secs(data.len(), 2 * MIB_BYTES), 0.15, "2m link");
}

/// `ringserve sign PATH --secure-link-secret-file SECRET extra...`: the printed link.
fn sign_link(secret: &str, path: &str, extra: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringserve"))
        .args(["sign", path, "--secure-link-secret-file", secret])
        .args(extra)
        .output()
        .expect("run ringserve sign");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Threads of process `pid`.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count()
}

fn pacing_takes_no_thread_per_connection(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &["--limit-rate", "64k"]);
    let before = threads(server.pid());
    let mut paced: Vec<Conn> = (0..100).map(|_| server.connect()).collect();
    for conn in &mut paced {
        conn.send(get(&format!("/{MIB}")));
    }
    // Every response is under way (its first bucket has arrived): all 100 are paced now.
    for conn in &mut paced {
        conn.fill(4096);
    }
    let during = threads(server.pid());
    assert!(
        during <= before + 1,
        "{before} threads before, {during} with 100 paced downloads"
    );
    // They really are paced: a few KiB each so far, not the socket buffers' worth.
    for conn in &paced {
        assert!(conn.buffered() < 64 * 1024, "{} bytes", conn.buffered());
    }
    // And the server still answers at once.
    assert_eq!(server.fetch(&get(&format!("/{ONE}"))).body, b"x");
}

/// A client that shuts down its sending side right after its (pipelined) requests, as
/// `nc -N` does, still gets every response whole, though the first is still being paced
/// when the end of its input arrives; then the connection closes.
fn a_half_closed_client_gets_every_response(backend: Backend) {
    let corpus = Corpus::new();
    let data = write_file(&corpus, "600k.bin", 600 << 10);
    let server = Server::start(backend, corpus.root(), &["--limit-rate", "2m"]);
    let mut conn = server.connect();
    conn.send([get("/600k.bin"), get("/600k.bin")].concat());
    conn.stream().shutdown(std::net::Shutdown::Write).unwrap();
    for i in 0..2 {
        let r = conn.read_response(false);
        assert_eq!(r.status, 200, "response {i}: {r:?}");
        assert!(r.body == data, "response {i}: body differs");
    }
    assert!(
        conn.read_until_eof().is_empty(),
        "bytes after the responses"
    );
}
