//! Binding the listeners: one `SO_REUSEPORT` socket per worker and address.

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use socket2::{Domain, Protocol, Socket, Type};

/// Binds every address of `addrs` once per worker (of `workers`), all with `SO_REUSEPORT`.
/// The first socket of an address with port 0 picks the port; the others bind to that same
/// port. Returns the listeners grouped per worker, and the addresses actually bound.
pub fn bind_all(
    addrs: &[SocketAddr],
    workers: usize,
) -> io::Result<(Vec<Vec<OwnedFd>>, Vec<SocketAddr>)> {
    let mut per_worker: Vec<Vec<OwnedFd>> = (0..workers).map(|_| Vec::new()).collect();
    let mut bound = Vec::new();
    for &wanted in addrs {
        let mut addr = wanted;
        for listeners in per_worker.iter_mut() {
            let sock = listen(addr)
                .map_err(|e| io::Error::new(e.kind(), format!("listen on {wanted}: {e}")))?;
            addr = sock.local_addr()?.as_socket().unwrap_or(addr);
            listeners.push(sock.into());
        }
        bound.push(addr);
    }
    Ok((per_worker, bound))
}

fn listen(addr: SocketAddr) -> io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    sock.set_nonblocking(true)?;
    // Accepted sockets inherit TCP_NODELAY: the last segment of a response must not wait for
    // the client's delayed ACK.
    sock.set_tcp_nodelay(true)?;
    sock.bind(&addr.into())?;
    sock.listen(4096)?;
    Ok(sock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn reuseport_listeners_share_a_picked_port() {
        let a = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = a.local_addr().unwrap().as_socket().unwrap();
        let b = listen(addr).unwrap();
        assert_eq!(b.local_addr().unwrap().as_socket(), Some(addr));
    }

    #[test]
    fn accepted_sockets_inherit_nodelay() {
        let l: TcpListener = listen("127.0.0.1:0".parse().unwrap()).unwrap().into();
        l.set_nonblocking(false).unwrap();
        let _client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (accepted, _) = l.accept().unwrap();
        assert!(accepted.nodelay().unwrap());
    }
}
