//! Resumable uploads: tus 1.0, the IETF resumable uploads draft and plain `PUT` with
//! `Content-Range`, over one store.
//!
//! The engine asks [`Uploads::begin`] about each request under an upload prefix (`--uploads`)
//! and gets either an [`Answer`] to send, a [`Receiver`] to feed the request body to (which
//! answers once the body ends), or nothing (the request is an ordinary download). The
//! protocol decisions (`tus`, `put`) never touch a socket; the bytes go to the [`store`],
//! where the offset of an upload is the length of its part file, so it survives a crash.
//!
//! URL layout under a prefix `/incoming/`:
//! - `/incoming/`: tus creation (`POST`) and discovery (`OPTIONS`);
//! - `/incoming/.tus/ID`: a tus upload (`HEAD`, `PATCH`, `DELETE`); `.tus` has two segments
//!   where published names have one, so the two can never meet;
//! - `/incoming/.upload/ID`: an upload resource of the IETF draft (`HEAD`, `PATCH`,
//!   `DELETE`), created by a `POST /incoming/` or `PUT /incoming/NAME` with `Upload-Complete`;
//! - `/incoming/NAME`: `PUT` with `Content-Range` chunks, `HEAD` for the offset of an
//!   unfinished one; once complete, the file published there is served as any other.

pub mod checksum;
pub mod fields;
mod ietf;
pub mod pool;
mod put;
mod receive;
pub mod store;
pub mod sweep;
mod tus;

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{self as rfs, Mode, OFlags};

use crate::http::{Method as HttpMethod, Request, Status};
use crate::policy::signed::{Method, SecureLink};

use fields::Fields;
pub use receive::Receiver;
use receive::{Done, StateFile};
use store::{OpenError, Store};

/// Name of the default state directory, in the served root (never served: see
/// [`Uploads::hides`]).
pub const DEFAULT_STATE: &str = ".ringserve-uploads";

/// When written bytes are made durable (`--upload-sync`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SyncMode {
    /// `fdatasync` before every answer that reports an offset: an acknowledged byte survives
    /// a power cut. Costs one sync per request.
    Always,
    /// Sync only before publishing: a crash of the server loses nothing (the bytes are in
    /// the page cache), a power cut may lose acknowledged bytes of unfinished uploads, whose
    /// clients then resume from the smaller offset.
    Close,
}

/// How upload requests are authorised (`--upload-auth`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// A bearer token from `--upload-token-file` is required.
    Token,
    /// No authorisation (trusted networks, tests).
    None,
}

/// Upload settings from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// URL prefixes, canonical and without the trailing slash (`/incoming`; `` for `/`).
    pub prefixes: Vec<String>,
    /// Bearer tokens accepted (from `--upload-token-file`).
    pub tokens: Vec<Vec<u8>>,
    /// Whether requests need a token.
    pub auth: AuthMode,
    /// Largest upload in bytes; 0 for no limit.
    pub max_size: u64,
    /// How long an unfinished upload is kept after its last write.
    pub expire: Duration,
    /// State directory, if not the default one in the root.
    pub state: Option<PathBuf>,
    /// Durability of acknowledged bytes.
    pub sync: SyncMode,
    /// Whether a finished upload may replace an existing file.
    pub overwrite: bool,
    /// Whether published names may start with a dot (`--dotfiles`).
    pub dotfiles: bool,
}

impl Settings {
    /// Normalises a `--uploads` value (`/incoming/`, `incoming`) to its canonical form.
    pub fn prefix(raw: &str) -> Result<String, String> {
        let mut canonical = Vec::new();
        crate::http::path::canonical_path(raw.as_bytes(), &mut canonical)
            .map_err(|_| format!("--uploads {raw}: not a clean URL path"))?;
        let mut s =
            String::from_utf8(canonical).map_err(|_| format!("--uploads {raw}: not UTF-8"))?;
        if !raw.starts_with('/') {
            return Err(format!("--uploads {raw}: must start with /"));
        }
        if s == "/" {
            s.clear();
        }
        Ok(s)
    }
}

/// What to answer an upload request with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The status.
    pub status: Status,
    /// Header lines (`Name: value\r\n` each).
    pub lines: Vec<u8>,
    /// The request completed an upload and published its file (for the metrics).
    pub published: bool,
}

impl Answer {
    /// An answer with no header lines yet.
    pub fn new(status: Status) -> Answer {
        Answer {
            status,
            lines: Vec::new(),
            published: false,
        }
    }

