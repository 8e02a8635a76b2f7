//! The static-file handler: a parsed request in, a response plan out.
//!
//! This is the one place where the protocol core meets the file layer; it decides which of
//! the [`crate::http::response`] builders answers a request. It opens files but touches no
//! socket, so both engine backends share it unchanged.
//!
//! A GET or HEAD flows through fixed steps: resolve the target (through the open-file
//! cache); for a file, swap in a precompressed sidecar when the client prefers one, then
//! collect the rule-made headers ([`crate::serve::content`]) and let [`response::file`] apply
//! preconditions and ranges to whichever file was chosen; for a directory without index,
//! render a listing into an anonymous file and send that. Every buffer involved lives in
//! [`Scratch`], so serving plain files allocates nothing once warm.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::content::Content;
use super::listing::{self, Format};
use crate::fs::listing::Listing;
use crate::fs::{Digests, FileCache, Found, Root};
use crate::http::digest;
use crate::http::negotiate::{self, Coding};
use crate::http::path;
use crate::http::range::ByteRange;
use crate::http::response::{self, Context, Extra, Planned};
use crate::http::{query, Chunk, ETag, Method, Representation, Request, Status};

/// Reusable per-worker buffers the handler writes into; kept between requests so that
/// steady-state serving allocates nothing.
#[derive(Default)]
pub struct Scratch {
    /// Decoded path of the current request.
    pub path: Vec<u8>,
    /// Parsed byte ranges of the current request.
    pub ranges: Vec<ByteRange>,
    /// Cache key of a sidecar lookup.
    pub key: Vec<u8>,
    /// Path the header rules match: `/`, the decoded path, `index.html` for a directory.
    pub subject: Vec<u8>,
    /// Header lines for 200, 206 and 304 (see [`Extra::always`]).
    pub always: Vec<u8>,
    /// Header lines for 200 and 206 (see [`Extra::content`]).
    pub content: Vec<u8>,
}

/// A planned response: what was decided, and the file its `Chunk::File` entries refer to.
pub struct Response {
    /// Status, keep-alive decision and body length.
    pub planned: Planned,
    /// The open file, when the body has file chunks.
    pub file: Option<Arc<File>>,
    /// The entity tag of that file's version (mtime, size, inode) when it is a stored file:
    /// what names its bytes without reading them. The engine keys prebuilt responses on it.
    pub version: Option<ETag>,
}

/// Serves files beneath one root, through a per-worker open-file cache.
pub struct Handler {
    root: Root,
    cache: FileCache,
    content: Arc<Content>,
    digests: Option<Arc<Digests>>,
}

impl Handler {
    /// A handler for the files beneath `root`, with no listings, precompressed files or
    /// header rules until [`Handler::with_content`] adds them.
    pub fn new(root: Root, cache: FileCache) -> Handler {
        Handler {
            root,
            cache,
            content: Arc::default(),
            digests: None,
        }
    }

    /// This handler answering `Want-Repr-Digest` and `Want-Content-Digest` from `digests`
    /// (shared by the workers).
    pub fn with_digests(self, digests: Arc<Digests>) -> Handler {
        Handler {
            digests: Some(digests),
            ..self
        }
    }

    /// This handler with listings, precompressed files and header rules as configured.
    pub fn with_content(self, content: Arc<Content>) -> Handler {
        Handler { content, ..self }
    }

