//! The io_uring backend: one ring per worker thread.
//!
//! The ring does what it is best at — multishot accept, multishot recv into a provided-buffer
//! pool, and readiness polls — so that one `io_uring_enter` per loop turn both submits and
//! reaps everything for every connection. Responses are sent inline from the worker with
//! non-blocking `send` and `sendfile(2)` (see [`super::conn`]): `IORING_OP_SPLICE` is always
//! punted to an io-wq thread and fails on a full socket, so it would cost more than it saves.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use super::bufring::BufRing;
use super::conn::{Conn, Next};
use super::reactor::{self, AcceptPause, Backend, Reactor};
use super::timer::TimerKey;
use super::WorkerSetup;

mod direct;
use direct::DirectIo;

/// Submission queue size; the completion queue is four times larger.
const SQ_ENTRIES: u32 = 1024;
/// Provided receive buffers per worker, and their size.
const BUFS: u16 = 512;
const BUF_SIZE: u32 = 4096;
const BGID: u16 = 0;

/// Operation kinds, kept in the top byte of each operation's user data.
const ACCEPT: u64 = 1;
const RECV: u64 = 2;
const POLL: u64 = 3;
const CANCEL: u64 = 4;
const WAKE: u64 = 5;
const READY: u64 = 6;

fn user_data(kind: u64, key: TimerKey) -> u64 {
    kind << 56 | (key.gen as u64) << 32 | key.idx as u64
}

fn split_user_data(ud: u64) -> (u64, TimerKey) {
    (
        ud >> 56,
        TimerKey {
            idx: ud as u32,
            gen: (ud >> 32) as u32 & 0x00ff_ffff,
        },
    )
}

const NO_KEY: TimerKey = TimerKey { idx: 0, gen: 0 };

/// What a ring was set up with, for the start-up log line.
pub struct RingInfo {
    /// The ring.
    pub ring: IoUring,
    /// Setup flags that took.
    pub features: &'static str,
}

