//! Thin, safe wrappers around the Linux syscalls the server needs that std does not offer.
//! Every `unsafe` block of the crate that is not io_uring plumbing lives here.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// `RESOLVE_BENEATH`: refuse any resolution that would leave the directory fd (via `..`,
/// absolute paths or symlinks).
pub const RESOLVE_BENEATH: u64 = 0x08;
/// `RESOLVE_NO_MAGICLINKS`: refuse `/proc/*/fd`-style magic links.
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(2)`: opens `path` relative to `dir` with `flags` (`O_*`) and `resolve`
/// (`RESOLVE_*`) restrictions. The kernel enforces the restrictions atomically, so a concurrent
/// rename or symlink swap cannot make it open anything outside `dir`.
pub fn openat2(dir: BorrowedFd<'_>, path: &CStr, flags: i32, resolve: u64) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve,
    };
    // EAGAIN means a concurrent rename raced the RESOLVE_BENEATH check: retry a few times.
    let mut tries = 0;
    loop {
        // SAFETY: `path` is NUL-terminated, `how` is a valid `struct open_how` whose size we
        // pass; the kernel only reads both during the call.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        let err = io::Error::last_os_error();
        let retry = matches!(err.raw_os_error(), Some(libc::EINTR) | Some(libc::EAGAIN));
        tries += 1;
        if !retry || tries > 8 {
            return Err(err);
        }
    }
}

/// Converts a `-1`-on-error syscall result into `io::Result`.
fn cvt(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// Non-blocking `send(2)` of `buf`; `more` sets `MSG_MORE` so a body that follows can share
/// the head's segments. Never raises SIGPIPE.
pub fn send(sock: BorrowedFd<'_>, buf: &[u8], more: bool) -> io::Result<usize> {
    let mut flags = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
    if more {
        flags |= libc::MSG_MORE;
    }
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the duration of the call.
    cvt(unsafe { libc::send(sock.as_raw_fd(), buf.as_ptr().cast(), buf.len(), flags) })
}

/// Non-blocking `recv(2)` into `buf`.
pub fn recv(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the duration of the call.
    cvt(unsafe {
        libc::recv(
            sock.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    })
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

/// `sendfile(2)` of up to `len` bytes of `file` at `offset` to the (non-blocking) socket. The
/// bytes go from the page cache to the socket inside the kernel: no copy through user space.
pub fn sendfile(
    sock: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: u64,
    len: u64,
) -> io::Result<usize> {
    let mut off = offset as libc::off_t;
    let count = len.min(SENDFILE_MAX) as usize;
    // SAFETY: `off` is a valid, exclusively borrowed off_t for the duration of the call; both
    // descriptors are borrowed and therefore open.
    cvt(unsafe { libc::sendfile(sock.as_raw_fd(), file.as_raw_fd(), &mut off, count) })
}

/// A non-blocking, close-on-exec `eventfd(2)`, used to wake a worker from another thread.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with no pointer arguments.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds one to an eventfd's counter, waking whoever waits on it.
pub fn eventfd_signal(fd: BorrowedFd<'_>) -> io::Result<()> {
    let one: u64 = 1;
    // SAFETY: writes the 8 bytes of `one`, which outlives the call.
    cvt(unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) }).map(drop)
}

/// Resets an eventfd's counter (it is non-blocking: nothing to read is not an error).
pub fn eventfd_drain(fd: BorrowedFd<'_>) {
    let mut v: u64 = 0;
    // SAFETY: reads at most 8 bytes into `v`, which outlives the call.
    unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
}

/// What a signal the server handles asks it to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalEvent {
    /// SIGINT or SIGTERM: stop accepting, let in-flight responses finish, exit.
    Shutdown,
    /// SIGUSR1: reopen the access-log files (nginx `-s reopen`, after logrotate).
    ReopenLogs,
    /// SIGHUP: read the configuration again and apply it (nginx `-s reload`).
    Reload,
}

/// The signals the server handles and what each asks for; a new one is a line here and a
/// variant of [`SignalEvent`].
const HANDLED: [(libc::c_int, SignalEvent); 4] = [
    (libc::SIGINT, SignalEvent::Shutdown),
    (libc::SIGTERM, SignalEvent::Shutdown),
    (libc::SIGUSR1, SignalEvent::ReopenLogs),
    (libc::SIGHUP, SignalEvent::Reload),
];

/// Blocks the handled signals in the calling thread (and so in threads it spawns
/// afterwards), so that they are only ever received by [`wait_signal`]; until someone waits
/// they stay pending instead of killing the process.
pub fn block_signals() -> io::Result<()> {
    let set = handled_sigset();
    // SAFETY: `set` is an initialised sigset_t; the old mask is not requested.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Waits until a handled signal arrives (they must be blocked, see [`block_signals`]) and
/// says what it asks for.
pub fn wait_signal() -> SignalEvent {
    let set = handled_sigset();
    let mut sig: libc::c_int = 0;
    loop {
        // SAFETY: `set` and `sig` are valid for the duration of the call.
        if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
            if let Some(&(_, event)) = HANDLED.iter().find(|(s, _)| *s == sig) {
                return event;
            }
        }
    }
}

fn handled_sigset() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before sigaddset reads it; both only touch `set`.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        for (sig, _) in HANDLED {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
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

/// A close-on-exec epoll instance.
pub fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with no pointer arguments.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Registers `fd` with the epoll instance for `events`, tagged with `data`.
pub fn epoll_add(ep: BorrowedFd<'_>, fd: BorrowedFd<'_>, events: u32, data: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: data };
    // SAFETY: `ev` is a valid epoll_event for the duration of the call.
    let rc =
        unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut ev) };
    cvt(rc as libc::ssize_t).map(drop)
}

/// Waits up to `timeout_ms` for events, filling `events` (whose length is the maximum) and
/// returning how many arrived. EINTR counts as zero events.
pub fn epoll_wait(
    ep: BorrowedFd<'_>,
    events: &mut [libc::epoll_event],
    timeout_ms: i32,
) -> io::Result<usize> {
    let max = events.len().min(i32::MAX as usize) as i32;
    // SAFETY: `events` is valid for writes of `max` entries for the duration of the call.
    let n = unsafe { libc::epoll_wait(ep.as_raw_fd(), events.as_mut_ptr(), max, timeout_ms) };
    match cvt(n as libc::ssize_t) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        r => r,
    }
}

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
    let mut off = offset as libc::loff_t;
    // SAFETY: `off` is a valid, exclusively borrowed loff_t for the duration of the call.
    cvt(unsafe {
        libc::splice(
            file.as_raw_fd(),
            &mut off,
            pipe_w.as_raw_fd(),
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE,
        )
    })
}

/// `splice(2)` of up to `len` bytes from a pipe to a socket (or to `/dev/null`, to empty the
/// pipe), without blocking; `more` hints that further data follows (like `MSG_MORE`).
pub fn splice_to_socket(
    pipe_r: BorrowedFd<'_>,
    sock: BorrowedFd<'_>,
    len: usize,
    more: bool,
) -> io::Result<usize> {
    let mut flags = libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE;
    if more {
        flags |= libc::SPLICE_F_MORE;
    }
    // SAFETY: no pointer arguments besides the null offsets pipes and sockets require.
    cvt(unsafe {
        libc::splice(
            pipe_r.as_raw_fd(),
            std::ptr::null_mut(),
            sock.as_raw_fd(),
            std::ptr::null_mut(),
            len,
            flags,
        )
    })
}

/// How many descriptors the process may have open (the soft `RLIMIT_NOFILE`).
pub fn fd_limit() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for the kernel to fill in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
}

/// The size of a memory page (pipes hold one buffer per page).
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).unwrap_or(4096)
}

/// `tee(2)` of up to `len` bytes from one pipe into another, without blocking and without
/// consuming them: the second pipe gets references to the same pages, nothing is copied.
pub fn tee(from_r: BorrowedFd<'_>, to_w: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    // SAFETY: no pointer arguments; both descriptors are borrowed for the call.
    cvt(unsafe {
        libc::tee(
            from_r.as_raw_fd(),
            to_w.as_raw_fd(),
            len,
            libc::SPLICE_F_NONBLOCK,
        )
    })
}

/// Non-blocking `write(2)` of `buf` to `fd` (a pipe's write end).
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the duration of the call.
    cvt(unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) })
}

/// Removes `fd` from the epoll instance.
pub fn epoll_del(ep: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: EPOLL_CTL_DEL ignores the event pointer (null is allowed since Linux 2.6.9).
    let rc = unsafe {
        libc::epoll_ctl(
            ep.as_raw_fd(),
            libc::EPOLL_CTL_DEL,
            fd.as_raw_fd(),
            std::ptr::null_mut(),
        )
    };
    cvt(rc as libc::ssize_t).map(drop)
}

/// A user account from the password database.
#[derive(Debug)]
pub struct Account {
    /// Login name.
    pub name: CString,
    /// User id.
    pub uid: libc::uid_t,
    /// Primary group id.
    pub gid: libc::gid_t,
}

/// Looks `name` up with `getpwnam_r(3)` (so NSS sources such as LDAP work too).
pub fn lookup_user(name: &str) -> io::Result<Account> {
    let cname = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "user name contains NUL"))?;
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        // SAFETY: all-zero is a valid `struct passwd` (integers and null pointers).
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `cname` is NUL-terminated, `pwd` and `found` are valid for writes, and
        // `buf` for `buf.len()` bytes; the strings `pwd` points to live in `buf`, which we do
        // not read through `pwd` after the call.
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        };
        match rc {
            0 if found.is_null() => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no user named {name}"),
                ))
            }
            0 => {
                return Ok(Account {
                    name: cname,
                    uid: pwd.pw_uid,
                    gid: pwd.pw_gid,
                })
            }
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

/// What [`switch_user`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switched {
    /// Root was dropped for the account.
    Dropped,
    /// The process already runs as the account: nothing to do.
    AlreadyUser,
}

/// Drops root for `account` (nginx `user`): the account's supplementary groups
/// (`initgroups`), then its group, then its user id, real, effective and saved alike, and
/// checks that root cannot be regained. glibc applies each change to every thread of the
/// process. A process that is not root can only "switch" to the user it already is.
pub fn switch_user(account: &Account) -> io::Result<Switched> {
    // SAFETY: plain syscall with no arguments.
    let euid = unsafe { libc::geteuid() };
    if euid == account.uid {
        return Ok(Switched::AlreadyUser);
    }
    if euid != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("only root can switch users (running as uid {euid})"),
        ));
    }
    let check = |rc: libc::c_int, what: &str| {
        if rc == 0 {
            Ok(())
        } else {
            let e = io::Error::last_os_error();
            Err(io::Error::new(e.kind(), format!("{what}: {e}")))
        }
    };
    let (uid, gid) = (account.uid, account.gid);
    // SAFETY: `account.name` is NUL-terminated; the other calls take plain integers.
    unsafe {
        check(libc::initgroups(account.name.as_ptr(), gid), "initgroups")?;
        check(libc::setresgid(gid, gid, gid), "setresgid")?;
        check(libc::setresuid(uid, uid, uid), "setresuid")?;
    }
    // SAFETY: plain syscall with an integer argument.
    if unsafe { libc::setuid(0) } == 0 {
        return Err(io::Error::other(
            "root could be regained after switching users",
        ));
    }
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: the three pointers are valid for writes for the duration of the call.
    check(
        unsafe { libc::getresuid(&mut r, &mut e, &mut s) },
        "getresuid",
    )?;
    let (mut gr, mut ge, mut gs) = (0, 0, 0);
    // SAFETY: as above.
    check(
        unsafe { libc::getresgid(&mut gr, &mut ge, &mut gs) },
        "getresgid",
    )?;
    if [r, e, s] != [uid; 3] || [gr, ge, gs] != [gid; 3] {
        return Err(io::Error::other("user or group ids did not all change"));
    }
    Ok(Switched::Dropped)
}

/// Takes ownership of descriptor `fd`, inherited from the parent (socket activation),
/// after checking that it is open.
///
/// # Safety
/// Nothing else in the process may own or use `fd`: call it once per descriptor, at
/// start-up, for descriptors the process did not open itself.
pub unsafe fn adopt_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only reads the descriptor's flags; it fails with EBADF if not open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("descriptor {fd}: {e}")));
    }
    // SAFETY: the descriptor is open and, by the caller's promise, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_users() {
        let root = lookup_user("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        let err = lookup_user("no-such-user-ringserve").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        assert!(lookup_user("a\0b").is_err());
    }

    #[test]
    fn switching_to_oneself_is_a_no_op() {
        // SAFETY: plain syscalls with no arguments.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let me = Account {
            name: CString::new("me").unwrap(),
            uid,
            gid,
        };
        assert_eq!(switch_user(&me).unwrap(), Switched::AlreadyUser);
    }
}
