//! The process: its limits and page size, and the descriptors it inherits (systemd socket
//! activation).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

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

/// Clock ticks per second, the unit of the CPU times in `/proc` (`sysconf(_SC_CLK_TCK)`).
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(n).ok().filter(|&n| n > 0).unwrap_or(100)
}

/// Set once inherited descriptors have been taken: they may be owned only once.
static INHERITED_TAKEN: AtomicBool = AtomicBool::new(false);

/// Takes ownership of the `n` descriptors from `first` on that the process inherited from
/// its parent (socket activation), after checking that each is open. Only the first call
/// in a process may take them; any later one fails, so no descriptor gets two owners.
pub fn take_inherited(first: RawFd, n: usize) -> io::Result<Vec<OwnedFd>> {
    if INHERITED_TAKEN.swap(true, Ordering::SeqCst) {
        return Err(io::Error::other("inherited descriptors were already taken"));
    }
    let mut fds = Vec::with_capacity(n);
    for fd in (first..).take(n) {
        // SAFETY: F_GETFD only reads the descriptor's flags; it fails with EBADF if not open.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("descriptor {fd}: {e}")));
        }
        // SAFETY: the descriptor is open, was inherited rather than opened by this process,
        // and is taken here once (the flag above), so nothing else owns it.
        fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    Ok(fds)
}
