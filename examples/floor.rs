//! The benchmark's floor (`scripts/bench.sh`, server `floor`): the cheapest HTTP/1.1 responder
//! one can write, for comparing ringserve's cost per request with what no server can go below
//! on the same machine. One thread, epoll (edge-triggered), no parsing beyond finding each
//! head's end (and `close` in it, for the churn scenario), no date, no log.
//!
//! - Without a file it answers every request with one fixed 1 KiB response held in memory, one
//!   `send` per request head, and does not retry a short send (a 1 KiB answer always fits a
//!   loopback socket buffer).
//! - With `--sendfile` (server `floor-sendfile`) the same answers are held in a memfd and each
//!   goes out with one `sendfile` instead: the cheapest responder whose answer bytes never pass
//!   through user space, which is the rule ringserve keeps for file bodies (its hot small files
//!   go out the same way, from a memfd). The difference between the two floors is what that
//!   rule costs per request.
//! - With a file (the range scenario) a head carrying `Range: bytes=A-B` is answered 206 with
//!   that range of the file: the head with `send`, the bytes with one `sendfile` (the rest when
//!   the socket has room again), as a file server that does nothing else would.
//!
//! `cargo run --release --example floor -- [--sendfile] 127.0.0.1:8099 [FILE]`

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::net::TcpListener;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use ringserve::sys;

const LISTENER: u64 = u64::MAX;

/// A connection: its socket, the tail of its input that may begin a head's end marker, and the
/// range of the file still to send.
struct Client {
    sock: OwnedFd,
    carry: Vec<u8>,
    pending: Option<(u64, u64)>,
}

/// What is served: the fixed answers, the memfd holding them (`--sendfile`: the response at
/// offset 0, the closing one after it), and the file ranges come from.
struct Answers {
    response: Vec<u8>,
    closing: Vec<u8>,
    memfd: Option<File>,
    file: Option<(File, u64)>,
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1).peekable();
    let sendfile = args.next_if_eq("--sendfile").is_some();
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8099".into());
    let file = match args.next() {
        Some(path) => {
            let file = File::open(&path)?;
            let size = file.metadata()?.size();
            Some((file, size))
        }
        None => None,
    };
    let listener = TcpListener::bind(&addr)?;
    listener.set_nonblocking(true)?;
    // Accepted sockets inherit it, as ringserve's do.
    socket2::SockRef::from(&listener).set_tcp_nodelay(true)?;
    eprintln!("floor: listening on {}", listener.local_addr()?);
    let mut response = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
        Content-Length: 1024\r\n\r\n"
        .to_vec();
    response.resize(response.len() + 1024, b'x');
    let mut closing = response.clone();
    closing.splice(17..17, b"Connection: close\r\n".iter().copied());
    // Writability is only waited for when a range can fill the socket: registered from the
    // start, as nginx does, so that the fixed answer's runs see no events they do not need.
    let mut edge = libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET;
    if file.is_some() {
        edge |= libc::EPOLLOUT;
    }
    let memfd = if sendfile {
        let mut memfd = sys::memfd("floor")?;
        memfd.write_all(&response)?;
        memfd.write_all(&closing)?;
        Some(memfd)
    } else {
        None
    };
    let answers = Answers {
        response,
        closing,
        memfd,
        file,
    };

    let ep = sys::epoll_create()?;
    sys::epoll_add(ep.as_fd(), listener.as_fd(), libc::EPOLLIN as u32, LISTENER)?;
    let mut clients: HashMap<u64, Client> = HashMap::new();
    let mut next = 0u64;
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = sys::epoll_wait(ep.as_fd(), &mut events, -1)?;
        for ev in &events[..n] {
            let token = ev.u64;
            if token == LISTENER {
                while let Ok(sock) = sys::accept(listener.as_fd()) {
                    sys::epoll_add(ep.as_fd(), sock.as_fd(), edge as u32, next)?;
                    let (carry, pending) = (Vec::new(), None);
                    clients.insert(
                        next,
                        Client {
                            sock,
                            carry,
                            pending,
                        },
                    );
                    next += 1;
                }
                continue;
            }
            let Some(client) = clients.get_mut(&token) else {
                continue;
            };
            if !serve(client, &mut buf, &answers) {
                clients.remove(&token);
            }
        }
    }
}

