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
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::mime;
use crate::http::{ETag, EtagForm, Representation};
use crate::sys::{self, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS};

/// Restrictions applied to every resolution below the root.
const RESOLVE: u64 = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;

/// File served for a directory requested with its trailing slash.
const INDEX: &CStr = c"index.html";

/// The directory being served.
#[derive(Debug)]
pub struct Root {
    dir: OwnedFd,
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
        let probe = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(dir)?;
        let dir = sys::openat2(
            probe.as_fd(),
            c".",
            libc::O_PATH | libc::O_DIRECTORY,
            RESOLVE,
        )?;
        Ok(Root {
            dir,
            dotfiles,
            etag: EtagForm::default(),
        })
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
        let (handle, meta) = match open_path(self.dir.as_fd(), rel) {
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
        let name = &rel.to_bytes()[name_start..];
        open_regular(self.dir.as_fd(), rel, &meta, name, self.etag)
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
        match open_path(self.dir.as_fd(), rel) {
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
        let Ok(decoded) = crate::http::path::decode(target, scratch) else {
            return Lookup::BadRequest;
        };
        if decoded.dotfile && !self.dotfiles {
            return Lookup::NotFound;
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
        let Ok(rel) = CStr::from_bytes_with_nul(scratch) else {
            return Lookup::BadRequest;
        };
        match open_path(self.dir.as_fd(), rel) {
            Ok((_, meta)) if meta.is_file() => {
                open_regular(self.dir.as_fd(), rel, &meta, rel.to_bytes(), self.etag)
            }
            Ok(_) | Err(_) => Lookup::NotFound,
        }
    }

    /// What `rel` (a NUL-terminated path relative to the root) resolves to beneath the root,
    /// following symlinks that stay inside it; `None` when it escapes, dangles or is hidden.
    pub(super) fn metadata_beneath(&self, rel: &CStr) -> Option<Metadata> {
        open_path(self.dir.as_fd(), rel).ok().map(|(_, meta)| meta)
    }
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
        mtime,
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
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::os::unix::net::UnixListener;
    use std::sync::mpsc;
    use std::time::Duration;

    struct Fixture {
        _tmp: tempfile::TempDir,
        root: Root,
        dir: std::path::PathBuf,
    }

    /// A tempdir holding `root/` (served) and `secret.txt` beside it (outside the root).
    fn fixture(dotfiles: bool) -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("root");
        fs::create_dir(&dir).expect("mkdir root");
        fs::write(tmp.path().join("secret.txt"), "secret").expect("write secret");
        let root = Root::open(&dir, dotfiles).expect("open root");
        Fixture {
            _tmp: tmp,
            root,
            dir,
        }
    }

    fn lookup(f: &Fixture, target: &str) -> Lookup {
        f.root.lookup(target.as_bytes(), &mut Vec::new())
    }

    /// Looks `target` up, expects a file and returns its contents and representation.
    fn file(f: &Fixture, target: &str) -> (String, Representation) {
        match lookup(f, target) {
            Lookup::File { file, rep } => (io::read_to_string(file).expect("read"), rep),
            other => panic!("{target}: expected a file, got {other:?}"),
        }
    }

    fn assert_lookup(f: &Fixture, target: &str, want: &str) {
        let got = lookup(f, target);
        let name = match got {
            Lookup::File { .. } => "File",
            Lookup::Redirect => "Redirect",
            Lookup::Directory { .. } => "Directory",
            Lookup::NotFound => "NotFound",
            Lookup::Forbidden => "Forbidden",
            Lookup::BadRequest => "BadRequest",
        };
        assert_eq!(name, want, "{target}: {got:?}");
    }

    #[test]
    fn open_refuses_missing_and_non_directories() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert!(Root::open(&tmp.path().join("missing"), false).is_err());
        let plain = tmp.path().join("plain");
        fs::write(&plain, "x").expect("write");
        assert!(Root::open(&plain, false).is_err());
    }

