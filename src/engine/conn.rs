//! The transport of a connection, shared by both backends.
//!
//! A [`Conn`] holds the socket, the client's place in the policies and the response being
//! sent, and carries out what its sans-I/O HTTP/1 [`Session`] decides. The backend feeds it
//! received bytes ([`Conn::on_input`]), tells it when its socket is writable again
//! ([`Conn::on_writable`]) or its deadline has passed ([`Conn::on_deadline`]); the session
//! asks back, through [`Host`], for a response to each request (planned by the handler under
//! the policies) and for that response to be sent: inline with non-blocking `send` (heads) and
//! `sendfile` or `splice` (file bytes, which never enter user space), or `tee` and `splice`
//! from a prebuilt copy. What it needs next — more input, writability, its deadline, a staged
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
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Instant, UNIX_EPOCH};

use crate::config::Config;
use crate::http::date::DateCache;
use crate::http::h1::{Action, Cx, Flush, Host, Reply, Session, Settings};
use crate::http::response::{self, Context};
use crate::http::{Method, Request, Status};
use crate::metrics::{Reject, TopFiles, WorkerHandle};
use crate::policy::{Admission, ConnPermit, Grant, Policy, Refusal};
use crate::serve::{Handler, Response, Scratch};
use crate::tls::Tls;

use super::out_pool::{Out, OutPool};
use super::pipes::{Pipe, PipePool};
use super::prebuilt::Prebuilt;
use super::send::{response_len, send, Progress, Tail};
use super::timer::Deadline;
use crate::metrics::access_log::AccessLog;
use crate::sys;

/// Paths tracked per worker for the most-downloaded list.
const TOP_FILES: usize = 64;

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

/// Per-worker state every connection of the worker uses while it is being driven.
pub struct Worker {
    /// The static-file handler.
    pub handler: Handler,
    /// Run-time configuration.
    pub config: Arc<Config>,
    /// `Date` header value, refreshed once per second.
    pub date: DateCache,
    /// Time of the current loop turn.
    pub now: Instant,
    /// Set once the server is shutting down: every response then closes its connection.
    pub draining: bool,
    /// Buffered access log.
    pub log: AccessLog,
    /// Pacing and protection.
    pub policy: Policy,
    /// Wall-clock time of the current loop turn in Unix seconds (for signed-link expiry).
    unix_now: u64,
    /// This worker's counters (read by the admin listener).
    pub metrics: WorkerHandle,
    /// Most downloaded files, published to `metrics` once a second.
    top: TopFiles,
    scratch: Scratch,
    /// Pipes lent to connections on the splice and prebuilt paths.
    pub(super) pipes: PipePool,
    /// Prebuilt copies of hot small responses.
    pub(super) prebuilt: Prebuilt,
    /// Plaintext an HTTPS connection's input carried, handed to its session (reused).
    tls_plain: Vec<u8>,
    /// File bytes on their way to being encrypted (reused; sized on first use).
    pub(super) tls_buf: Vec<u8>,
    /// This worker's TLS settings (its own session cache), from the configuration's.
    pub(super) tls: Option<Arc<rustls::ServerConfig>>,
    out_pool: OutPool,
}

impl Worker {
    /// Worker state serving with `handler` under `config`.
    pub fn new(
        handler: Handler,
        config: Arc<Config>,
        log: AccessLog,
        policy: Policy,
        metrics: WorkerHandle,
    ) -> Worker {
        let mut date = DateCache::new();
        date.update(std::time::SystemTime::now());
        let pipes = PipePool::new(metrics.clone());
        let prebuilt = Prebuilt::new(Instant::now(), config.workers, sys::fd_limit());
        let tls = config.tls.as_ref().map(crate::tls::per_worker);
        Worker {
            handler,
            config,
            date,
            now: Instant::now(),
            draining: false,
            log,
            policy,
            unix_now: 0,
            metrics,
            top: TopFiles::new(TOP_FILES),
            scratch: Scratch::default(),
            pipes,
            prebuilt,
            out_pool: OutPool::default(),
            tls_plain: Vec::new(),
            tls_buf: Vec::new(),
            tls,
        }
    }

    /// Advances the worker's clock (once per loop turn).
    pub fn tick(&mut self) {
        self.now = Instant::now();
        let wall = std::time::SystemTime::now();
        self.date.update(wall);
        self.log.tick(wall);
        self.unix_now = wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.policy.tick(self.now);
        let (hits, misses) = self.handler.cache_stats();
        self.metrics.cache_totals(hits, misses);
        self.top.publish(self.now, &self.metrics);
        self.prebuilt.sweep(self.now);
    }

    /// The session settings of the configuration in force.
    fn session_settings(&self) -> Settings {
        let c = &self.config;
        Settings {
            limits: c.limits.clone(),
            header_timeout: c.header_timeout,
            keepalive_timeout: c.keepalive_timeout,
            send_timeout: c.send_timeout,
            lingering_timeout: c.lingering_timeout,
            lingering_time: c.lingering_time,
            keepalive_requests: c.keepalive_requests,
        }
    }

