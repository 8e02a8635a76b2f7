//! The connection driver shared by both backends.
//!
//! A [`Conn`] is fed received bytes ([`Conn::on_input`]) and told when its socket is writable
//! again ([`Conn::on_writable`]); it parses requests with the sans-I/O core, asks the handler
//! for a response plan, and sends it inline with non-blocking `send` (heads) and `sendfile`
//! (file bytes, which never enter user space). It answers with what it needs next — more
//! input, writability, or to be closed — and the backend arranges that in its own way (a
//! multishot recv and `POLL_ADD` on the ring, edge-triggered interest on epoll).
//!
//! Requests are answered strictly one after another: the next pipelined request is parsed
//! only once the previous response is fully handed to the kernel, so responses can never
//! interleave and a client that stops reading stops being served.
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
use std::time::{Duration, Instant, UNIX_EPOCH};

use crate::config::{BodyPath, Config};
use crate::http::date::DateCache;
use crate::http::request::{self, Parse};
use crate::http::response::{self, Context};
use crate::http::{Chunk, Method, Request, Status};
use crate::metrics::{BodyKind, Reject, TopFiles, WorkerHandle};
use crate::policy::{Admission, Allowance, ConnPermit, Grant, Policy, Refusal};
use crate::serve::{Handler, Response, Scratch};

use super::access_log::AccessLog;
use super::out_pool::{Out, OutPool};
use super::pipes::{Pipe, PipePool, PIPE_SIZE};
use super::prebuilt::Prebuilt;
use super::sys;
use super::timer::Deadline;

/// Most unparsed input kept for a connection while its response is being sent (pipelined
/// requests waiting their turn). A client that sends more without reading is cut off.
const MAX_PENDING: usize = 64 * 1024;

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

/// Where a connection is in its life, which decides its deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Between requests on a kept-alive connection.
    Idle,
    /// Some bytes of a request head have arrived (or the connection is new).
    Head,
    /// A response is waiting for the socket to drain.
    Sending,
    /// A paced response is waiting for its rate to allow the next chunk.
    Paced,
    /// A response was just sent; the next input decides between `Idle` and `Head`.
    Answered,
    /// The last response is sent and the write side shut down; input is dropped until the
    /// client closes, falls silent for `--lingering-timeout` or has sent for
    /// `--lingering-time` (see `Conn::closing`).
    Lingering,
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
    pipes: PipePool,
    prebuilt: Prebuilt,
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

    fn deadline_after(&self, d: Duration) -> Option<Instant> {
        Some(self.now + d)
    }
}

/// How a connection's last response keeps its tail back until the shutdown at close sends
/// it with the FIN.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tail {
    /// Nothing held: a response that keeps the connection open, or a paced one.
    Sent,
    /// Every send of the response says more follows (`MSG_MORE`, `SPLICE_F_MORE`), so the
    /// last partial segment waits, at no cost beyond the flag.
    More,
    /// The socket is corked (`TCP_CORK`): `sendfile(2)` takes no flag, so a response that
    /// goes out through it sets the cork before its first call.
    Corked,
}

/// One client connection.
pub struct Conn {
    /// The connection's place in its client's connection count; `None` when the client was
    /// over `--max-conns-per-ip`, so that its request is answered 503. Given up before the
    /// server's FIN leaves (by shutdown, or by the close, as it is declared before the
    /// socket): once the client sees the connection close, it no longer counts.
    permit: Option<ConnPermit>,
    sock: OwnedFd,
    peer: IpAddr,
    /// Unparsed request bytes carried between inputs (empty in the common case, where a
    /// whole request arrives at once and is parsed straight from the receive buffer).
    pending: Vec<u8>,
    /// Request-body bytes still to read and discard.
    discard: u64,
    /// The response in progress, borrowed from the worker's pool only while there is one.
    out: Option<Box<Out>>,
    /// Pipe holding file bytes on their way to the socket (splice body path only).
    pipe: Option<Pipe>,
    /// Close once the current response is sent.
    close_after: bool,
    /// Whether the last response's tail is held back for the FIN (see [`Conn::on_close`]).
    tail: Tail,
    /// The last response refuses a request for its size: its client is likely still sending.
    linger: bool,
    /// Requests answered on this connection.
    served: u32,
    /// When lingering must end whatever the client does (see [`Conn::closing`]).
    linger_end: Option<Instant>,
    phase: Phase,
    /// The connection's deadline, kept in sync with the worker's timer queue.
    pub deadline: Deadline,
}

