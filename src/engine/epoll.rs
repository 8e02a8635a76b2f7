//! The epoll backend, for where io_uring is missing or blocked (seccomp, `io_uring_disabled`,
//! old kernels).
//!
//! Edge-triggered interest in both directions is registered once per connection, so serving
//! a request costs no `epoll_ctl`; the connection driver is the same as on the ring, bodies
//! still go out with `sendfile(2)`. Received bytes land in one per-worker buffer and are
//! parsed in place, as with the ring's provided buffers.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use super::conn::{Conn, Next};
use super::reactor::{self, AcceptPause, Backend, Reactor};
use super::timer::TimerKey;
use super::WorkerSetup;
use crate::sys;

const LISTENER: u64 = 1;
const CONN: u64 = 2;
const WAKE: u64 = 3;
/// Receive buffer shared by the worker's connections.
const RECV_BUF: usize = 16 * 1024;
/// Connections accepted per listener event before other work gets a turn.
const ACCEPT_BATCH: usize = 64;
/// Listener interest. `EPOLLEXCLUSIVE` matters for sockets passed by systemd, which all
/// workers share: a connection then wakes one worker, not all.
const LISTEN_EVENTS: u32 = (libc::EPOLLIN | libc::EPOLLEXCLUSIVE) as u32;

fn tag(kind: u64, key: TimerKey) -> u64 {
    kind << 56 | (key.gen as u64) << 32 | key.idx as u64
}

fn untag(data: u64) -> (u64, TimerKey) {
    (
        data >> 56,
        TimerKey {
            idx: data as u32,
            gen: (data >> 32) as u32 & 0x00ff_ffff,
        },
    )
}

struct Epoll {
    ep: OwnedFd,
    /// Per connection: whether the peer shut down its sending side (`EPOLLRDHUP`), so a
    /// short read has not drained the socket: its end of input is still to be read.
    r: Reactor<bool>,
    events: Vec<libc::epoll_event>,
    buf: Box<[u8]>,
    /// Which listeners are in the epoll set (accepting).
    registered: Vec<bool>,
}

/// Runs one worker until shutdown.
pub fn run(setup: WorkerSetup) -> io::Result<()> {
    let ep = sys::epoll_create()?;
    let none = TimerKey { idx: 0, gen: 0 };
    sys::epoll_add(
        ep.as_fd(),
        setup.wake.as_fd(),
        libc::EPOLLIN as u32,
        tag(WAKE, none),
    )?;
    let registered = vec![false; setup.listeners.len()];
    let (r, shutdown, reload) = Reactor::new(setup);
    let mut e = Epoll {
        ep,
        r,
        events: vec![libc::epoll_event { events: 0, u64: 0 }; 512],
        buf: vec![0; RECV_BUF].into_boxed_slice(),
        registered,
    };
    e.sync_listeners()?;
    reactor::drive(&mut e, &shutdown, reload)
}

impl Backend for Epoll {
    type Io = bool;

    fn reactor(&mut self) -> &mut Reactor<bool> {
        &mut self.r
    }

    fn reactor_ref(&self) -> &Reactor<bool> {
        &self.r
    }

    fn apply(&mut self, key: TimerKey, next: Next) {
        match next {
            Next::Close => self.close(key, false),
            Next::Reset => self.close(key, true),
            Next::Read | Next::Write | Next::Sleep => self.r.conns.sync_timer(key),
        }
    }

    fn resume(&mut self, key: TimerKey, mut next: Next) {
        // Edge-triggered: input that arrived while the pool worked raised no new edge.
        let storing = self.r.conns.get_mut(key).map(|e| e.conn.storing());
        if storing == Some(false) && !matches!(next, Next::Close | Next::Reset) {
            next = self.read(key);
        }
        self.apply(key, next);
    }

    fn stop_accepting(&mut self) {
        // Closing the listeners removes them from the epoll set.
        self.r.listeners.clear();
        self.registered.clear();
    }

    fn sync_accepting(&mut self) {
        let _ = self.sync_listeners();
    }

    fn finished(&self) -> bool {
        self.r.conns.is_empty()
    }

    fn turn(&mut self, timeout: Duration) -> io::Result<u64> {
        // Round up so a deadline 0.4 ms away does not spin with a zero timeout.
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        let n = sys::epoll_wait(self.ep.as_fd(), &mut self.events, ms)?;
        if n > 0 {
            self.r.w.clock();
        }
        if !self.r.paused.take_due(Instant::now()).is_empty() {
            self.sync_listeners()?;
        }
        for i in 0..n {
            let ev = self.events[i];
            let (kind, key) = untag(ev.u64);
            match kind {
                LISTENER => self.on_listener(key.idx as usize),
                CONN => self.on_conn(key, ev.events),
                _ => {
                    // The wake eventfd: the loop reads the shutdown flag; drain the counter so
                    // level-triggered interest does not fire again.
                    sys::eventfd_drain(self.r.wake.as_fd());
                }
            }
        }
        Ok(0)
    }
}

