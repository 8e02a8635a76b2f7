//! Sockets: non-blocking send and receive, dropping unwanted input in the kernel,
//! `sendfile(2)` and `accept4(2)`, and what a socket says of itself. Sending and receiving
//! go through `rustix`'s direct syscalls, without libc's thread-cancellation check per call.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use rustix::net::{RecvFlags, SendFlags};

use super::cvt;

/// Non-blocking `send(2)` of `buf`; `more` sets `MSG_MORE` so a body that follows can share
/// the head's segments. Never raises SIGPIPE.
pub fn send(sock: BorrowedFd<'_>, buf: &[u8], more: bool) -> io::Result<usize> {
    let mut flags = SendFlags::NOSIGNAL | SendFlags::DONTWAIT;
    if more {
        flags |= SendFlags::MORE;
    }
    Ok(rustix::net::send(sock, buf, flags)?)
}

/// Non-blocking `recv(2)` into `buf`.
pub fn recv(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    Ok(rustix::net::recv(sock, buf, RecvFlags::DONTWAIT)?.0)
}

/// Drops everything queued on a (non-blocking) TCP socket in one `recv(2)` with
/// `MSG_TRUNC`, which for TCP discards the data instead of copying it (tcp(7)). Returns the
/// bytes dropped; 0 means the peer has closed.
pub fn discard(sock: BorrowedFd<'_>) -> io::Result<usize> {
    // SAFETY: with MSG_TRUNC, TCP's receive path skips the copy to the caller's buffer, so
    // the null buffer is never touched; only the length bounds what is dropped.
    cvt(unsafe {
        libc::recv(
            sock.as_raw_fd(),
            std::ptr::null_mut(),
            1 << 30,
            libc::MSG_TRUNC | libc::MSG_DONTWAIT,
        )
    })
}

/// Largest count one `sendfile(2)` call accepts on Linux.
pub const SENDFILE_MAX: u64 = 0x7fff_f000;

/// `sendfile(2)` of up to `len` bytes of `file` at `offset` to the (non-blocking) socket, or to
/// another file (a prebuilt response's memfd). The bytes go from the page cache to the socket
/// inside the kernel: no copy through user space.
pub fn sendfile(
    sock: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: u64,
    len: u64,
) -> io::Result<usize> {
    let mut off = offset;
    let count = len.min(SENDFILE_MAX) as usize;
    Ok(rustix::fs::sendfile(sock, file, Some(&mut off), count)?)
}

/// `accept4(2)` of one pending connection on a non-blocking listener, itself non-blocking and
/// close-on-exec.
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: no address is requested (null pointers are allowed).
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether TCP paces its own transmissions on connections accepted from `listener`: its
/// congestion control is BBR, which asks for pacing (done by TCP itself where the `fq` qdisc
/// does not), read with `TCP_CONGESTION`. Accepted connections inherit the listener's.
pub fn paces_itself(listener: BorrowedFd<'_>) -> bool {
    socket2::SockRef::from(&listener)
        .tcp_congestion()
        .is_ok_and(|cc| cc.starts_with(b"bbr"))
}

/// The peer's IP address, unspecified if it cannot be had.
pub fn peer_ip(sock: BorrowedFd<'_>) -> IpAddr {
    socket2::SockRef::from(&sock)
        .peer_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip())
}