    #[test]
    fn plain_file_and_representation() {
        let f = fixture(false);
        fs::write(f.dir.join("hello.txt"), "hello world").expect("write");
        let meta = fs::metadata(f.dir.join("hello.txt")).expect("stat");
        let (body, rep) = file(&f, "/hello.txt?download=1");
        assert_eq!(body, "hello world");
        assert_eq!(rep.len, 11);
        assert_eq!(rep.mtime, meta.mtime() as u64);
        assert_eq!(
            rep.etag,
            ETag::nginx(rep.mtime, 11),
            "nginx's form by default"
        );
        assert_eq!(rep.version, ETag::from_parts(rep.mtime, 11, meta.ino()));
        assert_eq!(rep.mime, "text/plain; charset=utf-8");
        let inode = Root::open(&f.dir, false)
            .unwrap()
            .with_etag(EtagForm::Inode);
        let mut scratch = Vec::new();
        let Lookup::File { rep, .. } = inode.lookup(b"/hello.txt", &mut scratch) else {
            panic!("not found");
        };
        assert_eq!(rep.etag, rep.version);
        let off = Root::open(&f.dir, false).unwrap().with_etag(EtagForm::Off);
        let Lookup::File { rep, .. } = off.lookup(b"/hello.txt", &mut scratch) else {
            panic!("not found");
        };
        assert!(rep.etag.is_none() && !rep.version.is_none());
    }

    #[test]
    fn opened_read_only_non_blocking() {
        let f = fixture(false);
        fs::write(f.dir.join("a.bin"), "x").expect("write");
        let Lookup::File { file, .. } = lookup(&f, "/a.bin") else {
            panic!("expected file")
        };
        let flags = fs::read_to_string(format!(
            "/proc/self/fdinfo/{}",
            std::os::fd::AsRawFd::as_raw_fd(&file)
        ))
        .expect("fdinfo");
        let flags = flags
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .expect("flags line");
        let flags = i32::from_str_radix(flags.trim(), 8).expect("octal");
        assert_eq!(flags & libc::O_ACCMODE, libc::O_RDONLY);
        assert_ne!(flags & libc::O_NONBLOCK, 0);
        assert_ne!(flags & libc::O_CLOEXEC, 0);
        assert_eq!(flags & libc::O_PATH, 0);
    }

    #[test]
    fn nested_and_odd_names() {
        let f = fixture(false);
        fs::create_dir_all(f.dir.join("a/b c/é")).expect("mkdir");
        fs::write(f.dir.join("a/b c/é/x y.css"), "nested").expect("write");
        fs::write(f.dir.join("100%.txt"), "pct").expect("write");
        fs::write(f.dir.join("été.txt"), "utf8").expect("write");
        let (body, rep) = file(&f, "//a/./b%20c/%C3%A9/x%20y.css");
        assert_eq!(body, "nested");
        assert_eq!(rep.mime, "text/css; charset=utf-8");
        assert_eq!(file(&f, "/100%25.txt").0, "pct");
        assert_eq!(file(&f, "/%c3%a9t%C3%A9.txt").0, "utf8");
        assert_lookup(&f, "/100%.txt", "BadRequest");
    }

    #[test]
    fn missing_and_not_a_directory() {
        let f = fixture(false);
        fs::write(f.dir.join("f.txt"), "x").expect("write");
        assert_lookup(&f, "/nope", "NotFound");
        assert_lookup(&f, "/nope/deeper", "NotFound");
        assert_lookup(&f, "/f.txt/x", "NotFound");
        assert_lookup(&f, "/f.txt/", "NotFound");
    }

    #[test]
    fn directories() {
        let f = fixture(false);
        fs::create_dir_all(f.dir.join("with/sub")).expect("mkdir");
        fs::create_dir(f.dir.join("without")).expect("mkdir");
        fs::create_dir(f.dir.join("with/sub/index.html")).expect("mkdir");
        fs::write(f.dir.join("with/index.html"), "<p>with</p>").expect("write");
        assert_lookup(&f, "/with", "Redirect");
        assert_lookup(&f, "/with?x=1", "Redirect");
        let (body, rep) = file(&f, "/with/");
        assert_eq!(body, "<p>with</p>");
        assert_eq!(rep.mime, "text/html; charset=utf-8");
        assert_eq!(file(&f, "/with/.").0, "<p>with</p>");
        assert_lookup(&f, "/without", "Redirect");
        assert_lookup(&f, "/without/", "Directory");
        assert_lookup(&f, "/with/sub/", "NotFound");
    }

