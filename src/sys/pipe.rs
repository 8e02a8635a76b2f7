//! Pipes: creating them, and moving page references through them with `splice(2)`, so file
//! bytes never enter user space. The moves go through `rustix`'s direct
//! syscalls: they are on every response's path, and libc's wrappers add a thread-cancellation
//! check around each.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use rustix::pipe::SpliceFlags;

/// A non-blocking, close-on-exec pipe `(read end, write end)` resized to `size` bytes (the
/// kernel rounds up to pages and caps at `fs.pipe-max-size`; failure to resize is ignored).
pub fn pipe(size: usize) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is valid for writes of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned these descriptors to us; nobody else owns them.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: plain fcntl on a descriptor we own.
    unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, size as libc::c_int) };
    Ok((r, w))
}

/// `splice(2)` of up to `len` bytes from `file` at `offset` into a pipe, without blocking on
/// the pipe. Page references move; no byte is copied to user space.
pub fn splice_from_file(
    file: BorrowedFd<'_>,
    offset: u64,
    pipe_w: BorrowedFd<'_>,
    len: usize,
) -> io::Result<usize> {
    let mut off = offset;
    let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
    Ok(rustix::pipe::splice(
        file,
        Some(&mut off),
        pipe_w,
        None,
        len,
        flags,
    )?)
}

/// `splice(2)` of up to `len` bytes from a pipe to a socket (or to `/dev/null`, to empty the
/// pipe), without blocking; `more` hints that further data follows (like `MSG_MORE`).
pub fn splice_to_socket(
    pipe_r: BorrowedFd<'_>,
    sock: BorrowedFd<'_>,
    len: usize,
    more: bool,
) -> io::Result<usize> {
    let mut flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
    if more {
        flags |= SpliceFlags::MORE;
    }
    Ok(rustix::pipe::splice(pipe_r, None, sock, None, len, flags)?)
}

/// `splice(2)` of up to `len` bytes from a socket into a pipe, without blocking: received
/// data moves into the pipe by page reference, never through user space (zero-copy receive).
pub fn splice_from_socket(
    sock: BorrowedFd<'_>,
    pipe_w: BorrowedFd<'_>,
    len: usize,
) -> io::Result<usize> {
    let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
    Ok(rustix::pipe::splice(sock, None, pipe_w, None, len, flags)?)
}

/// `splice(2)` of up to `len` bytes from a pipe into `file` at `offset` (a regular file: the
/// write goes to the page cache as `pwrite` would, without the copy from user space).
pub fn splice_to_file(
    pipe_r: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: u64,
    len: usize,
) -> io::Result<usize> {
    let mut off = offset;
    let flags = SpliceFlags::MOVE;
    Ok(rustix::pipe::splice(
        pipe_r,
        None,
        file,
        Some(&mut off),
        len,
        flags,
    )?)
}
