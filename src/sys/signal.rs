//! Signals: blocked in every thread and taken by one thread with `sigwait`, so that no
//! handler ever runs on a worker.

use std::io;

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
