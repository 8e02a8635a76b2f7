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

/// Reads the process's resident set against the memory limit of its cgroup (v2
/// `memory.max`, v1 `memory.limit_in_bytes`): past that limit the kernel reclaims and then
/// kills the process (an allocation does not fail), so the engine turns connections away
/// before it ([`crate::policy::memory`]).
pub struct MemoryProbe {
    statm: Option<std::fs::File>,
    /// The limit's file, read each time (it may be changed while the server runs).
    limit: Option<std::fs::File>,
    page: u64,
}

impl MemoryProbe {
    /// A probe; which cgroup the process is in is read once, here.
    pub fn open() -> MemoryProbe {
        let limit = std::fs::read_to_string("/proc/self/cgroup")
            .ok()
            .and_then(|cgroups| memory_cgroup(&cgroups))
            .and_then(|(dir, file)| std::fs::File::open(format!("{dir}/{file}")).ok());
        MemoryProbe {
            statm: std::fs::File::open("/proc/self/statm").ok(),
            limit,
            page: page_size() as u64,
        }
    }

    /// `(used, limit)` in bytes, the resident set against the cgroup's limit; `None` when
    /// there is no limit (or the usage cannot be read).
    pub fn pressure(&self) -> Option<(u64, u64)> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 128];
        let n = self.limit.as_ref()?.read_at(&mut buf, 0).ok()?;
        let max: u64 = std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()?;
        if max >= 1 << 60 {
            return None; // v1 says "no limit" with a huge number (v2 with "max")
        }
        let n = self.statm.as_ref()?.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(&buf[..n]).ok()?;
        let resident: u64 = text.split_ascii_whitespace().nth(1)?.parse().ok()?;
        Some((resident * self.page, max))
    }
}

/// The directory of the memory cgroup that `cgroups` (the text of `/proc/self/cgroup`) names,
/// and the name of its limit file in it: the v1 memory controller's where it is mounted on its
/// own (hybrid hierarchies), else the v2 one's.
pub fn memory_cgroup(cgroups: &str) -> Option<(String, &'static str)> {
    let v1 = cgroups.lines().find_map(|l| {
        let (_, rest) = l.split_once(':')?;
        let (controllers, path) = rest.split_once(':')?;
        controllers
            .split(',')
            .any(|c| c == "memory")
            .then_some(path)
    });
    match v1 {
        Some(path) => Some((
            format!("/sys/fs/cgroup/memory{path}"),
            "memory.limit_in_bytes",
        )),
        None => {
            let path = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
            Some((format!("/sys/fs/cgroup{path}"), "memory.max"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_file_follows_the_hierarchy() {
        let hybrid = "4:memory:/a/b\n1:cpu:/\n0::/\n";
        assert_eq!(
            memory_cgroup(hybrid),
            Some(("/sys/fs/cgroup/memory/a/b".into(), "memory.limit_in_bytes"))
        );
        let v2 = "0::/system.slice/ringserve.service\n";
        assert_eq!(
            memory_cgroup(v2),
            Some((
                "/sys/fs/cgroup/system.slice/ringserve.service".into(),
                "memory.max"
            ))
        );
        assert_eq!(memory_cgroup(""), None);
    }
}
