//! Serving files: what a request is answered with, and the options that shape it.
//!
//! [`handler`] turns a parsed request into a response plan (the one place where the protocol
//! core meets the file layer); [`content`] holds what the handler does beyond plain files,
//! checked once at start-up: directory listings, precompressed sidecars, response header
//! rules, CORS and downloads; [`listing`] renders a directory the file layer has read.

pub mod content;
pub mod handler;
pub mod listing;

pub use handler::{Handler, Response, Scratch};
