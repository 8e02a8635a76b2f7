//! Directory listings (nginx `autoindex`): the entries of one directory as an HTML page or a
//! JSON array, written to an anonymous temporary file that is then sent like any file.
//!
//! Key design decision: entries are read into one compact arena (every name back to back in
//! one buffer, plus a fixed 24-byte record each), sorted there, and rendered through a 64 KiB
//! buffer straight into an `O_TMPFILE` file. A directory of 100k entries thus costs a few
//! MB for the duration of one request, and the engine sends the result zero-copy with a
//! known `Content-Length`, exactly as it sends a file, without knowing it is a listing.
//!
//! What is listed: everything but `.` and `..`, and names starting with `.` unless dotfiles
//! are served. Symbolic links are shown as what they point to, resolved beneath the root as
//! a request would be; links that leave the root or dangle are left out, since following
//! them would only give a 404 (and describing them would leak what lies outside).
//! Directories come first, then everything else, each sorted bytewise by name.
//!
//! Names are raw bytes (Linux allows anything but `/` and NUL). Links percent-encode every
//! byte but `A-Z a-z 0-9 - . _ ~`, so they work for any name; shown text and JSON strings
//! are the names with each invalid UTF-8 sequence replaced by U+FFFD, HTML-escaped or
//! JSON-escaped. JSON entries also carry that `href`, the one exact reference to a name
//! that is not UTF-8.

use std::ffi::CStr;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::fd::BorrowedFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use rustix::fs::{AtFlags, Dir, FileType, StatxFlags};

use super::Root;
use crate::http::date;
use crate::sys::{self, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS};

/// Bytes percent-encoded in links: all but RFC 3986 unreserved characters, so a link is
/// never mistaken for a scheme (`a:b`), a query, a fragment, or HTML.
const HREF: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Size of the buffer between rendering and the temporary file.
const WRITE_BUFFER: usize = 64 * 1024;

/// How a listing is rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// An HTML table with links, for browsers.
    Html,
    /// A JSON array of `{name, type, size, mtime, href}` objects, for scripts.
    Json,
}

impl Format {
    /// The `Content-Type` of a listing in this format.
    pub fn mime(self) -> &'static [u8] {
        match self {
            Format::Html => b"text/html; charset=utf-8",
            Format::Json => b"application/json",
        }
    }
}

/// What a listed name is (a symlink is listed as what it points to).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A directory: listed with a trailing `/`.
    Directory,
    /// A regular file.
    File,
    /// A FIFO, socket or device (listed, but never served).
    Other,
}

impl Kind {
    /// The `type` value in JSON.
    fn name(self) -> &'static str {
        match self {
            Kind::Directory => "directory",
            Kind::File => "file",
            Kind::Other => "other",
        }
    }

    fn of(file_type: FileType) -> Kind {
        match file_type {
            FileType::Directory => Kind::Directory,
            FileType::RegularFile => Kind::File,
            _ => Kind::Other,
        }
    }
}

/// One entry: where its name lies in the arena, and what it is.
#[derive(Clone, Copy)]
struct Entry {
    name_start: u32,
    name_len: u16,
    kind: Kind,
    size: u64,
    mtime: i64,
}

/// The sorted entries of one directory.
pub struct Listing {
    names: Vec<u8>,
    entries: Vec<Entry>,
}

impl Listing {
    /// Reads the directory `dir` (the handle of a [`super::Lookup::Directory`]) whose path
    /// relative to the root is `rel` (`.` for the root itself).
    pub fn read(root: &Root, dir: BorrowedFd<'_>, rel: &[u8]) -> io::Result<Listing> {
        let flags = libc::O_RDONLY | libc::O_DIRECTORY;
        let fd = sys::openat2(dir, c".", flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)?;
        let mut stream = Dir::new(fd)?;
        let mut listing = Listing {
            names: Vec::new(),
            entries: Vec::new(),
        };
        let mut path = Vec::new();
        while let Some(entry) = stream.read() {
            let entry = entry?;
            let name = entry.file_name();
            let bytes = name.to_bytes();
            if bytes == b"." || bytes == b".." || (bytes[0] == b'.' && !root.dotfiles()) {
                continue;
            }
            if let Some((kind, size, mtime)) = describe(root, stream.fd()?, name, rel, &mut path) {
                listing.push(bytes, kind, size, mtime)?;
            }
        }
        listing.sort();
        Ok(listing)
    }