    /// What a session is told with an event of this loop turn.
    fn cx<'a>(&self, settings: &'a Settings) -> Cx<'a> {
        Cx {
            now: self.now,
            draining: self.draining,
            settings,
        }
    }
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
    /// The TLS state of an HTTPS connection, between the socket and the session.
    tls: Option<Box<Tls>>,
    /// The session's deadline, kept in sync with the worker's timer queue.
    pub deadline: Deadline,
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
            peer_ip(&sock)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        let permit = match w.policy.admit(peer) {
            Admission::Admit(permit) => Some(permit),
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
            tls,
            deadline,
        })
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
        let received = tls.receive(data, &mut plain);
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
        self.send_records(next)
    }

    /// The socket became writable again after [`Next::Write`].
    pub fn on_writable(&mut self, w: &mut Worker) -> Next {
        if let Some(tls) = self.tls.as_deref_mut() {
            match super::tls::write_records(tls, self.sock.as_fd()) {
                Ok(true) => {}
                Ok(false) => return Next::Write,
                Err(_) => return Next::Close,
            }
        }
        let next = self.drive(w, |s, cx, host| s.on_writable(cx, host));
        self.send_records(next)
    }

    /// The connection's deadline passed: a paced response goes on; anything else timed out.
    pub fn on_deadline(&mut self, w: &mut Worker) -> Next {
        let next = self.drive(w, |s, cx, host| s.on_deadline(cx, host));
        if next == Next::Reset {
            w.metrics.rejected(Reject::Timeout);
        }
        self.send_records(next)
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
    /// waits for writability.
    fn send_records(&mut self, next: Next) -> Next {
        let Some(tls) = self.tls.as_deref_mut() else {
            return next;
        };
        if matches!(next, Next::Close | Next::Reset) {
            // Best effort: the close follows whatever happens.
            return next;
        }
        match super::tls::write_records(tls, self.sock.as_fd()) {
            Ok(true) => next,
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
        let settings = w.session_settings();
        let cx = w.cx(&settings);
        let mut host = Exchange {
            sock: self.sock.as_fd(),
            peer: self.peer,
            permit: self.permit.is_some(),
            out: &mut self.out,
            pipe: &mut self.pipe,
            tail: &mut self.tail,
            tls: self.tls.as_deref_mut(),
            w,
        };
        let action = event(&mut self.session, &cx, &mut host);
        self.deadline.set(self.session.deadline());
        match action {
            Action::Read => Next::Read,
            Action::Write => Next::Write,
            Action::Sleep => Next::Sleep,
            Action::Close => Next::Close,
            Action::Reset => Next::Reset,
            Action::Linger => {
                // Before the FIN: once the client sees the close, the connection no longer
                // counts.
                self.permit = None;
                self.close_tls();
                let shut = socket2::SockRef::from(&self.sock).shutdown(std::net::Shutdown::Write);
                if shut.is_ok() {
                    Next::Read
                } else {
                    Next::Close
                }
            }
        }
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
        // Before the FIN: once the client sees the close, the connection no longer counts.
        self.permit = None;
        if !reset {
            self.close_tls();
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
    fn close_tls(&mut self) {
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.close();
            let _ = super::tls::write_records(tls, self.sock.as_fd());
        }
    }
}

/// The session's host on a real connection: plans responses with the worker's handler and
/// policies, and sends them on the socket.
struct Exchange<'a> {
    sock: BorrowedFd<'a>,
    peer: IpAddr,
    /// The client is within `--max-conns-per-ip`.
    permit: bool,
    out: &'a mut Option<Box<Out>>,
    pipe: &'a mut Option<Pipe>,
    tail: &'a mut Tail,
    /// The TLS state of an HTTPS connection: responses are encrypted through it.
    tls: Option<&'a mut Tls>,
    w: &'a mut Worker,
}

impl Host for Exchange<'_> {
    fn respond(&mut self, req: &Request<'_>, keep_alive: bool) -> Reply {
        let checked = self.check(req);
        let w = &mut *self.w;
        let out = self.out.get_or_insert_with(|| w.out_pool.take());
        let secure = self.tls.is_some();
        let cx = Context {
            date: w.date.get(),
            limits: &w.config.limits,
            keep_alive,
            server: b"ringserve",
            hsts: w.config.hsts.as_deref().filter(|_| secure),
        };
        let redirect = w.config.redirect_https.filter(|_| !secure);
        let resp = match (checked, redirect) {
            (Ok(_), Some(port)) => Response {
                planned: response::to_https(
                    req.host,
                    port,
                    req.target_raw,
                    req.method == Method::Head,
                    keep_alive,
                    &cx,
                    &mut out.bytes,
                    &mut out.chunks,
                ),
                file: None,
                version: None,
            },
            (Ok(grant), None) => {
                let resp = w.handler.respond(
                    req,
                    &cx,
                    w.now,
                    &mut w.scratch,
                    &mut out.bytes,
                    &mut out.chunks,
                );
                if resp.file.is_some() {
                    out.pacing = w.policy.pacing(grant, w.now);
                }
                resp
            }
            (Err((status, retry_after)), _) => Response {
                planned: response::refuse(
                    status,
                    retry_after,
                    req.method == Method::Head,
                    keep_alive && req.keep_alive && self.permit,
                    &cx,
                    &mut out.bytes,
                    &mut out.chunks,
                ),
                file: None,
                version: None,
            },
        };
        w.log.stage(
            &mut out.record,
            Some(req),
            resp.planned.status,
            (response_len(&out.chunks), resp.planned.body_len),
            w.now,
        );
        let status = resp.planned.status;
        let download = matches!(status, Status::Ok | Status::PartialContent);
        if req.method == Method::Get && download {
            w.top.record(req.target);
        }
        (out.method, out.status, out.started) = (req.method, status, Some(w.now));
        (out.file, out.version) = (resp.file, resp.version);
        Reply {
            keep_alive: resp.planned.keep_alive,
            paced: out.pacing.is_some(),
        }
    }

    fn reject(&mut self, status: Status) {
        let w = &mut *self.w;
        let out = self.out.get_or_insert_with(|| w.out_pool.take());
        let cx = Context {
            date: w.date.get(),
            limits: &w.config.limits,
            keep_alive: false,
            server: b"ringserve",
            hsts: w.config.hsts.as_deref().filter(|_| self.tls.is_some()),
        };
        let planned = response::error(status, false, false, &cx, &mut out.bytes, &mut out.chunks);
        let lens = (response_len(&out.chunks), planned.body_len);
        w.log
            .stage(&mut out.record, None, planned.status, lens, w.now);
        (out.method, out.status, out.started) = (Method::Other, planned.status, Some(w.now));
    }

    fn flush(&mut self, hold_tail: bool) -> Flush {
        let Some(out) = self.out.as_deref_mut() else {
            return Flush::Done;
        };
        let sent = match self.tls.as_deref_mut() {
            Some(tls) => super::tls::send(out, self.sock, tls, self.w),
            None => {
                if hold_tail && *self.tail == Tail::Sent {
                    *self.tail = Tail::More;
                }
                send(out, self.sock, self.pipe, self.tail, self.w)
            }
        };
        match sent {
            Ok(Progress::Done) => {}
            Ok(Progress::Blocked) => return Flush::Blocked,
            Ok(Progress::Paced(until)) => return Flush::Paced(until),
            Err(_) => return Flush::Failed,
        }
        if let Some(out) = self.out.take() {
            finish(out, self.peer, self.w, true);
        }
        Flush::Done
    }
}

