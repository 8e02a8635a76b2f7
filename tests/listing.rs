//! Directory listings (`--listing`): HTML and JSON, escaping of hostile names, sorting,
//! dotfiles, symlinks, HEAD, and a directory of many entries.

mod common;

use common::*;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

backend_tests!(
    off_by_default_and_index_wins,
    html_escapes_and_links_work,
    json_escapes_and_describes,
    json_negotiated_by_accept,
    sorted_directories_first,
    dotfiles_hidden_unless_served,
    parent_link_except_at_root,
    head_and_keepalive,
    many_entries_all_listed,
);

/// Names no listing may render raw; each is also the file's content.
const HOSTILE: [&[u8]; 8] = [
    b"<script>alert(1)",
    b"quote\"and'apostrophe",
    b"a&b;&amp;",
    b"with space.txt",
    b"100%.txt",
    b"line\nbreak",
    b"not-utf8-\xff\xfe.bin",
    b"caf\xc3\xa9 \xe2\x80\xae.txt",
];

/// A temporary directory holding the served `root/` and `outside.txt` beside it.
struct Tree {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Tree {
    fn new() -> Tree {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        fs::create_dir(&root).expect("mkdir root");
        fs::write(tmp.path().join("outside.txt"), "outside").expect("write");
        Tree { _tmp: tmp, root }
    }

    fn path(&self, rel: &[u8]) -> PathBuf {
        self.root.join(OsStr::from_bytes(rel))
    }

    fn file(&self, rel: &[u8], content: &[u8]) {
        fs::write(self.path(rel), content).expect("write");
    }

    fn dir(&self, rel: &[u8]) {
        fs::create_dir_all(self.path(rel)).expect("mkdir");
    }
}

fn listing_server(backend: Backend, root: &Path, extra: &[&str]) -> Server {
    Server::start(backend, root, &[&["--listing"], extra].concat())
}

/// The `href` attribute values of an HTML listing, in order.
fn hrefs(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').expect("closing quote")].to_string())
        .collect()
}

/// A JSON listing, parsed.
fn json(resp: &Response) -> Vec<serde_json::Value> {
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.header("Content-Type"), Some("application/json"));
    let value: serde_json::Value = serde_json::from_slice(&resp.body)
        .unwrap_or_else(|e| panic!("listing is not JSON ({e}): {resp:?}"));
    value.as_array().expect("a JSON array").clone()
}

/// The `name` of every JSON entry.
fn names(entries: &[serde_json::Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["name"].as_str().expect("name").to_string())
        .collect()
}

fn off_by_default_and_index_wins(backend: Backend) {
    let tree = Tree::new();
    tree.dir(b"plain");
    tree.file(b"plain/a.txt", b"a");
    tree.dir(b"indexed");
    tree.file(b"indexed/index.html", b"<p>index</p>");
    let server = Server::start(backend, &tree.root, &[]);
    assert_eq!(server.fetch(&get("/plain/")).status, 404);
    let server = listing_server(backend, &tree.root, &[]);
    let resp = server.fetch(&get("/indexed/"));
    assert_eq!(resp.body, b"<p>index</p>", "{resp:?}");
    let resp = server.fetch(&get("/plain"));
    assert_eq!(resp.status, 301, "no slash: redirect as before");
    assert_eq!(server.fetch(&get("/plain/")).status, 200);
}

