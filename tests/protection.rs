//! Protection: per-client connection and request limits, the server-wide connection cap,
//! allow/deny rules, signed links, and the timeouts against slowloris and slow readers. Clients
//! with different addresses are played from 127.0.0.x, all of which reach loopback.

mod common;

use common::*;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

backend_tests!(
    per_ip_connection_cap_answers_503,
    request_rate_answers_429_with_retry_after,
    allow_and_deny_rules,
    max_conns_pauses_accepting,
    signed_links,
    slowloris_does_not_starve_others,
    slow_reader_is_dropped_after_send_timeout,
);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Asks for `/one.txt` with `Connection: close` and waits for the server to close, so the
/// connection is gone on the server's side when this returns.
fn close_politely(mut conn: Conn) {
    let resp = conn.roundtrip(&req("GET", &format!("/{ONE}"), &["Connection: close"]));
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(conn.read_until_closed().is_empty());
}

fn per_ip_connection_cap_answers_503(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &["--max-conns-per-ip", "2"]);
    let page = format!("/{PAGE}");
    let mut first = Conn::connect_from(server.addr(), ip("127.0.0.1"));
    let mut second = Conn::connect_from(server.addr(), ip("127.0.0.1"));
    for conn in [&mut first, &mut second] {
        assert_eq!(conn.roundtrip(&get(&page)).status, 200);
    }
    let mut third = Conn::connect_from(server.addr(), ip("127.0.0.1"));
    let resp = third.roundtrip(&get(&page));
    assert_eq!(resp.status, 503, "{resp:?}");
    assert!(resp.closes(), "{resp:?}");
    assert!(third.read_until_closed().is_empty());
    // Another client is not affected.
    let mut other = Conn::connect_from(server.addr(), ip("127.0.0.2"));
    assert_eq!(other.roundtrip(&get(&page)).status, 200);
    // Once one of the two closes, the client may connect again.
    close_politely(first);
    let mut again = Conn::connect_from(server.addr(), ip("127.0.0.1"));
    assert_eq!(again.roundtrip(&get(&page)).body, corpus.read(PAGE));
    assert_eq!(second.roundtrip(&get(&page)).status, 200);
}

