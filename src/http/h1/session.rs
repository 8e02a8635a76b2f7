//! The session state machine: see the module above for what it decides and what it leaves
//! to its host.

use std::time::{Duration, Instant};

use super::body::{Body, End, Framing};
use super::host::{Direct, Flush, Host};
use crate::http::chunked::Decoder;
use crate::http::request::{self, Parse};
use crate::http::{Limits, Request, Status};

/// Most unparsed input kept for a connection while its response is being sent (pipelined
/// requests waiting their turn). A client that sends more without reading is cut off.
pub const MAX_PENDING: usize = 64 * 1024;

/// The settings a session follows, from the configuration (read at each event, so a reload
/// applies from the next time the session waits).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Protocol limits for parsing heads.
    pub limits: Limits,
    /// Time to receive a whole request head (nginx `client_header_timeout`).
    pub header_timeout: Duration,
    /// Idle time between requests (nginx `keepalive_timeout`).
    pub keepalive_timeout: Duration,
    /// Time a response may stall without progress (nginx `send_timeout`).
    pub send_timeout: Duration,
    /// Longest wait for the next bytes of a request body (nginx `client_body_timeout`).
    pub body_timeout: Duration,
    /// Longest silence awaited from a lingering client; zero closes at once.
    pub lingering_timeout: Duration,
    /// Longest a connection lingers in all; zero closes at once.
    pub lingering_time: Duration,
    /// Requests answered on one connection before it closes (nginx `keepalive_requests`).
    pub keepalive_requests: u32,
}

/// What the session is told with every event.
pub struct Cx<'a> {
    /// The time of the transport's current loop turn.
    pub now: Instant,
    /// The server is shutting down: no response keeps its connection open.
    pub draining: bool,
    /// The settings in force.
    pub settings: &'a Settings,
}

/// What the transport does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Wait for input (or for the deadline).
    Read,
    /// A response waits for the socket: call [`Session::on_writable`] when it drains.
    Write,
    /// A paced response waits for its rate: call [`Session::on_deadline`] at the deadline.
    Sleep,
    /// The last response is sent but the client may still be sending: shut down the write
    /// side (the FIN leaves), then read and drop input ([`Session::on_dropped`]) until the
    /// client closes or the deadline passes.
    Linger,
    /// Close the connection gracefully.
    Close,
    /// A deadline passed mid-request or mid-response: close with a reset (nginx
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
    /// A request body is arriving (being taken by the host or skipped).
    Body,
    /// The last response is sent and the write side shut down; input is dropped until the
    /// client closes, falls silent for `lingering_timeout` or has sent for `lingering_time`.
    Lingering,
}

/// One connection's HTTP/1 state.
#[derive(Debug)]
pub struct Session {
    phase: Phase,
    /// Unparsed request bytes carried between inputs (empty in the common case, where a
    /// whole request arrives at once and is parsed straight from the transport's buffer).
    pending: Vec<u8>,
    /// The request body in progress, if any.
    body: Option<Body>,
    /// Close once the current response is sent.
    close_after: bool,
    /// The last response's tail may wait for the FIN (it is not paced).
    hold_tail: bool,
    /// The last response refuses a request for its size: its client is likely still sending.
    linger: bool,
    /// Requests answered.
    served: u32,
    /// When lingering must end whatever the client does.
    linger_end: Option<Instant>,
    deadline: Option<Instant>,
}

impl Session {
    /// A session for a connection accepted at `cx.now`: its first head must arrive within
    /// the header timeout.
    pub fn new(cx: &Cx<'_>) -> Session {
        Session {
            phase: Phase::Head,
            pending: Vec::new(),
            body: None,
            close_after: false,
            hold_tail: false,
            linger: false,
            served: 0,
            linger_end: None,
            deadline: Some(cx.now + cx.settings.header_timeout),
        }
    }