fn html_escapes_and_links_work(backend: Backend) {
    let tree = Tree::new();
    for name in HOSTILE {
        tree.file(name, name);
    }
    let server = listing_server(backend, &tree.root, &[]);
    let mut conn = server.connect();
    let resp = conn.roundtrip(&get("/"));
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(
        resp.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(resp.header("Cache-Control"), Some("no-cache"));
    assert!(resp.has_token("Vary", "Accept"), "{resp:?}");
    assert_eq!(resp.header("ETag"), None, "listings have no validators");
    let html = String::from_utf8(resp.body.clone()).expect("HTML is UTF-8");
    for raw in ["<script>", "quote\"", "'apostrophe", "a&b;&amp;<"] {
        assert!(!html.contains(raw), "unescaped {raw:?} in {html}");
    }
    for escaped in [
        "&lt;script&gt;alert(1)",
        "quote&quot;and&#39;apostrophe",
        "a&amp;b;&amp;amp;",
        "not-utf8-\u{FFFD}\u{FFFD}.bin",
        "café \u{202E}.txt",
    ] {
        assert!(html.contains(escaped), "{escaped:?} missing from {html}");
    }
    // Every link is plain ASCII and leads back to exactly the file it names.
    let links = hrefs(&html);
    assert_eq!(links.len(), HOSTILE.len(), "{links:?}");
    let mut served = Vec::new();
    for link in &links {
        assert!(
            link.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"%-._~".contains(&b)),
            "{link:?}"
        );
        let resp = conn.roundtrip(&get(&format!("/{link}")));
        assert_eq!(resp.status, 200, "{link}: {resp:?}");
        served.push(resp.body);
    }
    let mut expected: Vec<Vec<u8>> = HOSTILE.iter().map(|n| n.to_vec()).collect();
    expected.sort();
    served.sort();
    assert_eq!(served, expected);
}

fn json_escapes_and_describes(backend: Backend) {
    let tree = Tree::new();
    for name in HOSTILE {
        tree.file(name, name);
    }
    tree.dir(b"sub\"dir");
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(MTIME_SECS);
    fs::File::options()
        .write(true)
        .open(tree.path(b"100%.txt"))
        .unwrap()
        .set_modified(when)
        .unwrap();
    let server = listing_server(backend, &tree.root, &[]);
    let entries = json(&server.fetch(&get("/?format=json")));
    let mut want: Vec<String> = HOSTILE
        .iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    want.sort();
    want.insert(0, "sub\"dir".to_string());
    assert_eq!(names(&entries), want);
    let dir = &entries[0];
    assert_eq!(dir["type"], "directory");
    assert_eq!(dir["size"], serde_json::Value::Null);
    assert_eq!(dir["href"], "sub%22dir/");
    let pct = entries.iter().find(|e| e["name"] == "100%.txt").unwrap();
    assert_eq!(pct["type"], "file");
    assert_eq!(pct["size"], 8);
    assert_eq!(pct["mtime"], MTIME_SECS, "unix seconds");
    assert_eq!(pct["href"], "100%25.txt");
    let odd = entries
        .iter()
        .find(|e| e["name"] == "not-utf8-\u{FFFD}\u{FFFD}.bin")
        .unwrap();
    let href = odd["href"].as_str().unwrap();
    assert_eq!(href, "not-utf8-%FF%FE.bin");
    let resp = server.fetch(&get(&format!("/{href}")));
    assert_eq!(resp.body, b"not-utf8-\xff\xfe.bin", "href is exact");
}

fn json_negotiated_by_accept(backend: Backend) {
    let tree = Tree::new();
    tree.file(b"a.txt", b"a");
    let server = listing_server(backend, &tree.root, &[]);
    let cases = [
        ("application/json", "application/json"),
        ("text/html;q=0.5, application/json", "application/json"),
        ("*/*", "text/html; charset=utf-8"),
        (
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "text/html; charset=utf-8",
        ),
        ("application/json;q=0", "text/html; charset=utf-8"),
    ];
    for (accept, want) in cases {
        let resp = server.fetch(&req("GET", "/", &[&format!("Accept: {accept}")]));
        assert_eq!(resp.header("Content-Type"), Some(want), "{accept}");
        assert!(resp.has_token("Vary", "Accept"), "{accept}");
    }
    let resp = server.fetch(&req("GET", "/?format=html", &["Accept: application/json"]));
    assert_eq!(
        resp.header("Content-Type"),
        Some("text/html; charset=utf-8"),
        "the query wins"
    );
    assert_eq!(
        names(&json(&server.fetch(&get("/?format=json")))),
        ["a.txt"]
    );
}

