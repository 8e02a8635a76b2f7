//! Shared helpers of the integration tests, by concern:
//! - [`backend`]: the backends each test runs on, and the macro that runs it on each;
//! - [`server`]: starting, watching and stopping the `ringserve` binary;
//! - [`fixtures`]: a per-test tree of files to serve;
//! - [`gatefs`]: a FUSE file system that stalls writes or fails reads on command;
//! - [`client`]: a minimal HTTP/1.1 client that reads responses byte-exact;
//! - [`multipart`]: a parser of `multipart/byteranges` bodies;
//! - [`seccomp`]: a thread under a seccomp filter that denies chosen system calls.
//!
//! Everything is re-exported here, so a test names it `common::Server` and so on.

// Compiled into every test crate; not every crate uses every helper.
#![allow(dead_code)]

mod backend;
mod client;
mod fixtures;
mod gatefs;
mod multipart;
mod seccomp;
mod server;

// A crate that uses nothing of a module would warn of its re-export.
#[allow(unused_imports)]
pub use backend::*;
#[allow(unused_imports)]
pub use client::*;
#[allow(unused_imports)]
pub use fixtures::*;
#[allow(unused_imports)]
pub use gatefs::*;
#[allow(unused_imports)]
pub use multipart::*;
#[allow(unused_imports)]
pub use seccomp::*;
#[allow(unused_imports)]
pub use server::*;
