//! Files: `openat2(2)` with resolution restrictions, which keeps path lookups beneath the
//! served root even against concurrent renames and symlink swaps.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

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

/// Takes an exclusive open-file-description lock (`F_OFD_SETLK`, whole file) on `fd` without
/// waiting: `Ok(false)` when another open description holds one. Unlike `flock` or a
/// POSIX `F_SETLK`, an OFD lock belongs to the open file, so two threads of one process
/// exclude each other, and (unlike `flock`) it is honoured by NFS and CephFS across nodes.
/// It goes away when the last descriptor of that open file is closed.
pub fn lock_exclusive(fd: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: `flock` is plain data; all-zero is a valid value (l_start = l_len = 0 means
    // the whole file, and F_OFD_* require l_pid = 0).
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: `fd` is a valid descriptor for the call and `lock` a valid `struct flock` the
    // kernel only reads.
    let ret = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &lock) };
    if ret == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        _ => Err(err),
    }
}

/// A new, empty file in memory (`memfd_create(2)`, close-on-exec), named `name` in
/// `/proc/self/fd`: where prebuilt responses are kept, so they go out with one `sendfile`.
pub fn memfd(name: &str) -> io::Result<std::fs::File> {
    let fd = rustix::fs::memfd_create(name, rustix::fs::MemfdFlags::CLOEXEC)?;
    Ok(std::fs::File::from(fd))
}
