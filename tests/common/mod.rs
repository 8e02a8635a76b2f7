//! Shared helpers of the integration tests, by concern: starting the `ringserve` binary
//! ([`server`]), a per-test tree of files to serve ([`fixtures`]), a minimal HTTP/1.1 client
//! that reads responses byte-exact ([`client`]), a parser of multipart bodies
//! ([`multipart`]) and a thread under a seccomp filter ([`seccomp`]).

// Compiled into every test crate; not every crate uses every helper.
#![allow(dead_code)]

mod client;
mod fixtures;
mod multipart;
mod seccomp;
mod server;

// A crate that uses nothing of a module would warn of its re-export.
#[allow(unused_imports)]
pub use client::*;
#[allow(unused_imports)]
pub use fixtures::*;
#[allow(unused_imports)]
pub use multipart::*;
#[allow(unused_imports)]
pub use seccomp::*;
#[allow(unused_imports)]
pub use server::*;
