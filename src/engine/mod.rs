//! The I/O engine: worker threads and their backends. With `crate::sys`, the only home of
//! `unsafe` in the crate: the io_uring boundary.
//!
//! [`run`] binds one `SO_REUSEPORT` listener per worker and address (so the kernel spreads
//! connections over workers with no shared accept lock), picks the backend — io_uring where
//! the kernel allows it, epoll + sendfile(2) otherwise — and runs one worker thread per core
//! until SIGINT/SIGTERM, then drains. Both backends drive the same [`conn::Conn`] state
//! machine; they differ only in how they learn that a socket is readable or writable.
//!
//! Start-up opens everything that may need root first — listeners (or the sockets systemd
//! passed, see `activation`), the root directory, log files, the admin socket — then drops
//! to `--user`, and only then starts the workers, so no request is ever served as root.
//! Signals are blocked in every thread and taken by one thread with `sigwait`, which turns
//! each into a [`sys::SignalEvent`] and wakes the workers through their eventfds. On SIGHUP
//! that thread reads and checks the configuration again and hands it to the workers, which
//! swap it in between two loop turns (see [`reload`]).

pub mod access_log;
mod activation;
#[allow(unsafe_code)] // the ring boundary: buffers shared with the kernel
mod bufring;
pub mod conn;
mod conns;
mod epoll;
mod out_pool;
mod pipes;
mod prebuilt;
pub mod reload;
mod send;
pub mod timer;
#[allow(unsafe_code)] // the ring boundary: submissions that lend the kernel memory
mod uring;

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::admin::{self, AdminState};
use crate::config::{AccessLog as LogDest, BackendChoice, Config, Sources};
use crate::fs::{FileCache, Root};
use crate::metrics::{WorkerHandle, WorkerMetrics};
use crate::policy::{self, Policy};
use crate::serve::Handler;
use crate::sys::{self, SignalEvent};
use access_log::{AccessLog, Reopen};
use reload::{Reloader, Reloads, Update, Watch};

use conn::Worker;
use timer::TimerKey;

/// Shutdown request shared by the signal thread and the workers.
#[derive(Clone, Default)]
pub struct Shutdown {
    requested: Arc<AtomicBool>,
}

/// Everything a worker thread starts with.
pub struct WorkerSetup {
    listeners: Vec<OwnedFd>,
    wake: OwnedFd,
    worker: Worker,
    shutdown: Shutdown,
    reload: Watch,
    want_peer: bool,
    /// Most connections this worker holds at once: its share of `--max-conns`.
    max_conns: usize,
}

/// The backend the workers run on, and why.
enum Chosen {
    Uring,
    Epoll(String),
}