    fn line(mut self, name: &str, value: impl std::fmt::Display) -> Answer {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = write!(s, "{name}: {value}\r\n");
        self.lines.extend_from_slice(s.as_bytes());
        self
    }
}

/// What [`Uploads::begin`] decided.
#[derive(Debug)]
pub enum Begin {
    /// Not an upload request: serve it as usual.
    NotMine,
    /// Answer at once (a refusal, a status query, a deletion).
    Answer(Answer),
    /// Take the request body into this receiver; it answers when the body ends.
    Receive(Box<Receiver>),
}

/// The uploads of a running server: the state directory and each prefix's directory.
#[derive(Debug)]
pub struct Uploads {
    store: Store,
    dirs: Vec<OwnedFd>,
    /// The state directory's canonical URL path, when it lies in the root.
    hidden: Option<Vec<u8>>,
}

impl Uploads {
    /// Opens (creating where missing) the state directory and each prefix's directory under
    /// `root`. The state directory must be on the same file system as the root, since a
    /// finished upload is published by renaming it.
    pub fn open(root: &Path, settings: &Settings) -> Result<Uploads, String> {
        let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let mkdir_open = |path: &Path, what: &str| -> Result<OwnedFd, String> {
            std::fs::create_dir_all(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
            rfs::open(path, dir_flags, Mode::empty())
                .map_err(|e| format!("{what} {}: {e}", path.display()))
        };
        let state_path = match &settings.state {
            Some(p) => p.clone(),
            None => root.join(DEFAULT_STATE),
        };
        let state = mkdir_open(&state_path, "--upload-state")?;
        let root_dev = rfs::stat(root)
            .map_err(|e| format!("{}: {e}", root.display()))?
            .st_dev;
        if rfs::fstat(&state).map_err(|e| e.to_string())?.st_dev != root_dev {
            return Err(format!(
                "--upload-state {} is not on the file system of the root: finished uploads are \
                 published by rename",
                state_path.display()
            ));
        }
        let mut dirs = Vec::new();
        for prefix in &settings.prefixes {
            let rel = prefix.trim_start_matches('/');
            let path = if rel.is_empty() {
                root.to_path_buf()
            } else {
                root.join(rel)
            };
            let dir = mkdir_open(&path, "--uploads")?;
            if rfs::fstat(&dir).map_err(|e| e.to_string())?.st_dev != root_dev {
                return Err(format!(
                    "--uploads {prefix}/ is on another file system than the state directory"
                ));
            }
            dirs.push(dir);
        }
        let hidden = std::fs::canonicalize(&state_path)
            .ok()
            .zip(std::fs::canonicalize(root).ok())
            .and_then(|(s, r)| {
                let rel = s.strip_prefix(r).ok()?.to_str()?.to_owned();
                Some(format!("/{rel}").into_bytes())
            });
        Ok(Uploads {
            store: Store::open(state),
            dirs,
            hidden,
        })
    }

    /// The store (for the sweeper).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Whether the canonical path `path` lies in the state directory, which is never served.
    pub fn hides(&self, path: &[u8]) -> bool {
        self.hidden.as_deref().is_some_and(|h| {
            path.strip_prefix(h)
                .is_some_and(|rest| rest.is_empty() || rest[0] == b'/')
        })
    }

    /// Whether the body of `req` (canonical path `path`) goes to an upload: a `POST`,
    /// `PUT` or `PATCH` where uploads are routed.
    pub fn takes_body(&self, req: &Request<'_>, path: &[u8], s: &Settings) -> bool {
        matches!(req.method_raw, "POST" | "PUT" | "PATCH") && route(path, &s.prefixes).is_some()
    }

    /// Whether `req` may be an upload request, so worth [`Uploads::begin`]: any method but
    /// `GET` under an upload prefix. (Downloads there are served as usual at no extra cost.)
    pub fn claims(&self, req: &Request<'_>, path: &[u8], s: &Settings) -> bool {
        req.method != HttpMethod::Get && route(path, &s.prefixes).is_some()
    }

    /// Decides what an upload request gets; `path` is the request's canonical path, `link`
    /// the signed links' checker (`--secure-link-secret-file`), if any, and `now` the Unix
    /// time.
    pub fn begin(
        &self,
        req: &Request<'_>,
        path: &[u8],
        s: &Settings,
        link: Option<&SecureLink>,
        now: u64,
    ) -> Begin {
        let Some((index, route)) = route(path, &s.prefixes) else {
            return Begin::NotMine;
        };
        let method = req.method_raw;
        let Some(f) = Fields::read(req) else {
            return match (route, method) {
                (Route::Named(_), "GET" | "HEAD") => Begin::NotMine,
                _ => Begin::Answer(Answer::new(Status::BadRequest)),
            };
        };
        let cx = Cx {
            uploads: self,
            settings: s,
            index,
            now,
            req,
            fields: &f,
            link,
        };
        let draft = ietf::applies(&cx) && f.tus_resumable.is_none();
        match (route, req.method) {
            (Route::Collection, HttpMethod::Options) => {
                let both = ietf::options(&cx);
                let mut answer = tus::options(s);
                answer.lines.extend_from_slice(&both.lines);
                Begin::Answer(answer)
            }
            (Route::Tus(_), HttpMethod::Options) => Begin::Answer(tus::options(s)),
            (Route::Ietf(_), HttpMethod::Options) => Begin::Answer(ietf::options(&cx)),
            (Route::Collection, _) if method == "POST" && draft => ietf::create(&cx, None),
            (Route::Collection, _) if method == "POST" => tus::create(&cx),
            (Route::Tus(id), _) if matches!(method, "HEAD" | "PATCH" | "DELETE") => {
                tus::resource(&cx, id)
            }
            (Route::Ietf(id), _) if matches!(method, "HEAD" | "PATCH" | "DELETE") => {
                ietf::resource(&cx, id)
            }
            (Route::Named(name), _) if method == "PUT" && draft => ietf::create(&cx, Some(name)),
            (Route::Named(name), _) if method == "PUT" => put::put(&cx, name),
            (Route::Named(name), HttpMethod::Head) => put::head(&cx, name),
            _ => Begin::NotMine,
        }
    }
}

/// Everything a protocol handler needs about a request.
struct Cx<'a, 'r> {
    uploads: &'a Uploads,
    settings: &'a Settings,
    /// Index of the matching prefix.
    index: usize,
    now: u64,
    req: &'a Request<'r>,
    fields: &'a Fields<'r>,
    link: Option<&'a SecureLink>,
}

impl Cx<'_, '_> {
    /// Checks the request's credentials: a bearer token, or a link signed for one of
    /// `methods`; `Err` with 401 (none) or 403 (wrong).
    fn authorise(&self, methods: &[&str]) -> Result<(), Answer> {
        if self.settings.auth == AuthMode::None || self.link_expiry(methods).is_some() {
            return Ok(());
        }
        if self.fields.bearer().is_none() && has_signature(self.req.target) {
            return Err(Answer::new(Status::Forbidden));
        }
        match self.fields.bearer() {
            None => Err(Answer::new(Status::Unauthorized)
                .line("WWW-Authenticate", "Bearer realm=\"uploads\"")),
            Some(token) if self.settings.tokens.iter().any(|t| ct_eq(t, token)) => Ok(()),
            Some(_) => Err(Answer::new(Status::Forbidden)),
        }
    }

