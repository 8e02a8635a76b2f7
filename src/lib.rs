//! ringserve: a Linux HTTP/1.1 static file server built to push files to many clients with as
//! little CPU as possible.
//!
//! The crate is layered so that each layer can be read and tested on its own; imports only
//! point down this list (a module uses those above it, never those below):
//!
//! - [`sys`]: thin safe wrappers around the raw syscalls std and `rustix` do not offer; with
//!   the engine's io_uring boundary, the only place allowed `unsafe` (denied everywhere else).
//! - [`http`]: the sans-I/O protocol core. It turns request bytes into a parsed
//!   [`http::Request`] and decides what to answer (a response head plus body chunks, some of
//!   them file ranges); its [`http::h1`] session decides everything about a connection
//!   beyond one request (keep-alive, pipelining, bodies, deadlines, closing). It never
//!   touches a socket or a file.
//! - [`policy`]: pacing, per-client limits, access rules and signed links, sans I/O.
//! - [`tls`]: HTTPS certificates and one connection's rustls state, sans I/O.
//! - [`fs`]: maps request targets onto files beneath the served root, race-free, and
//!   describes them (length, validators, MIME type); the open-file cache; directory reading.
//! - [`upload`]: resumable uploads (tus 1.0, `PUT` with `Content-Range`): the protocol
//!   decisions and the crash-safe on-disk store, which the engine feeds request bodies to.
//! - [`serve`]: the static-file handler joining the two (request in, response plan out), with
//!   the content options (listings, precompressed sidecars, header rules).
//! - [`config`] and [`metrics`]: the validated configuration shared by all below, and what the
//!   server reports (counters, Prometheus text, top files, the access log).
//! - [`engine`]: the worker loop and its io_uring and epoll backends, and the transport that
//!   carries out each connection's session, sending file bytes with sendfile/splice so that
//!   no file byte passes through user space.
//! - [`server`]: start-up, binding, signals, privilege drop, reload, socket activation and
//!   the admin listener; `main` calls it.

#![deny(unsafe_code)]

pub mod config;
pub mod engine;
pub mod fs;
pub mod http;
pub mod metrics;
pub mod policy;
pub mod serve;
pub mod server;
#[allow(unsafe_code)]
pub mod sys;
pub mod tls;
pub mod upload;
