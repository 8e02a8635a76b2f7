//! Several origins behind a balancer: validators that agree between nodes holding the same
//! files (`rsync -t` copies), so a download resumed on another node gets its 206; and a file
//! replaced by another of the same size and mtime is still never answered from the old
//! one's prebuilt copy, whatever the ETag says.

mod common;

use std::time::{Duration, SystemTime};

use common::*;

backend_tests!(
    nodes_with_copies_agree_and_resume_across,
    inode_etags_differ_between_nodes,
    etag_off_sends_none,
    same_size_same_mtime_replacement_is_served_new,
    drain_delay_turns_readyz_first,
    replaced_and_deleted_files_are_seen_within_a_second,
    changes_are_seen_within_a_second_however_long_the_cache_period,
    mounts_serve_other_trees_beneath_their_own_directories,
);

/// A node: a root holding `file.bin` (`data`, modified at `mtime`), served with `extra`.
fn node(backend: Backend, data: &[u8], mtime: SystemTime, extra: &[&str]) -> (Corpus, Server) {
    let corpus = Corpus::new();
    let path = corpus.root().join("file.bin");
    std::fs::write(&path, data).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let server = Server::start(backend, corpus.root(), extra);
    (corpus, server)
}

fn mtime() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn nodes_with_copies_agree_and_resume_across(backend: Backend) {
    let data = noise("fleet", 300_000);
    let (_a_files, a) = node(backend, &data, mtime(), &[]);
    let (_b_files, b) = node(backend, &data, mtime(), &[]);
    let first = a.fetch(&req("GET", "/file.bin", &["Range: bytes=0-99999"]));
    assert_eq!(first.status, 206);
    let tag = first.expect_header("ETag").to_string();
    // nginx's form: hex mtime and length, nothing node-specific.
    assert_eq!(tag, format!("\"{:x}-{:x}\"", 1_700_000_000u64, data.len()));
    assert_eq!(
        b.fetch(&req("HEAD", "/file.bin", &[]))
            .expect_header("ETag"),
        tag
    );
    // The rest, from the other node, under If-Range: a 206 with the right bytes.
    let rest = b.fetch(&req(
        "GET",
        "/file.bin",
        &["Range: bytes=100000-", &format!("If-Range: {tag}")],
    ));
    assert_eq!(rest.status, 206, "{rest:?}");
    assert!(rest.body == data[100_000..]);
    // And a cache revalidating against the other node gets its 304.
    let cached = b.fetch(&req(
        "GET",
        "/file.bin",
        &[&format!("If-None-Match: {tag}")],
    ));
    assert_eq!(cached.status, 304);
}

fn inode_etags_differ_between_nodes(backend: Backend) {
    let data = noise("inode", 1000);
    let (_a_files, a) = node(backend, &data, mtime(), &["--etag", "inode"]);
    let (_b_files, b) = node(backend, &data, mtime(), &["--etag", "inode"]);
    let tag_a = a
        .fetch(&req("HEAD", "/file.bin", &[]))
        .expect_header("ETag")
        .to_string();
    let tag_b = b
        .fetch(&req("HEAD", "/file.bin", &[]))
        .expect_header("ETag")
        .to_string();
    assert_eq!(tag_a.matches('-').count(), 2, "{tag_a}");
    assert_ne!(tag_a, tag_b, "two files, two inodes");
    let full = b.fetch(&req(
        "GET",
        "/file.bin",
        &["Range: bytes=500-", &format!("If-Range: {tag_a}")],
    ));
    assert_eq!(full.status, 200, "the other node's tag does not match");
}