    /// The expiry of a valid link signed for one of `methods` that the request carries.
    fn link_expiry(&self, methods: &[&str]) -> Option<u64> {
        let link = self.link?;
        link.authorises(self.req.target, methods, self.now, &mut Vec::new())
    }

    /// The `Location` of a new upload resource at `path`: signed for its operations
    /// ([`Method::UPLOAD`]) until the same time as the link it was created through, if it
    /// was, so that the client can go on with no other credentials.
    fn resource_location(&self, path: &str) -> String {
        let created_by = [self.req.method_raw];
        match (self.link, self.link_expiry(&created_by)) {
            (Some(link), Some(expires)) => {
                let upload = Method::new(Method::UPLOAD.as_bytes());
                link.sign_url(path, expires, None, upload)
                    .unwrap_or_else(|_| encode_path(path))
            }
            _ => encode_path(path),
        }
    }

    /// The directory uploads of this prefix are published in.
    fn dir(&self) -> &OwnedFd {
        &self.uploads.dirs[self.index]
    }

    /// The prefix, canonical (`/incoming`).
    fn prefix(&self) -> &str {
        &self.settings.prefixes[self.index]
    }

    /// Whether a file `name` exists in the prefix's directory.
    fn published_exists(&self, name: &str) -> bool {
        rfs::statat(self.dir(), name, rfs::AtFlags::SYMLINK_NOFOLLOW).is_ok()
    }

    /// When an upload last written at `last_write` (Unix seconds) expires.
    fn expiry(&self, last_write: u64) -> u64 {
        last_write.saturating_add(self.settings.expire.as_secs())
    }