    /// When the session must hear of the time again ([`Session::on_deadline`]), if ever.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether the connection sits between requests with nothing buffered: one a draining
    /// server may close at once, and one whose timeout is a graceful close.
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Idle && self.pending.is_empty()
    }

    /// Whether no request is under way: none has begun yet, or the last one's response is
    /// sent in full, and nothing of the next is buffered. The transport beneath may change
    /// hands here (kTLS).
    pub fn between_requests(&self) -> bool {
        // `Head` with nothing buffered: a new connection (a partial head is kept in `pending`).
        matches!(self.phase, Phase::Idle | Phase::Answered | Phase::Head)
            && self.pending.is_empty()
            && self.body.is_none()
    }

    /// Whether the session only waits for its client to close: input may be dropped unread.
    pub fn lingering(&self) -> bool {
        self.phase == Phase::Lingering
    }

    /// What the session waits for when nothing new happened: the socket or its rate while a
    /// response is under way, input otherwise (for a transport that received bytes carrying
    /// no request data, such as a TLS handshake).
    pub fn waiting_for(&self) -> Action {
        if self.busy() {
            self.waiting()
        } else {
            Action::Read
        }
    }

    /// Bytes `data` were received: answers the requests they complete.
    pub fn on_input(&mut self, data: &[u8], cx: &Cx<'_>, host: &mut impl Host) -> Action {
        if self.lingering() {
            return Action::Read;
        }
        if self.busy() || !self.pending.is_empty() {
            if self.pending.len() + data.len() > MAX_PENDING {
                return Action::Close;
            }
            self.pending.extend_from_slice(data);
            if self.busy() {
                return self.waiting();
            }
            return self.serve_pending(cx, host);
        }
        let (used, next) = self.serve(data, cx, host);
        if next != Action::Close && used < data.len() && !self.lingering() {
            self.pending.extend_from_slice(&data[used..]);
        }
        next
    }

    /// Whether the session would take input straight from the socket ([`Session::on_readable`]):
    /// a taken `Content-Length` body is arriving, nothing is buffered and no response is
    /// under way. A transport that receives eagerly stops doing so while this holds.
    pub fn wants_direct(&self) -> bool {
        !self.busy()
            && self.pending.is_empty()
            && matches!(
                self.body,
                Some(Body {
                    framing: Framing::Length(1..),
                    take: true,
                    refused: false,
                    ..
                })
            )
    }

    /// The connection has input and the transport has not read it: when a taken
    /// `Content-Length` body is arriving and nothing is buffered, the host moves it directly
    /// ([`Host::body_direct`]) until the socket is drained or the body ends, and the session
    /// answers as for input. `None`: read the input as usual. With `Some`, the flag says the
    /// socket was drained (so an edge-triggered transport waits for the next edge).
    pub fn on_readable(&mut self, cx: &Cx<'_>, host: &mut impl Host) -> Option<(Action, bool)> {
        if self.busy() || !self.pending.is_empty() {
            return None;
        }
        let Some(Body {
            framing: Framing::Length(left),
            take: true,
            ..
        }) = &mut self.body
        else {
            return None;
        };
        let mut moved_any = false;
        while *left > 0 {
            match host.body_direct(*left) {
                Direct::Moved(n) => {
                    *left -= n.min(*left);
                    moved_any = true;
                }
                Direct::Drained | Direct::Busy => {
                    self.await_body(cx);
                    return Some((Action::Read, true));
                }
                Direct::Closed => return Some((Action::Close, true)),
                Direct::Refused => {
                    if let Some(body) = &mut self.body {
                        body.refused = true;
                    }
                    break;
                }
                Direct::Unsupported if moved_any => break,
                Direct::Unsupported => return None,
            }
        }
        // The body ended or was refused: answer as input ending there would.
        let (_, action) = self.serve(&[], cx, host);
        Some((action, false))
    }

    /// The socket became writable again after [`Action::Write`]. (A paced response ignores
    /// writability: only its deadline resumes it.)
    pub fn on_writable(&mut self, cx: &Cx<'_>, host: &mut impl Host) -> Action {
        match self.phase {
            Phase::Sending => self.resume(cx, host),
            Phase::Paced => Action::Sleep,
            _ => Action::Read,
        }
    }

    /// The deadline passed: a paced response goes on; anything else timed out. An idle or
    /// lingering connection is closed gracefully, any other reset.
    pub fn on_deadline(&mut self, cx: &Cx<'_>, host: &mut impl Host) -> Action {
        if self.phase == Phase::Paced {
            return self.resume(cx, host);
        }
        if self.is_idle() || self.lingering() {
            Action::Close
        } else {
            Action::Reset
        }
    }

    /// The transport dropped input of a lingering connection: it waits `lingering_timeout`
    /// for more, but not past the end of its `lingering_time`.
    pub fn on_dropped(&mut self, cx: &Cx<'_>) {
        let wait = cx.now + cx.settings.lingering_timeout;
        self.deadline = self.linger_end.map(|end| end.min(wait));
    }

    /// The server started draining: an idle connection closes now, a busy one after its
    /// current response.
    pub fn on_drain(&mut self) -> Action {
        // Nothing of a request has arrived (between requests, or accepted and silent).
        let waiting = matches!(
            self.phase,
            Phase::Idle | Phase::Head | Phase::Answered | Phase::Lingering
        );
        if waiting && self.pending.is_empty() && self.body.is_none() {
            Action::Close
        } else {
            self.close_after = true;
            if self.busy() {
                self.waiting()
            } else {
                Action::Read
            }
        }
    }

    /// Goes on sending the current response, then serves pipelined requests.
    fn resume(&mut self, cx: &Cx<'_>, host: &mut impl Host) -> Action {
        match self.flush(cx, host) {
            Some(Flush::Done) if self.close_after && !self.taking() => {
                self.closing(!self.pending.is_empty(), cx)
            }
            Some(Flush::Done) => self.serve_pending(cx, host),
            Some(_) => self.waiting(),
            None => Action::Close,
        }
    }

    /// Whether a response is in progress (waiting for the socket or for its rate).
    fn busy(&self) -> bool {
        matches!(self.phase, Phase::Sending | Phase::Paced)
    }

    /// What a response in progress waits for.
    fn waiting(&self) -> Action {
        if self.phase == Phase::Paced {
            Action::Sleep
        } else {
            Action::Write
        }
    }

    fn serve_pending(&mut self, cx: &Cx<'_>, host: &mut impl Host) -> Action {
        let pending = std::mem::take(&mut self.pending);
        let (used, next) = self.serve(&pending, cx, host);
        self.pending = pending;
        if self.lingering() {
            self.pending.clear();
        } else {
            self.pending.drain(..used);
        }
        next
    }

    /// Answers the requests at the start of `buf` until input runs out or a response has to
    /// wait. Returns how many bytes of `buf` were consumed.
    fn serve(&mut self, buf: &[u8], cx: &Cx<'_>, host: &mut impl Host) -> (usize, Action) {
        let mut pos = 0;
        loop {
            if let Some(body) = &mut self.body {
                let (used, end) = body.feed(&buf[pos..], &cx.settings.limits, host);
                pos += used;
                let keep_alive = body.keep_alive;
                match end {
                    None => {
                        self.await_body(cx);
                        return (pos, Action::Read);
                    }
                    Some(End::Skipped) => {
                        self.body = None;
                        continue;
                    }
                    Some(End::Taken) => {
                        self.body = None;
                        let reply = host.body_end(keep_alive);
                        if !reply.keep_alive {
                            self.last_response(!reply.paced);
                        }
                    }
                    Some(End::Refused) => {
                        self.body = None;
                        self.refuse_rest();
                        pos = buf.len();
                    }
                    Some(End::Invalid(status)) => {
                        self.body = None;
                        host.reject(status);
                        self.refuse_rest();
                        pos = buf.len();
                    }
                    Some(End::Abort) => return (pos, Action::Close),
                }
            } else {
                if pos == buf.len() {
                    self.await_request(cx, false);
                    return (pos, Action::Read);
                }
                match request::parse(&buf[pos..], &cx.settings.limits) {
                    Parse::Partial => {
                        self.await_request(cx, true);
                        return (pos, Action::Read);
                    }
                    Parse::Invalid(status) => {
                        host.reject(status);
                        self.linger = matches!(
                            status,
                            Status::PayloadTooLarge
                                | Status::HeaderFieldsTooLarge
                                | Status::UriTooLong
                        );
                        self.last_response(true);
                        pos = buf.len();
                    }
                    Parse::Complete(req) => {
                        self.served += 1;
                        pos += req.head_len;
                        self.request(&req, cx, host);
                        if self.lingering_refusal() {
                            pos = buf.len();
                        }
                    }
                }
            }
            match self.flush(cx, host) {
                Some(Flush::Done) if self.close_after && !self.taking() => {
                    return (pos, self.closing(pos < buf.len(), cx));
                }
                Some(Flush::Done) => {}
                Some(_) => return (pos, self.waiting()),
                None => return (pos, Action::Close),
            }
        }
    }

    /// Has `req` answered (or its body taken, the answer coming at its end).
    fn request(&mut self, req: &Request<'_>, cx: &Cx<'_>, host: &mut impl Host) {
        let keep_alive =
            !cx.draining && !self.close_after && self.served < cx.settings.keepalive_requests;
        let has_body = req.body_len > 0 || req.chunked;
        let takes = has_body && host.takes_body(req);
        if has_body && !takes && req.body_len > cx.settings.limits.max_discard_body {
            host.reject(Status::PayloadTooLarge);
            self.linger = true;
            self.last_response(true);
            return;
        }
        let reply = host.respond(req, keep_alive);
        if !reply.keep_alive {
            self.last_response(!reply.paced);
        }
        // A host may take a body of no bytes without being asked (a tus creation without
        // data): it answers at its end, which is now.
        let take = reply.take_body && (takes || !has_body);
        if has_body || take {
            self.body = Some(Body {
                framing: if req.chunked {
                    Framing::Chunked(Decoder::new())
                } else {
                    Framing::Length(req.body_len)
                },
                take,
                refused: false,
                keep_alive: reply.keep_alive,
            });
        }
    }

    /// The request just refused for its size is the last: its body is never read.
    fn lingering_refusal(&self) -> bool {
        self.linger && self.close_after && self.body.is_none()
    }

    /// The host stopped taking a body, or its framing broke: the planned answer is the last
    /// response, and the client, likely still sending, is lingered on.
    fn refuse_rest(&mut self) {
        self.linger = true;
        self.last_response(true);
    }

    /// Whether a request body is being taken by the host (its final response still to come).
    fn taking(&self) -> bool {
        self.body.as_ref().is_some_and(|b| b.take)
    }

    /// Hands the current response to the host and moves to the phase its progress implies;
    /// `None` when the connection failed.
    fn flush(&mut self, cx: &Cx<'_>, host: &mut impl Host) -> Option<Flush> {
        let flushed = host.flush(self.hold_tail);
        match flushed {
            Flush::Done => self.phase = Phase::Answered,
            // The send timeout counts from the last progress, like nginx's `send_timeout`.
            Flush::Blocked => {
                self.phase = Phase::Sending;
                self.deadline = Some(cx.now + cx.settings.send_timeout);
            }
            Flush::Paced(until) => {
                self.phase = Phase::Paced;
                self.deadline = Some(until);
            }
            Flush::Failed => return None,
        }
        Some(flushed)
    }

    /// The connection's last response is with the kernel. If its client may still be sending
    /// (`unread` input is buffered, a request body is being skipped, or the request was
    /// refused for its size), the connection closes in stages as RFC 9112 §9.6 describes and
    /// nginx's `lingering_close` does: the write side is shut down (the response and the FIN
    /// leave), what the client still sends is dropped until it closes, falls silent for
    /// `lingering_timeout` or has been at it for `lingering_time`, and only then is the
    /// socket closed. Closed at once with input unread, it would send an RST, which can
    /// destroy the response before the client reads it.
    fn closing(&mut self, unread: bool, cx: &Cx<'_>) -> Action {
        let s = cx.settings;
        let (timeout, time) = (s.lingering_timeout, s.lingering_time);
        if timeout.is_zero() || time.is_zero() || !(unread || self.body.is_some() || self.linger) {
            return Action::Close;
        }
        self.phase = Phase::Lingering;
        self.body = None;
        self.linger_end = Some(cx.now + time);
        self.on_dropped(cx);
        Action::Linger
    }

    /// The response being planned is the connection's last. Unless it is paced (a held
    /// tail would hold its small chunks back), its tail may wait for the FIN.
    fn last_response(&mut self, hold: bool) {
        self.close_after = true;
        self.hold_tail |= hold;
    }

    /// Waits for more of a request body: the body timeout counts from now, the last input.
    fn await_body(&mut self, cx: &Cx<'_>) {
        self.phase = Phase::Body;
        self.deadline = Some(cx.now + cx.settings.body_timeout);
    }

    /// Sets the deadline for waiting on a request: keep-alive idle when nothing of the next
    /// request has arrived, header timeout from the moment its first bytes do.
    fn await_request(&mut self, cx: &Cx<'_>, partial: bool) {
        let phase = if partial { Phase::Head } else { Phase::Idle };
        if phase != self.phase {
            let d = match phase {
                Phase::Head => cx.settings.header_timeout,
                _ => cx.settings.keepalive_timeout,
            };
            self.deadline = Some(cx.now + d);
            self.phase = phase;
        }
    }
}