impl Conn {
    /// Wraps a freshly accepted non-blocking socket, or refuses it (`None`: the socket is
    /// closed) when an access rule denies its address. `want_peer` looks up the client address
    /// (one syscall), which the access log and the per-client policies need.
    pub fn new(sock: OwnedFd, want_peer: bool, w: &Worker) -> Option<Conn> {
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
        let mut deadline = Deadline::default();
        deadline.set(w.deadline_after(w.config.header_timeout));
        w.metrics.conn_opened();
        Some(Conn {
            sock,
            peer,
            pending: Vec::new(),
            discard: 0,
            out: None,
            permit,
            pipe: None,
            close_after: false,
            tail: Tail::Sent,
            linger: false,
            served: 0,
            linger_end: None,
            phase: Phase::Head,
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
        self.phase == Phase::Idle && self.pending.is_empty()
    }

    /// Whether the connection only waits for its client to close (see `Conn::closing`):
    /// what arrives may be dropped unread.
    pub fn lingering(&self) -> bool {
        self.phase == Phase::Lingering
    }

    /// Input arrived on a lingering connection: drops all of it in the kernel with one
    /// `recv(MSG_TRUNC)`, however fast it comes, waits up to `--lingering-timeout` for more
    /// (but not past `--lingering-time` in all), and closes once the client has.
    pub fn drop_input(&mut self, w: &Worker) -> Next {
        self.await_more_input(w);
        match sys::discard(self.sock.as_fd()) {
            Ok(0) => Next::Close,
            Ok(_) => Next::Read,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Next::Read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Next::Read,
            Err(_) => Next::Close,
        }
    }

    /// Bytes `data` were received.
    pub fn on_input(&mut self, data: &[u8], w: &mut Worker) -> Next {
        if self.lingering() {
            return Next::Read;
        }
        if self.busy() || !self.pending.is_empty() {
            if self.pending.len() + data.len() > MAX_PENDING {
                return Next::Close;
            }
            self.pending.extend_from_slice(data);
            if self.busy() {
                return self.waiting();
            }
            return self.serve_pending(w);
        }
        let (used, next) = self.serve(data, w);
        if next != Next::Close && used < data.len() && !self.lingering() {
            self.pending.extend_from_slice(&data[used..]);
        }
        next
    }

    /// The socket became writable again after [`Next::Write`]. (A paced connection ignores
    /// writability: only its deadline resumes it.)
    pub fn on_writable(&mut self, w: &mut Worker) -> Next {
        match self.phase {
            Phase::Sending => self.resume(w),
            Phase::Paced => Next::Sleep,
            _ => Next::Read,
        }
    }

    /// The connection's deadline passed: a paced response may go on; anything else timed out.
    /// An idle keep-alive connection is closed gracefully, any other reset.
    pub fn on_deadline(&mut self, w: &mut Worker) -> Next {
        if self.phase == Phase::Paced {
            return self.resume(w);
        }
        if self.is_idle() || self.lingering() {
            Next::Close
        } else {
            w.metrics.rejected(Reject::Timeout);
            Next::Reset
        }
    }

    /// Goes on sending the current response, then serves pipelined requests.
    fn resume(&mut self, w: &mut Worker) -> Next {
        match self.flush(w) {
            Ok(true) if self.close_after => self.closing(!self.pending.is_empty(), w),
            Ok(true) => self.serve_pending(w),
            Ok(false) => self.waiting(),
            Err(_) => Next::Close,
        }
    }

    /// Whether a response is in progress (waiting for the socket or for its rate).
    fn busy(&self) -> bool {
        matches!(self.phase, Phase::Sending | Phase::Paced)
    }

    /// What a response in progress waits for.
    fn waiting(&self) -> Next {
        if self.phase == Phase::Paced {
            Next::Sleep
        } else {
            Next::Write
        }
    }

    /// The server started draining: an idle connection closes now, a busy one after its
    /// current response.
    pub fn on_drain(&mut self) -> Next {
        // Nothing of a request has arrived (between requests, or accepted and silent).
        let waiting = matches!(
            self.phase,
            Phase::Idle | Phase::Head | Phase::Answered | Phase::Lingering
        );
        if waiting && self.pending.is_empty() && self.discard == 0 {
            Next::Close
        } else {
            self.close_after = true;
            if self.busy() {
                self.waiting()
            } else {
                Next::Read
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
            self.finish(out, w, false);
        }
        if let Some(p) = self.pipe.take() {
            w.pipes.give(p);
        }
        // Before the FIN: once the client sees the close, the connection no longer counts.
        self.permit = None;
        self.tail != Tail::Sent
            && !reset
            && socket2::SockRef::from(&self.sock)
                .shutdown(std::net::Shutdown::Both)
                .is_ok()
    }

    /// Ends the response `out`: writes its access-log line with the bytes it got out, counts
    /// it in the metrics if it was `complete`, and gives its state back to the pool.
    fn finish(&self, mut out: Box<Out>, w: &mut Worker, complete: bool) {
        if out.record.is_staged() {
            let (done, partial) = out.cursor;
            let sent = response_len(&out.chunks[..done]) + partial;
            w.log.write(&mut out.record, self.peer, sent);
        }
        if let (true, Some(started)) = (complete, out.started) {
            let took = w.now.saturating_duration_since(started);
            w.metrics.request(out.method, out.status.code(), took);
        }
        w.out_pool.give(out);
    }

    fn serve_pending(&mut self, w: &mut Worker) -> Next {
        let pending = std::mem::take(&mut self.pending);
        let (used, next) = self.serve(&pending, w);
        self.pending = pending;
        if self.lingering() {
            self.pending.clear();
        } else {
            self.pending.drain(..used);
        }
        next
    }

    /// Answers the requests at the start of `buf` until input runs out or a response blocks.
    /// Returns how many bytes of `buf` were consumed.
    fn serve(&mut self, buf: &[u8], w: &mut Worker) -> (usize, Next) {
        let mut pos = 0;
        loop {
            if self.discard > 0 {
                let n = self.discard.min((buf.len() - pos) as u64);
                pos += n as usize;
                self.discard -= n;
                if self.discard > 0 {
                    return (pos, Next::Read);
                }
            }
            if pos == buf.len() {
                self.await_request(w, false);
                return (pos, Next::Read);
            }
            match request::parse(&buf[pos..], &w.config.limits) {
                Parse::Partial => {
                    self.await_request(w, true);
                    return (pos, Next::Read);
                }
                Parse::Invalid(status) => {
                    self.plan_error(status, w);
                    pos = buf.len();
                }
                Parse::Complete(req) => {
                    self.served += 1;
                    let keep_alive = !w.draining
                        && !self.close_after
                        && self.served < w.config.keepalive_requests;
                    let checked = self.check(&req, w);
                    let out = self.out.get_or_insert_with(|| w.out_pool.take());
                    let cx = Context {
                        date: w.date.get(),
                        limits: &w.config.limits,
                        keep_alive,
                        server: b"ringserve",
                    };
                    let resp = match checked {
                        Ok(grant) => {
                            let resp = w.handler.respond(
                                &req,
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
                        Err((status, retry_after)) => Response {
                            planned: response::refuse(
                                status,
                                retry_after,
                                req.method == Method::Head,
                                keep_alive && req.keep_alive && self.permit.is_some(),
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
                        Some(&req),
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
                    let paced = out.pacing.is_some();
                    if !resp.planned.keep_alive {
                        self.last_response(!paced);
                    }
                    pos += req.head_len;
                    self.discard = req.body_len;
                }
            }
            match self.flush(w) {
                Ok(true) if self.close_after => {
                    return (pos, self.closing(pos < buf.len(), w));
                }
                Ok(true) => {}
                Ok(false) => return (pos, self.waiting()),
                Err(_) => return (pos, Next::Close),
            }
        }
    }

    /// Applies the request policies: the connection cap of its client, its request rate,
    /// signed links. Refusals are counted and returned as the status (and `Retry-After`) to
    /// answer with.
    fn check(&self, req: &Request<'_>, w: &mut Worker) -> Result<Grant, (Status, Option<u64>)> {
        if self.permit.is_none() {
            return Err((Status::ServiceUnavailable, None));
        }
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

    fn plan_error(&mut self, status: Status, w: &mut Worker) {
        let out = self.out.get_or_insert_with(|| w.out_pool.take());
        let cx = Context {
            date: w.date.get(),
            limits: &w.config.limits,
            keep_alive: false,
            server: b"ringserve",
        };
        let planned = response::error(status, false, false, &cx, &mut out.bytes, &mut out.chunks);
        let lens = (response_len(&out.chunks), planned.body_len);
        w.log
            .stage(&mut out.record, None, planned.status, lens, w.now);
        (out.method, out.status, out.started) = (Method::Other, planned.status, Some(w.now));
        self.linger = matches!(
            status,
            Status::PayloadTooLarge | Status::HeaderFieldsTooLarge | Status::UriTooLong
        );
        self.last_response(true);
    }

    /// The connection's last response is with the kernel. If its client may still be sending
    /// (`unread` input is buffered, a request body is being skipped, or the request was
    /// refused for its size), the connection closes in stages as RFC 9112 §9.6 describes and
    /// nginx's `lingering_close` does: the write side is shut down (the response and the FIN
    /// leave), what the client still sends is dropped until it closes, falls silent for
    /// `--lingering-timeout` or has been at it for `--lingering-time`, and only then is the
    /// socket closed. Closed at once with input unread, it would send an RST, which can
    /// destroy the response before the client reads it.
    fn closing(&mut self, unread: bool, w: &Worker) -> Next {
        let (timeout, time) = (w.config.lingering_timeout, w.config.lingering_time);
        if timeout.is_zero() || time.is_zero() || !(unread || self.discard > 0 || self.linger) {
            return Next::Close;
        }
        self.permit = None;
        let shut = socket2::SockRef::from(&self.sock).shutdown(std::net::Shutdown::Write);
        if shut.is_err() {
            return Next::Close;
        }
        self.phase = Phase::Lingering;
        self.discard = 0;
        self.linger_end = Some(w.now + time);
        self.await_more_input(w);
        Next::Read
    }

    /// A lingering connection waits `--lingering-timeout` for more input, but not past the
    /// end of its `--lingering-time`.
    fn await_more_input(&mut self, w: &Worker) {
        let wait = w.now + w.config.lingering_timeout;
        self.deadline.set(self.linger_end.map(|end| end.min(wait)));
    }

    /// The response being planned is the connection's last. Unless it is paced (a held
    /// tail would hold its small chunks back), its tail is held back (see [`Tail`]): the
    /// shutdown at close then sends it and the FIN in one segment instead of two, which saves
    /// the transmit and the peer's receive of a segment on every `Connection: close` exchange.
    fn last_response(&mut self, hold: bool) {
        self.close_after = true;
        if hold && self.tail == Tail::Sent {
            self.tail = Tail::More;
        }
    }

    /// Sets the deadline for waiting on a request: keep-alive idle when nothing of the next
    /// request has arrived, header timeout from the moment its first bytes do.
    fn await_request(&mut self, w: &Worker, partial: bool) {
        let phase = if partial { Phase::Head } else { Phase::Idle };
        if phase != self.phase {
            let d = match phase {
                Phase::Head => w.config.header_timeout,
                _ => w.config.keepalive_timeout,
            };
            self.deadline.set(w.deadline_after(d));
            self.phase = phase;
        }
    }

    /// Sends as much of the current response as the socket takes. `Ok(true)` when all of it
    /// was handed to the kernel (the response is then finished and its state given back),
    /// `Ok(false)` when it has to wait for the socket or for its rate.
    fn flush(&mut self, w: &mut Worker) -> io::Result<bool> {
        let Some(out) = self.out.as_deref_mut() else {
            return Ok(true);
        };
        match send(out, self.sock.as_fd(), &mut self.pipe, &mut self.tail, w)? {
            Progress::Done => {}
            Progress::Blocked => return Ok(self.blocked(w)),
            Progress::Paced(until) => {
                self.phase = Phase::Paced;
                self.deadline.set(Some(until));
                return Ok(false);
            }
        }
        if let Some(out) = self.out.take() {
            self.finish(out, w, true);
        }
        self.phase = Phase::Answered;
        Ok(true)
    }

    /// Records that the response is waiting for the socket; (re)starts the send timeout,
    /// which counts from the last progress like nginx's `send_timeout`.
    fn blocked(&mut self, w: &Worker) -> bool {
        self.phase = Phase::Sending;
        self.deadline.set(w.deadline_after(w.config.send_timeout));
        false
    }
}

/// How far [`send`] got.
enum Progress {
    /// The whole response is with the kernel.
    Done,
    /// The socket is full.
    Blocked,
    /// The response is ahead of its rate until this instant.
    Paced(Instant),
}

/// Sends the chunks of `out` from its cursor on, inline and non-blocking: heads with `send`,
/// file bytes with `sendfile` (or through `pipe` with `splice`), each file chunk sized by the
/// response's pacing. A response the worker holds prebuilt is teed into `pipe` whole first.
/// Whatever `pipe` holds goes out before anything else: those are the response's next bytes.
fn send(
    out: &mut Out,
    sock: BorrowedFd<'_>,
    pipe: &mut Option<Pipe>,
    tail: &mut Tail,
    w: &mut Worker,
) -> io::Result<Progress> {
    let held = *tail != Tail::Sent;
    if pipe.is_none() {
        start_prebuilt(out, pipe, w);
    }
    loop {
        let sent = if let Some(p) = pipe.as_mut().filter(|p| p.filled > 0) {
            let before = p.filled;
            // More follows at once (unless a rate spaces the chunks out), or the tail waits
            // for the FIN.
            let more = held || (remaining(out) > before as u64 && out.pacing.is_none());
            let kind = if p.prebuilt {
                BodyKind::Tee
            } else {
                BodyKind::Splice
            };
            let sent = sys::splice_to_socket(p.r(), sock, before, more);
            if let Ok(n) = sent {
                p.filled -= n;
                if let Some(empty) = pipe.take_if(|p| p.filled == 0) {
                    w.pipes.give(empty);
                }
            }
            sent.map(|n| (n, n < before, kind))
        } else {
            let Some(&chunk) = out.chunks.get(out.cursor.0) else {
                return Ok(Progress::Done);
            };
            let more = held || out.cursor.0 + 1 < out.chunks.len();
            let done = out.cursor.1;
            match chunk {
                Chunk::Mem { start, end } => {
                    let buf = &out.bytes[start + done as usize..end];
                    sys::send(sock, buf, more).map(|n| (n, n < buf.len(), BodyKind::Memory))
                }
                Chunk::File { offset, len } => {
                    if *tail == Tail::More && matches!(w.config.body, BodyPath::Sendfile) {
                        // sendfile(2) takes no MSG_MORE: the cork holds its tail instead.
                        // Failing, the tail leaves in a segment of its own: no harm done.
                        let _ = socket2::SockRef::from(&sock).set_tcp_cork(true);
                        *tail = Tail::Corked;
                    }
                    let file = out
                        .file
                        .as_ref()
                        .ok_or(io::ErrorKind::InvalidInput)?
                        .as_fd();
                    let (at, mut want) = (offset + done, len - done);
                    if let Some(pacing) = &mut out.pacing {
                        match pacing.allowance(w.now, want) {
                            Allowance::Send(n) => want = n,
                            Allowance::Wait(until) => return Ok(Progress::Paced(until)),
                        }
                    }
                    match w.config.body {
                        BodyPath::Sendfile => sys::sendfile(sock, file, at, want).map(|n| {
                            let full = (n as u64) < want.min(sys::SENDFILE_MAX);
                            (n, full, BodyKind::Sendfile)
                        }),
                        BodyPath::Splice => match fill(pipe, &mut w.pipes, file, at, want) {
                            Ok(()) => continue,
                            Err(e) => Err(e),
                        },
                    }
                }
            }
        };
        match sent {
            Ok((0, _, _)) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok((n, socket_full, kind)) => {
                let chunk = out.cursor.0;
                advance(out, n as u64, kind, w);
                if socket_full && (out.cursor.0 == chunk || pipe.is_some()) {
                    // Wait for writability rather than try again only to get EAGAIN.
                    return Ok(Progress::Blocked);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Progress::Blocked),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Starts the response from its prebuilt copy when the worker holds one (see
/// [`Prebuilt`]): the copy is teed into a pipe lent to the connection, which [`send`]
/// empties into the socket.
fn start_prebuilt(out: &Out, slot: &mut Option<Pipe>, w: &mut Worker) {
    let Some((copy, len)) = w.prebuilt.lookup(out) else {
        return;
    };
    let Ok(mut pipe) = w.pipes.take() else {
        return;
    };
    match sys::tee(copy, pipe.w(), len) {
        Ok(n) => (pipe.filled, pipe.prebuilt) = (n, true),
        // Refused outright (a seccomp filter, say): it will not work later either.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
            w.prebuilt.disable();
        }
        Err(_) => {}
    }
    if pipe.filled > 0 {
        *slot = Some(pipe);
    } else {
        w.pipes.give(pipe);
    }
}

/// Moves the cursor of `out` past `n` bytes handed to the kernel, counting them in the
/// metrics (file bytes as `file_kind`, the rest as memory) and against the pacing.
fn advance(out: &mut Out, mut n: u64, file_kind: BodyKind, w: &Worker) {
    if let Some(pacing) = &mut out.pacing {
        pacing.sent(n);
    }
    while let Some(&chunk) = out.chunks.get(out.cursor.0) {
        let k = (chunk_len(chunk) - out.cursor.1).min(n);
        let kind = match chunk {
            Chunk::Mem { .. } => BodyKind::Memory,
            Chunk::File { .. } => file_kind,
        };
        w.metrics.bytes(kind, k);
        (out.cursor.1, n) = (out.cursor.1 + k, n - k);
        if out.cursor.1 < chunk_len(chunk) {
            break;
        }
        out.cursor = (out.cursor.0 + 1, 0);
        if n == 0 {
            break;
        }
    }
}

/// Bytes of the response still to send.
fn remaining(out: &Out) -> u64 {
    response_len(&out.chunks[out.cursor.0..]) - out.cursor.1
}

/// The peer's IP address, unspecified if it cannot be had.
fn peer_ip(sock: &OwnedFd) -> IpAddr {
    socket2::SockRef::from(sock)
        .peer_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip())
}

/// The splice body path: fills the connection's empty pipe with up to `want` bytes of `file`
/// at `at`, for [`send`] to move on to the socket. The pipe is borrowed from the pool only
/// while it holds bytes.
fn fill(
    slot: &mut Option<Pipe>,
    pool: &mut PipePool,
    file: BorrowedFd<'_>,
    at: u64,
    want: u64,
) -> io::Result<()> {
    let pipe = match slot {
        Some(p) => p,
        None => slot.insert(pool.take()?),
    };
    let cap = want.min(PIPE_SIZE as u64) as usize;
    pipe.filled = sys::splice_from_file(file, at, pipe.w(), cap)?;
    if pipe.filled == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Bytes of a whole response: head and body.
fn response_len(chunks: &[Chunk]) -> u64 {
    chunks.iter().map(|&c| chunk_len(c)).sum()
}

fn chunk_len(c: Chunk) -> u64 {
    match c {
        Chunk::Mem { start, end } => (end - start) as u64,
        Chunk::File { len, .. } => len,
    }
}