/// Sends what is pending, then answers each complete head the client sent, until the socket
/// is full or the input runs out; `false` once the connection is to be closed.
fn serve(client: &mut Client, buf: &mut [u8], answers: &Answers) -> bool {
    // A read shorter than the buffer emptied the socket: with edge-triggered events the next
    // data brings a new event, so reading on until EAGAIN would only cost a call (as nginx).
    let mut drained = false;
    loop {
        match flush(client, answers) {
            Ok(true) => {}
            Ok(false) => return true,
            Err(_) => return false,
        }
        if let Some(end) = memchr::memmem::find(&client.carry, b"\r\n\r\n") {
            let head = &client.carry[..end];
            let close = memchr::memmem::find(head, b"close").is_some();
            let range = answers
                .file
                .as_ref()
                .and_then(|(_, size)| range(head, *size));
            let sent = match range {
                Some((first, last, size)) => {
                    let mut head = [0u8; 256];
                    let len = {
                        let mut w = &mut head[..];
                        let _ = write!(
                            w,
                            "HTTP/1.1 206 Partial Content\r\nContent-Type: \
                             application/octet-stream\r\nContent-Range: bytes \
                             {first}-{last}/{size}\r\nContent-Length: {}\r\n\r\n",
                            last - first + 1
                        );
                        256 - w.len()
                    };
                    client.pending = Some((first, last - first + 1));
                    // Without MSG_MORE, as nginx without tcp_nopush: with it the head waits in
                    // the buffer the range's first pages join, the 17 pages of a 64 KiB range
                    // then span two, and TCP's pacing (BBR) holds the second for a timer,
                    // which tripled this floor's cost per range.
                    sys::send(client.sock.as_fd(), &head[..len], false)
                }
                None => answer(client, answers, close),
            };
            if sent.is_err() || close {
                return false;
            }
            client.carry.drain(..end + 4);
            continue;
        }
        if drained {
            return true;
        }
        match sys::recv(client.sock.as_fd(), buf) {
            Ok(0) => return false,
            Ok(n) => {
                client.carry.extend_from_slice(&buf[..n]);
                drained = n < buf.len();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
}

/// Sends the fixed answer (the closing one if `close`), from memory or from the memfd.
fn answer(client: &Client, answers: &Answers, close: bool) -> io::Result<usize> {
    let sock = client.sock.as_fd();
    let (at, bytes) = if close {
        (answers.response.len() as u64, &answers.closing)
    } else {
        (0, &answers.response)
    };
    match &answers.memfd {
        Some(memfd) => sys::sendfile(sock, memfd.as_fd(), at, bytes.len() as u64),
        None => sys::send(sock, bytes, false),
    }
}

/// Sends the pending range of the file; `Ok(false)` while the socket is full.
fn flush(client: &mut Client, answers: &Answers) -> io::Result<bool> {
    let (Some((at, left)), Some((file, _))) = (client.pending, &answers.file) else {
        return Ok(true);
    };
    match sys::sendfile(client.sock.as_fd(), file.as_fd(), at, left) {
        Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
        Ok(n) if n as u64 == left => {
            client.pending = None;
            Ok(true)
        }
        Ok(n) => {
            client.pending = Some((at + n as u64, left - n as u64));
            Ok(false)
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    }
}

/// `(first, last, size)` of a head's `Range: bytes=first-last` within a file of `size` bytes.
fn range(head: &[u8], size: u64) -> Option<(u64, u64, u64)> {
    const FIELD: &[u8] = b"\r\nRange: bytes=";
    let at = memchr::memmem::find(head, FIELD)? + FIELD.len();
    let spec = &head[at..];
    let spec = &spec[..memchr::memchr(b'\r', spec).unwrap_or(spec.len())];
    let dash = memchr::memchr(b'-', spec)?;
    let number = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<u64>().ok();
    let (first, last) = (number(&spec[..dash])?, number(&spec[dash + 1..])?);
    (first <= last && last < size).then_some((first, last, size))
}
