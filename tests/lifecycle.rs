//! Start-up, command-line errors, graceful shutdown, listen addresses and the access log.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

backend_tests!(
    startup_banner,
    missing_root_fails,
    busy_port_fails,
    bogus_backend_fails,
    bad_flag_values_fail,
    duration_forms_accepted,
    sigterm_idle_exits_promptly,
    sigint_idle_exits_promptly,
    sigterm_does_not_wait_for_idle_keepalive,
    sigterm_finishes_download,
    two_listen_addresses,
    access_log_combined,
);

/// How long an idle server may take to exit after SIGTERM.
const PROMPT_EXIT: Duration = Duration::from_secs(5);

/// Asserts that the process failed and said why on a `ringserve: error:` line.
fn assert_failed(status: std::process::ExitStatus, stderr: &[String], what: &str) {
    assert!(!status.success(), "{what}: exit {status}");
    assert!(
        stderr
            .iter()
            .any(|l| l.len() > "ringserve: error: ".len() && l.starts_with("ringserve: error: ")),
        "{what}: no error line in {stderr:?}"
    );
}

fn startup_banner(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &["--workers", "3"]);
    let lines = server.stderr_lines();
    let workers: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("ringserve: worker "))
        .collect();
    assert_eq!(workers.len(), 3, "{lines:?}");
    for i in 0..3 {
        let prefix = format!("ringserve: worker {i}: backend {} ", backend.as_arg());
        let exact = prefix.trim_end();
        assert!(
            workers
                .iter()
                .any(|l| l.starts_with(&prefix) || *l == exact),
            "no line for worker {i}: {lines:?}"
        );
    }
    let addr = server.addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    let listening = format!("ringserve: listening on {addr}");
    assert!(lines.contains(&listening), "{lines:?}");
    assert_eq!(server.fetch(&get(&format!("/{ONE}"))).body, b"x");
}

fn missing_root_fails(backend: Backend) {
    let corpus = Corpus::new();
    let missing = corpus.outside().join("no-such-dir");
    let (status, stderr) = Server::run_to_exit(backend, &missing, &[], IO_TIMEOUT);
    assert_failed(status, &stderr, "missing root");
}

fn busy_port_fails(backend: Backend) {
    let corpus = Corpus::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (status, stderr) =
        Server::run_to_exit(backend, corpus.root(), &["--listen", &addr], IO_TIMEOUT);
    assert_failed(status, &stderr, "busy port");
    drop(taken);
}

fn bogus_backend_fails(backend: Backend) {
    let corpus = Corpus::new();
    let args = ["--backend", "bogus"];
    let (status, stderr) = Server::run_to_exit(backend, corpus.root(), &args, IO_TIMEOUT);
    assert!(!status.success(), "exit {status}");
    assert!(!stderr.is_empty(), "no message on stderr");
}

fn bad_flag_values_fail(backend: Backend) {
    let corpus = Corpus::new();
    for args in [
        ["--backend", "bogus"],
        ["--grace", "10x"],
        ["--header-timeout", "soon"],
        ["--keepalive-timeout", "1w"],
        ["--keepalive-requests", "many"],
        ["--max-ranges", "-1"],
        ["--workers", "two"],
    ] {
        let (status, stderr) = Server::run_to_exit(backend, corpus.root(), &args, IO_TIMEOUT);
        assert_failed(status, &stderr, &format!("{args:?}"));
    }
}

fn duration_forms_accepted(backend: Backend) {
    let corpus = Corpus::new();
    let args = [
        "--grace",
        "500ms",
        "--header-timeout",
        "2m",
        "--keepalive-timeout",
        "30",
        "--keepalive-requests",
        "10",
        "--max-ranges",
        "8",
    ];
    let server = Server::start(backend, corpus.root(), &args);
    assert_eq!(server.fetch(&get(&format!("/{ONE}"))).body, b"x");
}

