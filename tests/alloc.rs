//! Steady-state serving allocates nothing: a counting global allocator watches the whole
//! per-request path of the engine — parse, open-file cache, response plan, `send` + `sendfile`
//! and, once a file is hot, its prebuilt copy's one `sendfile` — driven through the real
//! connection driver on a real loopback socket, with the access log off and with it writing
//! JSON lines to a file.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use ringserve::config::Config;
use ringserve::engine::conn::{Conn, Next};
use ringserve::engine::worker::Worker;
use ringserve::fs::{FileCache, Root};
use ringserve::metrics::access_log::{AccessLog, Reopen};
use ringserve::metrics::{WorkerHandle, WorkerMetrics};
use ringserve::policy::{Policy, Shared};
use ringserve::serve::Handler;

/// Counts allocations made by the thread that switched counting on.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call unchanged to the system allocator; the thread-local cells are
// const-initialised and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn no_allocation_per_request_after_warm_up() {
    let request = b"GET /1k.bin HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n";
    assert_eq!(warm_allocations(&["--access-log", "off"], request, 7), 0);
}

#[test]
fn no_allocation_per_request_with_json_access_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let log_arg = log.to_str().unwrap();
    let args = ["--access-log", log_arg, "--access-log-format", "json"];
    let request = b"GET /1k.bin HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n";
    assert_eq!(warm_allocations(&args, request, 7), 0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 1010, "one line per request");
    assert!(text.lines().all(|l| l.contains("\"status\":200")));
}

/// The content rules (a precompressed sidecar chosen by negotiation, a glob rule, CORS, an
/// added header) are applied without allocating either.
#[test]
fn no_allocation_with_content_rules() {
    let args = [
        "--access-log",
        "off",
        "--precompressed",
        "br,gzip",
        "--cache-control",
        "*.bin=public, max-age=60",
        "--cors",
        "*",
        "--add-header",
        "X-A: 1",
    ];
    let request = b"GET /1k.bin HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br;q=0.5, gzip\r\n\r\n";
    assert_eq!(warm_allocations(&args, request, 9), 0);
}

/// Many more distinct files than a worker keeps download counts for (64), all in the
/// open-file cache, requested in a scrambled order: most requests evict a counter, and still
/// nothing is allocated.
#[test]
fn no_allocation_across_many_files() {
    let (dir, w) = worker(&["--access-log", "off"]);
    let mut names = Vec::new();
    let mut x = 0x9e37_79b9_u32;
    for i in 0..300 {
        std::fs::write(dir.path().join(format!("f{i}.bin")), vec![7u8; 1024]).unwrap();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        names.push(format!("GET /f{}.bin HTTP/1.1\r\nHost: x\r\n\r\n", x % 300).into_bytes());
    }
    let requests: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
    assert_eq!(warm_allocations_over(w, &requests, 7), 0);
}

