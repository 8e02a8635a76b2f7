//! What the session asks of the server around it ([`Host`]), and what the host answers:
//! a response's plan ([`Reply`]), how far sending it got ([`Flush`]), how far a body moved
//! without the session ([`Direct`]).

use std::time::Instant;

use crate::http::{Request, Status};

/// What the host answered a request with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The response lets the connection stay open (the client asked for it, the session
    /// allowed it and the status permits it).
    pub keep_alive: bool,
    /// The response's body is paced, so its small chunks must not be held back.
    pub paced: bool,
    /// The host takes the request's body ([`Host::body`]) and plans its final response when
    /// the body ends ([`Host::body_end`]); what `respond` planned is at most an interim
    /// response (`100 Continue`). Only for a request [`Host::takes_body`] accepted.
    pub take_body: bool,
}

impl Reply {
    /// A response to a request whose body, if any, the session skips.
    pub fn new(keep_alive: bool, paced: bool) -> Reply {
        Reply {
            keep_alive,
            paced,
            take_body: false,
        }
    }
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

/// How far the host got moving body bytes straight from the connection ([`Host::body_direct`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direct {
    /// This many bytes (at least one) went from the socket to the body's sink.
    Moved(u64),
    /// The socket has nothing more now.
    Drained,
    /// The client closed the connection (or it failed).
    Closed,
    /// The host stopped taking the body and has planned its final response (an error).
    Refused,
    /// The body's sink is busy with bytes already moved (a disk write): the transport reads
    /// nothing until the host says so, then calls [`Session::on_readable`] again.
    Busy,
    /// The host cannot take this body directly: the transport reads it as usual.
    Unsupported,
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
    /// Whether the host would take the body of `req` (an upload) instead of the session
    /// skipping it; asked before [`Host::respond`] for requests with a body, as a skipped
    /// body is bounded by `Limits::max_discard_body` and a taken one is not.
    fn takes_body(&mut self, _req: &Request<'_>) -> bool {
        false
    }
    /// Bytes of the body being taken, in order. `false`: the host stops taking it and has
    /// planned its final response (an error); the rest of the body is not read.
    fn body(&mut self, _data: &[u8]) -> bool {
        true
    }
    /// Moves up to `max` bytes of the body being taken from the connection straight into
    /// its sink, without handing them to the session (zero-copy receive, e.g. `splice`).
    fn body_direct(&mut self, _max: u64) -> Direct {
        Direct::Unsupported
    }
    /// The body being taken ended (all of it passed [`Host::body`]): plan the final
    /// response. `keep_alive` as for [`Host::respond`].
    fn body_end(&mut self, keep_alive: bool) -> Reply {
        Reply::new(keep_alive, false)
    }
}