    /// Serves from `root` with `content` from now on, through an emptied open-file cache of
    /// `cache_max` entries trusted for `cache_valid` (a configuration reload). Responses under
    /// way keep the files they are sending.
    pub fn reload(
        &mut self,
        root: Root,
        content: Arc<Content>,
        cache_max: usize,
        cache_valid: Duration,
    ) {
        self.root = root;
        self.content = content;
        self.cache.reset(cache_max, cache_valid);
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
                    Found::File { file, rep } => {
                        return self.file(req, file, rep, cx, now, scratch, out, chunks)
                    }
                    Found::Directory { dir } if self.content.listing => {
                        match self.listing(req, &dir, cx, scratch, out, chunks) {
                            Ok(response) => return response,
                            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                                error(Status::Forbidden, keep_alive, out, chunks)
                            }
                            Err(_) => error(Status::InternalServerError, keep_alive, out, chunks),
                        }
                    }
                    Found::Redirect => {
                        response::redirect(req.target, head_only, keep_alive, cx, out, chunks)
                    }
                    Found::Directory { .. } | Found::NotFound => {
                        error(Status::NotFound, keep_alive, out, chunks)
                    }
                    Found::Forbidden => error(Status::Forbidden, keep_alive, out, chunks),
                    Found::BadRequest => error(Status::BadRequest, false, out, chunks),
                }
            }
            Method::Options => {
                let extra = |out: &mut Vec<u8>| self.content.options_headers(out);
                response::options(keep_alive, extra, cx, out, chunks)
            }
            Method::Other => {
                response::error(Status::MethodNotAllowed, false, keep_alive, cx, out, chunks)
            }
            Method::Get | Method::Head => error(Status::BadRequest, false, out, chunks),
        };
        Response {
            planned,
            file: None,
            version: None,
        }
    }

    /// Answers with the file `target` resolved to, or with its precompressed sidecar.
    #[allow(clippy::too_many_arguments)] // the respond() arguments, passed through
    fn file(
        &mut self,
        req: &Request<'_>,
        file: Arc<File>,
        rep: Representation,
        cx: &Context<'_>,
        now: Instant,
        scratch: &mut Scratch,
        out: &mut Vec<u8>,
        chunks: &mut Vec<Chunk>,
    ) -> Response {
        scratch.always.clear();
        scratch.content.clear();
        let (file, rep) = self.precompressed(req, file, rep, now, scratch);
        let download = query::param(req.target, b"download").is_some();
        scratch.subject.clear();
        if self.content.needs_path(download) {
            served_path(req.target, &mut scratch.path, &mut scratch.subject);
        }
        self.content.file_headers(
            &scratch.subject,
            download,
            &mut scratch.always,
            &mut scratch.content,
        );
        self.digest_fields(req, &file, &rep, &mut scratch.content);
        let extra = Extra {
            always: &scratch.always,
            content: &scratch.content,
        };
        let planned = response::file(req, &rep, &extra, cx, out, chunks, &mut scratch.ranges);
        let has_file = chunks.iter().any(|c| matches!(c, Chunk::File { .. }));
        Response {
            planned,
            file: has_file.then_some(file),
            version: has_file.then_some(rep.version),
        }
    }

    /// `Repr-Digest` (and `Content-Digest` for a whole-file `GET`, whose content is the
    /// representation) in the algorithm the client prefers, when it asks and the file's
    /// digests are known; unknown ones are computed in the background for later requests.
    fn digest_fields(
        &self,
        req: &Request<'_>,
        file: &Arc<File>,
        rep: &Representation,
        out: &mut Vec<u8>,
    ) {
        let repr = req.want_repr_digest.and_then(digest::wanted);
        let whole = req.method == Method::Get && req.range.is_none();
        let content = req
            .want_content_digest
            .filter(|_| whole)
            .and_then(digest::wanted);
        if repr.is_none() && content.is_none() {
            return;
        }
        let Some(sums) = self
            .digests
            .as_ref()
            .and_then(|d| d.lookup(file, &rep.version))
        else {
            return;
        };
        if let Some(alg) = repr {
            digest::write_field(out, "Repr-Digest", alg, sums.get(alg));
        }
        if let Some(alg) = content {
            digest::write_field(out, "Content-Digest", alg, sums.get(alg));
        }
    }

    /// The sidecar of the best coding the client prefers to identity, if one exists and is
    /// not older than the file, with the file's `Content-Type` and an ETag of its own;
    /// otherwise the file itself. Writes `Vary` (whenever precompression applies to the
    /// file, so caches keep the variants apart) and `Content-Encoding` into `scratch`.
    fn precompressed(
        &mut self,
        req: &Request<'_>,
        file: Arc<File>,
        rep: Representation,
        now: Instant,
        scratch: &mut Scratch,
    ) -> (Arc<File>, Representation) {
        let offered = &self.content.precompressed;
        if offered.is_empty() || is_encoded_name(req.target) {
            return (file, rep);
        }
        scratch
            .always
            .extend_from_slice(b"Vary: Accept-Encoding\r\n");
        for &coding in negotiate::rank_encodings(req.accept_encoding, offered).as_slice() {
            let found = self.cache.lookup_sidecar(
                &self.root,
                req.target,
                coding.suffix(),
                now,
                &mut scratch.path,
                &mut scratch.key,
            );
            if let Found::File {
                file: sidecar,
                rep: encoded,
            } = found
            {
                if encoded.mtime.secs() >= rep.mtime.secs() {
                    scratch.content.extend_from_slice(b"Content-Encoding: ");
                    scratch.content.extend_from_slice(coding.token().as_bytes());
                    scratch.content.extend_from_slice(b"\r\n");
                    let rep = Representation {
                        etag: encoded.etag.marked(coding.token().as_bytes()),
                        version: encoded.version.marked(coding.token().as_bytes()),
                        mime: rep.mime,
                        ..encoded
                    };
                    return (sidecar, rep);
                }
            }
        }
        (file, rep)
    }

    /// Answers with a listing of `dir`, whose decoded path is in `scratch.path`.
    fn listing(
        &mut self,
        req: &Request<'_>,
        dir: &File,
        cx: &Context<'_>,
        scratch: &mut Scratch,
        out: &mut Vec<u8>,
        chunks: &mut Vec<Chunk>,
    ) -> io::Result<Response> {
        let format = match query::param(req.target, b"format") {
            Some(b"json") => Format::Json,
            Some(b"html") => Format::Html,
            _ if negotiate::prefers_json(req.accept) => Format::Json,
            _ => Format::Html,
        };
        let listing = Listing::read(&self.root, dir.as_fd(), &scratch.path)?;
        let upload = self.content.upload_dirs.contains(&scratch.path);
        let (file, len) = listing::render(&listing, format, &scratch.path, upload)?;
        scratch.always.clear();
        self.content.listing_headers(&mut scratch.always);
        let extra = Extra {
            always: &scratch.always,
            content: &[],
        };
        let planned = response::generated(req, format.mime(), len, &extra, cx, out, chunks);
        Ok(Response {
            planned,
            file: (planned.body_len > 0).then(|| Arc::new(file)),
            version: None,
        })
    }
}