    fn push(&mut self, name: &[u8], kind: Kind, size: u64, mtime: i64) -> io::Result<()> {
        let too_big = || io::Error::other("directory listing too large");
        let name_start = u32::try_from(self.names.len()).map_err(|_| too_big())?;
        let name_len = u16::try_from(name.len()).map_err(|_| too_big())?;
        self.names.extend_from_slice(name);
        self.entries.push(Entry {
            name_start,
            name_len,
            kind,
            size,
            mtime,
        });
        Ok(())
    }

    fn name(&self, e: &Entry) -> &[u8] {
        let start = e.name_start as usize;
        &self.names[start..start + usize::from(e.name_len)]
    }

    fn sort(&mut self) {
        let mut entries = std::mem::take(&mut self.entries);
        entries.sort_unstable_by(|a, b| {
            (a.kind != Kind::Directory)
                .cmp(&(b.kind != Kind::Directory))
                .then_with(|| self.name(a).cmp(self.name(b)))
        });
        self.entries = entries;
    }

    /// Renders the listing of the directory at `rel` (as given to [`Listing::read`]) as
    /// `format` into a new anonymous temporary file (`O_TMPFILE` in the system temporary
    /// directory, gone once closed); returns it with its length.
    pub fn render(&self, format: Format, rel: &[u8]) -> io::Result<(File, u64)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE)
            .open(std::env::temp_dir())?;
        let mut w = BufWriter::with_capacity(WRITE_BUFFER, file);
        self.write(format, rel, &mut w)?;
        let file = w.into_inner().map_err(io::IntoInnerError::into_error)?;
        let len = file.metadata()?.len();
        Ok((file, len))
    }

    /// Writes the listing as `format` to `w`.
    pub fn write(&self, format: Format, rel: &[u8], w: &mut impl Write) -> io::Result<()> {
        match format {
            Format::Html => self.html(rel, w),
            Format::Json => self.json(w),
        }
    }

    fn html(&self, rel: &[u8], w: &mut impl Write) -> io::Result<()> {
        let mut line = Vec::with_capacity(1024);
        let title = |line: &mut Vec<u8>| {
            line.extend_from_slice(b"Index of /");
            if rel != b"." {
                escape_html(line, rel);
                line.push(b'/');
            }
        };
        line.extend_from_slice(b"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>");
        title(&mut line);
        line.extend_from_slice(
            b"</title><style>td{padding:0 1em 0 0}td+td+td{text-align:right}</style></head>\n\
              <body><h1>",
        );
        title(&mut line);
        line.extend_from_slice(
            b"</h1>\n<table>\n<tr><th>Name</th><th>Last modified</th><th>Size</th></tr>\n",
        );
        if rel != b"." {
            line.extend_from_slice(
                b"<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n",
            );
        }
        w.write_all(&line)?;
        for e in &self.entries {
            line.clear();
            let name = self.name(e);
            line.extend_from_slice(b"<tr><td><a href=\"");
            write_href(&mut line, name, e.kind);
            line.extend_from_slice(b"\">");
            escape_html(&mut line, name);
            if e.kind == Kind::Directory {
                line.push(b'/');
            }
            line.extend_from_slice(b"</a></td><td>");
            date::write_http_date(u64::try_from(e.mtime).unwrap_or(0), &mut line);
            line.extend_from_slice(b"</td><td>");
            match e.kind {
                Kind::File => line.extend_from_slice(itoa::Buffer::new().format(e.size).as_bytes()),
                Kind::Directory | Kind::Other => line.push(b'-'),
            }
            line.extend_from_slice(b"</td></tr>\n");
            w.write_all(&line)?;
        }
        w.write_all(b"</table>\n</body></html>\n")
    }

    fn json(&self, w: &mut impl Write) -> io::Result<()> {
        let mut line = Vec::with_capacity(1024);
        w.write_all(b"[")?;
        for (i, e) in self.entries.iter().enumerate() {
            line.clear();
            let name = self.name(e);
            line.extend_from_slice(if i == 0 {
                b"\n{\"name\":"
            } else {
                b",\n{\"name\":"
            });
            serde_json::to_writer(&mut line, &*String::from_utf8_lossy(name))?;
            line.extend_from_slice(b",\"type\":\"");
            line.extend_from_slice(e.kind.name().as_bytes());
            line.extend_from_slice(b"\",\"size\":");
            match e.kind {
                Kind::Directory => line.extend_from_slice(b"null"),
                Kind::File | Kind::Other => {
                    line.extend_from_slice(itoa::Buffer::new().format(e.size).as_bytes())
                }
            }
            line.extend_from_slice(b",\"mtime\":");
            line.extend_from_slice(itoa::Buffer::new().format(e.mtime).as_bytes());
            line.extend_from_slice(b",\"href\":\"");
            write_href(&mut line, name, e.kind);
            line.extend_from_slice(b"\"}");
            w.write_all(&line)?;
        }
        w.write_all(b"\n]\n")
    }
}