    /// Body bytes the request announces, `None` when chunked.
    fn body_len(&self) -> Option<u64> {
        (!self.req.chunked).then_some(self.req.body_len)
    }

    /// Bytes a request may add to an upload of `length` at `offset`: up to its length, or to
    /// the size limit while the length is unknown; `None` when the body it announces is more.
    fn room(&self, length: Option<u64>, offset: u64) -> Option<u64> {
        let max = self.settings.max_size;
        let room = match length {
            Some(l) => l.saturating_sub(offset),
            None if max > 0 => max.saturating_sub(offset),
            None => u64::MAX,
        };
        self.body_len().is_none_or(|n| n <= room).then_some(room)
    }

    /// Whether the request carries a body at all.
    fn has_body(&self) -> bool {
        self.req.chunked || self.req.body_len > 0
    }
}

/// Where a path lies under the upload prefixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route<'p> {
    /// The prefix itself.
    Collection,
    /// A tus upload's URL.
    Tus(&'p str),
    /// An upload resource of the IETF draft.
    Ietf(&'p str),
    /// A file name directly under the prefix.
    Named(&'p str),
}

/// Finds the first prefix `path` lies under, and where.
fn route<'p>(path: &'p [u8], prefixes: &[String]) -> Option<(usize, Route<'p>)> {
    let path = std::str::from_utf8(path).ok()?;
    prefixes.iter().enumerate().find_map(|(i, prefix)| {
        let rel = path.strip_prefix(prefix.as_str())?;
        let route = match rel {
            "" | "/" => Route::Collection,
            _ => {
                let rest = rel.strip_prefix('/')?;
                let random = |id: &str| store::valid_id(id.as_bytes()) && !id.starts_with("put-");
                if let Some(id) = rest.strip_prefix(".tus/") {
                    random(id).then_some(Route::Tus(id))?
                } else if let Some(id) = rest.strip_prefix(".upload/") {
                    random(id).then_some(Route::Ietf(id))?
                } else if !rest.contains('/') {
                    Route::Named(rest)
                } else {
                    return None;
                }
            }
        };
        Some((i, route))
    })
}

/// Whether a target's query carries a signature (`sig=`).
fn has_signature(target: &[u8]) -> bool {
    crate::http::path::split_query(target)
        .1
        .is_some_and(|q| q.split(|&b| b == b'&').any(|p| p.starts_with(b"sig=")))
}

/// Compares two secrets in time that depends only on their lengths.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An HTTP date for `Upload-Expires`.
fn http_date(unix: u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(unix))
}

/// The answer to a file-system failure.
fn io_answer(e: &io::Error) -> Answer {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => Answer::new(Status::InsufficientStorage),
        _ => Answer::new(Status::InternalServerError),
    }
}

/// The answer when an upload cannot be opened for writing.
fn open_answer(e: OpenError) -> Answer {
    match e {
        OpenError::Missing => Answer::new(Status::NotFound),
        OpenError::Locked => Answer::new(Status::Locked),
        OpenError::Io(e) => io_answer(&e),
    }
}

/// Percent-encodes a path for a `Location` header.
fn encode_path(path: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'`')
        .add(b'{')
        .add(b'}');
    percent_encoding::utf8_percent_encode(path, SET).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let prefixes = vec!["/in".to_string(), String::new()];
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(route(b"/in", &prefixes), Some((0, Route::Collection)));
        assert_eq!(
            route(format!("/in/.tus/{id}").as_bytes(), &prefixes),
            Some((0, Route::Tus(id)))
        );
        assert_eq!(
            route(b"/in/a.iso", &prefixes),
            Some((0, Route::Named("a.iso")))
        );
        assert_eq!(route(b"/in/.tus/zz", &prefixes), None);
        assert_eq!(route(b"/in/sub/a", &prefixes), None);
        assert_eq!(route(b"/x", &prefixes), Some((1, Route::Named("x"))));
        assert_eq!(route(b"/", &prefixes), Some((1, Route::Collection)));
        assert_eq!(route(b"/inx", &prefixes[..1]), None);
    }

    #[test]
    fn prefixes_are_canonical() {
        assert_eq!(Settings::prefix("/incoming/").unwrap(), "/incoming");
        assert_eq!(Settings::prefix("/a//b/./").unwrap(), "/a/b");
        assert_eq!(Settings::prefix("/").unwrap(), "");
        assert!(Settings::prefix("incoming").is_err());
        assert!(Settings::prefix("/../x").is_err());
    }

    #[test]
    fn secrets_compare() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
