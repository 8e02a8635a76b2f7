//! Precompressed sidecars (`--precompressed`): negotiation end to end, freshness, `Vary`,
//! ranges and conditionals over the encoded bytes, and ETags of their own.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

backend_tests!(
    negotiation_table,
    stale_and_odd_sidecars_ignored,
    directory_index_sidecar,
    vary_only_where_precompression_applies,
    ranges_over_encoded_bytes,
    etags_distinct_and_304,
    head_has_encoded_length,
);

/// `len` bytes that differ per `seed`, so a body from the wrong file shows.
fn bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A temporary directory whose `root/` holds `app.js` and its `.br` and `.gz` sidecars (no
/// `.zst`), each of distinct content and length, plus `plain.txt` with no sidecar.
struct Site {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

const JS: &str = "app.js";

impl Site {
    fn new() -> Site {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        fs::create_dir(&root).expect("mkdir root");
        let site = Site { _tmp: tmp, root };
        site.write(JS, &bytes(1, 70_000), 0);
        site.write("app.js.br", &bytes(2, 20_000), 10);
        site.write("app.js.gz", &bytes(3, 30_000), 10);
        site.write("plain.txt", b"plain\n", 0);
        site
    }

    /// Writes `rel` with `content` and a modification time `age_offset` seconds after
    /// [`MTIME_SECS`] (negative: before).
    fn write(&self, rel: &str, content: &[u8], age_offset: i64) {
        let path = self.path(rel);
        fs::write(&path, content).expect("write");
        let secs = MTIME_SECS.checked_add_signed(age_offset).unwrap();
        let when: SystemTime = UNIX_EPOCH + Duration::from_secs(secs);
        let file = fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(when).unwrap();
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn read(&self, rel: &str) -> Vec<u8> {
        fs::read(self.path(rel)).expect("read")
    }
}

fn server(backend: Backend, root: &Path) -> Server {
    Server::start(backend, root, &["--precompressed", "br,zstd,gzip"])
}

/// GET `target` with `Accept-Encoding: ae` (none when `None`) and the other `headers`.
fn fetch(conn: &mut Conn, target: &str, ae: Option<&str>, headers: &[&str]) -> Response {
    let mut all: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    if let Some(ae) = ae {
        all.push(format!("Accept-Encoding: {ae}"));
    }
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    conn.roundtrip(&req("GET", target, &all))
}

/// Asserts `resp` is the whole of `file`, sent with `Content-Encoding: encoding` (none
/// when `None`), the JavaScript type and `Vary: Accept-Encoding`.
fn assert_variant(resp: &Response, site: &Site, file: &str, encoding: Option<&str>, why: &str) {
    assert_eq!(resp.status, 200, "{why}: {resp:?}");
    assert!(resp.body == site.read(file), "{why}: body is not {file}");
    assert_eq!(resp.header("Content-Encoding"), encoding, "{why}");
    assert_eq!(
        resp.header("Content-Type"),
        Some("text/javascript; charset=utf-8"),
        "{why}: the original's type"
    );
    assert!(resp.has_token("Vary", "Accept-Encoding"), "{why}: {resp:?}");
}

fn negotiation_table(backend: Backend) {
    let site = Site::new();
    let server = server(backend, &site.root);
    let mut conn = server.connect();
    let cases: [(Option<&str>, &str, Option<&str>); 16] = [
        (None, JS, None),
        (Some(""), JS, None),
        (Some("gzip"), "app.js.gz", Some("gzip")),
        (Some("GZIP"), "app.js.gz", Some("gzip")),
        (Some("x-gzip"), "app.js.gz", Some("gzip")),
        (Some("gzip, br"), "app.js.br", Some("br")),
        (Some("gzip, deflate, br, zstd"), "app.js.br", Some("br")),
        (Some("br;q=0, gzip"), "app.js.gz", Some("gzip")),
        (Some("br;q=0.5, gzip"), "app.js.gz", Some("gzip")),
        (Some("gzip;q=0"), JS, None),
        (Some("zstd"), JS, None),
        (Some("identity"), JS, None),
        (Some("gzip;q=0.5, identity"), JS, None),
        (Some("*"), "app.js.br", Some("br")),
        (Some("*;q=0"), JS, None),
        (Some("identity;q=0"), JS, None),
    ];
    for (ae, file, encoding) in cases {
        let resp = fetch(&mut conn, &format!("/{JS}"), ae, &[]);
        assert_variant(&resp, &site, file, encoding, &format!("{ae:?}"));
    }
    // The sidecars themselves are ordinary files.
    let resp = fetch(&mut conn, "/app.js.gz", Some("gzip"), &[]);
    assert_eq!(resp.body, site.read("app.js.gz"));
    assert_eq!(resp.header("Content-Type"), Some("application/gzip"));
    assert_eq!(resp.header("Content-Encoding"), None);
}

fn stale_and_odd_sidecars_ignored(backend: Backend) {
    let site = Site::new();
    site.write("old.js", b"current", 0);
    site.write("old.js.gz", b"stale sidecar", -10);
    site.write("same.js", b"current", 0);
    site.write("same.js.gz", b"same second", 0);
    site.write("dir.js", b"file", 0);
    fs::create_dir(site.path("dir.js.gz")).unwrap();
    site.write("outside.js", b"file", 0);
    site.write("../elsewhere.gz", b"outside the root", 10);
    std::os::unix::fs::symlink("../elsewhere.gz", site.path("outside.js.gz")).unwrap();
    let server = server(backend, &site.root);
    let mut conn = server.connect();
    for (target, body) in [
        ("/old.js", &b"current"[..]),
        ("/same.js", b"same second"),
        ("/dir.js", b"file"),
        ("/outside.js", b"file"),
    ] {
        let resp = fetch(&mut conn, target, Some("gzip"), &[]);
        assert_eq!(resp.body, body, "{target}: {resp:?}");
        let encoded = body != b"current" && body != b"file";
        assert_eq!(
            resp.header("Content-Encoding").is_some(),
            encoded,
            "{target}"
        );
    }
}

fn directory_index_sidecar(backend: Backend) {
    let site = Site::new();
    site.write("index.html", b"<p>index</p>", 0);
    site.write("index.html.gz", &bytes(9, 100), 5);
    fs::create_dir(site.path("d")).unwrap();
    site.write("d/index.html", b"<p>d</p>", 0);
    site.write("d/index.html.br", &bytes(8, 50), 5);
    let server = server(backend, &site.root);
    let mut conn = server.connect();
    for (target, ae, file, encoding) in [
        ("/", "gzip", "index.html.gz", "gzip"),
        ("/d/", "br, gzip", "d/index.html.br", "br"),
    ] {
        let resp = fetch(&mut conn, target, Some(ae), &[]);
        assert_eq!(resp.body, site.read(file), "{target}");
        assert_eq!(resp.header("Content-Encoding"), Some(encoding));
        assert_eq!(
            resp.header("Content-Type"),
            Some("text/html; charset=utf-8")
        );
    }
    let resp = fetch(&mut conn, "/d/", Some("gzip"), &[]);
    assert_eq!(resp.body, b"<p>d</p>");
}

fn vary_only_where_precompression_applies(backend: Backend) {
    let site = Site::new();
    let server = server(backend, &site.root);
    let mut conn = server.connect();
    let resp = fetch(&mut conn, "/plain.txt", Some("gzip"), &[]);
    assert_eq!(resp.body, b"plain\n");
    assert!(resp.has_token("Vary", "Accept-Encoding"), "{resp:?}");
    let resp = fetch(&mut conn, "/app.js.br", Some("gzip"), &[]);
    assert_eq!(resp.header("Vary"), None, "an encoded name has no variants");
    assert_eq!(
        fetch(&mut conn, "/missing.js", Some("gzip"), &[]).status,
        404
    );
    let off = Server::start(backend, &site.root, &[]);
    let resp = off.fetch(&req("GET", "/app.js", &["Accept-Encoding: gzip"]));
    assert_eq!(resp.body, site.read(JS));
    assert_eq!(resp.header("Vary"), None);
    assert_eq!(resp.header("Content-Encoding"), None);
}

fn ranges_over_encoded_bytes(backend: Backend) {
    let site = Site::new();
    let gz = site.read("app.js.gz");
    let server = server(backend, &site.root);
    let mut conn = server.connect();
    let resp = fetch(
        &mut conn,
        "/app.js",
        Some("gzip"),
        &["Range: bytes=100-199"],
    );
    assert_eq!(resp.status, 206, "{resp:?}");
    assert_eq!(resp.body, &gz[100..200]);
    assert_eq!(
        resp.header("Content-Range"),
        Some(format!("bytes 100-199/{}", gz.len()).as_str())
    );
    assert_eq!(resp.header("Content-Encoding"), Some("gzip"));
    assert!(resp.has_token("Vary", "Accept-Encoding"));
    let resp = fetch(&mut conn, "/app.js", Some("gzip"), &["Range: bytes=-10"]);
    assert_eq!(resp.body, &gz[gz.len() - 10..]);
    // Past the end of the encoded bytes but within the original: unsatisfiable.
    let at = format!("Range: bytes={}-", gz.len() + 5);
    let resp = fetch(&mut conn, "/app.js", Some("gzip"), &[&at]);
    assert_eq!(resp.status, 416, "{resp:?}");
    let resp = fetch(&mut conn, "/app.js", None, &[&at]);
    assert_eq!(resp.status, 206, "the original is longer: {resp:?}");
    // If-Range with the identity ETag does not match the encoded variant.
    let identity = fetch(&mut conn, "/app.js", None, &[]);
    let tag = identity.expect_header("ETag").to_string();
    let if_range = format!("If-Range: {tag}");
    let resp = fetch(
        &mut conn,
        "/app.js",
        Some("gzip"),
        &["Range: bytes=0-9", &if_range],
    );
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.body, gz);
}

fn etags_distinct_and_304(backend: Backend) {
    let site = Site::new();
    let server = server(backend, &site.root);
    let mut conn = server.connect();
    let etag = |conn: &mut Conn, ae: Option<&str>| {
        fetch(conn, "/app.js", ae, &[])
            .expect_header("ETag")
            .to_string()
    };
    let (plain, gzip, br) = (
        etag(&mut conn, None),
        etag(&mut conn, Some("gzip")),
        etag(&mut conn, Some("br")),
    );
    assert!(
        plain != gzip && gzip != br && plain != br,
        "{plain} {gzip} {br}"
    );
    assert_eq!(etag(&mut conn, Some("gzip")), gzip, "stable");
    let inm = format!("If-None-Match: {gzip}");
    let resp = fetch(&mut conn, "/app.js", Some("gzip"), &[&inm]);
    assert_eq!(resp.status, 304, "{resp:?}");
    assert_eq!(resp.header("ETag"), Some(gzip.as_str()));
    assert!(resp.has_token("Vary", "Accept-Encoding"), "{resp:?}");
    assert_eq!(resp.header("Content-Encoding"), None);
    let resp = fetch(&mut conn, "/app.js", None, &[&inm]);
    assert_eq!(resp.status, 200, "other variant: {resp:?}");
    assert_eq!(resp.body, site.read(JS));
    let inm = format!("If-None-Match: {plain}");
    let resp = fetch(&mut conn, "/app.js", Some("br"), &[&inm]);
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.body, site.read("app.js.br"));
    let im = format!("If-Match: {br}");
    assert_eq!(
        fetch(&mut conn, "/app.js", Some("gzip"), &[&im]).status,
        412
    );
}

fn head_has_encoded_length(backend: Backend) {
    let site = Site::new();
    let server = server(backend, &site.root);
    let mut conn = server.connect();
    let resp = conn.roundtrip(&req("HEAD", "/app.js", &["Accept-Encoding: br"]));
    assert_eq!(resp.status, 200);
    assert!(resp.body.is_empty());
    assert_eq!(resp.content_length(), Some(20_000));
    assert_eq!(resp.header("Content-Encoding"), Some("br"));
    let resp = fetch(&mut conn, "/app.js", Some("br"), &[]);
    assert_eq!(
        resp.body,
        site.read("app.js.br"),
        "connection still in step"
    );
}
