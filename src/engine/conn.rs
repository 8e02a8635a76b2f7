//! The transport of a connection, shared by both backends.
//!
//! A [`Conn`] holds the socket, the client's place in the policies and the response being
//! sent, and carries out what its sans-I/O HTTP/1 [`Session`] decides. The backend feeds it
//! received bytes ([`Conn::on_input`]), tells it when its socket is writable again
//! ([`Conn::on_writable`]) or its deadline has passed ([`Conn::on_deadline`]); the session
//! asks back, through its host (`exchange`), for a response to each request (planned by the
//! handler under the policies) and for that response to be sent: inline with non-blocking
//! `send` (heads) and `sendfile` or `splice` (file bytes, which never enter user space), `tee`
//! and `splice` from a prebuilt copy, or encrypted into TLS records on an HTTPS connection. What it needs next — more input, writability, its deadline, a staged
//! close, or to be closed — goes back to the backend as a [`Next`], which arranges it in its
//! own way (a multishot recv and `POLL_ADD` on the ring, edge-triggered interest on epoll).
//!
//! Policies ([`crate::policy`]) apply at three points: a connection is admitted or refused
//! when it is created, each request passes the request checks before the handler sees it,
//! and a paced response sizes each file chunk from its token bucket. A paced connection that
//! is ahead of its rate sleeps on its deadline in the worker's timer queue ([`Next::Sleep`]):
//! no thread waits and no poll is armed for it.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, OwnedFd};

use crate::http::h1::{Action, Cx, Session};
use crate::metrics::Reject;
use crate::policy::{Admission, ConnPermit};
use crate::tls::Tls;

use super::exchange::{finish, Exchange};
use super::out_pool::Out;
use super::pipes::Pipe;
use super::receiving::{Landed, Receiving};
use super::send::Tail;
use super::timer::{Deadline, TimerKey};
use super::tls::Kernel;
use super::worker::Worker;
use crate::sys;

/// What the connection needs from its backend next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Waiting for request bytes.
    Read,
    /// A response is stuck on a full socket: call [`Conn::on_writable`] when it drains.
    Write,
    /// A paced response is ahead of its rate: call [`Conn::on_deadline`] at the deadline.
    Sleep,
    /// Done: close the connection (gracefully).
    Close,
    /// A deadline passed mid-request or mid-response: close with RST (nginx
    /// `reset_timedout_connection`), so no unsent data lingers in the kernel.
    Reset,
}

/// One client connection: the HTTP/1 session and the transport that carries out its actions.
pub struct Conn {
    /// The connection's place in its client's connection count; `None` when the client was
    /// over `--max-conns-per-ip`, so that its request is answered 503. Given up before the
    /// server's FIN leaves (by shutdown, or by the close, as it is declared before the
    /// socket): once the client sees the connection close, it no longer counts.
    permit: Option<ConnPermit>,
    sock: OwnedFd,
    peer: IpAddr,
    session: Session,
    /// The response in progress, borrowed from the worker's pool only while there is one.
    out: Option<Box<Out>>,
    /// Pipe holding file bytes on their way to the socket (splice body path only).
    pipe: Option<Pipe>,
    /// Whether the last response's tail is held back for the FIN (see [`Conn::on_close`]).
    tail: Tail,
    /// The client shut down its sending side: nothing more is read, and the connection
    /// closes once no response is under way.
    eof: bool,
    /// The TLS state of an HTTPS connection, between the socket and the session.
    tls: Option<Box<Tls>>,
    /// Who makes this HTTPS connection's records: rustls, or the kernel (kTLS).
    kernel: Kernel,
    /// The upload receiving the current request's body, if any.
    upload: Option<Box<Receiving>>,
    /// The session's deadline, kept in sync with the worker's timer queue.
    pub deadline: Deadline,
    /// This connection's place in its worker's table (set when it is added).
    pub(super) key: TimerKey,
}

