//! systemd socket activation (`sd_listen_fds(3)`): listening sockets handed over by the
//! service manager as descriptors 3, 4, ... (`LISTEN_FDS` of them, for the process whose pid
//! is `LISTEN_PID`), used instead of binding the `--listen` addresses.
//!
//! Key design decision: each passed socket is shared by all workers, each holding a `dup` of
//! it, rather than joined by per-worker `SO_REUSEPORT` sockets bound to the same address.
//! Joining a reuseport group takes the user that bound the first socket (systemd, as root)
//! and the privilege to bind the port, which socket activation exists to do without, and
//! sockets systemd does not hold would lose their queued connections on a restart. A shared
//! accept queue is safe on both backends and does not wake every worker per connection:
//! io_uring's accept waits exclusively, and epoll registers listeners with `EPOLLEXCLUSIVE`.

use std::ffi::OsString;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use socket2::{Protocol, SockRef, Type};

use crate::sys;

/// The first passed descriptor (`SD_LISTEN_FDS_START`).
const FIRST_FD: RawFd = 3;

/// The variables of the protocol, removed once read so that no child inherits them.
const VARS: [&str; 3] = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"];

/// Takes the listening sockets passed by systemd, if this process was given any, checked
/// and made non-blocking and close-on-exec. Call it once, before any thread is spawned (it
/// removes the protocol's variables from the environment).
pub fn take() -> io::Result<Option<Vec<OwnedFd>>> {
    let pid = std::env::var_os("LISTEN_PID");
    let fds = std::env::var_os("LISTEN_FDS");
    for var in VARS {
        std::env::remove_var(var);
    }
    let Some(n) = count(pid, fds, std::process::id()).map_err(io::Error::other)? else {
        return Ok(None);
    };
    let mut sockets = Vec::with_capacity(n);
    // Descriptors from 3 on were opened by the service manager for us.
    for owned in sys::take_inherited(FIRST_FD, n)? {
        sockets.push(prepare(owned)?);
    }
    Ok(Some(sockets))
}

/// How many sockets `LISTEN_PID` and `LISTEN_FDS` pass to process `me`: none unless the
/// pid is `me` (the variables may have been meant for a parent).
fn count(pid: Option<OsString>, fds: Option<OsString>, me: u32) -> Result<Option<usize>, String> {
    let (Some(pid), Some(fds)) = (pid, fds) else {
        return Ok(None);
    };
    if pid.to_str().and_then(|p| p.parse::<u32>().ok()) != Some(me) {
        return Ok(None);
    }
    let n = fds
        .to_str()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n <= 1024)
        .ok_or_else(|| format!("socket activation: invalid LISTEN_FDS {fds:?}"))?;
    Ok((n > 0).then_some(n))
}

/// Checks that `fd` is a listening TCP socket and readies it like the server's own: non-
/// blocking, close-on-exec, and `TCP_NODELAY` for the sockets it accepts.
fn prepare(fd: OwnedFd) -> io::Result<OwnedFd> {
    let raw = fd.as_raw_fd();
    let sock = SockRef::from(&fd);
    let tcp_listener = sock.r#type().ok() == Some(Type::STREAM)
        && sock.protocol().ok().flatten() == Some(Protocol::TCP)
        && sock.is_listener().unwrap_or(false);
    if !tcp_listener {
        return Err(io::Error::other(format!(
            "socket activation: descriptor {raw} is not a listening TCP socket"
        )));
    }
    sock.set_nonblocking(true)?;
    sock.set_cloexec(true)?;
    sock.set_tcp_nodelay(true)?;
    Ok(fd)
}

/// The address a passed socket is bound to.
pub fn local_addr(fd: &OwnedFd) -> io::Result<SocketAddr> {
    SockRef::from(fd)
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("socket activation: not an IP socket"))
}

/// Gives each of `workers` workers a descriptor of every passed socket (one shared accept
/// queue per socket, see the module doc). Returns the descriptors per worker and the
/// sockets' addresses.
pub fn share(
    sockets: Vec<OwnedFd>,
    workers: usize,
) -> io::Result<(Vec<Vec<OwnedFd>>, Vec<SocketAddr>)> {
    let mut per_worker: Vec<Vec<OwnedFd>> = (0..workers).map(|_| Vec::new()).collect();
    let mut addrs = Vec::new();
    for sock in sockets {
        addrs.push(local_addr(&sock)?);
        for listeners in per_worker.iter_mut() {
            listeners.push(sock.try_clone()?);
        }
    }
    Ok((per_worker, addrs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, UdpSocket};

    fn os(s: &str) -> Option<OsString> {
        Some(s.into())
    }

    #[test]
    fn counts_only_sockets_meant_for_us() {
        assert_eq!(count(None, None, 7), Ok(None));
        assert_eq!(count(os("7"), None, 7), Ok(None));
        assert_eq!(count(os("7"), os("2"), 7), Ok(Some(2)));
        assert_eq!(
            count(os("8"), os("2"), 7),
            Ok(None),
            "meant for another process"
        );
        assert_eq!(count(os("x"), os("2"), 7), Ok(None));
        assert_eq!(count(os("7"), os("0"), 7), Ok(None));
        assert!(count(os("7"), os("two"), 7).is_err());
        assert!(count(os("7"), os("-1"), 7).is_err());
    }

    #[test]
    fn accepts_only_listening_tcp_sockets() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let fd = prepare(OwnedFd::from(listener)).unwrap();
        assert!(SockRef::from(&fd).nonblocking().unwrap());
        assert_eq!(local_addr(&fd).unwrap(), addr);
        let (shared, addrs) = share(vec![fd], 3).unwrap();
        assert_eq!(addrs, vec![addr]);
        assert_eq!(shared.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1, 1]);

        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(prepare(OwnedFd::from(udp)).is_err());
        let bound = socket2::Socket::new(socket2::Domain::IPV4, Type::STREAM, None).unwrap();
        bound
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        assert!(
            prepare(OwnedFd::from(bound)).is_err(),
            "bound, not listening"
        );
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(prepare(OwnedFd::from(file)).is_err());
    }
}
