//! What both backends share: the worker's state, its connections and their timers, its
//! listeners and accept limits ([`Reactor`]), and the loop that turns them (reloads,
//! deadlines, drain, wait: [`drive`]). A backend adds only how it waits for I/O.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use super::conn::Next;
use super::conns::Conns;
use super::reload::{Update, Watch};
use super::timer::TimerKey;
use super::worker::Worker;
use super::{want_peer, worker_share, Shutdown, WorkerSetup};

/// The state both backends hold for a worker.
pub struct Reactor<E> {
    /// The worker's per-connection-independent state.
    pub w: Worker,
    /// Its connections, their backend bookkeeping and their timers.
    pub conns: Conns<E>,
    /// Its listening sockets: plain HTTP, then HTTPS.
    pub listeners: Vec<OwnedFd>,
    /// Index of the first HTTPS listener.
    pub tls_from: usize,
    /// The eventfd other threads wake it with.
    pub wake: OwnedFd,
    /// Listeners resting after descriptor exhaustion.
    pub paused: AcceptPause,
    /// The worker's connection cap (`usize::MAX`: none).
    pub max_conns: usize,
    /// Whether new connections need their client's address looked up.
    pub want_peer: bool,
}

impl<E> Reactor<E> {
    /// The reactor of a worker about to start, and the setup's shutdown and reload watch,
    /// which only the loop needs.
    pub fn new(setup: WorkerSetup) -> (Reactor<E>, Shutdown, Watch) {
        let mut w = setup.worker;
        if w.disk.is_some() {
            // The pool wakes this worker through its eventfd when a result lands.
            if let Ok(wake) = setup.wake.try_clone() {
                w.landed = Some(crate::upload::pool::Done::new(move || {
                    let _ = crate::sys::eventfd_signal(std::os::fd::AsFd::as_fd(&wake));
                }));
            }
        }
        w.tcp_paced =
            (setup.listeners.first()).is_some_and(|l| crate::sys::paces_itself(l.as_fd()));
        let r = Reactor {
            w,
            conns: Conns::default(),
            listeners: setup.listeners,
            tls_from: setup.tls_from,
            wake: setup.wake,
            paused: AcceptPause::default(),
            max_conns: setup.max_conns,
            want_peer: setup.want_peer,
        };
        (r, setup.shutdown, setup.reload)
    }

    /// Whether connections accepted on listener `i` speak TLS.
    pub fn is_tls(&self, i: usize) -> bool {
        i >= self.tls_from
    }

    /// Whether the worker holds as many connections as it may.
    pub fn full(&self) -> bool {
        self.conns.len() >= self.max_conns
    }
}

/// Listeners whose accepting is paused after the process ran out of descriptors or memory, as
/// nginx does for 500 ms: retrying at once would spin the worker until something closes.
#[derive(Default)]
pub struct AcceptPause {
    until: Vec<(usize, Instant)>,
}

impl AcceptPause {
    const FOR: Duration = Duration::from_millis(500);

    /// Whether an accept error (positive errno) means resource exhaustion.
    pub fn is_exhaustion(errno: i32) -> bool {
        matches!(
            errno,
            libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM
        )
    }

    /// Stops accepting on `listener` until `now` + 500 ms.
    pub fn pause(&mut self, listener: usize, now: Instant) {
        self.until.push((listener, now + Self::FOR));
    }

    /// Whether `listener` is resting.
    pub fn is_paused(&self, listener: usize) -> bool {
        self.until.iter().any(|&(i, _)| i == listener)
    }

    /// When the next paused listener resumes.
    pub fn next(&self) -> Option<Instant> {
        self.until.iter().map(|&(_, t)| t).min()
    }