/// Starts a server, checks it serves, sends `signal` and expects a prompt exit 0.
fn signal_idle_exits(backend: Backend, signal: &str) {
    let corpus = Corpus::new();
    let mut server = Server::start(backend, corpus.root(), &["--grace", "30s"]);
    let mut conn = server.connect();
    let resp = conn.roundtrip(&req("GET", &format!("/{ONE}"), &["Connection: close"]));
    assert_eq!(resp.body, b"x");
    assert!(conn.read_until_closed().is_empty());
    server.signal(signal);
    let status = server.wait_exit(PROMPT_EXIT);
    assert!(status.success(), "exit after SIG{signal}: {status}");
}

fn sigterm_idle_exits_promptly(backend: Backend) {
    signal_idle_exits(backend, "TERM");
}

fn sigint_idle_exits_promptly(backend: Backend) {
    signal_idle_exits(backend, "INT");
}

fn sigterm_does_not_wait_for_idle_keepalive(backend: Backend) {
    let corpus = Corpus::new();
    let mut server = Server::start(backend, corpus.root(), &["--grace", "30s"]);
    let mut conn = server.connect();
    assert_eq!(conn.roundtrip(&get(&format!("/{ONE}"))).body, b"x");
    // The connection stays open and idle: no response is in flight, so the server must not
    // wait out the 30 s grace period for it.
    server.signal("TERM");
    let status = server.wait_exit(PROMPT_EXIT);
    assert!(status.success(), "exit after SIGTERM: {status}");
    assert!(conn.read_until_closed().is_empty());
}

fn sigterm_finishes_download(backend: Backend) {
    let corpus = Corpus::new();
    let mut server = Server::start(backend, corpus.root(), &["--grace", "30s"]);
    let mut conn = server.connect();
    conn.send(get(&format!("/{BIG}")));
    // With the first MiB received and the rest not read yet, the response is in flight
    // (stuck on the full socket buffers) when the signal arrives.
    conn.fill(1 << 20);
    server.signal("TERM");
    wait_until_not_serving_new_connections(&server);
    let resp = conn.read_response(false);
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(
        resp.body == corpus.read(BIG),
        "download differs from the file"
    );
    let status = server.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "exit after SIGTERM: {status}");
}

/// Waits (at most 5 s) until the server, after a shutdown signal, no longer serves new
/// connections: connecting is refused, or a request on a new connection gets no answer.
fn wait_until_not_serving_new_connections(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "still serving new connections");
        let Ok(mut stream) = TcpStream::connect_timeout(&server.addr(), IO_TIMEOUT) else {
            return;
        };
        // An answer within 300 ms means the signal is not handled yet; no answer (or a
        // close) means the connection was not accepted.
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        if stream
            .write_all(get(&format!("/{ONE}")).as_bytes())
            .is_err()
        {
            return;
        }
        match stream.read(&mut [0; 64]) {
            Ok(n) if n > 0 => continue,
            _ => return,
        }
    }
}

fn two_listen_addresses(backend: Backend) {
    let corpus = Corpus::new();
    // Fall back to a second IPv4 listener where IPv6 loopback is unavailable.
    let ipv6 = TcpListener::bind("[::1]:0").is_ok();
    let second = if ipv6 { "[::1]:0" } else { "127.0.0.1:0" };
    if !ipv6 {
        eprintln!("note: ::1 unavailable, testing two IPv4 listeners");
    }
    let args = ["--listen", "127.0.0.1:0", "--listen", second];
    let server = Server::start(backend, corpus.root(), &args);
    let addrs = server.addrs().to_vec();
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    assert_ne!(addrs[0], addrs[1]);
    assert_eq!(addrs.iter().filter(|a| a.is_ipv6()).count(), ipv6 as usize);
    for addr in addrs {
        let resp = Conn::connect(addr).roundtrip(&get(&format!("/{PAGE}")));
        assert!(
            resp.status == 200 && resp.body == corpus.read(PAGE),
            "{addr}: {resp:?}"
        );
    }
}

