//! The static-file handler: a parsed request in, a response plan out.
//!
//! This is the one place where the protocol core meets the file layer; it decides which of
//! the [`crate::http::response`] builders answers a request. It opens files but touches no
//! socket, so both engine backends share it unchanged.

use std::fs::File;
use std::sync::Arc;
use std::time::Instant;

use crate::fs::{FileCache, Found, Root};
use crate::http::range::ByteRange;
use crate::http::response::{self, Context, Planned};
use crate::http::{Chunk, Method, Request, Status};

/// Reusable per-worker buffers the handler writes into; kept between requests so that
/// steady-state serving allocates nothing.
#[derive(Default)]
pub struct Scratch {
    /// Decoded path of the current request.
    pub path: Vec<u8>,
    /// Parsed byte ranges of the current request.
    pub ranges: Vec<ByteRange>,
}

/// A planned response: what was decided, and the file its `Chunk::File` entries refer to.
pub struct Response {
    /// Status, keep-alive decision and body length.
    pub planned: Planned,
    /// The open file, when the body has file chunks.
    pub file: Option<Arc<File>>,
}

/// Serves files beneath one root, through a per-worker open-file cache.
pub struct Handler {
    root: Root,
    cache: FileCache,
}

impl Handler {
    /// A handler for the files beneath `root`.
    pub fn new(root: Root, cache: FileCache) -> Handler {
        Handler { root, cache }
    }

    /// Open-file cache hits and misses so far.
    pub fn cache_stats(&self) -> (u64, u64) {
        self.cache.stats()
    }

    /// Answers `req` at time `now`: appends the head (and any in-memory body) to `out` and
    /// the body layout to `chunks`.
    pub fn respond(
        &mut self,
        req: &Request<'_>,
        cx: &Context<'_>,
        now: Instant,
        scratch: &mut Scratch,
        out: &mut Vec<u8>,
        chunks: &mut Vec<Chunk>,
    ) -> Response {
        let head_only = req.method == Method::Head;
        let keep_alive = req.keep_alive && cx.keep_alive;
        let error = |status, keep_alive, out: &mut Vec<u8>, chunks: &mut Vec<Chunk>| {
            response::error(status, head_only, keep_alive, cx, out, chunks)
        };
        let planned = match req.method {
            Method::Get | Method::Head if req.target != b"*" => {
                match self
                    .cache
                    .lookup(&self.root, req.target, now, &mut scratch.path)
                {
                    Found::File(file, rep) => {
                        let planned =
                            response::file(req, &rep, cx, out, chunks, &mut scratch.ranges);
                        let has_file = chunks.iter().any(|c| matches!(c, Chunk::File { .. }));
                        return Response {
                            planned,
                            file: has_file.then_some(file),
                        };
                    }
                    Found::Redirect => {
                        response::redirect(req.target, head_only, keep_alive, cx, out, chunks)
                    }
                    Found::NotFound => error(Status::NotFound, keep_alive, out, chunks),
                    Found::Forbidden => error(Status::Forbidden, keep_alive, out, chunks),
                    Found::BadRequest => error(Status::BadRequest, false, out, chunks),
                }
            }
            Method::Options => response::options(keep_alive, cx, out, chunks),
            Method::Other => {
                response::error(Status::MethodNotAllowed, false, keep_alive, cx, out, chunks)
            }
            Method::Get | Method::Head => error(Status::BadRequest, false, out, chunks),
        };
        Response {
            planned,
            file: None,
        }
    }
}