/// Creates a ring, asking for `SINGLE_ISSUER|DEFER_TASKRUN` (6.1+) and stepping down to
/// `COOP_TASKRUN` (5.19) and then no flags when the kernel answers EINVAL. Other errors
/// (EPERM under seccomp or `io_uring_disabled`, ENOSYS, ENOMEM) are returned.
pub fn setup() -> io::Result<RingInfo> {
    let attempts = ["single_issuer,defer_taskrun", "coop_taskrun", "basic"];
    let mut last = io::Error::from_raw_os_error(libc::EINVAL);
    for features in attempts {
        let mut b = IoUring::builder();
        b.setup_cqsize(SQ_ENTRIES * 4).setup_submit_all();
        match features {
            "single_issuer,defer_taskrun" => b.setup_single_issuer().setup_defer_taskrun(),
            "coop_taskrun" => b.setup_coop_taskrun(),
            _ => &mut b,
        };
        match b.build(SQ_ENTRIES) {
            Ok(ring) => return Ok(RingInfo { ring, features }),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// Checks that a ring supports everything the worker needs: the opcodes, the extended wait
/// argument, and a provided-buffer ring (5.19+; multishot recv needs 6.0). Returns why not.
pub fn check(info: &RingInfo) -> Result<(), String> {
    let mut probe = io_uring::Probe::new();
    info.ring
        .submitter()
        .register_probe(&mut probe)
        .map_err(|e| format!("probe: {e}"))?;
    for (code, name) in [
        (opcode::AcceptMulti::CODE, "accept"),
        (opcode::RecvMulti::CODE, "recv"),
        (opcode::PollAdd::CODE, "poll_add"),
        (opcode::AsyncCancel2::CODE, "async_cancel"),
        (opcode::Read::CODE, "read"),
    ] {
        if !probe.is_supported(code) {
            return Err(format!("opcode {name} not supported"));
        }
    }
    if !info.ring.params().is_feature_ext_arg() {
        return Err("no IORING_FEAT_EXT_ARG".into());
    }
    BufRing::new(&info.ring.submitter(), BGID, 2, 64)
        .map(drop)
        .map_err(|e| format!("provided-buffer ring: {e}"))?;
    info.ring
        .submitter()
        .unregister_buf_ring(BGID)
        .map_err(|e| format!("buffer ring: {e}"))
}

/// Per-connection operation bookkeeping.
#[derive(Default)]
struct Io {
    /// Operations submitted whose final completion has not arrived.
    inflight: u8,
    recv_armed: bool,
    poll_armed: bool,
    closing: bool,
    direct: DirectIo,
}

/// Where a listener's multishot accept stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Accept {
    /// Not armed.
    Off,
    /// Armed: connections arrive as completions.
    On,
    /// A cancel is on its way; the final completion has not arrived.
    Cancelling,
}

struct Uring {
    // Field order matters: the ring is dropped before the buffer pool it writes into.
    ring: IoUring,
    bufs: BufRing,
    r: Reactor<Io>,
    /// Each listener's accept.
    accepts: Vec<Accept>,
    /// Connections accepted in the moment the worker reached its cap, before the cancel of
    /// its accepts took effect, each with whether it came from an HTTPS listener; admitted
    /// in order as others close.
    overflow: VecDeque<(OwnedFd, bool)>,
    cqes: Vec<(u64, i32, u32)>,
    rearm: Vec<TimerKey>,
    /// Where a just-accepted connection's first bytes are read (see [`Uring::admit`]).
    first: Box<[u8]>,
}

/// Runs one worker until shutdown.
pub fn run(setup: WorkerSetup, info: RingInfo) -> io::Result<()> {
    let bufs = BufRing::new(&info.ring.submitter(), BGID, BUFS, BUF_SIZE)?;
    // Nothing here is meant to be punted to io-wq; keep it from growing threads if it is.
    let _ = info.ring.submitter().register_iowq_max_workers(&mut [1, 1]);
    let accepts = vec![Accept::Off; setup.listeners.len()];
    let (r, shutdown, reload) = Reactor::new(setup);
    let mut u = Uring {
        ring: info.ring,
        bufs,
        r,
        accepts,
        overflow: VecDeque::new(),
        cqes: Vec::with_capacity(SQ_ENTRIES as usize * 4),
        rearm: Vec::new(),
        first: vec![0; BUF_SIZE as usize].into_boxed_slice(),
    };
    u.sync_accepts();
    u.arm_wake();
    reactor::drive(&mut u, &shutdown, reload)
}

impl Backend for Uring {
    type Io = Io;

    fn reactor(&mut self) -> &mut Reactor<Io> {
        &mut self.r
    }

    fn reactor_ref(&self) -> &Reactor<Io> {
        &self.r
    }

    fn apply(&mut self, key: TimerKey, next: Next) {
        match next {
            Next::Read | Next::Sleep => {}
            Next::Write => {
                let Some(e) = self.r.conns.get_mut(key) else {
                    return;
                };
                if !e.io.poll_armed {
                    e.io.poll_armed = true;
                    e.io.inflight += 1;
                    let fd = types::Fd(e.conn.sock().as_raw_fd());
                    let sqe = opcode::PollAdd::new(fd, libc::POLLOUT as u32)
                        .build()
                        .user_data(user_data(POLL, key));
                    // SAFETY: a poll references no user memory.
                    unsafe { self.push(&sqe) };
                }
            }
            Next::Close => return self.close(key, false),
            Next::Reset => return self.close(key, true),
        }
        self.r.conns.sync_timer(key);
    }

    fn resume(&mut self, key: TimerKey, next: Next) {
        if !matches!(next, Next::Close | Next::Reset) {
            let direct = self.r.conns.get_mut(key).map(|e| e.conn.wants_direct());
            match direct {
                Some(true) => self.arm_ready(key),
                Some(false) => self.arm_recv(key),
                None => {}
            }
        }
        self.apply(key, next);
    }

    fn stop_accepting(&mut self) {
        self.overflow.clear();
        self.sync_accepts();
    }

    fn sync_accepting(&mut self) {
        self.admit_overflow();
    }

    fn finished(&self) -> bool {
        self.r.conns.is_empty() && self.accepts.iter().all(|&a| a == Accept::Off)
    }

    fn turn(&mut self, timeout: Duration) -> io::Result<u64> {
        self.bufs.publish();
        let ts = types::Timespec::from(timeout);
        let args = types::SubmitArgs::new().timespec(&ts);
        let pending = self.ring.submission().len() as u64;
        // Nothing to wait for (a response yielded its turn): a wait with a zero timeout would
        // still arm a timer, an interrupt per turn.
        let submitted = if timeout.is_zero() {
            self.ring.submit()
        } else {
            self.ring.submitter().submit_with_args(1, &args)
        };
        match submitted {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) => {}
            Err(e) => return Err(e),
        }
        self.r.w.clock();
        self.reap();
        if !self.r.paused.take_due(Instant::now()).is_empty() {
            self.sync_accepts();
        }
        let rearm = std::mem::take(&mut self.rearm);
        for &key in &rearm {
            self.arm_recv(key);
        }
        self.rearm = rearm;
        self.rearm.clear();
        Ok(pending)
    }
}

impl Uring {
    /// Queues an SQE, submitting first if the queue is full.
    ///
    /// # Safety
    /// Buffers the entry points to must stay valid until its final completion.
    unsafe fn push(&mut self, e: &squeue::Entry) {
        loop {
            // SAFETY: forwarded to the caller.
            if unsafe { self.ring.submission().push(e) }.is_ok() {
                return;
            }
            let _ = self.ring.submit();
        }
    }

    fn cancel_fd(&mut self, fd: i32, key: TimerKey) {
        let sqe = opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(fd)).all())
            .build()
            .user_data(user_data(CANCEL, key));
        // SAFETY: a cancel references no user memory.
        unsafe { self.push(&sqe) };
    }

    /// Closes a connection (`reset`: with RST) once its operations have completed: a socket
    /// the connection shut down ends them by itself, otherwise they are cancelled.
    fn close(&mut self, key: TimerKey, reset: bool) {
        let Some(e) = self.r.conns.get_mut(key) else {
            return;
        };
        if !e.io.closing {
            e.io.closing = true;
            e.conn.deadline.set(None);
            let shut = e.conn.on_close(reset, &mut self.r.w);
            if reset {
                let _ = socket2::SockRef::from(e.conn.sock()).set_linger(Some(Duration::ZERO));
            }
            if e.io.inflight > 0 && !shut {
                let fd = e.conn.sock().as_raw_fd();
                self.cancel_fd(fd, key);
            }
        }
        if self
            .r
            .conns
            .get_mut(key)
            .is_some_and(|e| e.io.inflight == 0)
        {
            self.r.conns.remove(key);
            self.r.w.metrics.conn_closed();
            self.admit_overflow();
        }
    }

    /// Arms the accept of every listener that should accept (not draining, not full, not
    /// resting) and cancels the armed ones that should not.
    fn sync_accepts(&mut self) {
        let stop = self.r.w.draining || self.r.full();
        for i in 0..self.r.listeners.len() {
            match self.accepts[i] {
                Accept::Off if !stop && !self.r.paused.is_paused(i) => self.arm_accept(i),
                Accept::On if stop => {
                    self.accepts[i] = Accept::Cancelling;
                    self.cancel_fd(self.r.listeners[i].as_raw_fd(), NO_KEY);
                }
                _ => {}
            }
        }
    }

    /// Admits connections held back while the worker was full, as room allows.
    fn admit_overflow(&mut self) {
        while !self.r.full() {
            let Some((sock, tls)) = self.overflow.pop_front() else {
                break;
            };
            self.admit(sock, tls);
        }
        self.sync_accepts();
    }

    /// Starts serving an accepted socket (unless an access rule refuses it).
    ///
    /// A client sends its request right after the handshake, so by the time the accept
    /// completes the request has usually arrived: it is read at once with `recv(2)` and
    /// answered in the same loop turn. The multishot receive is armed afterwards for what
    /// follows, or not at all when that answer closes the connection (`Connection: close`).
    fn admit(&mut self, sock: OwnedFd, tls: bool) {
        let Some(conn) = Conn::new(sock, self.r.want_peer, tls, &self.r.w) else {
            return;
        };
        let key = match self.r.conns.insert(conn, Io::default()) {
            Ok(key) => key,
            Err(conn) => return conn.refuse_for_memory(&self.r.w),
        };
        let Some(e) = self.r.conns.get_mut(key) else {
            return;
        };
        let next = match crate::sys::recv(e.conn.sock().as_fd(), &mut self.first) {
            Ok(0) => Next::Close,
            Ok(n) => e.conn.on_input(&self.first[..n], &mut self.r.w),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Next::Read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => Next::Read,
            Err(_) => Next::Close,
        };
        if !matches!(next, Next::Close | Next::Reset) {
            if e.conn.wants_direct() {
                self.arm_ready(key);
            } else {
                self.arm_recv(key);
            }
        }
        self.apply(key, next);
    }

    /// Waits for the wake eventfd (shutdown, log reopen); re-armed each time it fires.
    fn arm_wake(&mut self) {
        let wake = opcode::PollAdd::new(types::Fd(self.r.wake.as_raw_fd()), libc::POLLIN as u32)
            .build()
            .user_data(user_data(WAKE, NO_KEY));
        // SAFETY: a poll references no user memory.
        unsafe { self.push(&wake) };
    }

    fn arm_accept(&mut self, i: usize) {
        self.accepts[i] = Accept::On;
        let e = opcode::AcceptMulti::new(types::Fd(self.r.listeners[i].as_raw_fd()))
            .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
            .build()
            .user_data(user_data(
                ACCEPT,
                TimerKey {
                    idx: i as u32,
                    gen: 0,
                },
            ));
        // SAFETY: multishot accept references no user memory.
        unsafe { self.push(&e) };
    }

    fn arm_recv(&mut self, key: TimerKey) {
        let group = self.bufs.group();
        let Some(e) = self.r.conns.get_mut(key) else {
            return;
        };
        let held = e.conn.storing() || e.conn.at_eof();
        if e.io.recv_armed || e.io.closing || e.io.direct != DirectIo::Off || held {
            return;
        }
        e.io.recv_armed = true;
        e.io.inflight += 1;
        let sqe = opcode::RecvMulti::new(types::Fd(e.conn.sock().as_raw_fd()), group)
            .build()
            .user_data(user_data(RECV, key));
        // SAFETY: the receive lands in provided buffers owned by `self.bufs`, which outlives
        // every operation of the ring.
        unsafe { self.push(&sqe) };
    }

    fn reap(&mut self) {
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        for &(ud, res, flags) in &cqes {
            let (kind, key) = split_user_data(ud);
            match kind {
                ACCEPT => self.on_accept(key.idx as usize, res, flags),
                RECV => self.on_recv(key, res, flags),
                POLL => self.on_poll(key),
                READY => self.on_ready(key),
                WAKE => {
                    crate::sys::eventfd_drain(self.r.wake.as_fd());
                    self.arm_wake();
                }
                _ => debug_assert!(kind == CANCEL),
            }
        }
        cqes.clear();
        self.cqes = cqes;
    }

    fn on_accept(&mut self, listener: usize, res: i32, flags: u32) {
        if !cqueue::more(flags) {
            self.accepts[listener] = Accept::Off;
            if res < 0 && AcceptPause::is_exhaustion(-res) {
                self.r.paused.pause(listener, self.r.w.now);
            }
        }
        if res >= 0 {
            // SAFETY: a successful accept completion carries a new descriptor that we now own.
            let sock = unsafe { OwnedFd::from_raw_fd(res) };
            let tls = self.r.is_tls(listener);
            if self.r.full() {
                self.overflow.push_back((sock, tls));
            } else {
                self.admit(sock, tls);
            }
        }
        self.sync_accepts();
    }

    fn on_recv(&mut self, key: TimerKey, res: i32, flags: u32) {
        let bid = cqueue::buffer_select(flags);
        let more = cqueue::more(flags);
        let next = match self.r.conns.get_mut(key) {
            None => None,
            Some(e) => {
                if !more {
                    e.io.recv_armed = false;
                    e.io.inflight -= 1;
                }
                let cancelled = e.io.direct == DirectIo::Cancelling;
                Some(if e.io.closing {
                    Next::Close
                } else if res > 0 {
                    let next = if e.conn.lingering() {
                        // What this completion carries is dropped with the rest.
                        e.conn.drop_input(&self.r.w)
                    } else {
                        let data = bid.map_or(&[][..], |bid| self.bufs.data(bid, res as usize));
                        e.conn.on_input(data, &mut self.r.w)
                    };
                    if !more && next != Next::Close {
                        self.after_recv(key);
                    } else if more {
                        self.switch_to_direct(key);
                    }
                    next
                } else if res == 0 {
                    e.conn.on_eof()
                } else if res == -libc::ENOBUFS || (res == -libc::ECANCELED && cancelled) {
                    self.after_recv(key);
                    Next::Read
                } else {
                    Next::Close
                })
            }
        };
        if let Some(bid) = bid {
            self.bufs.recycle(bid);
        }
        if let Some(next) = next {
            self.apply(key, next);
        }
    }

    fn on_poll(&mut self, key: TimerKey) {
        let Some(e) = self.r.conns.get_mut(key) else {
            return;
        };
        e.io.poll_armed = false;
        e.io.inflight -= 1;
        let next = if e.io.closing {
            Next::Close
        } else {
            e.conn.on_writable(&mut self.r.w)
        };
        self.apply(key, next);
    }
}

impl Drop for Uring {
    /// Cancels everything still in flight and waits (briefly) for the completions, so no
    /// operation outlives the buffers and descriptors it uses.
    fn drop(&mut self) {
        for key in self.r.conns.keys() {
            self.close(key, false);
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while !self.r.conns.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.turn(left).is_err() {
                break;
            }
        }
    }
}