impl Exchange<'_> {
    /// Applies the request policies: the connection cap of its client, its request rate,
    /// signed links. Refusals are counted and returned as the status (and `Retry-After`) to
    /// answer with.
    fn check(&mut self, req: &Request<'_>) -> Result<Grant, (Status, Option<u64>)> {
        if !self.permit {
            return Err((Status::ServiceUnavailable, None));
        }
        let w = &mut *self.w;
        let scratch = &mut w.scratch.path;
        let refusal = match w
            .policy
            .on_request(self.peer, req.target, w.now, w.unix_now, scratch)
        {
            Ok(grant) => return Ok(grant),
            Err(refusal) => refusal,
        };
        let (reason, status, retry_after) = match refusal {
            Refusal::RateLimited(secs) => {
                (Reject::RateLimited, Status::TooManyRequests, Some(secs))
            }
            Refusal::Forbidden => (Reject::BadLink, Status::Forbidden, None),
            Refusal::Expired => (Reject::BadLink, Status::Gone, None),
        };
        w.metrics.rejected(reason);
        Err((status, retry_after))
    }
}

/// Ends the response `out`: writes its access-log line with the bytes it got out, counts it
/// in the metrics if it was `complete`, and gives its state back to the pool.
fn finish(mut out: Box<Out>, peer: IpAddr, w: &mut Worker, complete: bool) {
    if out.record.is_staged() {
        let (done, partial) = out.cursor;
        let sent = response_len(&out.chunks[..done]) + partial;
        w.log.write(&mut out.record, peer, sent);
    }
    if let (true, Some(started)) = (complete, out.started) {
        let took = w.now.saturating_duration_since(started);
        w.metrics.request(out.method, out.status.code(), took);
    }
    w.out_pool.give(out);
}

/// The peer's IP address, unspecified if it cannot be had.
fn peer_ip(sock: &OwnedFd) -> IpAddr {
    socket2::SockRef::from(sock)
        .peer_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip())
}
