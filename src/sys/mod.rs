//! Thin, safe wrappers around the Linux syscalls the server needs that std and `rustix` do not
//! offer as it needs them. With the io_uring boundary in `engine`, the only place of the crate
//! allowed `unsafe` (the crate denies it everywhere else); each block says why it is sound.

mod event;
mod file;
mod ktls;
mod pipe;
mod process;
mod signal;
mod socket;
mod user;
mod watch;

use std::io;

pub use event::{
    epoll_add, epoll_create, epoll_del, epoll_wait, eventfd, eventfd_drain, eventfd_signal,
};
pub use file::{lock_exclusive, memfd, openat2, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS};
pub use ktls::{ktls_close_notify, ktls_install, probe_ktls, CryptoInfo, KtlsCipher, KtlsCiphers};
pub use pipe::{pipe, splice_from_file, splice_from_socket, splice_to_file, splice_to_socket};
pub use process::{clock_ticks, fd_limit, memory_cgroup, page_size, take_inherited, MemoryProbe};
pub use signal::{block_signals, wait_signal, SignalEvent};
pub use socket::{accept, discard, paces_itself, peer_ip, recv, send, sendfile, SENDFILE_MAX};
pub use user::{lookup_user, switch_user, Account, Switched};
pub use watch::{Change, Watcher};

/// Converts a `-1`-on-error syscall result into `io::Result`.
fn cvt(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}
