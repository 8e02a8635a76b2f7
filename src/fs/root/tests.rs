//! Lookups beneath a real directory tree: traversal, symlinks, dotfiles, special files, mounts.
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
    assert_eq!(rep.mtime.secs(), meta.mtime() as u64);
    assert_eq!(
        rep.etag,
        ETag::nginx(rep.mtime.secs(), 11),
        "nginx's form by default"
    );
    assert_eq!(
        rep.version,
        ETag::from_parts(rep.mtime.secs(), 11, meta.ino())
    );
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

#[test]
fn mounts_serve_their_own_trees_longest_prefix_first() {
    let mut f = fixture(false);
    let tmp = f.dir.parent().unwrap().to_path_buf();
    let (files, deep) = (tmp.join("files"), tmp.join("deep"));
    fs::create_dir_all(files.join("sub")).unwrap();
    fs::create_dir(&deep).unwrap();
    fs::write(files.join("a.txt"), "mounted").unwrap();
    fs::write(files.join("sub/b.txt"), "beneath").unwrap();
    fs::write(deep.join("b.txt"), "deeper").unwrap();
    fs::create_dir(f.dir.join("download")).unwrap();
    fs::write(f.dir.join("download/a.txt"), "hidden by the mount").unwrap();
    fs::write(f.dir.join("downloads.txt"), "root").unwrap();
    symlink(tmp.join("secret.txt"), files.join("escape")).unwrap();
    let root = std::mem::replace(&mut f.root, Root::open(&f.dir, false).unwrap());
    f.root = root
        .mount("/download", &files)
        .unwrap()
        .mount("/download/sub", &deep)
        .unwrap();
    assert_eq!(file(&f, "/download/a.txt").0, "mounted");
    assert_eq!(
        file(&f, "/download/sub/b.txt").0,
        "deeper",
        "the longest prefix"
    );
    assert_eq!(
        file(&f, "/downloads.txt").0,
        "root",
        "a prefix ends at a slash"
    );
    assert_eq!(
        file(&f, "/download/%61.txt").0,
        "mounted",
        "matched when decoded"
    );
    assert_lookup(&f, "/download", "Redirect");
    assert_lookup(&f, "/download/", "Directory");
    assert_lookup(&f, "/download/escape", "NotFound");
    assert_lookup(&f, "/download/../secret.txt", "BadRequest");
    assert_lookup(&f, "/download/%2e%2e/secret.txt", "BadRequest");
    assert!(f.root.unchanged(
        b"/download/a.txt",
        &file(&f, "/download/a.txt").1.version,
        &mut Vec::new()
    ));
    let meta = f.root.metadata_beneath(c"download/sub/b.txt").unwrap();
    assert_eq!(meta.len(), 6);
    assert!(Root::open(&f.dir, false)
        .unwrap()
        .mount("/", &files)
        .is_err());
}