/// A new connection per request (`Connection: close` churn) allocates nothing either once
/// the worker is warm: response buffers come from the worker's pool, not from each connection.
#[test]
fn no_allocation_per_connection_after_warm_up() {
    let request = b"GET /1k.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (_dir, mut w) = worker(&["--access-log", "off"]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut buf = [0u8; 4096];
    let mut one_connection = |w: &mut Worker| {
        let mut client = TcpStream::connect(addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let mut conn = Conn::new(OwnedFd::from(server), false, false, w).expect("admitted");
        w.tick();
        assert_eq!(conn.on_input(request, w), Next::Close);
        conn.on_close(false, w);
        drop(conn);
        let mut got = 0;
        loop {
            match client.read(&mut buf[got..]).unwrap() {
                0 => break,
                n => got += n,
            }
        }
        assert!(buf[..got].starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(buf[got - 1024..got].iter().all(|&b| b == 7));
    };
    for _ in 0..10 {
        one_connection(&mut w);
    }
    COUNT.with(|c| c.set(0));
    COUNTING.with(|c| c.set(true));
    for _ in 0..200 {
        one_connection(&mut w);
    }
    COUNTING.with(|c| c.set(false));
    assert_eq!(
        COUNT.with(Cell::get),
        0,
        "heap allocations in 200 connections"
    );
}

/// A worker serving a fresh root holding `1k.bin` (1 KiB of 7s) and its sidecar `1k.bin.gz`
/// (1 KiB of 9s), configured with `args` plus every policy switched on but never limiting.
fn worker(args: &[&str]) -> (tempfile::TempDir, Worker) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("1k.bin"), vec![7u8; 1024]).unwrap();
    std::fs::write(dir.path().join("1k.bin.gz"), vec![9u8; 1024]).unwrap();
    let root = dir.path().to_str().unwrap();
    let base = [
        "ringserve",
        "--root",
        root,
        "--keepalive-requests",
        "100000",
        // Policies on, none of them limiting: their per-request checks must not allocate.
        "--req-rate",
        "1000000/s",
        "--limit-rate",
        "1g",
        "--limit-rate-total",
        "10g",
    ];
    let config = Config::try_from_iter(base.iter().chain(args)).unwrap();
    let policy = Policy::new(config.policy.clone(), Shared::new(&config.policy));
    let handler = Handler::new(
        Root::open(dir.path(), false).unwrap(),
        FileCache::new(1024, Duration::from_secs(3600)),
    )
    .with_content(config.content.clone());
    let metrics = WorkerMetrics::for_workers(1);
    let log = AccessLog::open(
        &config.access_log,
        config.access_log_format,
        Reopen::default(),
    )
    .unwrap();
    let w = Worker::new(
        handler,
        Arc::new(config),
        log,
        policy,
        WorkerHandle::new(&metrics, 0).unwrap(),
    );
    (dir, w)
}

/// Serves `request` (answered with 1 KiB of `body` bytes) to one connection of a [`worker`]
/// with the options `args`, and counts the heap allocations of 1,000 requests after a warm-up.
fn warm_allocations(args: &[&str], request: &[u8], body: u8) -> u64 {
    let (_dir, w) = worker(args);
    warm_allocations_over(w, &[request], body)
}

/// Serves `requests` in turn (each answered with 1 KiB of `body` bytes) to one connection of
/// `w`, and counts the heap allocations of 1,000 requests after ten rounds of warm-up.
fn warm_allocations_over(mut w: Worker, requests: &[&[u8]], body: u8) -> u64 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (server, _) = listener.accept().unwrap();
    server.set_nonblocking(true).unwrap();
    let mut conn = Conn::new(OwnedFd::from(server), false, false, &w).expect("admitted");

    let mut buf = [0u8; 4096];
    let mut serve_one = |conn: &mut Conn, w: &mut Worker, request: &[u8]| {
        w.tick();
        assert_eq!(conn.on_input(request, w), Next::Read);
        let mut got = 0;
        loop {
            got += client.read(&mut buf[got..]).unwrap();
            let head_end = buf[..got].windows(4).position(|x| x == b"\r\n\r\n");
            if let Some(h) = head_end {
                if got >= h + 4 + 1024 {
                    assert_eq!(got, h + 4 + 1024, "one response, 1 KiB of body");
                    assert!(buf[..h].starts_with(b"HTTP/1.1 200 OK\r\n"));
                    assert!(buf[h + 4..got].iter().all(|&b| b == body));
                    break;
                }
            }
        }
    };

    for _ in 0..10 {
        for r in requests {
            serve_one(&mut conn, &mut w, r);
        }
    }
    COUNT.with(|c| c.set(0));
    COUNTING.with(|c| c.set(true));
    for r in requests.iter().cycle().take(1000) {
        serve_one(&mut conn, &mut w, r);
    }
    COUNTING.with(|c| c.set(false));
    COUNT.with(Cell::get)
}