/// Whether `s` is an nginx `$time_local`, e.g. `24/Nov/2025:09:14:03 +0000`.
fn is_time_local(s: &str) -> bool {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    s.is_ascii()
        && b.len() == 26
        && digits(0..2)
        && b[2] == b'/'
        && b[6] == b'/'
        && MONTHS.contains(&&s[3..6])
        && digits(7..11)
        && b[11] == b':'
        && digits(12..14)
        && b[14] == b':'
        && digits(15..17)
        && b[17] == b':'
        && digits(18..20)
        && b[20] == b' '
        && (b[21] == b'+' || b[21] == b'-')
        && digits(22..26)
}

fn access_log_combined(backend: Backend) {
    let corpus = Corpus::new();
    let log = corpus.outside().join("access.log");
    let log_arg = log.to_str().unwrap();
    let mut server = Server::start(backend, corpus.root(), &["--access-log", log_arg]);
    let mut conn = server.connect();
    let headers = [
        "Referer: http://ref.example/from?a=1",
        "User-Agent: ringserve-test/1.0 (combined)",
    ];
    let resp = conn.roundtrip(&req("GET", &format!("/{PAGE}?v=1"), &headers));
    assert_eq!(resp.status, 200);
    assert_eq!(
        conn.roundtrip(&req("HEAD", &format!("/{PAGE}"), &[]))
            .status,
        200
    );
    let missing = conn.roundtrip(&get("/missing"));
    assert_eq!(missing.status, 404);
    drop(conn);
    server.signal("TERM");
    assert!(server.wait_exit(PROMPT_EXIT).success());

    let text = std::fs::read_to_string(&log).expect("access log written");
    let lines: Vec<&str> = text.lines().collect();
    let expected = [
        format!(
            "\"GET /{PAGE}?v=1 HTTP/1.1\" 200 4096 \"http://ref.example/from?a=1\" \
             \"ringserve-test/1.0 (combined)\""
        ),
        format!("\"HEAD /{PAGE} HTTP/1.1\" 200 0 \"-\" \"-\""),
        format!(
            "\"GET /missing HTTP/1.1\" 404 {} \"-\" \"-\"",
            missing.body.len()
        ),
    ];
    assert_eq!(lines.len(), expected.len(), "{text}");
    for (line, expected) in lines.iter().zip(&expected) {
        let (prefix, rest) = line.split_once("] ").unwrap_or_else(|| panic!("{line:?}"));
        let time = prefix
            .strip_prefix("127.0.0.1 - - [")
            .unwrap_or_else(|| panic!("{line:?}"));
        assert!(is_time_local(time), "bad $time_local in {line:?}");
        assert_eq!(rest, expected);
    }
}

/// `--backend auto` picks one of the two backends (epoll where io_uring is unavailable) and
/// serves.
#[test]
fn auto_backend_serves() {
    let corpus = Corpus::new();
    let server = Server::start(Backend::Epoll, corpus.root(), &["--backend", "auto"]);
    for line in server.stderr_lines() {
        if line.starts_with("ringserve: worker ") {
            let picked = worker_backend(&line);
            if uring_available() {
                assert!(matches!(picked, Some("uring" | "epoll")), "{line:?}");
            } else {
                assert_eq!(picked, Some("epoll"), "{line:?}");
            }
        }
    }
    assert_eq!(server.fetch(&get(&format!("/{ONE}"))).body, b"x");
}

/// Where io_uring is unavailable, `--backend uring` fails instead of falling back.
#[test]
fn uring_backend_refused_without_io_uring() {
    if uring_available() {
        eprintln!("io_uring is available here: test skipped");
        return;
    }
    let corpus = Corpus::new();
    let (status, stderr) = Server::run_to_exit(Backend::Uring, corpus.root(), &[], IO_TIMEOUT);
    assert_failed(status, &stderr, "--backend uring without io_uring");
}
