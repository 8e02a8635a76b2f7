//! The benchmark's floor (`scripts/bench.sh`, server `floor`): the cheapest HTTP/1.1 responder
//! one can write, for comparing ringserve's cost per small request with what no server can go
//! below on the same machine. One thread, epoll (edge-triggered), one fixed 1 KiB response held
//! in memory, one `send` per request head; no file, no parsing beyond finding each head's end
//! (and `close` in it, for the churn scenario), no date, no log. It answers every path the same,
//! and does not retry a short send (a 1 KiB answer always fits a loopback socket buffer).
//!
//! `cargo run --release --example floor -- 127.0.0.1:8099`

use std::collections::HashMap;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsFd, OwnedFd};

use ringserve::sys;

const LISTENER: u64 = u64::MAX;

/// A connection: its socket, and the tail of its input that may begin a head's end marker.
struct Client {
    sock: OwnedFd,
    carry: Vec<u8>,
}

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8099".into());
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

    let ep = sys::epoll_create()?;
    let edge = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
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
                    sys::epoll_add(ep.as_fd(), sock.as_fd(), edge, next)?;
                    let carry = Vec::new();
                    clients.insert(next, Client { sock, carry });
                    next += 1;
                }
                continue;
            }
            let Some(client) = clients.get_mut(&token) else {
                continue;
            };
            if !serve(client, &mut buf, &response, &closing) {
                clients.remove(&token);
            }
        }
    }
}

/// Reads what the client sent and answers each complete head; `false` once it is closed.
fn serve(client: &mut Client, buf: &mut [u8], response: &[u8], closing: &[u8]) -> bool {
    loop {
        let n = match sys::recv(client.sock.as_fd(), buf) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        };
        client.carry.extend_from_slice(&buf[..n]);
        let mut start = 0;
        while let Some(end) = memchr::memmem::find(&client.carry[start..], b"\r\n\r\n") {
            let head = &client.carry[start..start + end];
            let close = memchr::memmem::find(head, b"close").is_some();
            let answer = if close { closing } else { response };
            if sys::send(client.sock.as_fd(), answer, false).is_err() || close {
                return false;
            }
            start += end + 4;
        }
        client.carry.drain(..start);
    }
}