impl Conn {
    /// Wraps a freshly accepted non-blocking socket, or refuses it (`None`: the socket is
    /// closed) when an access rule denies its address. `want_peer` looks up the client address
    /// (one syscall), which the access log and the per-client policies need; `tls`: it came
    /// from an HTTPS listener.
    pub fn new(sock: OwnedFd, want_peer: bool, tls: bool, w: &Worker) -> Option<Conn> {
        let tls = match (tls, &w.tls) {
            (false, _) => None,
            (true, Some(config)) => Some(Box::new(Tls::new(config).ok()?)),
            (true, None) => return None,
        };
        let peer = if want_peer {
            sys::peer_ip(sock.as_fd())
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        let memory = || w.memory.pressure();
        let permit = match w.policy.admit(peer, w.now, memory) {
            Admission::Admit(permit) => Some(permit),
            Admission::NoMemory => {
                w.metrics.rejected(Reject::NoMemory);
                None
            }
            Admission::OverLimit => {
                w.metrics.rejected(Reject::TooManyConns);
                None
            }
            Admission::Deny => {
                w.metrics.rejected(Reject::Denied);
                return None;
            }
        };
        let session = Session::new(&w.cx(&w.session_settings()));
        let mut deadline = Deadline::default();
        deadline.set(session.deadline());
        w.metrics.conn_opened();
        Some(Conn {
            sock,
            peer,
            session,
            out: None,
            permit,
            pipe: None,
            tail: Tail::Sent,
            eof: false,
            tls,
            kernel: Kernel::No,
            upload: None,
            deadline,
            key: TimerKey { idx: 0, gen: 0 },
        })
    }

    /// Turns the connection away for want of memory (its worker's table could not grow): the
    /// request already received is dropped, a fixed 503 is sent if the socket takes it at
    /// once, and the socket is shut down and closed. Nothing is allocated.
    pub fn refuse_for_memory(self, w: &Worker) {
        const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\
            Retry-After: 1\r\nConnection: close\r\n\r\n";
        let fd = self.sock.as_fd();
        let _ = crate::sys::discard(fd);
        let _ = crate::sys::send(fd, BUSY, false);
        let _ = socket2::SockRef::from(&self.sock).shutdown(std::net::Shutdown::Write);
        w.metrics.rejected(Reject::NoMemory);
        w.metrics.conn_closed();
    }

    /// The socket.
    pub fn sock(&self) -> &OwnedFd {
        &self.sock
    }

    /// Whether the connection sits between requests with nothing buffered: the ones a
    /// draining server may close at once.
    pub fn is_idle(&self) -> bool {
        self.session.is_idle()
    }

    /// Whether the connection only waits for its client to close (see [`Action::Linger`]):
    /// what arrives may be dropped unread.
    pub fn lingering(&self) -> bool {
        self.session.lingering()
    }

    /// The client shut down its sending side (a read returned end of input). A response under
    /// way, or one still being prepared (an upload the disk pool is finishing), is sent all
    /// the same, as nginx does, requests already buffered are answered, and the connection
    /// closes when it would next wait for input.
    pub fn on_eof(&mut self) -> Next {
        self.eof = true;
        match self.session.waiting_for() {
            Action::Write => Next::Write,
            Action::Sleep => Next::Sleep,
            _ => Next::Close,
        }
    }

    /// Whether the client shut down its sending side ([`Conn::on_eof`]): nothing is read.
    pub fn at_eof(&self) -> bool {
        self.eof
    }

    /// Input arrived on a lingering connection: drops all of it in the kernel with one
    /// `recv(MSG_TRUNC)`, however fast it comes, and closes once the client has.
    pub fn drop_input(&mut self, w: &Worker) -> Next {
        self.session.on_dropped(&w.cx(&w.session_settings()));
        self.deadline.set(self.session.deadline());
        match sys::discard(self.sock.as_fd()) {
            Ok(0) => Next::Close,
            Ok(_) => Next::Read,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Next::Read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Next::Read,
            Err(_) => Next::Close,
        }
    }

    /// Bytes `data` were received (ciphertext on an HTTPS connection).
    pub fn on_input(&mut self, data: &[u8], w: &mut Worker) -> Next {
        let Some(tls) = self.tls.as_deref_mut() else {
            return self.drive(w, |s, cx, host| s.on_input(data, cx, host));
        };
        let mut plain = std::mem::take(&mut w.tls_plain);
        plain.clear();
        let handshaking = tls.is_handshaking();
        let received = tls.receive(data, &mut plain, &mut w.tls_bufs);
        if handshaking && (received.is_err() || !tls.is_handshaking()) {
            w.metrics.tls_handshake(received.is_ok());
        }
        let next = match received {
            // The alert rustls queued goes out with the close.
            Err(_) => Next::Close,
            Ok(()) if plain.is_empty() => self.waiting(),
            Ok(()) => self.drive(w, |s, cx, host| s.on_input(&plain, cx, host)),
        };
        w.tls_plain = plain;
        self.send_records(next, w)
    }

    /// Whether the connection would take its input straight from the socket now (an upload
    /// body spliced to its file, see [`Conn::read_direct`]): a backend that receives eagerly
    /// stops, and waits for readability instead.
    /// An HTTPS session ready for the kernel waits the same way ([`Kernel::Ready`]).
    pub fn wants_direct(&self) -> bool {
        let plain = self.tls.is_none() && self.kernel == Kernel::No;
        self.kernel == Kernel::Ready
            || plain
                && self.session.wants_direct()
                && self.upload.as_deref().is_some_and(Receiving::receiving)
    }

    /// The socket has input the backend has not read: a request body the session can take
    /// without reading it (an upload spliced to its file) is moved now. `None`: read the
    /// input as usual. With `Some`, whether the socket was drained.
    pub fn read_direct(&mut self, w: &mut Worker) -> Option<(Next, bool)> {
        if self.kernel == Kernel::Ready {
            // Nothing read ahead: the session goes to the kernel, which decrypts what waits.
            return Some(
                match super::tls::offload(&mut self.tls, self.sock.as_fd(), w) {
                    Ok(handed) => {
                        self.kernel = if handed { Kernel::Yes } else { Kernel::No };
                        (Next::Read, false)
                    }
                    Err(_) => (Next::Close, false),
                },
            );
        }
        if self.tls.is_some() || self.kernel == Kernel::Yes {
            return None;
        }
        let (next, drained) = self.drive_with(w, |s, cx, host| match s.on_readable(cx, host) {
            Some((action, drained)) => (action, Some(drained)),
            None => (Action::Read, None),
        });
        drained.map(|d| (next, d))
    }

    /// The disk pool handed back this connection's upload: a batch of its body written (the
    /// body is taken further at once, or finished if it had ended) or its final answer (sent
    /// now, as the session resumes the response it was waiting for).
    pub fn upload_landed(&mut self, landed: Landed, w: &mut Worker) -> Next {
        let Some(upload) = self.upload.as_deref_mut() else {
            landed.dispose(w);
            return Next::Read;
        };
        match landed {
            Landed::Finished(answer) if upload.pending() => upload.finished(answer),
            Landed::Finished(_) => return Next::Read,
            Landed::Stored {
                receiver,
                batch,
                result,
            } => {
                if upload.stored(receiver, batch, result, w, self.key) {
                    // Mid-body: taken further at once (or refused, if the batch failed).
                    return self.read_direct(w).map_or(Next::Read, |(next, _)| next);
                }
                if upload.pending() {
                    return Next::Sleep;
                }
                if upload.abandoned {
                    self.upload = None;
                    w.metrics.upload_body(false);
                }
            }
        }
        self.on_deadline(w)
    }

    /// Whether the disk pool is writing a batch of this connection's upload body: nothing
    /// more is read from its socket until it lands.
    pub fn storing(&self) -> bool {
        self.upload.as_deref().is_some_and(|u| u.storing)
    }

    /// The socket became writable again after [`Next::Write`].
    pub fn on_writable(&mut self, w: &mut Worker) -> Next {
        if let Some(tls) = self.tls.as_deref_mut() {
            match super::tls::write_records(tls, self.sock.as_fd(), &mut w.tls_bufs) {
                Ok(true) => {}
                Ok(false) => return Next::Write,
                Err(_) => return Next::Close,
            }
        }
        let next = self.drive(w, |s, cx, host| s.on_writable(cx, host));
        self.send_records(next, w)
    }

    /// The connection's deadline passed: a paced response goes on; anything else timed out.
    pub fn on_deadline(&mut self, w: &mut Worker) -> Next {
        let next = self.drive(w, |s, cx, host| s.on_deadline(cx, host));
        if next == Next::Reset {
            w.metrics.rejected(Reject::Timeout);
        }
        self.send_records(next, w)
    }

    /// What the session waits for when nothing new happened.
    fn waiting(&self) -> Next {
        match self.session.waiting_for() {
            Action::Write => Next::Write,
            Action::Sleep => Next::Sleep,
            _ => Next::Read,
        }
    }

    /// On an HTTPS connection, writes the records the TLS state holds (handshake messages,
    /// alerts) after an event; a connection that has more to write than the socket takes
    /// waits for writability. One that waits for its next request with nothing in flight
    /// may go to the kernel ([`Kernel::Ready`]).
    fn send_records(&mut self, next: Next, w: &mut Worker) -> Next {
        let Some(tls) = self.tls.as_deref_mut() else {
            return next;
        };
        if matches!(next, Next::Close | Next::Reset) {
            // Best effort: the close follows whatever happens.
            return next;
        }
        match super::tls::write_records(tls, self.sock.as_fd(), &mut w.tls_bufs) {
            Ok(true) => {
                let quiet = next == Next::Read && self.session.between_requests();
                let tls = self
                    .tls
                    .as_deref()
                    .filter(|_| quiet && self.upload.is_none());
                self.kernel = super::tls::kernel_ready(tls, w);
                next
            }
            Ok(false) => Next::Write,
            Err(_) => Next::Close,
        }
    }

    /// The server started draining: an idle connection closes now, a busy one after its
    /// current response.
    pub fn on_drain(&mut self) -> Next {
        match self.session.on_drain() {
            Action::Close => Next::Close,
            Action::Write => Next::Write,
            Action::Sleep => Next::Sleep,
            _ => Next::Read,
        }
    }

    /// Runs one session event with this connection's transport as its host, then carries out
    /// the action it returns and follows its deadline.
    fn drive(
        &mut self,
        w: &mut Worker,
        event: impl FnOnce(&mut Session, &Cx<'_>, &mut Exchange<'_>) -> Action,
    ) -> Next {
        self.drive_with(w, |s, cx, host| (event(s, cx, host), ())).0
    }

    /// [`Conn::drive`] for an event that also returns something besides its action.
    fn drive_with<T>(
        &mut self,
        w: &mut Worker,
        event: impl FnOnce(&mut Session, &Cx<'_>, &mut Exchange<'_>) -> (Action, T),
    ) -> (Next, T) {
        let settings = w.session_settings();
        let cx = w.cx(&settings);
        let mut host = Exchange {
            sock: self.sock.as_fd(),
            peer: self.peer,
            permit: self.permit.is_some(),
            out: &mut self.out,
            pipe: &mut self.pipe,
            tail: &mut self.tail,
            secure: self.tls.is_some() || self.kernel == Kernel::Yes,
            tls: self.tls.as_deref_mut(),
            upload: &mut self.upload,
            key: self.key,
            w,
        };
        let (action, extra) = event(&mut self.session, &cx, &mut host);
        if let Some(upload) = self.upload.as_deref_mut() {
            upload.store_staged(w, self.key);
        }
        self.deadline.set(self.session.deadline());
        let next = match action {
            // No more input will come.
            Action::Read if self.eof => Next::Close,
            Action::Read => Next::Read,
            Action::Write => Next::Write,
            Action::Sleep => Next::Sleep,
            Action::Close => Next::Close,
            Action::Reset => Next::Reset,
            Action::Linger => {
                // Before the FIN: once the client sees the close, the connection no longer
                // counts.
                self.permit = None;
                self.close_tls(w);
                let shut = socket2::SockRef::from(&self.sock).shutdown(std::net::Shutdown::Write);
                if shut.is_ok() {
                    Next::Read
                } else {
                    Next::Close
                }
            }
        };
        (next, extra)
    }

    /// The backend is closing the connection (`reset`: with RST): a response cut short is
    /// logged with the bytes it got out, and a pipe still lent is given back (the pool closes
    /// it if it holds bytes).
    ///
    /// A socket holding its last response's tail back is shut down here, which sends the
    /// tail with the FIN. Closing it instead would send an RST in place of both if unread
    /// input sits in the socket. Returns whether it was shut down: its pending receive and
    /// poll then complete by themselves.
    pub fn on_close(&mut self, reset: bool, w: &mut Worker) -> bool {
        if let Some(out) = self.out.take() {
            finish(out, self.peer, w, false);
        }
        if let Some(p) = self.pipe.take() {
            w.pipes.give(p);
        }
        // An upload cut off mid-body keeps what it stored; its lock goes with it. (One being
        // finished by the pool completes all the same; only its answer is lost.)
        if let Some(upload) = self.upload.take() {
            w.metrics.upload_body(false);
            if upload.receiving() {
                w.metrics
                    .upload_failed(crate::metrics::UploadFailure::Aborted);
            }
        }
        // Before the FIN: once the client sees the close, the connection no longer counts.
        self.permit = None;
        if !reset {
            self.close_tls(w);
        }
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.release(&mut w.tls_bufs);
        }
        self.tail != Tail::Sent
            && !reset
            && socket2::SockRef::from(&self.sock)
                .shutdown(std::net::Shutdown::Both)
                .is_ok()
    }
}

impl Conn {
    /// Ends an HTTPS connection's TLS stream with `close_notify`, written if the socket takes
    /// it at once (the close does not wait for it).
    fn close_tls(&mut self, w: &mut Worker) {
        if self.kernel == Kernel::Yes {
            let _ = sys::ktls_close_notify(self.sock.as_fd());
        }
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.close(&mut w.tls_bufs);
            let _ = super::tls::write_records(tls, self.sock.as_fd(), &mut w.tls_bufs);
        }
    }
}
