//! The benchmark's cheap client for large responses (`scripts/bench.sh`, scenario
//! `large-sink`): wrk copies every body byte into user space, which on loopback makes the
//! client's core the bottleneck of a large stream and leaves the server's core mostly idle, so
//! that its busy time per MiB says more about where the kernel ran TCP's work than about the
//! server. This client drops each body in the kernel with `recv(MSG_TRUNC)` (tcp(7): no copy),
//! so the server's core is the one that saturates.
//!
//! One thread, level-triggered epoll over `-c` keep-alive connections, each asking for the URL
//! again as soon as its last response has ended; no pipelining, so a `recv(MSG_TRUNC)` never
//! drops bytes of the next response. Takes wrk's options as `scripts/bench.sh` passes them
//! (`-t` and `--timeout` are accepted and ignored) and prints wrk's one-line summary as
//! `scripts/bench/wrk-done.lua` does.
//!
//! `cargo run --release --example sink -- -c4 -d5s http://127.0.0.1:8080/1g.bin`

use std::io::{self, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use ringserve::sys;

/// One connection: its socket, where its response stands, and when the request went out.
struct Client {
    sock: TcpStream,
    /// Head bytes received so far; empty while the body is being dropped.
    head: Vec<u8>,
    /// Body bytes still to come.
    body_left: u64,
    sent_at: Instant,
}

/// What the run saw.
#[derive(Default)]
struct Totals {
    requests: u64,
    bytes: u64,
    latencies_us: Vec<u64>,
}

fn main() -> io::Result<()> {
    let (conns, duration, url) = options()?;
    let (addr, path) = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split_once('/'))
        .ok_or_else(|| io::Error::other(format!("not an http:// URL: {url}")))?;
    let request = format!("GET /{path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes();
    let ep = sys::epoll_create()?;
    let mut clients = Vec::with_capacity(conns);
    for i in 0..conns {
        let sock = TcpStream::connect(addr)?;
        sock.set_nodelay(true)?;
        sock.set_nonblocking(true)?;
        sys::epoll_add(ep.as_fd(), sock.as_fd(), libc::EPOLLIN as u32, i as u64)?;
        clients.push(Client {
            sock,
            head: Vec::new(),
            body_left: 0,
            sent_at: Instant::now(),
        });
    }
    let start = Instant::now();
    for c in &mut clients {
        ask(c, &request)?;
    }
    let mut totals = Totals::default();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; conns];
    let mut buf = vec![0u8; 64 * 1024];
    while start.elapsed() < duration {
        let n = sys::epoll_wait(ep.as_fd(), &mut events, 100)?;
        for ev in &events[..n] {
            let c = &mut clients[ev.u64 as usize];
            if take(c, &mut buf, &mut totals)? {
                totals.requests += 1;
                let took = c.sent_at.elapsed().as_micros();
                totals
                    .latencies_us
                    .push(u64::try_from(took).unwrap_or(u64::MAX));
                ask(c, &request)?;
            }
        }
    }
    report(start.elapsed(), totals)
}

/// `-cN`, `-dNs` and the URL; other wrk options are ignored.
fn options() -> io::Result<(usize, Duration, String)> {
    let bad = |what: &str| io::Error::other(format!("sink: bad {what}"));
    let (mut conns, mut secs, mut url) = (1usize, 10u64, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if let Some(n) = arg.strip_prefix("-c") {
            conns = n.parse().map_err(|_| bad("-c"))?;
        } else if let Some(d) = arg.strip_prefix("-d") {
            secs = d.trim_end_matches('s').parse().map_err(|_| bad("-d"))?;
        } else if arg == "--timeout" || arg == "-s" {
            args.next();
        } else if !arg.starts_with('-') {
            url = Some(arg);
        }
    }
    let url = url.ok_or_else(|| bad("URL"))?;
    Ok((conns.max(1), Duration::from_secs(secs), url))
}

/// Sends the request on a connection whose last response has ended.
fn ask(c: &mut Client, request: &[u8]) -> io::Result<()> {
    c.sent_at = Instant::now();
    c.head.clear();
    c.body_left = 0;
    // A few dozen bytes into an empty socket buffer: taken whole.
    let n = sys::send(c.sock.as_fd(), request, false)?;
    if n != request.len() {
        return Err(io::Error::other("short request send"));
    }
    Ok(())
}

/// Takes what a readable connection has; `true` once its response has ended.
fn take(c: &mut Client, buf: &mut [u8], totals: &mut Totals) -> io::Result<bool> {
    if c.body_left > 0 {
        let n = match sys::discard(c.sock.as_fd()) {
            Ok(0) => return Err(io::Error::other("the server closed mid-body")),
            Ok(n) => n as u64,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        };
        if n > c.body_left {
            return Err(io::Error::other("more bytes than the response's length"));
        }
        c.body_left -= n;
        totals.bytes += n;
        return Ok(c.body_left == 0);
    }
    let n = match sys::recv(c.sock.as_fd(), buf) {
        Ok(0) => return Err(io::Error::other("the server closed")),
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
        Err(e) => return Err(e),
    };
    c.head.extend_from_slice(&buf[..n]);
    totals.bytes += n as u64;
    let Some(end) = memchr::memmem::find(&c.head, b"\r\n\r\n") else {
        return Ok(false);
    };
    let head = std::str::from_utf8(&c.head[..end]).map_err(io::Error::other)?;
    if !head.starts_with("HTTP/1.1 200 ") {
        return Err(io::Error::other(format!("unexpected response: {head}")));
    }
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<u64>().ok())?
        })
        .ok_or_else(|| io::Error::other("no Content-Length"))?;
    let got = (c.head.len() - end - 4) as u64;
    if got > length {
        return Err(io::Error::other("more bytes than the response's length"));
    }
    c.body_left = length - got;
    c.head.clear();
    Ok(c.body_left == 0)
}

/// wrk's summary line as `scripts/bench/wrk-done.lua` prints it.
fn report(took: Duration, mut t: Totals) -> io::Result<()> {
    t.latencies_us.sort_unstable();
    let pct = |p: usize| {
        let l = &t.latencies_us;
        l.get((l.len() * p / 100).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let mean = if t.latencies_us.is_empty() {
        0.0
    } else {
        t.latencies_us.iter().sum::<u64>() as f64 / t.latencies_us.len() as f64
    };
    let secs = took.as_secs_f64();
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "{} requests in {secs:.2}s, {:.2}MB read\nRequests/sec: {:.2}\nTransfer/sec: {:.2}MB",
        t.requests,
        t.bytes as f64 / (1 << 20) as f64,
        t.requests as f64 / secs,
        t.bytes as f64 / (1 << 20) as f64 / secs
    )?;
    writeln!(
        out,
        "BENCHJSON {{\"requests\":{},\"duration_us\":{},\"bytes\":{},\"err_connect\":0,\
         \"err_read\":0,\"err_write\":0,\"err_status\":0,\"err_timeout\":0,\
         \"lat_mean_us\":{mean:.1},\"lat_p50_us\":{},\"lat_p90_us\":{},\"lat_p99_us\":{},\
         \"lat_max_us\":{}}}",
        t.requests,
        took.as_micros(),
        t.bytes,
        pct(50),
        pct(90),
        pct(99),
        t.latencies_us.last().copied().unwrap_or(0)
    )
}