    #[test]
    fn root_index() {
        let f = fixture(false);
        assert_lookup(&f, "/", "Directory");
        fs::write(f.dir.join("index.html"), "home").expect("write");
        assert_eq!(file(&f, "/").0, "home");
        assert_eq!(file(&f, "//?q").0, "home");
        assert_eq!(file(&f, "/index.html").0, "home");
    }

    #[test]
    fn dotfiles_hidden_unless_enabled() {
        for dotfiles in [false, true] {
            let f = fixture(dotfiles);
            fs::create_dir(f.dir.join(".git")).expect("mkdir");
            fs::write(f.dir.join(".git/config"), "cfg").expect("write");
            fs::write(f.dir.join(".env"), "env").expect("write");
            if dotfiles {
                assert_eq!(file(&f, "/.env").0, "env");
                assert_eq!(file(&f, "/%2egit/config").0, "cfg");
            } else {
                assert_lookup(&f, "/.env", "NotFound");
                assert_lookup(&f, "/.git/config", "NotFound");
                assert_lookup(&f, "/%2Egit/config", "NotFound");
                assert_lookup(&f, "/.git", "NotFound");
            }
        }
    }

    #[test]
    fn traversal_is_a_bad_request() {
        let f = fixture(false);
        fs::create_dir(f.dir.join("a")).expect("mkdir");
        for t in [
            "/../secret.txt",
            "/a/../../secret.txt",
            "/%2e%2e/secret.txt",
            "/a%2f..%2fx",
        ] {
            assert_lookup(&f, t, "BadRequest");
        }
    }

    #[test]
    fn symlinks_inside_the_root_work() {
        let f = fixture(false);
        fs::create_dir(f.dir.join("real")).expect("mkdir");
        fs::write(f.dir.join("real/data.json"), "{}").expect("write");
        fs::write(f.dir.join("real/index.html"), "idx").expect("write");
        symlink("real/data.json", f.dir.join("link.txt")).expect("symlink");
        symlink("real", f.dir.join("alias")).expect("symlink");
        symlink("../real/data.json", f.dir.join("real/self.json")).expect("symlink");
        let (body, rep) = file(&f, "/link.txt");
        assert_eq!(body, "{}");
        assert_eq!(rep.mime, "text/plain; charset=utf-8");
        assert_eq!(file(&f, "/alias/data.json").0, "{}");
        assert_eq!(file(&f, "/alias/").0, "idx");
        assert_eq!(file(&f, "/real/self.json").0, "{}");
        assert_lookup(&f, "/alias", "Redirect");
    }

    #[test]
    fn symlinks_leaving_the_root_are_not_found() {
        let f = fixture(false);
        symlink("/etc/passwd", f.dir.join("passwd")).expect("symlink");
        symlink("/etc", f.dir.join("etc")).expect("symlink");
        symlink("../secret.txt", f.dir.join("secret")).expect("symlink");
        symlink("..", f.dir.join("up")).expect("symlink");
        symlink("/proc/self/root/etc/passwd", f.dir.join("magic")).expect("symlink");
        symlink("loop", f.dir.join("loop")).expect("symlink");
        for t in [
            "/passwd",
            "/etc/passwd",
            "/etc/",
            "/secret",
            "/up/secret.txt",
            "/up/",
        ] {
            assert_lookup(&f, t, "NotFound");
        }
        assert_lookup(&f, "/magic", "NotFound");
        assert_lookup(&f, "/loop", "NotFound");
    }

    #[test]
    fn fifo_is_forbidden_and_never_opened() {
        let f = fixture(false);
        let fifo = f.dir.join("pipe");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(status.success());
        fs::create_dir(f.dir.join("d")).expect("mkdir");
        let index = f.dir.join("d/index.html");
        let status = std::process::Command::new("mkfifo")
            .arg(&index)
            .status()
            .expect("mkfifo");
        assert!(status.success());
        // Run on another thread so a blocking open fails the test instead of hanging it.
        let (tx, rx) = mpsc::channel();
        let Fixture { _tmp, root, .. } = f;
        std::thread::spawn(move || {
            let mut scratch = Vec::new();
            let pipe = root.lookup(b"/pipe", &mut scratch);
            let index = root.lookup(b"/d/", &mut scratch);
            tx.send((pipe, index)).expect("send");
        });
        let (pipe, index) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("lookup hung");
        assert!(matches!(pipe, Lookup::Forbidden), "{pipe:?}");
        assert!(matches!(index, Lookup::Forbidden), "{index:?}");
    }