    /// Takes the listeners whose pause is over at `now`.
    pub fn take_due(&mut self, now: Instant) -> Vec<usize> {
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
pub fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What the shared worker loop needs from a backend; what both backends do alike is
/// written here once, on their shared [`Reactor`].
pub trait Backend {
    /// The per-connection bookkeeping of this backend.
    type Io;
    /// The state both backends hold.
    fn reactor(&mut self) -> &mut Reactor<Self::Io>;
    /// The state both backends hold, to read.
    fn reactor_ref(&self) -> &Reactor<Self::Io>;
    /// Does what a connection asked for next: wait for input, writability or its deadline,
    /// or be closed.
    fn apply(&mut self, key: TimerKey, next: Next);
    /// Does what a connection asked for after the disk pool handed back its upload's batch
    /// or answer: input it stopped reading while the pool worked may be waiting.
    fn resume(&mut self, key: TimerKey, next: Next);
    /// Stops accepting for good (the server is draining).
    fn stop_accepting(&mut self);
    /// Accepts, or stops accepting, as the connection cap now allows.
    fn sync_accepting(&mut self);
    /// Whether nothing is left to do after a drain.
    fn finished(&self) -> bool;
    /// Waits up to `timeout` for I/O and handles what arrived; returns how many operations
    /// the wait submitted (always 0 on epoll).
    fn turn(&mut self, timeout: Duration) -> io::Result<u64>;

    /// The worker state (clock, log, drain flag).
    fn worker(&mut self) -> &mut Worker {
        &mut self.reactor().w
    }

    /// Next connection whose deadline passed.
    fn pop_due(&mut self, now: Instant) -> Option<TimerKey> {
        self.reactor().conns.pop_due(now)
    }

    /// Earliest connection deadline or end of an accept pause.
    fn next_deadline(&self) -> Option<Instant> {
        let r = self.reactor_ref();
        earliest(r.conns.next_deadline(), r.paused.next())
    }

    /// Tells a connection its deadline passed, and does what it asks for next.
    fn deadline(&mut self, key: TimerKey) {
        let r = self.reactor();
        if let Some(e) = r.conns.get_mut(key) {
            let next = e.conn.on_deadline(&mut r.w);
            self.apply(key, next);
        }
    }

    /// Stops accepting and tells every connection the server is draining.
    fn start_drain(&mut self) {
        self.reactor().w.draining = true;
        self.stop_accepting();
        for key in self.reactor().conns.keys() {
            if let Some(e) = self.reactor().conns.get_mut(key) {
                let next = e.conn.on_drain();
                self.apply(key, next);
            }
        }
    }

    /// Takes a reloaded connection cap and whether new connections need their client's
    /// address, and accepts (or stops accepting) accordingly.
    fn set_limits(&mut self, max_conns: usize, want_peer: bool) {
        let r = self.reactor();
        (r.max_conns, r.want_peer) = (max_conns, want_peer);
        self.sync_accepting();
    }
}

/// The worker loop both backends share: reloads, deadlines, drain, wait.
pub fn drive(b: &mut impl Backend, shutdown: &Shutdown, mut reload: Watch) -> io::Result<()> {
    let mut drain_deadline: Option<Instant> = None;
    // The connections due in a pass, taken all before any is told: one that yields its turn
    // (due again at once) then waits for the next pass, after the turn's I/O.
    let mut due = Vec::new();
    loop {
        if let Some(update) = reload.poll() {
            take_update(b, &update, &reload);
        }
        b.worker().tick();
        let now = b.worker().now;
        due.clear();
        while let Some(key) = b.pop_due(now) {
            due.push(key);
        }
        for &key in &due {
            b.deadline(key);
        }
        if drain_deadline.is_none() && shutdown.is_requested() {
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
        let landed = b.worker().landed.as_ref().map(|done| done.take());
        for (key, landed) in landed.into_iter().flatten() {
            let r = b.reactor();
            let Some(e) = r.conns.get_mut(key) else {
                // The connection is gone; what the pool did stands.
                landed.dispose(&mut r.w);
                continue;
            };
            let next = e.conn.upload_landed(landed, &mut r.w);
            b.resume(key, next);
        }
    }
    b.worker().log.flush();
    Ok(())
}

/// Swaps a reloaded configuration into the worker and its backend, and confirms it.
fn take_update(b: &mut impl Backend, update: &Update, watch: &Watch) {
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

    #[test]
    fn accept_pauses_end_in_order() {
        let t0 = Instant::now();
        let mut p = AcceptPause::default();
        assert_eq!(p.next(), None);
        p.pause(1, t0);
        p.pause(0, t0 + Duration::from_millis(100));
        assert!(p.is_paused(0) && p.is_paused(1) && !p.is_paused(2));
        assert_eq!(p.next(), Some(t0 + AcceptPause::FOR));
        assert!(p.take_due(t0 + Duration::from_millis(499)).is_empty());
        assert_eq!(p.take_due(t0 + AcceptPause::FOR), [1]);
        assert!(!p.is_paused(1) && p.is_paused(0));
        assert_eq!(p.take_due(t0 + Duration::from_secs(1)), [0]);
        assert_eq!(p.next(), None);
    }

    #[test]
    fn only_running_out_of_resources_pauses_accepting() {
        for errno in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert!(AcceptPause::is_exhaustion(errno), "{errno}");
        }
        for errno in [libc::ECONNABORTED, libc::EAGAIN, libc::EINTR, libc::EPERM] {
            assert!(!AcceptPause::is_exhaustion(errno), "{errno}");
        }
    }

    #[test]
    fn earliest_of_two_instants() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(earliest(Some(t1), Some(t0)), Some(t0));
        assert_eq!(earliest(None, Some(t1)), Some(t1));
        assert_eq!(earliest(Some(t0), None), Some(t0));
        assert_eq!(earliest(None, None), None);
    }
}