fn request_rate_answers_429_with_retry_after(backend: Backend) {
    let corpus = Corpus::new();
    let args = [
        "--req-rate",
        "1/m",
        "--req-burst",
        "2",
        "--admin",
        "127.0.0.1:0",
    ];
    let server = Server::start(backend, corpus.root(), &args);
    let page = format!("/{PAGE}");
    let mut conn = Conn::connect_from(server.addr(), ip("127.0.0.1"));
    for _ in 0..3 {
        assert_eq!(conn.roundtrip(&get(&page)).status, 200);
    }
    let resp = conn.roundtrip(&get(&page));
    assert_eq!(resp.status, 429, "{resp:?}");
    let retry: u64 = resp.expect_header("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // The refusal is well framed, so the connection stays usable (and still limited).
    assert!(!resp.closes(), "{resp:?}");
    assert_eq!(conn.roundtrip(&req("HEAD", &page, &[])).status, 429);
    // Other clients have their own budget.
    let mut other = Conn::connect_from(server.addr(), ip("127.0.0.2"));
    assert_eq!(other.roundtrip(&get(&page)).body, corpus.read(PAGE));
    assert_eq!(rejected(&server, "rate_limited"), 2);
}

/// The `ringserve_rejected_total` count for `reason` on the server's admin listener.
fn rejected(server: &Server, reason: &str) -> u64 {
    let admin = server
        .wait_line("ringserve: admin listening on ")
        .trim()
        .parse()
        .expect("admin address");
    let metrics = Conn::connect(admin).roundtrip(&get("/metrics"));
    let line = format!("ringserve_rejected_total{{reason=\"{reason}\"}} ");
    let text = String::from_utf8(metrics.body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .unwrap_or_else(|| panic!("no {line} in {text}"))
        .parse()
        .unwrap()
}

fn allow_and_deny_rules(backend: Backend) {
    let corpus = Corpus::new();
    let deny_file = corpus.outside().join("deny.txt");
    std::fs::write(&deny_file, "# blocked\n127.0.0.3\n").unwrap();
    let deny_file = deny_file.to_str().unwrap();
    let args = [
        "--deny",
        "127.0.0.2",
        "--allow",
        "127.0.0.0/29",
        "--deny",
        "all",
        "--deny-file",
        deny_file,
    ];
    let server = Server::start(backend, corpus.root(), &args);
    let page = format!("/{PAGE}");
    for allowed in ["127.0.0.1", "127.0.0.4"] {
        let mut conn = Conn::connect_from(server.addr(), ip(allowed));
        assert_eq!(conn.roundtrip(&get(&page)).status, 200, "{allowed}");
    }
    // Denied before a byte is read: the connection closes with no response. The first
    // matching rule decides, so 127.0.0.2 is denied though 127.0.0.0/29 is allowed after it;
    // 127.0.0.3 is allowed by the command line before the deny file is consulted.
    for denied in ["127.0.0.2", "127.0.0.9"] {
        let mut conn = Conn::connect_from(server.addr(), ip(denied));
        conn.send_lossy(get(&page));
        assert!(conn.read_until_closed().is_empty(), "{denied} was served");
    }
    let mut conn = Conn::connect_from(server.addr(), ip("127.0.0.3"));
    assert_eq!(conn.roundtrip(&get(&page)).status, 200);

    let args = ["--deny-file", deny_file];
    let server = Server::start(backend, corpus.root(), &args);
    let mut conn = Conn::connect_from(server.addr(), ip("127.0.0.3"));
    conn.send_lossy(get(&page));
    assert!(conn.read_until_closed().is_empty(), "denied by file");
    let mut conn = Conn::connect_from(server.addr(), ip("127.0.0.2"));
    assert_eq!(conn.roundtrip(&get(&page)).status, 200);
}

fn max_conns_pauses_accepting(backend: Backend) {
    let corpus = Corpus::new();
    let args = ["--workers", "1", "--max-conns", "2"];
    let server = Server::start(backend, corpus.root(), &args);
    let page = format!("/{PAGE}");
    let mut first = server.connect();
    let mut second = server.connect();
    for conn in [&mut first, &mut second] {
        assert_eq!(conn.roundtrip(&get(&page)).status, 200);
    }
    // The third connection waits in the accept queue: no answer while the worker is full.
    let mut third = server.connect();
    third.send(get(&page));
    third
        .stream()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    let early = std::io::Read::read(&mut third.stream(), &mut byte);
    assert!(
        early
            .as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
        "served beyond --max-conns: {early:?}"
    );
    third.stream().set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    // A place frees up: the waiting connection is accepted and served.
    close_politely(first);
    assert_eq!(third.read_response(false).body, corpus.read(PAGE));
    assert_eq!(second.roundtrip(&get(&page)).status, 200);
}

/// `ringserve sign PATH --secure-link-secret-file SECRET --secure-link-prefix /dl`.
fn sign(secret: &str, path: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringserve"))
        .args([
            "sign",
            path,
            "--expires",
            "1h",
            "--secure-link-prefix",
            "/dl",
        ])
        .args(["--secure-link-secret-file", secret])
        .output()
        .expect("run ringserve sign");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A link signed as the README documents it, with any expiry (so expired links can be made).
fn hand_signed(secret: &[u8], path: &str, expires: u64) -> String {
    use base64::Engine;
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(format!("{expires}\n\n{path}").as_bytes());
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{path}?expires={expires}&sig={sig}")
}

fn signed_links(backend: Backend) {
    let corpus = Corpus::new();
    std::fs::create_dir(corpus.path("dl")).unwrap();
    std::fs::write(corpus.path("dl/file.txt"), "signed content\n").unwrap();
    let secret_path = corpus.outside().join("link.key");
    std::fs::write(&secret_path, "s3cret-for-links\n").unwrap();
    let secret = secret_path.to_str().unwrap();
    let args = [
        "--secure-link-secret-file",
        secret,
        "--secure-link-prefix",
        "/dl",
        "--admin",
        "127.0.0.1:0",
    ];
    let server = Server::start(backend, corpus.root(), &args);

    let link = sign(secret, "/dl/file.txt");
    assert!(link.starts_with("/dl/file.txt?expires="), "{link}");
    let resp = server.fetch(&get(&link));
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.body, b"signed content\n");
    // Other spellings of the same path carry the same signature.
    let query = link.split_once('?').unwrap().1;
    let resp = server.fetch(&get(&format!("//dl/./file%2etxt?{query}")));
    assert_eq!(resp.status, 200, "{resp:?}");

    // Outside the prefix nothing is needed.
    assert_eq!(server.fetch(&get(&format!("/{PAGE}"))).status, 200);
    // Inside it, a missing, tampered or misplaced signature is 403.
    let mut bad_sig = link.clone();
    let last = bad_sig.pop().unwrap();
    bad_sig.push(if last == 'A' { 'B' } else { 'A' });
    let later = link.replacen("expires=", "expires=9", 1);
    let other_file = link.replacen("/dl/file.txt", "/dl/other.txt", 1);
    for target in [
        "/dl/file.txt".to_string(),
        "/dl/".to_string(),
        bad_sig,
        later,
        other_file,
        link.replacen("sig=", "sig=x", 1),
    ] {
        let resp = server.fetch(&get(&target));
        assert_eq!(resp.status, 403, "{target}: {resp:?}");
        assert_ne!(resp.body, b"signed content\n");
    }
    // A genuine link past its expiry is 410.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = hand_signed(b"s3cret-for-links", "/dl/file.txt", now - 10);
    assert_eq!(server.fetch(&get(&expired)).status, 410);
    let fresh = hand_signed(b"s3cret-for-links", "/dl/file.txt", now + 60);
    assert_eq!(server.fetch(&get(&fresh)).status, 200);
    assert_eq!(rejected(&server, "bad_link"), 7);
}

fn slowloris_does_not_starve_others(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &["--header-timeout", "1s"]);
    let start = Instant::now();
    let mut trickling: Vec<Conn> = (0..300).map(|_| server.connect()).collect();
    for conn in &mut trickling {
        conn.send(format!("GET /{PAGE} HTTP/1.1\r\n"));
    }
    for conn in &mut trickling {
        conn.send_lossy("Host: localhost\r\nX-Slow: 1\r\n");
    }
    // A normal client is served meanwhile, and promptly (loosely: 1 s when measured by hand).
    let fetch_start = Instant::now();
    let resp = server.fetch(&get(&format!("/{MIB}")));
    assert!(resp.body == corpus.read(MIB), "body differs");
    let took = fetch_start.elapsed();
    assert!(took < Duration::from_secs(5), "fetch took {took:?}");
    // Every trickling connection is closed by the header timeout, without being served.
    for mut conn in trickling {
        let rest = conn.read_until_closed();
        assert!(
            rest.is_empty() || rest.starts_with(b"HTTP/1.1 408 "),
            "{}",
            lossy(&rest)
        );
    }
    assert!(start.elapsed() >= Duration::from_millis(500));
}

/// Waits (up to the read timeout) until the peer resets or closes `conn`, without reading
/// from it: a read would drain the socket and count as progress. Returns whether it did.
fn wait_for_hangup(conn: &Conn) -> bool {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd {
        fd: conn.stream().as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    let ms = IO_TIMEOUT.as_millis() as i32;
    // SAFETY: `pfd` is a valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    n == 1 && pfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}

fn slow_reader_is_dropped_after_send_timeout(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &["--send-timeout", "1s"]);
    let mut stalled = server.connect();
    let start = Instant::now();
    stalled.send(get(&format!("/{BIG}")));
    // Others are served while it stalls.
    let resp = server.fetch(&get(&format!("/{MIB}")));
    assert!(resp.body == corpus.read(MIB), "body differs");
    assert!(
        wait_for_hangup(&stalled),
        "not dropped within {IO_TIMEOUT:?}"
    );
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(500),
        "dropped after only {elapsed:?}"
    );
    // It was reset mid-body: far less than the whole file ever arrives.
    let got = stalled.read_until_closed().len() as u64;
    assert!(got < BIG_LEN / 2, "received {got} of {BIG_LEN} bytes");
}