    #[test]
    fn socket_is_forbidden() {
        let f = fixture(false);
        let _listener = UnixListener::bind(f.dir.join("sock")).expect("bind");
        assert_lookup(&f, "/sock", "Forbidden");
    }

    #[test]
    fn errno_classification() {
        let forbidden = [libc::EACCES, libc::EPERM];
        let not_found = [
            libc::ENOENT,
            libc::ENOTDIR,
            libc::ELOOP,
            libc::EXDEV,
            libc::ENAMETOOLONG,
        ];
        for errno in forbidden {
            let got = classify(&io::Error::from_raw_os_error(errno));
            assert!(matches!(got, Lookup::Forbidden), "{errno}: {got:?}");
        }
        for errno in not_found {
            let got = classify(&io::Error::from_raw_os_error(errno));
            assert!(matches!(got, Lookup::NotFound), "{errno}: {got:?}");
        }
    }

    #[test]
    fn scratch_is_reused_across_lookups() {
        let f = fixture(false);
        fs::write(f.dir.join("a.txt"), "a").expect("write");
        let mut scratch = Vec::new();
        for _ in 0..3 {
            assert!(matches!(
                f.root.lookup(b"/a.txt", &mut scratch),
                Lookup::File { .. }
            ));
            assert!(matches!(
                f.root.lookup(b"/../a.txt", &mut scratch),
                Lookup::BadRequest
            ));
            assert!(matches!(
                f.root.lookup(b"/b.txt", &mut scratch),
                Lookup::NotFound
            ));
        }
    }

    #[test]
    fn directory_lookup_leaves_its_path_in_scratch() {
        let f = fixture(false);
        fs::create_dir_all(f.dir.join("a/b c")).expect("mkdir");
        let mut scratch = Vec::new();
        for (target, rel) in [("/a/b%20c/", &b"a/b c"[..]), ("/", b"."), ("//a/./", b"a")] {
            let got = f.root.lookup(target.as_bytes(), &mut scratch);
            assert!(matches!(got, Lookup::Directory { .. }), "{target}: {got:?}");
            assert_eq!(scratch, rel, "{target}");
        }
    }

    #[test]
    fn sidecars() {
        let f = fixture(false);
        fs::create_dir_all(f.dir.join("d/e")).expect("mkdir");
        fs::write(f.dir.join("app.js"), "plain").expect("write");
        fs::write(f.dir.join("app.js.gz"), "gzipped").expect("write");
        fs::write(f.dir.join("index.html.br"), "root index").expect("write");
        fs::write(f.dir.join("d/index.html.gz"), "dir index").expect("write");
        fs::create_dir(f.dir.join("dir.js.gz")).expect("mkdir");
        fs::write(f.dir.join(".env.gz"), "hidden").expect("write");
        symlink("../secret.txt", f.dir.join("out.txt.gz")).expect("symlink");
        let sidecar = |target: &str, suffix: &str| match f.root.lookup_sidecar(
            target.as_bytes(),
            suffix,
            &mut Vec::new(),
        ) {
            Lookup::File { file, rep } => Some((io::read_to_string(file).expect("read"), rep)),
            _ => None,
        };
        let (body, rep) = sidecar("/app.js?v=1", ".gz").expect("app.js.gz");
        assert_eq!((body.as_str(), rep.len), ("gzipped", 7));
        assert_eq!(sidecar("/", ".br").expect("root index").0, "root index");
        assert_eq!(sidecar("/d/", ".gz").expect("dir index").0, "dir index");
        assert_eq!(sidecar("/d/.", ".gz").expect("dir index").0, "dir index");
        for (target, suffix) in [
            ("/app.js", ".br"),
            ("/dir.js", ".gz"),
            ("/.env", ".gz"),
            ("/out.txt", ".gz"),
            ("/d/e/", ".gz"),
        ] {
            assert!(sidecar(target, suffix).is_none(), "{target}{suffix}");
        }
        assert!(matches!(
            f.root
                .lookup_sidecar(b"/../secret.txt", ".gz", &mut Vec::new()),
            Lookup::BadRequest
        ));
    }
}
