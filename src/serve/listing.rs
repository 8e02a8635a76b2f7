//! Directory listings (nginx `autoindex`), rendered: the entries the file layer read, as an
//! HTML page or a JSON array, written to an anonymous temporary file that is then sent like
//! any file.
//!
//! Key design decision: a listing is rendered through a 64 KiB buffer straight into an
//! `O_TMPFILE` file, so the engine sends it zero-copy with a known `Content-Length`, exactly
//! as it sends a file, without knowing it is a listing.
//!
//! Links percent-encode every byte of a name but `A-Z a-z 0-9 - . _ ~`, so they work for any
//! name; shown text and JSON strings are the names with each invalid UTF-8 sequence replaced
//! by U+FFFD, HTML-escaped or JSON-escaped. JSON entries also carry that `href`, the one
//! exact reference to a name that is not UTF-8.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

use crate::fs::listing::{Kind, Listing};
use crate::http::{date, escape};

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

/// The upload form and its small tus client, added to the HTML listing of an upload
/// directory (`--uploads`): no external asset, works from the listing alone.
const UPLOAD_FORM: &[u8] = include_bytes!("upload.html");

/// Renders `listing`, of the directory at `rel` (as given to [`Listing::read`]), as
/// `format` into a new anonymous temporary file (`O_TMPFILE` in the system temporary
/// directory, gone once closed); returns it with its length. `upload`: the directory takes
/// uploads, so the HTML form offers them.
pub fn render(
    listing: &Listing,
    format: Format,
    rel: &[u8],
    upload: bool,
) -> io::Result<(File, u64)> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(std::env::temp_dir())?;
    let mut w = BufWriter::with_capacity(WRITE_BUFFER, file);
    write(listing, format, rel, upload, &mut w)?;
    let file = w.into_inner().map_err(io::IntoInnerError::into_error)?;
    let len = file.metadata()?.len();
    Ok((file, len))
}

/// Writes the listing as `format` to `w` (with the upload form if `upload`).
pub fn write(
    listing: &Listing,
    format: Format,
    rel: &[u8],
    upload: bool,
    w: &mut impl Write,
) -> io::Result<()> {
    match format {
        Format::Html => html(listing, rel, upload, w),
        Format::Json => json(listing, w),
    }
}

/// The listing as an HTML table with links.
fn html(listing: &Listing, rel: &[u8], upload: bool, w: &mut impl Write) -> io::Result<()> {
    let mut line = Vec::with_capacity(1024);
    let title = |line: &mut Vec<u8>| {
        line.extend_from_slice(b"Index of /");
        if rel != b"." {
            escape::html(line, rel);
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
        line.extend_from_slice(b"<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    w.write_all(&line)?;
    for e in listing.entries() {
        line.clear();
        let name = e.name;
        line.extend_from_slice(b"<tr><td><a href=\"");
        write_href(&mut line, name, e.kind);
        line.extend_from_slice(b"\">");
        escape::html(&mut line, name);
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
    w.write_all(b"</table>\n")?;
    if upload {
        w.write_all(UPLOAD_FORM)?;
    }
    w.write_all(b"</body></html>\n")
}

/// The listing as a JSON array.
fn json(listing: &Listing, w: &mut impl Write) -> io::Result<()> {
    let mut line = Vec::with_capacity(1024);
    w.write_all(b"[")?;
    for (i, e) in listing.entries().enumerate() {
        line.clear();
        let name = e.name;
        line.extend_from_slice(if i == 0 {
            b"\n{\"name\":"
        } else {
            b",\n{\"name\":"
        });
        line.push(b'"');
        escape::json(&mut line, name);
        line.extend_from_slice(b"\",\"type\":\"");
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

/// Appends the relative link to `name`: percent-encoded, `/`-terminated for a directory.
fn write_href(out: &mut Vec<u8>, name: &[u8], kind: Kind) {
    for part in percent_encoding::percent_encode(name, HREF) {
        out.extend_from_slice(part.as_bytes());
    }
    if kind == Kind::Directory {
        out.push(b'/');
    }
}

#[cfg(test)]
mod tests {
    use super::{render as render_file, *};
    use crate::fs::{Lookup, Root};
    use std::fs;
    use std::os::fd::AsFd;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::symlink;
    use std::os::unix::fs::MetadataExt;

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
        render_with(listing, format, rel, false)
    }

    fn render_with(listing: &Listing, format: Format, rel: &[u8], upload: bool) -> String {
        let mut out = Vec::new();
        write(listing, format, rel, upload, &mut out).expect("write");
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
                .entries()
                .map(|e| String::from_utf8_lossy(e.name).into_owned())
                .collect::<Vec<_>>()
        };
        let (listing, rel) = list(&root, "/", false);
        assert_eq!(rel, b".");
        assert_eq!(
            names(&listing),
            ["a-dir", "b-dir", "A.txt", "a.txt", "b.txt"]
        );
        let (listing, _) = list(&root, "/", true);
        assert_eq!(listing.entries().len(), 7);
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
        assert_eq!(listing.entries().len(), 0);
        let html = render(&listing, Format::Html, &rel);
        assert!(
            html.contains("<title>Index of /a/&lt;b&gt;/</title>"),
            "{html}"
        );
        assert!(html.contains("<a href=\"../\">../</a>"), "{html}");
        assert_eq!(render(&listing, Format::Json, &rel), "[\n]\n");
    }

    #[test]
    fn upload_directories_offer_the_form_in_html_only() {
        let (_tmp, root) = tree();
        let (listing, rel) = list(&root, "/", false);
        let html = render_with(&listing, Format::Html, &rel, true);
        assert!(html.contains("id=\"up-files\"") && html.ends_with("</body></html>\n"));
        assert!(!render(&listing, Format::Html, &rel).contains("up-files"));
        let json = render_with(&listing, Format::Json, &rel, true);
        assert!(!json.contains("up-files"));
    }

    #[test]
    fn rendered_to_an_anonymous_file() {
        let (_tmp, root) = tree();
        fs::write(root.join("f"), "x").expect("write");
        let (listing, rel) = list(&root, "/", false);
        let (file, len) = render_file(&listing, Format::Json, &rel, false).expect("render");
        assert_eq!(len, render(&listing, Format::Json, &rel).len() as u64);
        assert_eq!(file.metadata().expect("stat").nlink(), 0, "unnamed");
    }
}