impl Epoll {
    /// Closes a connection (`reset`: with RST).
    fn close(&mut self, key: TimerKey, reset: bool) {
        if let Some(mut e) = self.r.conns.remove(key) {
            e.conn.on_close(reset, &mut self.r.w);
            self.r.w.metrics.conn_closed();
            if reset {
                let _ = socket2::SockRef::from(e.conn.sock()).set_linger(Some(Duration::ZERO));
            }
            if self.r.conns.len() + 1 == self.r.max_conns {
                let _ = self.sync_listeners();
            }
        }
    }

    /// Puts every listener that should accept (not draining, not full, not resting) in the
    /// epoll set and takes the others out: their level-triggered interest would otherwise
    /// report the waiting backlog again at once.
    fn sync_listeners(&mut self) -> io::Result<()> {
        let full = self.r.full();
        for (i, l) in self.r.listeners.iter().enumerate() {
            let want = !full && !self.r.paused.is_paused(i);
            if want == self.registered[i] {
                continue;
            }
            if want {
                let key = TimerKey {
                    idx: i as u32,
                    gen: 0,
                };
                let tag = tag(LISTENER, key);
                sys::epoll_add(self.ep.as_fd(), l.as_fd(), LISTEN_EVENTS, tag)?;
            } else {
                sys::epoll_del(self.ep.as_fd(), l.as_fd())?;
            }
            self.registered[i] = want;
        }
        Ok(())
    }

    fn on_listener(&mut self, i: usize) {
        for _ in 0..ACCEPT_BATCH {
            let Some(l) = self.r.listeners.get(i) else {
                return;
            };
            if self.r.full() {
                let _ = self.sync_listeners();
                return;
            }
            let sock = match sys::accept(l.as_fd()) {
                Ok(s) => s,
                Err(e) if e.raw_os_error().is_some_and(AcceptPause::is_exhaustion) => {
                    self.r.paused.pause(i, self.r.w.now);
                    let _ = self.sync_listeners();
                    return;
                }
                Err(_) => return,
            };
            let tls = self.r.is_tls(i);
            let Some(conn) = Conn::new(sock, self.r.want_peer, tls, &self.r.w) else {
                continue;
            };
            let key = match self.r.conns.insert(conn, false) {
                Ok(key) => key,
                Err(conn) => {
                    conn.refuse_for_memory(&self.r.w);
                    continue;
                }
            };
            // The request has usually arrived with the handshake: read and answer it before
            // registering, so a connection that closes after one answer is never registered.
            let next = self.read(key);
            if matches!(next, Next::Close | Next::Reset) {
                self.apply(key, next);
                continue;
            }
            let Some(e) = self.r.conns.get_mut(key) else {
                return;
            };
            let interest =
                (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
            if sys::epoll_add(
                self.ep.as_fd(),
                e.conn.sock().as_fd(),
                interest,
                tag(CONN, key),
            )
            .is_err()
            {
                self.r.conns.remove(key);
                self.r.w.metrics.conn_closed();
                continue;
            }
            self.apply(key, next);
        }
    }

    fn on_conn(&mut self, key: TimerKey, events: u32) {
        if events & libc::EPOLLERR as u32 != 0 {
            return self.close(key, false);
        }
        let mut next = Next::Read;
        if events & (libc::EPOLLRDHUP | libc::EPOLLHUP) as u32 != 0 {
            if let Some(e) = self.r.conns.get_mut(key) {
                e.io = true;
            }
        }
        if events & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP) as u32 != 0 {
            next = self.read(key);
        }
        if next != Next::Close && events & libc::EPOLLOUT as u32 != 0 {
            if let Some(e) = self.r.conns.get_mut(key) {
                next = e.conn.on_writable(&mut self.r.w);
            }
        }
        self.apply(key, next);
    }

    /// Reads until the socket is drained (edge-triggered), feeding the driver. A lingering
    /// connection's input is dropped in the kernel with one call, however fast it arrives.
    fn read(&mut self, key: TimerKey) -> Next {
        let Some(e) = self.r.conns.get_mut(key) else {
            return Next::Close;
        };
        loop {
            if e.conn.lingering() {
                return e.conn.drop_input(&self.r.w);
            }
            // After the client's end of input there is none.
            if e.conn.at_eof() {
                return e.conn.on_eof();
            }
            // Input waits in the socket while an upload's batch is written (`resume` reads).
            if e.conn.storing() {
                return Next::Read;
            }
            // An upload body spliced straight to its file; once it ends, what follows is read.
            match e.conn.read_direct(&mut self.r.w) {
                Some((next, true)) => return next,
                Some((next, false)) if next != Next::Read => return next,
                Some(_) | None => {}
            }
            match sys::recv(e.conn.sock().as_fd(), &mut self.buf) {
                Ok(0) => return e.conn.on_eof(),
                Ok(n) => {
                    let next = e.conn.on_input(&self.buf[..n], &mut self.r.w);
                    // A short read drained the socket and new data will raise a new edge,
                    // unless the peer's end of input is still to be read (it raises none).
                    if next == Next::Close || (n < self.buf.len() && !e.io) {
                        return next;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Next::Read,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Next::Close,
            }
        }
    }
}

impl Drop for Epoll {
    /// Closes what a drain cut short through the usual path, so its access-log lines are
    /// written.
    fn drop(&mut self) {
        for key in self.r.conns.keys() {
            self.close(key, false);
        }
    }
}
