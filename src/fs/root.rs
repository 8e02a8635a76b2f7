//! The served directory and race-free resolution of request targets inside it.
//!
//! Every lookup is an `openat2` relative to the root's `O_PATH` descriptor with
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`, so the kernel itself refuses any path, `..` or
//! symlink that would leave the root, atomically with respect to concurrent renames. Nothing is
//! opened for reading before it is known to be a regular file: the path is first opened with
//! `O_PATH` (no side effects even on a FIFO or device) and `fstat`ed, then opened again for
//! reading and accepted only if it is still the same inode.

use std::ffi::CStr;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::mime;
use crate::http::{ETag, EtagForm, Fixdate, Representation};
use crate::sys::{self, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS};

/// Restrictions applied to every resolution below the root.
const RESOLVE: u64 = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;

/// File served for a directory requested with its trailing slash.
const INDEX: &CStr = c"index.html";

/// The directory being served.
#[derive(Debug)]
pub struct Root {
    dir: OwnedFd,
    /// Other trees served under URL prefixes (`--mount`), longest prefix first: each the
    /// decoded prefix relative to the root (`download`, `a/b`) and its directory.
    mounts: Vec<(Vec<u8>, OwnedFd)>,
    dotfiles: bool,
    etag: EtagForm,
}

/// What to answer for a request target. `F` is how the open file is held: owned as
/// [`Root::lookup`] opens it, or shared with the open-file cache (`fs::Found`).
#[derive(Debug)]
pub enum Lookup<F = File> {
    /// A regular file opened for reading (`O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_NOCTTY`), and its
    /// metadata.
    File {
        /// The open file.
        file: F,
        /// Its length, validators and type.
        rep: Representation,
    },
    /// A directory requested without its trailing slash: the engine answers 301 to the slash
    /// form.
    Redirect,
    /// A directory without `index.html`, requested with its trailing slash: answered with a
    /// listing where enabled, else 404. The lookup's scratch buffer holds the directory's
    /// decoded path relative to the root (`.` for the root itself).
    Directory {
        /// The directory, opened with `O_PATH` (enough to resolve names beneath it).
        dir: File,
    },
    /// Nothing to serve there (missing, hidden dotfile, symlink escaping the root, `ENOTDIR`,
    /// `ELOOP`...).
    NotFound,
    /// Exists but may not be served (`EACCES`, or not a regular file: FIFO, socket, device).
    Forbidden,
    /// The target itself is malformed or tries to escape the root.
    BadRequest,
}

impl<F> Lookup<F> {
    /// The same answer with the file held by `f(file)` instead.
    pub fn map_file<G>(self, f: impl FnOnce(F) -> G) -> Lookup<G> {
        match self {
            Lookup::File { file, rep } => Lookup::File { file: f(file), rep },
            Lookup::Redirect => Lookup::Redirect,
            Lookup::Directory { dir } => Lookup::Directory { dir },
            Lookup::NotFound => Lookup::NotFound,
            Lookup::Forbidden => Lookup::Forbidden,
            Lookup::BadRequest => Lookup::BadRequest,
        }
    }
}

impl Root {
    /// Opens the root directory; error if it is missing, not a directory, or the kernel lacks
    /// `openat2` (Linux < 5.6), which every lookup relies on. `dotfiles` allows serving names
    /// starting with `.`.
    pub fn open(dir: &Path, dotfiles: bool) -> io::Result<Root> {
        Ok(Root {
            dir: open_dir(dir)?,
            mounts: Vec::new(),
            dotfiles,
            etag: EtagForm::default(),
        })
    }

    /// This root with the tree `dir` served under the URL path `prefix` (`/download`: a
    /// canonical path, not `/`) in place of whatever the root holds there (nginx `alias`).
    /// Paths beneath it resolve beneath `dir` exactly as others do beneath the root; the
    /// longest prefix wins.
    pub fn mount(mut self, prefix: &str, dir: &Path) -> io::Result<Root> {
        let rel = prefix.trim_start_matches('/').as_bytes().to_vec();
        if rel.is_empty() || rel.ends_with(b"/") || rel.contains(&0) {
            return Err(io::Error::other(format!("{prefix}: not a mount prefix")));
        }
        self.mounts.push((rel, open_dir(dir)?));
        self.mounts.sort_by_key(|m| std::cmp::Reverse(m.0.len()));
        Ok(self)
    }

    /// The directory `rel` (a NUL-terminated path relative to the root) is resolved beneath,
    /// and the rest of `rel` relative to it: the longest mount whose prefix is `rel` or
    /// starts it, else the root itself.
    fn beneath<'a>(&'a self, rel: &'a CStr) -> (BorrowedFd<'a>, &'a CStr) {
        let path = rel.to_bytes();
        for (prefix, dir) in &self.mounts {
            if let Some(rest) = path.strip_prefix(prefix.as_slice()) {
                match rest.first() {
                    None => return (dir.as_fd(), c"."),
                    Some(b'/') => {
                        let tail = &rel.to_bytes_with_nul()[prefix.len() + 1..];
                        if let Ok(tail) = CStr::from_bytes_with_nul(tail) {
                            return (dir.as_fd(), tail);
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        (self.dir.as_fd(), rel)
    }

    /// This root, describing files with entity tags of the form `etag` (`--etag`).
    pub fn with_etag(mut self, etag: EtagForm) -> Root {
        self.etag = etag;
        self
    }

    /// Whether names starting with `.` are served (and listed).
    pub fn dotfiles(&self) -> bool {
        self.dotfiles
    }

    /// Resolves a request target (`/path?query`) to what should be answered. `scratch` is
    /// reused across calls to hold the decoded path.
    pub fn lookup(&self, target: &[u8], scratch: &mut Vec<u8>) -> Lookup {
        let Ok(decoded) = crate::http::path::decode(target, scratch) else {
            return Lookup::BadRequest;
        };
        if decoded.dotfile && !self.dotfiles {
            return Lookup::NotFound;
        }
        let name_start = memchr::memrchr(b'/', scratch).map_or(0, |p| p + 1);
        scratch.push(0);
        let Ok(rel) = CStr::from_bytes_with_nul(scratch) else {
            return Lookup::BadRequest;
        };
        let (base, rel) = self.beneath(rel);
        let (handle, meta) = match open_path(base, rel) {
            Ok(found) => found,
            Err(answer) => return answer,
        };
        if meta.is_dir() {
            if !decoded.trailing_slash {
                return Lookup::Redirect;
            }
            return match open_path(handle.as_fd(), INDEX) {
                Ok((_, index)) if index.is_file() => {
                    open_regular(handle.as_fd(), INDEX, &index, INDEX.to_bytes(), self.etag)
                }
                Ok((_, index)) if index.is_dir() => Lookup::NotFound,
                Ok(_) => Lookup::Forbidden,
                Err(Lookup::NotFound) => {
                    scratch.pop();
                    Lookup::Directory { dir: handle }
                }
                Err(answer) => answer,
            };
        }
        if !meta.is_file() {
            return Lookup::Forbidden;
        }
        if decoded.trailing_slash {
            return Lookup::NotFound;
        }
        let name = &scratch[name_start..scratch.len() - 1];
        open_regular(base, rel, &meta, name, self.etag)
    }

    /// Whether `target` still names the file version `version` (a [`Representation`]'s), by
    /// resolving it once more with `O_PATH` and `fstat`: three system calls, against the six
    /// of a full [`Root::lookup`] that opens the file again. `false` when anything differs or
    /// the target is not a plain file path (a directory's index, say): look it up again.
    pub fn unchanged(&self, target: &[u8], version: &ETag, scratch: &mut Vec<u8>) -> bool {
        let Ok(decoded) = crate::http::path::decode(target, scratch) else {
            return false;
        };
        if decoded.trailing_slash || (decoded.dotfile && !self.dotfiles) {
            return false;
        }
        scratch.push(0);
        let Ok(rel) = CStr::from_bytes_with_nul(scratch) else {
            return false;
        };
        let (base, rel) = self.beneath(rel);
        match open_path(base, rel) {
            Ok((_, meta)) if meta.is_file() => {
                let mtime = u64::try_from(meta.mtime()).unwrap_or(0);
                ETag::from_parts(mtime, meta.len(), meta.ino()) == *version
            }
            _ => false,
        }
    }

    /// Resolves the sidecar of a request target: the file `target` names (`index.html` for a
    /// directory form), with `suffix` (e.g. `.gz`, never containing `/` or NUL) appended, as
    /// [`Lookup::File`] when it is a regular file and `NotFound` otherwise. The same
    /// resolution as [`Root::lookup`], so a sidecar can never be reached where its original
    /// could not. Its `Content-Type` is the sidecar's own; callers send the original's.
    pub fn lookup_sidecar(&self, target: &[u8], suffix: &str, scratch: &mut Vec<u8>) -> Lookup {
        if let Err(answer) = self.file_path(target, suffix, scratch) {
            return answer;
        }
        let Ok(rel) = CStr::from_bytes_with_nul(scratch) else {
            return Lookup::BadRequest;
        };
        let (base, beneath) = self.beneath(rel);
        match open_path(base, beneath) {
            Ok((_, meta)) if meta.is_file() => {
                open_regular(base, beneath, &meta, rel.to_bytes(), self.etag)
            }
            Ok(_) | Err(_) => Lookup::NotFound,
        }
    }

    /// Leaves in `scratch` the NUL-terminated path, relative to the root, of the file `target`
    /// names (`index.html` for a directory form) with `suffix` appended; the answer instead
    /// when the target does not decode or names a hidden file.
    #[allow(clippy::result_large_err)] // see open_path
    fn file_path(&self, target: &[u8], suffix: &str, scratch: &mut Vec<u8>) -> Result<(), Lookup> {
        let Ok(decoded) = crate::http::path::decode(target, scratch) else {
            return Err(Lookup::BadRequest);
        };
        if decoded.dotfile && !self.dotfiles {
            return Err(Lookup::NotFound);
        }
        if decoded.trailing_slash {
            if scratch == b"." {
                scratch.clear();
            } else {
                scratch.push(b'/');
            }
            scratch.extend_from_slice(INDEX.to_bytes());
        }
        scratch.extend_from_slice(suffix.as_bytes());
        scratch.push(0);
        Ok(())
    }

    /// Where a change alters what [`Root::lookup_sidecar`] (or, with `suffix` empty,
    /// [`Root::lookup`]) finds for `target`: each directory its path passes through, named so
    /// the kernel can watch it (`/proc/self/fd/N/a/b`, N the root's or its mount's descriptor,
    /// symlinks followed as the lookup followed them), with the name looked up in it. `dir`
    /// is scratch space for those paths. Nothing when the target does not name a file.
    pub fn watch_points(
        &self,
        target: &[u8],
        suffix: &str,
        scratch: &mut Vec<u8>,
        dir: &mut Vec<u8>,
        mut each: impl FnMut(&CStr, &[u8]),
    ) {
        if self.file_path(target, suffix, scratch).is_err() {
            return;
        }
        let Ok(rel) = CStr::from_bytes_with_nul(scratch) else {
            return;
        };
        let (base, rest) = self.beneath(rel);
        let rest = rest.to_bytes();
        if rest == b"." {
            return;
        }
        dir.clear();
        dir.extend_from_slice(b"/proc/self/fd/");
        dir.extend_from_slice(itoa::Buffer::new().format(base.as_raw_fd()).as_bytes());
        for name in rest.split(|&b| b == b'/') {
            dir.push(0);
            if let Ok(path) = CStr::from_bytes_with_nul(dir) {
                each(path, name);
            }
            dir.pop();
            dir.push(b'/');
            dir.extend_from_slice(name);
        }
    }

    /// What `rel` (a NUL-terminated path relative to the root) resolves to beneath the root,
    /// following symlinks that stay inside it; `None` when it escapes, dangles or is hidden.
    pub(super) fn metadata_beneath(&self, rel: &CStr) -> Option<Metadata> {
        let (base, rel) = self.beneath(rel);
        open_path(base, rel).ok().map(|(_, meta)| meta)
    }
}

/// Opens a directory to resolve beneath (`O_PATH`), through `openat2`, so a kernel without it
/// is found out at start-up.
fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    let probe = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(dir)?;
    sys::openat2(
        probe.as_fd(),
        c".",
        libc::O_PATH | libc::O_DIRECTORY,
        RESOLVE,
    )
}

/// Opens `rel` below `dir` with `O_PATH` (no side effects whatever it is) and `fstat`s it.
// The error is the lookup's answer, returned by value as every answer is: boxing it would
// allocate on every 404.
#[allow(clippy::result_large_err)]
fn open_path(dir: BorrowedFd<'_>, rel: &CStr) -> Result<(File, Metadata), Lookup> {
    let fd = sys::openat2(dir, rel, libc::O_PATH, RESOLVE).map_err(|e| classify(&e))?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(|e| classify(&e))?;
    Ok((file, meta))
}

/// Opens the regular file `rel` below `dir` for reading, provided it is still the inode
/// described by `seen`; `name` picks the MIME type.
fn open_regular(
    dir: BorrowedFd<'_>,
    rel: &CStr,
    seen: &Metadata,
    name: &[u8],
    etag: EtagForm,
) -> Lookup {
    let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;
    let file = match sys::openat2(dir, rel, flags, RESOLVE) {
        Ok(fd) => File::from(fd),
        Err(e) => return classify(&e),
    };
    let meta = match file.metadata() {
        Ok(meta) => meta,
        Err(e) => return classify(&e),
    };
    // Swapped for another file between the two opens: serve neither.
    if meta.dev() != seen.dev() || meta.ino() != seen.ino() {
        return Lookup::NotFound;
    }
    let len = meta.len();
    let mtime = u64::try_from(meta.mtime()).unwrap_or(0);
    let rep = Representation {
        len,
        mtime: Fixdate::new(mtime),
        etag: etag.tag(mtime, len, meta.ino()),
        version: ETag::from_parts(mtime, len, meta.ino()),
        mime: mime::for_name(name),
    };
    Lookup::File { file, rep }
}

/// Answer for a failed open or `fstat`.
fn classify(err: &io::Error) -> Lookup {
    match err.raw_os_error() {
        Some(libc::EACCES | libc::EPERM) => Lookup::Forbidden,
        _ => Lookup::NotFound,
    }
}

#[cfg(test)]
mod tests;
