//! ringserve: a Linux HTTP/1.1 static file server built to push files to many clients with as
//! little CPU as possible.
//!
//! The crate is layered so that each layer can be read and tested on its own:
//!
//! - [`http`] is a sans-I/O protocol core: it turns request bytes into a parsed [`http::Request`]
//!   and decides what to answer (a response head plus a list of body chunks, some of which are
//!   file ranges). It never touches a socket or a file.
//! - [`fs`] maps request targets onto files beneath the served root, race-free, and describes
//!   them (length, validators, MIME type) for the protocol core.
//! - [`serve`] is the static-file handler joining the two: request in, response plan out.
//! - [`engine`] owns every socket and syscall: one worker thread per core, each on its own
//!   io_uring (or epoll where io_uring is unavailable), sending file bytes with sendfile/splice
//!   so that no file byte passes through user space.
//! - [`content`] holds what the handler does beyond plain files: directory listings,
//!   precompressed sidecars and response header rules, checked once at start-up.
//! - [`config`] is the validated run-time configuration shared by all of the above.

#![deny(unsafe_code)]

pub mod config;
pub mod content;
pub mod engine;
pub mod fs;
pub mod http;
pub mod metrics;
pub mod policy;
pub mod serve;
pub mod server;
#[allow(unsafe_code)]
pub mod sys;
