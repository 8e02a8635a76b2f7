//! The I/O engine: the worker loop, its two backends and the transport of a connection.
//! With `crate::sys`, the only home of `unsafe` in the crate: the io_uring boundary.
//!
//! A worker ([`run_worker`]) runs one thread on its own listeners, on io_uring where the
//! kernel allows it ([`choose_backend`]) and on epoll + sendfile(2) otherwise. Both backends
//! share one loop (reloads, deadlines, drain, wait) and drive the same [`conn::Conn`]
//! transport, which carries out what each connection's sans-I/O HTTP/1 session
//! (`crate::http::h1`) decides; they differ only in how they learn that a socket is
//! readable or writable. Start-up, signals and the admin listener are the `server`'s.

#[allow(unsafe_code)] // the ring boundary: buffers shared with the kernel
mod bufring;
pub mod conn;
mod conns;
mod epoll;
mod exchange;
mod out_pool;
mod pipes;
mod prebuilt;
mod reactor;
mod receiving;
pub mod reload;
mod send;
pub mod timer;
mod tls;
#[allow(unsafe_code)] // the ring boundary: submissions that lend the kernel memory
mod uring;
pub mod worker;

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use crate::config::{AccessLog as LogDest, BackendChoice, Config};
use reload::Watch;

use worker::Worker;

/// Shutdown request shared by the signal thread, the admin listener and the workers.
#[derive(Clone, Default)]
pub struct Shutdown {
    requested: Arc<AtomicBool>,
}

impl Shutdown {
    /// Asks every worker to drain (each sees it at its next loop turn: wake them).
    pub fn request(&self) {
        self.requested.store(true, Ordering::Release);
    }

    /// Whether a shutdown was requested.
    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    /// The flag itself, for readers outside the engine (the admin listener's `/readyz`).
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.requested)
    }
}

/// Everything a worker thread starts with.
pub struct WorkerSetup {
    /// The worker's listening sockets (non-blocking): plain HTTP, then HTTPS.
    pub listeners: Vec<OwnedFd>,
    /// Index of the first HTTPS listener in `listeners`.
    pub tls_from: usize,
    /// The eventfd other threads wake it with.
    pub wake: OwnedFd,
    /// Its per-worker state.
    pub worker: Worker,
    /// The server-wide shutdown request.
    pub shutdown: Shutdown,
    /// Where it finds reloaded configurations.
    pub reload: Watch,
    /// Whether connections need their client's address ([`want_peer`]).
    pub want_peer: bool,
    /// Most connections this worker holds at once: its share of `--max-conns`.
    pub max_conns: usize,
}

/// The backend the workers run on, and why.
pub enum Chosen {
    /// io_uring, with every feature the worker needs.
    Uring,
    /// epoll, for the reason given.
    Epoll(String),
}

/// Whether connections need their client's address looked up: for the access log or a policy.
pub fn want_peer(config: &Config) -> bool {
    config.access_log != LogDest::Off || config.policy.needs_peer()
}

/// Runs worker `i` on the `chosen` backend until the server has shut down and drained.
/// Once the backend is set up, `ready` gets the line to print about it (or the error).
pub fn run_worker(
    i: usize,
    setup: WorkerSetup,
    chosen: &Chosen,
    ready: mpsc::Sender<io::Result<String>>,
) -> io::Result<()> {
    match chosen {
        Chosen::Uring => {
            let info = match uring::setup() {
                Ok(info) => info,
                Err(e) => {
                    let e = io::Error::new(e.kind(), format!("worker {i}: io_uring setup: {e}"));
                    let _ = ready.send(Err(io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
            };
            setup.worker.metrics.set_backend("uring");
            let _ = ready.send(Ok(format!("worker {i}: backend uring ({})", info.features)));
            uring::run(setup, info)
        }
        Chosen::Epoll(why) => {
            setup.worker.metrics.set_backend("epoll");
            let _ = ready.send(Ok(format!("worker {i}: backend epoll ({why})")));
            epoll::run(setup)
        }
    }
}

/// Picks the backend: the ring when it can be set up and has every feature the worker needs,
/// epoll otherwise (unless the ring was demanded).
pub fn choose_backend(choice: BackendChoice) -> io::Result<Chosen> {
    if choice == BackendChoice::Epoll {
        return Ok(Chosen::Epoll("requested with --backend epoll".into()));
    }
    let why = match uring::setup() {
        Ok(info) => match uring::check(&info) {
            Ok(()) => return Ok(Chosen::Uring),
            Err(why) => why,
        },
        Err(e) => format!("io_uring unavailable: {e}"),
    };
    if choice == BackendChoice::Uring {
        return Err(io::Error::other(format!("--backend uring: {why}")));
    }
    Ok(Chosen::Epoll(why))
}

/// Worker `i`'s share of a server-wide connection cap (0: none) split over `workers`: the
/// shares differ by at most one and add up to the cap. Each worker enforces its own share
/// exactly, with no shared counter: `SO_REUSEPORT` gives every worker its own accept queue,
/// so a worker at its share leaves new connections waiting in its queue, as nginx's
/// `worker_connections` does.
pub fn worker_share(max_conns: usize, workers: usize, i: usize) -> usize {
    if max_conns == 0 {
        return usize::MAX;
    }
    max_conns / workers + usize::from(i < max_conns % workers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_cap_shares_add_up() {
        assert_eq!(worker_share(0, 2, 0), usize::MAX);
        for (cap, workers) in [(2, 2), (5, 2), (7, 3), (1000, 7)] {
            let shares: Vec<usize> = (0..workers)
                .map(|i| worker_share(cap, workers, i))
                .collect();
            assert_eq!(shares.iter().sum::<usize>(), cap);
            assert!(shares
                .iter()
                .all(|&s| s >= cap / workers && s <= cap / workers + 1));
        }
    }
}