fn etag_off_sends_none(backend: Backend) {
    let data = noise("off", 1000);
    let (_files, s) = node(backend, &data, mtime(), &["--etag", "off"]);
    let r = s.fetch(&get("/file.bin"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("ETag"), None, "{r:?}");
    assert!(r.header("Last-Modified").is_some());
    let r = s.fetch(&req("GET", "/file.bin", &["If-None-Match: *"]));
    assert_eq!(r.status, 304, "* still matches a file that exists");
}

fn same_size_same_mtime_replacement_is_served_new(backend: Backend) {
    let old = noise("old", 2000);
    let new = noise("new", 2000);
    // Every request looks the path up again, so the replacement is seen at once.
    let (files, s) = node(backend, &old, mtime(), &["--open-file-cache-valid", "0"]);
    let mut conn = s.connect();
    // Hot enough to be answered from a prebuilt copy.
    for _ in 0..8 {
        assert!(conn.roundtrip(&get("/file.bin")).body == old);
    }
    let tag = conn
        .roundtrip(&req("HEAD", "/file.bin", &[]))
        .expect_header("ETag")
        .to_string();
    let next = files.root().join("file.bin.new");
    std::fs::write(&next, &new).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&next)
        .unwrap()
        .set_modified(mtime())
        .unwrap();
    std::fs::rename(&next, files.root().join("file.bin")).unwrap();
    for _ in 0..4 {
        let r = conn.roundtrip(&get("/file.bin"));
        assert_eq!(
            r.expect_header("ETag"),
            tag,
            "same mtime and size, same nginx tag"
        );
        assert!(r.body == new, "answered with the replaced file's bytes");
    }
}

/// SIGTERM with `--drain-delay`: `/readyz` answers 503 at once while the public port still
/// serves, so a balancer's health check moves traffic away before anything is refused; then
/// the server drains and exits.
fn drain_delay_turns_readyz_first(backend: Backend) {
    let data = noise("drain", 1000);
    let (_files, mut s) = node(
        backend,
        &data,
        mtime(),
        &["--admin", "127.0.0.1:0", "--drain-delay", "3s"],
    );
    let admin: std::net::SocketAddr = s
        .wait_line("ringserve: admin listening on ")
        .trim()
        .parse()
        .unwrap();
    let ready = || Conn::connect(admin).roundtrip(&get("/readyz")).status;
    assert_eq!(ready(), 200);
    s.signal("TERM");
    s.wait_line("ringserve: not ready; draining in 3000 ms");
    assert_eq!(ready(), 503);
    // Still accepting and serving during the delay.
    let r = s.fetch(&get("/file.bin"));
    assert!(r.status == 200 && r.body == data);
    assert!(s.wait_exit(Duration::from_secs(20)).success());
}

/// With the cache on (its default period), a file replaced by rename, a symlink swapped to
/// another release and a deleted file are all seen within about a second.
fn replaced_and_deleted_files_are_seen_within_a_second(backend: Backend) {
    changes_seen(backend, &[]);
}

/// The same with the cache trusting entries for an hour: the directory watches, not the
/// period, make the changes seen (without them this waits for the hour, and fails).
fn changes_are_seen_within_a_second_however_long_the_cache_period(backend: Backend) {
    changes_seen(backend, &["--open-file-cache-valid", "1h"]);
}