fn sorted_directories_first(backend: Backend) {
    let tree = Tree::new();
    for d in [&b"zeta"[..], b"Alpha", b"beta"] {
        tree.dir(d);
    }
    for f in [&b"b.txt"[..], b"B.txt", b"a.txt", b"_x", b"10", b"9"] {
        tree.file(f, b"x");
    }
    tree.file(b"beta/inner", b"x");
    symlink("beta", tree.path(b"link-to-dir")).unwrap();
    symlink("a.txt", tree.path(b"link-to-file")).unwrap();
    symlink("../outside.txt", tree.path(b"link-outside")).unwrap();
    symlink("missing", tree.path(b"link-dangling")).unwrap();
    let server = listing_server(backend, &tree.root, &[]);
    let entries = json(&server.fetch(&get("/?format=json")));
    assert_eq!(
        names(&entries),
        [
            "Alpha",
            "beta",
            "link-to-dir",
            "zeta",
            "10",
            "9",
            "B.txt",
            "_x",
            "a.txt",
            "b.txt",
            "link-to-file"
        ]
    );
    let html = String::from_utf8(server.fetch(&get("/")).body).unwrap();
    assert_eq!(
        hrefs(&html),
        [
            "Alpha/",
            "beta/",
            "link-to-dir/",
            "zeta/",
            "10",
            "9",
            "B.txt",
            "_x",
            "a.txt",
            "b.txt",
            "link-to-file"
        ]
    );
}

fn dotfiles_hidden_unless_served(backend: Backend) {
    let tree = Tree::new();
    tree.file(b".env", b"secret");
    tree.dir(b".git");
    tree.file(b"visible", b"x");
    for (flags, want) in [
        (&[][..], &["visible"][..]),
        (&["--dotfiles"][..], &[".git", ".env", "visible"][..]),
    ] {
        let server = listing_server(backend, &tree.root, flags);
        let entries = json(&server.fetch(&get("/?format=json")));
        assert_eq!(names(&entries), want, "{flags:?}");
        let html = String::from_utf8(server.fetch(&get("/")).body).unwrap();
        assert_eq!(html.contains(".env"), !flags.is_empty(), "{flags:?}");
    }
    // A hidden directory is not listed either.
    let server = listing_server(backend, &tree.root, &[]);
    assert_eq!(server.fetch(&get("/.git/")).status, 404);
}

fn parent_link_except_at_root(backend: Backend) {
    let tree = Tree::new();
    tree.dir(b"a/b c");
    tree.file(b"a/b c/f.txt", b"f");
    let server = listing_server(backend, &tree.root, &[]);
    let html = String::from_utf8(server.fetch(&get("/a/b%20c/")).body).unwrap();
    assert!(html.contains("<title>Index of /a/b c/</title>"), "{html}");
    assert_eq!(hrefs(&html), ["../", "f.txt"]);
    let html = String::from_utf8(server.fetch(&get("/")).body).unwrap();
    assert_eq!(hrefs(&html), ["a/"]);
}

fn head_and_keepalive(backend: Backend) {
    let tree = Tree::new();
    tree.file(b"one.txt", b"1");
    tree.dir(b"empty");
    let server = listing_server(backend, &tree.root, &[]);
    let mut conn = server.connect();
    // HEAD, GET and a file pipelined: the listing's body must be exactly where the head says.
    conn.send(req("HEAD", "/", &[]) + &get("/") + &get("/one.txt"));
    let head = conn.read_response(true);
    let full = conn.read_response(false);
    let file = conn.read_response(false);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.content_length(), Some(full.body.len() as u64));
    assert!(String::from_utf8_lossy(&full.body).ends_with("</html>\n"));
    assert_eq!(file.body, b"1");
    let empty = json(&conn.roundtrip(&get("/empty/?format=json")));
    assert!(empty.is_empty());
    assert!(!conn.roundtrip(&get("/empty/")).closes());
}

fn many_entries_all_listed(backend: Backend) {
    const COUNT: usize = 20_000;
    let tree = Tree::new();
    tree.dir(b"many");
    for i in 0..COUNT {
        fs::File::create(tree.path(format!("many/file-{i:05}").as_bytes())).unwrap();
    }
    let server = listing_server(backend, &tree.root, &[]);
    let entries = json(&server.fetch(&get("/many/?format=json")));
    assert_eq!(entries.len(), COUNT);
    for (i, name) in names(&entries).iter().enumerate() {
        assert_eq!(*name, format!("file-{i:05}"));
    }
    let resp = server.fetch(&get("/many/"));
    assert_eq!(hrefs(&String::from_utf8_lossy(&resp.body)).len(), COUNT + 1);
}