/// Runs the server until SIGINT/SIGTERM and the drain that follows; on SIGHUP, reads the
/// configuration again from `sources`, where `config` came from.
pub fn run(config: Config, sources: Sources) -> io::Result<()> {
    // First of all, so that a SIGUSR1 from logrotate during start-up stays pending instead
    // of killing the process.
    sys::block_signals()?;
    let activated = activation::take()?;
    let config = Arc::new(config);
    let root = |c: &Config| {
        Root::open(&c.root, c.dotfiles)
            .map_err(|e| io::Error::new(e.kind(), format!("root {}: {e}", c.root.display())))
    };
    root(&config)?;
    let (listeners, bound) = match activated {
        Some(sockets) => {
            eprintln!(
                "ringserve: serving on {} socket(s) passed by the service manager (--listen \
                 ignored)",
                sockets.len()
            );
            activation::share(sockets, config.workers)?
        }
        None => bind_all(&config)?,
    };

    let shutdown = Shutdown::default();
    let reopen = Reopen::default();
    let metrics = WorkerMetrics::for_workers(config.workers);
    let shared = policy::Shared::new(&config.policy);
    let reloads = Arc::new(Reloads::default());
    let mut wakes = Vec::new();
    let mut setups = Vec::new();
    for (i, listeners) in listeners.into_iter().enumerate() {
        let wake = sys::eventfd()?;
        wakes.push(wake.try_clone()?);
        setups.push(WorkerSetup {
            listeners,
            wake,
            worker: Worker::new(
                Handler::new(
                    root(&config)?,
                    FileCache::new(config.open_file_cache, config.open_file_cache_valid),
                )
                .with_content(config.content.clone()),
                config.clone(),
                access_log(&config, &reopen)?,
                Policy::new(config.policy.clone(), shared.clone()),
                WorkerHandle::new(&metrics, i).ok_or_else(|| io::Error::other("worker index"))?,
            ),
            shutdown: shutdown.clone(),
            reload: Watch::new(reloads.clone(), i),
            want_peer: want_peer(&config),
            max_conns: worker_share(config.policy.max_conns, config.workers, i),
        });
    }
    let admin = match config.admin {
        Some(addr) => Some((
            admin::bind(addr)?,
            AdminState {
                metrics: metrics.clone(),
                draining: shutdown.requested.clone(),
                root: Arc::new(Mutex::new(root(&config)?)),
                started: Instant::now(),
            },
        )),
        None => None,
    };
    let admin_root = admin.as_ref().map(|(_, state)| state.root.clone());
    if let Some(name) = &config.user {
        switch_user(name)?;
    }
    let chosen = choose_backend(config.backend)?;

    let (done_tx, done_rx) = mpsc::channel::<io::Result<()>>();
    let (ready_tx, ready_rx) = mpsc::channel::<io::Result<String>>();
    let mut threads = Vec::new();
    for (i, setup) in setups.into_iter().enumerate() {
        let (ready, done) = (ready_tx.clone(), done_tx.clone());
        let fallback = match &chosen {
            Chosen::Uring => None,
            Chosen::Epoll(why) => Some(why.clone()),
        };
        let t = std::thread::Builder::new()
            .name(format!("ringserve-w{i}"))
            .spawn(move || {
                let result = worker_main(i, setup, fallback, ready);
                let _ = done.send(result);
            })?;
        threads.push(t);
    }
    drop(ready_tx);
    for _ in 0..threads.len() {
        match ready_rx.recv() {
            Ok(Ok(line)) => eprintln!("ringserve: {line}"),
            Ok(Err(e)) => return Err(e),
            Err(_) => break,
        }
    }
    for addr in &bound {
        eprintln!("ringserve: listening on {addr}");
    }
    if let Some((listener, state)) = admin {
        admin::serve(listener, state)?;
    }

    let signals = shutdown.clone();
    let mut reloader = Reloader::new(
        sources,
        config.clone(),
        shared,
        reopen.clone(),
        reloads,
        admin_root,
    );
    std::thread::Builder::new()
        .name("ringserve-signals".into())
        .spawn(move || loop {
            match sys::wait_signal() {
                SignalEvent::Shutdown => return request_shutdown(&signals, &wakes),
                SignalEvent::ReopenLogs => {
                    reopen.request();
                    wake_all(&wakes);
                }
                SignalEvent::Reload => reloader.reload(|| wake_all(&wakes)),
            }
        })?;

    let mut first_error = None;
    for _ in 0..threads.len() {
        if let Ok(Err(e)) = done_rx.recv() {
            if first_error.is_none() {
                // A worker failed: stop the others too rather than serve at reduced capacity.
                shutdown.requested.store(true, Ordering::Release);
                first_error = Some(e);
            }
        }
    }
    for t in threads {
        let _ = t.join();
    }
    first_error.map_or(Ok(()), Err)
}

fn request_shutdown(shutdown: &Shutdown, wakes: &[OwnedFd]) {
    shutdown.requested.store(true, Ordering::Release);
    wake_all(wakes);
}

/// Wakes every worker, which then looks at the shutdown flag, its log's reopen request and
/// the latest configuration.
fn wake_all(wakes: &[OwnedFd]) {
    for w in wakes {
        let _ = sys::eventfd_signal(w.as_fd());
    }
}

/// Whether connections need their client's address looked up: for the access log or a policy.
fn want_peer(config: &Config) -> bool {
    config.access_log != LogDest::Off || config.policy.needs_peer()
}

