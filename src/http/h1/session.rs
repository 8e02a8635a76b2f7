//! The session state machine: see the module above for what it decides and what it leaves
//! to its host.

use std::time::{Duration, Instant};

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

/// What the host answered a request with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The response lets the connection stay open (the client asked for it, the session
    /// allowed it and the status permits it).
    pub keep_alive: bool,
    /// The response's body is paced, so its small chunks must not be held back.
    pub paced: bool,
}

/// How far the host got handing the planned response to the transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    /// All of it is with the kernel; the host has finished the response.
    Done,
    /// The socket is full: go on when it is writable again.
    Blocked,
    /// The response is ahead of its rate until this instant.
    Paced(Instant),
    /// The connection failed (reset by the peer, say).
    Failed,
}

/// What the session asks of the server around it: a response for each request, and the
/// transport that sends it.
pub trait Host {
    /// Plans the response to `req`. `keep_alive` says whether the session would keep the
    /// connection open after it (not draining, not the last request allowed, not already
    /// closing); the host may still close it (the client's wish, an error status).
    fn respond(&mut self, req: &Request<'_>, keep_alive: bool) -> Reply;
    /// Plans the error response `status` to input that is not an acceptable request; the
    /// connection closes after it.
    fn reject(&mut self, status: Status);
    /// Hands as much of the planned response to the transport as it takes. `hold_tail`: this
    /// is the connection's last response, so its tail may wait to leave with the FIN.
    fn flush(&mut self, hold_tail: bool) -> Flush;
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
    /// Request-body bytes still to skip.
    discard: u64,
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
            discard: 0,
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
        if waiting && self.pending.is_empty() && self.discard == 0 {
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
            Some(Flush::Done) if self.close_after => self.closing(!self.pending.is_empty(), cx),
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
            if self.discard > 0 {
                let n = self.discard.min((buf.len() - pos) as u64);
                pos += n as usize;
                self.discard -= n;
                if self.discard > 0 {
                    return (pos, Action::Read);
                }
            }
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
                        Status::PayloadTooLarge | Status::HeaderFieldsTooLarge | Status::UriTooLong
                    );
                    self.last_response(true);
                    pos = buf.len();
                }
                Parse::Complete(req) => {
                    self.served += 1;
                    let keep_alive = !cx.draining
                        && !self.close_after
                        && self.served < cx.settings.keepalive_requests;
                    let reply = host.respond(&req, keep_alive);
                    if !reply.keep_alive {
                        self.last_response(!reply.paced);
                    }
                    pos += req.head_len;
                    self.discard = req.body_len;
                }
            }
            match self.flush(cx, host) {
                Some(Flush::Done) if self.close_after => {
                    return (pos, self.closing(pos < buf.len(), cx));
                }
                Some(Flush::Done) => {}
                Some(_) => return (pos, self.waiting()),
                None => return (pos, Action::Close),
            }
        }
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
        if timeout.is_zero() || time.is_zero() || !(unread || self.discard > 0 || self.linger) {
            return Action::Close;
        }
        self.phase = Phase::Lingering;
        self.discard = 0;
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