/// Whether the target's name already ends like a sidecar (`.br`, `.zst`, `.gz`): such a
/// file is itself encoded, so it gets no sidecar lookups and no `Vary`.
fn is_encoded_name(target: &[u8]) -> bool {
    let path = path::split_query(target).0;
    Coding::ALL.iter().any(|c| {
        let suffix = c.suffix().as_bytes();
        path.len() >= suffix.len() && path[path.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
    })
}

/// Writes into `subject` the path of the file `target` names, as the header rules see it:
/// `/`, the decoded path, and `index.html` for a directory form (`/dir/` serves
/// `/dir/index.html`). `decoded` is scratch space. Only called for a target that resolved
/// to a file, so decoding succeeds.
fn served_path(target: &[u8], decoded: &mut Vec<u8>, subject: &mut Vec<u8>) {
    let Ok(d) = path::canonical_path(target, decoded) else {
        return;
    };
    subject.extend_from_slice(decoded);
    if d.trailing_slash {
        if decoded.len() > 1 {
            subject.push(b'/');
        }
        subject.extend_from_slice(b"index.html");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_paths() {
        let cases: [(&[u8], &[u8]); 6] = [
            (b"/a.js", b"/a.js"),
            (b"/a/b%20c.js?x=1", b"/a/b c.js"),
            (b"/", b"/index.html"),
            (b"/?download", b"/index.html"),
            (b"/dir/", b"/dir/index.html"),
            (b"//dir/./", b"/dir/index.html"),
        ];
        for (target, want) in cases {
            let mut subject = Vec::new();
            served_path(target, &mut Vec::new(), &mut subject);
            assert_eq!(subject, want, "{}", String::from_utf8_lossy(target));
        }
    }

    #[test]
    fn encoded_names() {
        assert!(is_encoded_name(b"/a.js.gz"));
        assert!(is_encoded_name(b"/a.tar.GZ?x"));
        assert!(is_encoded_name(b"/a.zst"));
        assert!(is_encoded_name(b"/a.br"));
        assert!(!is_encoded_name(b"/a.js"));
        assert!(!is_encoded_name(b"/gz"));
        assert!(!is_encoded_name(b"/a.js?x.gz"));
    }
}