fn access_log(config: &Config, reopen: &Reopen) -> io::Result<AccessLog> {
    AccessLog::open(&config.access_log, config.access_log_format, reopen.clone())
        .map_err(|e| io::Error::new(e.kind(), format!("access log: {e}")))
}

/// Drops root for `--user NAME` and says so on stderr.
fn switch_user(name: &str) -> io::Result<()> {
    let with_name = |e: io::Error| io::Error::new(e.kind(), format!("--user {name}: {e}"));
    let account = sys::lookup_user(name).map_err(with_name)?;
    match sys::switch_user(&account).map_err(with_name)? {
        sys::Switched::Dropped => eprintln!(
            "ringserve: running as user {name} (uid {}, gid {})",
            account.uid, account.gid
        ),
        sys::Switched::AlreadyUser => eprintln!("ringserve: already running as user {name}"),
    }
    Ok(())
}

fn worker_main(
    i: usize,
    setup: WorkerSetup,
    fallback: Option<String>,
    ready: mpsc::Sender<io::Result<String>>,
) -> io::Result<()> {
    match fallback {
        None => {
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
        Some(why) => {
            setup.worker.metrics.set_backend("epoll");
            let _ = ready.send(Ok(format!("worker {i}: backend epoll ({why})")));
            epoll::run(setup)
        }
    }
}

/// Picks the backend: the ring when it can be set up and has every feature the worker needs,
/// epoll otherwise (unless the ring was demanded).
fn choose_backend(choice: BackendChoice) -> io::Result<Chosen> {
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

/// Binds every listen address once per worker, all with `SO_REUSEPORT`. The first socket of
/// an address with port 0 picks the port; the others bind to that same port. Returns the
/// listeners grouped per worker, and the addresses actually bound.
fn bind_all(config: &Config) -> io::Result<(Vec<Vec<OwnedFd>>, Vec<SocketAddr>)> {
    let mut per_worker: Vec<Vec<OwnedFd>> = (0..config.workers).map(|_| Vec::new()).collect();
    let mut bound = Vec::new();
    for &wanted in &config.listen {
        let mut addr = wanted;
        for listeners in per_worker.iter_mut() {
            let sock = listen(addr)
                .map_err(|e| io::Error::new(e.kind(), format!("listen on {wanted}: {e}")))?;
            addr = sock.local_addr()?.as_socket().unwrap_or(addr);
            listeners.push(sock.into());
        }
        bound.push(addr);
    }
    Ok((per_worker, bound))
}

fn listen(addr: SocketAddr) -> io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    sock.set_nonblocking(true)?;
    // Accepted sockets inherit TCP_NODELAY: the last segment of a response must not wait for
    // the client's delayed ACK.
    sock.set_tcp_nodelay(true)?;
    sock.bind(&addr.into())?;
    sock.listen(4096)?;
    Ok(sock)
}

/// Worker `i`'s share of a server-wide connection cap (0: none) split over `workers`: the
/// shares differ by at most one and add up to the cap. Each worker enforces its own share
/// exactly, with no shared counter: `SO_REUSEPORT` gives every worker its own accept queue,
/// so a worker at its share leaves new connections waiting in its queue, as nginx's
/// `worker_connections` does.
fn worker_share(max_conns: usize, workers: usize, i: usize) -> usize {
    if max_conns == 0 {
        return usize::MAX;
    }
    max_conns / workers + usize::from(i < max_conns % workers)
}

/// Listeners whose accepting is paused after the process ran out of descriptors or memory, as
/// nginx does for 500 ms: retrying at once would spin the worker until something closes.
#[derive(Default)]
struct AcceptPause {
    until: Vec<(usize, Instant)>,
}

impl AcceptPause {
    const FOR: Duration = Duration::from_millis(500);

    /// Whether an accept error (positive errno) means resource exhaustion.
    fn is_exhaustion(errno: i32) -> bool {
        matches!(
            errno,
            libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM
        )
    }

    /// Stops accepting on `listener` until `now` + 500 ms.
    fn pause(&mut self, listener: usize, now: Instant) {
        self.until.push((listener, now + Self::FOR));
    }

    /// Whether `listener` is resting.
    fn is_paused(&self, listener: usize) -> bool {
        self.until.iter().any(|&(i, _)| i == listener)
    }

    /// When the next paused listener resumes.
    fn next(&self) -> Option<Instant> {
        self.until.iter().map(|&(_, t)| t).min()
    }

    /// Takes the listeners whose pause is over at `now`.
    fn take_due(&mut self, now: Instant) -> Vec<usize> {
        let mut due = Vec::new();
        self.until.retain(|&(i, t)| {
            let over = t <= now;
            if over {
                due.push(i);
            }
            !over
        });
        due
    }
}

/// The earlier of two optional instants.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What the shared worker loop needs from a backend.
trait Backend {
    /// The worker state (clock, log, drain flag).
    fn worker(&mut self) -> &mut Worker;
    /// Next connection whose deadline passed.
    fn pop_due(&mut self, now: Instant) -> Option<TimerKey>;
    /// Earliest connection deadline.
    fn next_deadline(&self) -> Option<Instant>;
    /// Tells a connection its deadline passed, and does what it asks for next.
    fn deadline(&mut self, key: TimerKey);
    /// Stops accepting and tells every connection the server is draining.
    fn start_drain(&mut self);
    /// Whether nothing is left to do after a drain.
    fn finished(&self) -> bool;
    /// Waits up to `timeout` for I/O and handles what arrived; returns how many operations
    /// the wait submitted (always 0 on epoll).
    fn turn(&mut self, timeout: Duration) -> io::Result<u64>;
    /// Takes a reloaded connection cap and whether new connections need their client's
    /// address, and accepts (or stops accepting) accordingly.
    fn set_limits(&mut self, max_conns: usize, want_peer: bool);
}

/// The worker loop both backends share: reloads, deadlines, drain, wait.
fn drive(b: &mut impl Backend, shutdown: &Shutdown, mut reload: Watch) -> io::Result<()> {
    let mut drain_deadline: Option<Instant> = None;
    loop {
        if let Some(update) = reload.poll() {
            apply(b, &update, &reload);
        }
        b.worker().tick();
        let now = b.worker().now;
        while let Some(key) = b.pop_due(now) {
            b.deadline(key);
        }
        if drain_deadline.is_none() && shutdown.requested.load(Ordering::Acquire) {
            drain_deadline = Some(now + b.worker().config.grace);
            b.start_drain();
        }
        if let Some(d) = drain_deadline {
            if b.finished() || now >= d {
                break;
            }
        }
        // The log's once-a-second flush and the Date header want a turn at least each second.
        let mut timeout = Duration::from_secs(1);
        for t in [b.next_deadline(), drain_deadline].into_iter().flatten() {
            timeout = timeout.min(t.saturating_duration_since(now));
        }
        let submitted = b.turn(timeout)?;
        b.worker().metrics.loop_turn(submitted);
    }
    b.worker().log.flush();
    Ok(())
}

/// Swaps a reloaded configuration into the worker and its backend, and confirms it.
fn apply(b: &mut impl Backend, update: &Update, watch: &Watch) {
    update.apply(b.worker());
    let c = &update.config;
    b.set_limits(
        worker_share(c.policy.max_conns, c.workers, watch.index),
        want_peer(c),
    );
    watch.confirm();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

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

    #[test]
    fn reuseport_listeners_share_a_picked_port() {
        let a = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = a.local_addr().unwrap().as_socket().unwrap();
        let b = listen(addr).unwrap();
        assert_eq!(b.local_addr().unwrap().as_socket(), Some(addr));
    }

    #[test]
    fn accepted_sockets_inherit_nodelay() {
        let l: TcpListener = listen("127.0.0.1:0".parse().unwrap()).unwrap().into();
        l.set_nonblocking(false).unwrap();
        let _client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (accepted, _) = l.accept().unwrap();
        assert!(accepted.nodelay().unwrap());
    }
}