/// Kind, size and modification time of the entry `name` of `dir` (whose path relative to
/// the root is `rel`), a symlink described by its target beneath the root; `None` for an
/// entry that vanished, or a link that escapes the root or dangles. `path` is scratch space.
fn describe(
    root: &Root,
    dir: BorrowedFd<'_>,
    name: &CStr,
    rel: &[u8],
    path: &mut Vec<u8>,
) -> Option<(Kind, u64, i64)> {
    let mask = StatxFlags::TYPE | StatxFlags::SIZE | StatxFlags::MTIME;
    let stat = rustix::fs::statx(dir, name, AtFlags::SYMLINK_NOFOLLOW, mask).ok()?;
    let file_type = FileType::from_raw_mode(u32::from(stat.stx_mode));
    if file_type != FileType::Symlink {
        return Some((Kind::of(file_type), stat.stx_size, stat.stx_mtime.tv_sec));
    }
    path.clear();
    if rel != b"." {
        path.extend_from_slice(rel);
        path.push(b'/');
    }
    path.extend_from_slice(name.to_bytes_with_nul());
    let meta = root.metadata_beneath(CStr::from_bytes_with_nul(path).ok()?)?;
    let kind = if meta.is_dir() {
        Kind::Directory
    } else if meta.is_file() {
        Kind::File
    } else {
        Kind::Other
    };
    Some((kind, meta.len(), meta.mtime()))
}

/// Appends the relative link to `name`: percent-encoded, `/`-terminated for a directory.
fn write_href(out: &mut Vec<u8>, name: &[u8], kind: Kind) {
    for part in percent_encoding::percent_encode(name, HREF) {
        out.extend_from_slice(part.as_bytes());
    }
    if kind == Kind::Directory {
        out.push(b'/');
    }
}

