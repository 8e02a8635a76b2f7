//! The HTTP/1 connection session, sans I/O.
//!
//! A [`Session`] is everything HTTP/1.1 decides about one connection beyond a single
//! request: where requests start and end in the byte stream (heads, and the bodies it skips),
//! keep-alive and its limits, pipelining (one response at a time, in order), which deadline
//! applies (header, keep-alive, send, lingering), when the connection closes and how (at once,
//! in stages while the client may still be sending, or with a reset on a timeout).
//!
//! It never touches a socket, a file or a clock. The transport feeds it received bytes and
//! events with the current time in a [`Cx`], and gets back an [`Action`] plus the session's
//! [`Session::deadline`]. What a request is answered with, and how those bytes reach the
//! socket, belong to the session's [`Host`]: the session asks it to plan a response and to
//! hand it to the transport ([`Host::flush`]), the way rustls' sans-I/O `Connection` takes
//! `read_tls`/`write_tls` callbacks. So the engine's backends execute the actions, and the
//! tests drive a session with a scripted host, no sockets.
//!
//! Request bodies are framed here too (`Content-Length`, or chunked, in `body.rs`): skipped,
//! or handed to the host when it takes them (an upload), through [`Host::body`] or, with no
//! copy, [`Host::body_direct`]. TLS sits between the transport and this session, which sees
//! only plaintext.

mod body;
mod host;
mod session;

pub use host::{Direct, Flush, Host, Reply};
pub use session::{Action, Cx, Session, Settings, MAX_PENDING};

#[cfg(test)]
mod tests;