fn changes_seen(backend: Backend, extra: &[&str]) {
    let old = noise("v1", 5000);
    let new = noise("v2", 6000);
    let (files, s) = node(backend, &old, mtime(), extra);
    let root = files.root();
    std::fs::create_dir_all(root.join("releases/1")).unwrap();
    std::fs::create_dir_all(root.join("releases/2")).unwrap();
    std::fs::write(root.join("releases/1/app.bin"), &old).unwrap();
    std::fs::write(root.join("releases/2/app.bin"), &new).unwrap();
    std::os::unix::fs::symlink("releases/1", root.join("current")).unwrap();
    let mut conn = s.connect();
    for target in ["/file.bin", "/current/app.bin"] {
        for _ in 0..3 {
            assert!(conn.roundtrip(&get(target)).body == old, "{target}");
        }
    }
    // Publish v2 the usual ways: rename over the file, swap the symlink atomically.
    std::fs::write(root.join("file.bin.tmp"), &new).unwrap();
    std::fs::rename(root.join("file.bin.tmp"), root.join("file.bin")).unwrap();
    std::os::unix::fs::symlink("releases/2", root.join("current.tmp")).unwrap();
    std::fs::rename(root.join("current.tmp"), root.join("current")).unwrap();
    let changed = std::time::Instant::now();
    // Asks for `target` until `want` has held for ten requests in a row (they land on both
    // workers, each with its own cache); meanwhile only earlier versions may come.
    let until = |target: &str, want: &dyn Fn(&Response) -> bool| {
        let mut row = 0;
        loop {
            let r = s.fetch(&get(target));
            if want(&r) {
                row += 1;
                if row == 10 {
                    return changed.elapsed();
                }
                continue;
            }
            row = 0;
            assert!(r.body == old || r.body == new, "{target}: no version");
            assert!(
                changed.elapsed() < Duration::from_secs(5),
                "{target} still old"
            );
        }
    };
    let seen = until("/file.bin", &|r| r.body == new);
    let swapped = until("/current/app.bin", &|r| r.body == new);
    std::fs::remove_file(root.join("releases/2/app.bin")).unwrap();
    let deleted = changed.elapsed();
    let gone = until("/current/app.bin", &|r| r.status == 404) - deleted;
    // Within about a second (the watches are read every 0.1 s), loosely, for a busy machine.
    for (what, took) in [("replaced", seen), ("swapped", swapped), ("deleted", gone)] {
        eprintln!("{what}: seen after {took:?}");
        assert!(took < Duration::from_secs(3), "{what} seen after {took:?}");
    }
}

/// `--mount /download=DIR` (nginx `alias`): a second tree under a prefix, byte-exact with
/// ranges and validators, the longest prefix winning, a directory form redirected and
/// listed, and nothing outside DIR reachable through it (dot-segments, encoded or not, and
/// symlinks out of it).
fn mounts_serve_other_trees_beneath_their_own_directories(backend: Backend) {
    let corpus = Corpus::new();
    let outside = corpus.outside();
    let (files, deep) = (outside.join("files"), outside.join("deep"));
    std::fs::create_dir_all(files.join("sub")).unwrap();
    std::fs::create_dir_all(&deep).unwrap();
    let data = noise("mounted", 300_000);
    std::fs::write(files.join("big.bin"), &data).unwrap();
    std::fs::write(files.join("sub/x.txt"), "files").unwrap();
    std::fs::write(deep.join("x.txt"), "deep").unwrap();
    std::fs::write(outside.join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), files.join("escape.txt")).unwrap();
    let mounts = [
        format!("/download={}", files.display()),
        format!("/download/sub={}", deep.display()),
    ];
    let args = ["--mount", &mounts[0], "--mount", &mounts[1], "--listing"];
    let server = Server::start(backend, corpus.root(), &args);
    let r = server.fetch(&get("/download/big.bin"));
    assert!(r.status == 200 && r.body == data, "{}", r.status);
    let etag = r.expect_header("ETag").to_string();
    let r = server.fetch(&req(
        "GET",
        "/download/big.bin",
        &["Range: bytes=1000-1999", &format!("If-Range: {etag}")],
    ));
    assert_eq!(r.status, 206, "{r:?}");
    assert!(r.body == data[1000..2000]);
    assert_eq!(server.fetch(&get("/download/sub/x.txt")).body, b"deep");
    assert_eq!(server.fetch(&get("/download/%73ub/x.txt")).body, b"deep");
    let r = server.fetch(&get("/download"));
    assert_eq!(r.status, 301, "{r:?}");
    let r = server.fetch(&get("/download/"));
    assert!(r.status == 200 && String::from_utf8_lossy(&r.body).contains("big.bin"));
    for escape in [
        "/download/escape.txt",
        "/download/../secret.txt",
        "/download/%2e%2e/secret.txt",
        "/download/sub/%2E%2E/%2E%2E/secret.txt",
    ] {
        let r = server.fetch(&get(escape));
        assert!(matches!(r.status, 400 | 404), "{escape}: {r:?}");
        assert!(
            !String::from_utf8_lossy(&r.body).contains("secret"),
            "{escape}"
        );
    }
    // The root's own files are still its own.
    assert_eq!(
        server.fetch(&get(&format!("/{PAGE}"))).body,
        corpus.read(PAGE)
    );
}
