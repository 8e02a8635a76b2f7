//! Upload bodies taken straight from the socket (spliced to their files, or received for
//! hashing): the connection's multishot receive is cancelled and a readiness poll armed
//! instead, and nothing at all is armed while the disk pool writes a batch or after the
//! client's end of input.

use std::os::fd::AsRawFd;

use io_uring::{opcode, types};

use super::{user_data, Uring, CANCEL, READY, RECV};
use crate::engine::conn::Next;
use crate::engine::reactor::Backend;
use crate::engine::timer::TimerKey;

/// Whether a connection's input is received into the ring's buffers (the multishot receive)
/// or left in the socket for the connection to splice (an upload body going to its file).
/// The switch waits for the receive's last completion, so no byte is taken out of order.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum DirectIo {
    /// Received by the multishot receive.
    #[default]
    Off,
    /// The receive is being cancelled.
    Cancelling,
    /// A readiness poll is armed; the connection splices when it fires.
    Polling,
}

impl Uring {
    /// Waits for input to splice (see [`DirectIo`]).
    pub(super) fn arm_ready(&mut self, key: TimerKey) {
        let Some(e) = self.r.conns.get_mut(key) else {
            return;
        };
        // Not while a batch is being written (the pool's landing resumes it), nor twice.
        if e.io.closing || e.io.direct != DirectIo::Off || e.conn.storing() || e.conn.at_eof() {
            return;
        }
        if e.io.recv_armed {
            return self.switch_to_direct(key);
        }
        e.io.direct = DirectIo::Polling;
        e.io.inflight += 1;
        let fd = types::Fd(e.conn.sock().as_raw_fd());
        let sqe = opcode::PollAdd::new(fd, libc::POLLIN as u32)
            .build()
            .user_data(user_data(READY, key));
        // SAFETY: a poll references no user memory.
        unsafe { self.push(&sqe) };
    }

    /// After input, a connection that now takes its body straight from the socket, or holds
    /// its input while an upload's batch is written, has its multishot receive cancelled
    /// ([`DirectIo`]).
    pub(super) fn switch_to_direct(&mut self, key: TimerKey) {
        let Some(e) = self.r.conns.get_mut(key) else {
            return;
        };
        let stop = e.conn.wants_direct() || e.conn.storing();
        if e.io.recv_armed && e.io.direct == DirectIo::Off && !e.io.closing && stop {
            e.io.direct = DirectIo::Cancelling;
            let sqe = opcode::AsyncCancel::new(user_data(RECV, key))
                .build()
                .user_data(user_data(CANCEL, key));
            // SAFETY: a cancel references no user memory.
            unsafe { self.push(&sqe) };
        }
    }

    /// The receive of a connection ended (its last completion): it is armed again, unless
    /// the connection now splices its input, which then waits for readiness.
    pub(super) fn after_recv(&mut self, key: TimerKey) {
        let Some(e) = self.r.conns.get_mut(key) else {
            return;
        };
        e.io.direct = DirectIo::Off;
        if e.conn.wants_direct() {
            return self.arm_ready(key);
        }
        self.rearm.push(key);
    }

    pub(super) fn on_ready(&mut self, key: TimerKey) {
        let Some(e) = self.r.conns.get_mut(key) else {
            return;
        };
        e.io.direct = DirectIo::Off;
        e.io.inflight -= 1;
        if e.io.closing {
            return self.close(key, false);
        }
        let (next, drained) = e
            .conn
            .read_direct(&mut self.r.w)
            .unwrap_or((Next::Read, false));
        if !matches!(next, Next::Close | Next::Reset) {
            let still = self
                .r
                .conns
                .get_mut(key)
                .is_some_and(|e| e.conn.wants_direct());
            if drained && still {
                self.arm_ready(key);
            } else {
                self.rearm.push(key);
            }
        }
        self.apply(key, next);
    }
}