/// Appends `text` as HTML text or attribute content: invalid UTF-8 as U+FFFD, and `& < > " '`
/// as character references.
fn escape_html(out: &mut Vec<u8>, text: &[u8]) {
    for chunk in text.utf8_chunks() {
        for &b in chunk.valid().as_bytes() {
            match b {
                b'&' => out.extend_from_slice(b"&amp;"),
                b'<' => out.extend_from_slice(b"&lt;"),
                b'>' => out.extend_from_slice(b"&gt;"),
                b'"' => out.extend_from_slice(b"&quot;"),
                b'\'' => out.extend_from_slice(b"&#39;"),
                _ => out.push(b),
            }
        }
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{FFFD}".as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::Lookup;
    use std::fs;
    use std::os::fd::AsFd;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::symlink;

    /// A temporary tree: `root/` (served) and `outside.txt` beside it.
    fn tree() -> (tempfile::TempDir, std::path::PathBuf) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        fs::create_dir(&root).expect("mkdir");
        fs::write(tmp.path().join("outside.txt"), "outside").expect("write");
        (tmp, root)
    }

    fn list(root_dir: &std::path::Path, target: &str, dotfiles: bool) -> (Listing, Vec<u8>) {
        let root = Root::open(root_dir, dotfiles).expect("root");
        let mut scratch = Vec::new();
        let Lookup::Directory { dir } = root.lookup(target.as_bytes(), &mut scratch) else {
            panic!("{target} is not a listable directory");
        };
        let listing = Listing::read(&root, dir.as_fd(), &scratch).expect("read");
        (listing, scratch)
    }

    fn render(listing: &Listing, format: Format, rel: &[u8]) -> String {
        let mut out = Vec::new();
        listing.write(format, rel, &mut out).expect("write");
        String::from_utf8(out).expect("listings are UTF-8")
    }

    #[test]
    fn sorted_directories_first_dotfiles_hidden() {
        let (_tmp, root) = tree();
        for d in ["b-dir", "a-dir", ".git"] {
            fs::create_dir(root.join(d)).expect("mkdir");
        }
        for f in ["b.txt", "A.txt", "a.txt", ".env"] {
            fs::write(root.join(f), f).expect("write");
        }
        let names = |listing: &Listing| {
            listing
                .entries
                .iter()
                .map(|e| String::from_utf8_lossy(listing.name(e)).into_owned())
                .collect::<Vec<_>>()
        };
        let (listing, rel) = list(&root, "/", false);
        assert_eq!(rel, b".");
        assert_eq!(
            names(&listing),
            ["a-dir", "b-dir", "A.txt", "a.txt", "b.txt"]
        );
        let (listing, _) = list(&root, "/", true);
        assert_eq!(listing.entries.len(), 7);
        assert_eq!(names(&listing)[0], ".git");
    }

    #[test]
    fn symlinks_described_by_target_and_escapes_dropped() {
        let (tmp, root) = tree();
        fs::create_dir_all(root.join("sub/real")).expect("mkdir");
        fs::write(root.join("sub/real/f.txt"), "12345").expect("write");
        symlink("real", root.join("sub/to-dir")).expect("symlink");
        symlink("real/f.txt", root.join("sub/to-file")).expect("symlink");
        symlink("../../outside.txt", root.join("sub/escape")).expect("symlink");
        symlink(tmp.path().join("outside.txt"), root.join("sub/absolute")).expect("symlink");
        symlink("nowhere", root.join("sub/dangling")).expect("symlink");
        let (listing, rel) = list(&root, "/sub/", false);
        assert_eq!(rel, b"sub");
        let json: serde_json::Value =
            serde_json::from_str(&render(&listing, Format::Json, &rel)).expect("json");
        let entries = json.as_array().expect("array");
        let summary: Vec<(&str, &str)> = entries
            .iter()
            .map(|e| (e["name"].as_str().unwrap(), e["type"].as_str().unwrap()))
            .collect();
        assert_eq!(
            summary,
            [
                ("real", "directory"),
                ("to-dir", "directory"),
                ("to-file", "file")
            ]
        );
        assert_eq!(entries[2]["size"], 5);
        assert_eq!(entries[0]["size"], serde_json::Value::Null);
        assert_eq!(entries[1]["href"], "to-dir/");
    }

    #[test]
    fn hostile_names_escaped() {
        let (_tmp, root) = tree();
        let names: [&[u8]; 5] = [
            b"<script>alert(1)",
            b"a\"b'c&d.txt",
            b"100% done",
            b"line\nbreak",
            b"bad\xffutf8",
        ];
        for name in names {
            fs::write(root.join(std::ffi::OsStr::from_bytes(name)), "x").expect("write");
        }
        let (listing, rel) = list(&root, "/", false);
        let html = render(&listing, Format::Html, &rel);
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains(">&lt;script&gt;alert(1)</a>"), "{html}");
        assert!(html.contains("href=\"%3Cscript%3Ealert%281%29\""), "{html}");
        assert!(html.contains(">a&quot;b&#39;c&amp;d.txt<"), "{html}");
        assert!(html.contains("href=\"100%25%20done\""), "{html}");
        assert!(html.contains("href=\"line%0Abreak\""), "{html}");
        assert!(
            html.contains("href=\"bad%FFutf8\">bad\u{FFFD}utf8<"),
            "{html}"
        );
        assert!(!html.contains("../"), "no parent link at the root");
        let json: serde_json::Value =
            serde_json::from_str(&render(&listing, Format::Json, &rel)).expect("json");
        let got: Vec<&str> = json
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            got,
            [
                "100% done",
                "<script>alert(1)",
                "a\"b'c&d.txt",
                "bad\u{FFFD}utf8",
                "line\nbreak"
            ]
        );
    }

    #[test]
    fn empty_and_nested_titles() {
        let (_tmp, root) = tree();
        fs::create_dir_all(root.join("a/<b>")).expect("mkdir");
        let (listing, rel) = list(&root, "/a/%3Cb%3E/", false);
        assert!(listing.entries.is_empty());
        let html = render(&listing, Format::Html, &rel);
        assert!(
            html.contains("<title>Index of /a/&lt;b&gt;/</title>"),
            "{html}"
        );
        assert!(html.contains("<a href=\"../\">../</a>"), "{html}");
        assert_eq!(render(&listing, Format::Json, &rel), "[\n]\n");
    }

    #[test]
    fn rendered_to_an_anonymous_file() {
        let (_tmp, root) = tree();
        fs::write(root.join("f"), "x").expect("write");
        let (listing, rel) = list(&root, "/", false);
        let (file, len) = listing.render(Format::Json, &rel).expect("render");
        assert_eq!(len, render(&listing, Format::Json, &rel).len() as u64);
        assert_eq!(file.metadata().expect("stat").nlink(), 0, "unnamed");
    }
}
