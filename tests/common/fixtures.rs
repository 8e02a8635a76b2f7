//! The per-test tree of files to serve, and the names and contents tests check against.

use std::fs::{self, File};
use std::os::unix::fs::{symlink, FileExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The empty file.
pub const EMPTY: &str = "empty.txt";
/// A 1-byte file.
pub const ONE: &str = "one.txt";
/// A 4096-byte HTML file.
pub const PAGE: &str = "page.html";
/// A 1 MiB file.
pub const MIB: &str = "mib.bin";
/// The sparse file of [`BIG_LEN`] bytes with [`BIG_MARKS`] written into it.
pub const BIG: &str = "big.bin";
/// A small CSS file.
pub const CSS: &str = "style.css";
/// A small PNG file.
pub const PNG: &str = "image.png";
/// A file with an extension no MIME table knows.
pub const UNKNOWN: &str = "data.qzx";
/// Length of [`BIG`]: over 64 MiB, so offsets past 64 MiB can be tested.
pub const BIG_LEN: u64 = 65 * 1024 * 1024 + 123;
/// Offsets in [`BIG`] where non-zero marker bytes are written.
pub const BIG_MARKS: [u64; 4] = [0, 1 << 20, (64 << 20) + 4321, BIG_LEN - 40];
/// Files with names needing percent-encoding, with a URL path for each.
pub const ODD_NAMES: [(&str, &str); 6] = [
    ("with space.txt", "/with%20space.txt"),
    ("café.txt", "/caf%C3%A9.txt"),
    ("café.txt", "/caf%c3%a9.txt"),
    ("100%.txt", "/100%25.txt"),
    ("a+b.txt", "/a+b.txt"),
    ("a+b.txt", "/a%2Bb.txt"),
];
/// Modification time given to every corpus file: 2020-09-13, well in the past, so that the
/// Last-Modified validator is strong and the date conditionals are deterministic.
pub const MTIME_SECS: u64 = 1_600_000_000;
/// Name of the file beside the root (outside of it) that must never be served.
pub const SECRET: &str = "secret";

/// A name of 200 characters (under NAME_MAX 255), served like any other.
pub fn long_name() -> String {
    format!("{}.txt", "l".repeat(196))
}

/// [`MTIME_SECS`] as a `SystemTime`.
pub fn mtime() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(MTIME_SECS)
}

/// The expected `Last-Modified` value of every corpus file.
pub fn last_modified() -> String {
    httpdate::fmt_http_date(mtime())
}

/// `len` pseudo-random bytes determined by `seed`, so misplaced offsets show up.
pub fn noise(seed: &str, len: usize) -> Vec<u8> {
    let mut x = seed.bytes().fold(0x9E37_79B9_7F4A_7C15_u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01B3)
    }) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A temporary directory holding the served `root/` and, beside it, the [`SECRET`] file.
///
/// `root/` holds [`EMPTY`], [`ONE`], [`PAGE`], [`MIB`], [`BIG`], [`CSS`], [`PNG`], [`UNKNOWN`],
/// the [`ODD_NAMES`] files, [`long_name`], `index.html`, `.hidden`, `.private/data.txt`,
/// `dir/index.html`, `dir/inner.txt`, `noindex/file.txt`, `a/b.txt`, and symlinks
/// `link-inside.html` (to `page.html`), `link-outside` (to `../secret`), `link-abs-outside` (to
/// the secret's absolute path) and `linkdir-outside` (to `..`).
pub struct Corpus {
    dir: tempfile::TempDir,
    root: PathBuf,
}

impl Corpus {
    /// Creates the tree (cheap: the big file is sparse).
    pub fn new() -> Corpus {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        for sub in ["dir", "noindex", "a", ".private"] {
            fs::create_dir_all(root.join(sub)).unwrap();
        }
        let secret = dir.path().join(SECRET);
        fs::write(&secret, Corpus::SECRET_TEXT).unwrap();
        let corpus = Corpus { dir, root };
        let mut files: Vec<(String, Vec<u8>)> = vec![
            (EMPTY.into(), Vec::new()),
            (ONE.into(), b"x".to_vec()),
            (PAGE.into(), noise(PAGE, 4096)),
            (MIB.into(), noise(MIB, 1 << 20)),
            (CSS.into(), b"body { color: #123456; }\n".to_vec()),
            (
                PNG.into(),
                [b"\x89PNG\r\n\x1a\n".to_vec(), noise(PNG, 300)].concat(),
            ),
            (UNKNOWN.into(), noise(UNKNOWN, 777)),
            ("index.html".into(), b"<h1>root index</h1>\n".to_vec()),
            (".hidden".into(), b"hidden dotfile\n".to_vec()),
            (
                ".private/data.txt".into(),
                b"inside a dot directory\n".to_vec(),
            ),
            ("dir/index.html".into(), b"<h1>dir index</h1>\n".to_vec()),
            ("dir/inner.txt".into(), b"inner\n".to_vec()),
            ("noindex/file.txt".into(), b"no index here\n".to_vec()),
            ("a/b.txt".into(), b"a/b\n".to_vec()),
            (long_name(), noise("long", 100)),
        ];
        for (name, _) in ODD_NAMES {
            files.push((name.into(), format!("odd file {name}\n").into_bytes()));
        }
        for (name, data) in &files {
            fs::write(corpus.path(name), data).unwrap();
        }
        let big = File::create(corpus.path(BIG)).unwrap();
        big.set_len(BIG_LEN).unwrap();
        for off in BIG_MARKS {
            big.write_all_at(&noise(&off.to_string(), 40), off).unwrap();
        }
        drop(big);
        for name in files.iter().map(|(n, _)| n.as_str()).chain([BIG]) {
            let file = File::options().write(true).open(corpus.path(name)).unwrap();
            file.set_modified(mtime()).unwrap();
        }
        symlink(PAGE, corpus.path("link-inside.html")).unwrap();
        symlink(format!("../{SECRET}"), corpus.path("link-outside")).unwrap();
        symlink(&secret, corpus.path("link-abs-outside")).unwrap();
        symlink("..", corpus.path("linkdir-outside")).unwrap();
        corpus
    }

    /// Content of the [`SECRET`] file outside the root.
    pub const SECRET_TEXT: &'static str = "ringserve-test: this secret must never be served 7f3a";

    /// The served root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The temporary directory containing the root (a place for files that are not served).
    pub fn outside(&self) -> &Path {
        self.dir.path()
    }

    /// Path of `rel` under the root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The bytes of `rel` under the root, as on disk.
    pub fn read(&self, rel: &str) -> Vec<u8> {
        fs::read(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    /// Creates a FIFO called `rel` under the root.
    pub fn mkfifo(&self, rel: &str) {
        let status = Command::new("mkfifo")
            .arg(self.path(rel))
            .status()
            .expect("run mkfifo");
        assert!(status.success(), "mkfifo failed");
    }
}
