//! Uploads end to end over real TCP: tus 1.0 and `PUT` with `Content-Range`, resumed after
//! a client or the server dies, checked byte-exact against what is published and served.

mod common;

use base64::Engine;
use common::*;
use sha2::Digest;

backend_tests!(
    tus_upload_in_pieces_is_published_and_served,
    tus_creation_with_upload_and_deferred_length,
    tus_checksum_mismatch_keeps_the_offset,
    tus_protocol_errors,
    tus_delete_and_unknown_ids,
    tus_second_writer_is_locked_out,
    auth_is_required_and_reveals_nothing,
    put_in_chunks_resumes_and_publishes,
    put_whole_file_chunked_with_100_continue,
    a_large_chunked_upload_is_written_in_batches,
    put_digest_mismatch_is_not_published,
    names_are_sanitised_and_state_is_hidden,
    uploads_resume_after_kill_9,
    tuspy_uploads_and_resumes,
    no_space_is_507_and_the_upload_resumes,
    tokens_are_reloaded_on_sighup,
    ietf_draft_upload_resumes_from_the_104_location,
    browser_upload_resumes_after_the_server_is_killed,
    upload_metrics,
    signed_links_authorise_uploads,
    expired_uploads_are_gone,
    broken_chunked_upload_is_400_and_keeps_what_was_stored,
);

const TOKEN: &str = "t0ken-for-tests";

/// A served root with uploads under `/incoming/` and a token file beside it.
struct Setup {
    corpus: Corpus,
    server: Server,
}

impl Setup {
    fn new(backend: Backend, extra: &[&str]) -> Setup {
        let corpus = Corpus::new();
        let server = start(backend, &corpus, extra);
        Setup { corpus, server }
    }

    fn published(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.corpus.root().join("incoming").join(name)).unwrap_or_default()
    }
}

fn start(backend: Backend, corpus: &Corpus, extra: &[&str]) -> Server {
    let tokens = corpus.outside().join("tokens");
    std::fs::write(&tokens, format!("# uploaders\n{TOKEN}\n")).unwrap();
    let tokens = tokens.display().to_string();
    let mut args = vec!["--uploads", "/incoming/", "--upload-token-file", &tokens];
    args.extend_from_slice(extra);
    Server::start(backend, corpus.root(), &args)
}

fn auth() -> String {
    format!("Authorization: Bearer {TOKEN}")
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// `POST /incoming/` creating a tus upload of `len` bytes named `name`; its URL.
fn tus_create(conn: &mut Conn, len: u64, name: &str) -> String {
    let r = conn.roundtrip(&req(
        "POST",
        "/incoming/",
        &[
            &auth(),
            "Tus-Resumable: 1.0.0",
            &format!("Upload-Length: {len}"),
            &format!(
                "Upload-Metadata: filename {},filetype {}",
                b64(name),
                b64("x/y")
            ),
            "Content-Length: 0",
        ],
    ));
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.expect_header("Tus-Resumable"), "1.0.0");
    assert!(r.header("Upload-Expires").is_some(), "{r:?}");
    let location = r.expect_header("Location").to_string();
    assert!(location.starts_with("/incoming/.tus/"), "{location}");
    location
}

/// A tus `PATCH` of `data` at `offset` to `url`, with extra header lines.
fn tus_patch(conn: &mut Conn, url: &str, offset: u64, data: &[u8], extra: &[&str]) -> Response {
    let mut headers = vec![
        auth(),
        "Tus-Resumable: 1.0.0".into(),
        "Content-Type: application/offset+octet-stream".into(),
        format!("Upload-Offset: {offset}"),
        format!("Content-Length: {}", data.len()),
    ];
    headers.extend(extra.iter().map(|s| s.to_string()));
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    conn.send(req("PATCH", url, &headers));
    conn.send(data);
    conn.read_response(false)
}

fn tus_offset(conn: &mut Conn, url: &str) -> Response {
    conn.roundtrip(&req("HEAD", url, &[&auth(), "Tus-Resumable: 1.0.0"]))
}

fn tus_upload_in_pieces_is_published_and_served(backend: Backend) {
    let s = Setup::new(backend, &["--upload-max-size", "1m"]);
    let mut conn = s.server.connect();
    let r = conn.roundtrip(&req("OPTIONS", "/incoming/", &[]));
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.expect_header("Tus-Version"), "1.0.0");
    assert_eq!(r.expect_header("Tus-Max-Size"), "1048576");
    for ext in [
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "checksum",
        "termination",
        "expiration",
    ] {
        assert!(r.has_token("Tus-Extension", ext), "{ext}: {r:?}");
    }
    assert!(r.has_token("Tus-Checksum-Algorithm", "sha1"));

    let data = noise("tus", 300_000);
    let url = tus_create(&mut conn, data.len() as u64, "image.bin");
    let head = tus_offset(&mut conn, &url);
    assert_eq!(
        (head.status, head.expect_header("Upload-Offset")),
        (200, "0")
    );
    assert_eq!(head.expect_header("Upload-Length"), "300000");
    assert_eq!(head.expect_header("Cache-Control"), "no-store");
    assert!(head
        .expect_header("Upload-Metadata")
        .contains(&b64("image.bin")));
    let mut offset = 0;
    for piece in data.chunks(128 * 1024) {
        let r = tus_patch(&mut conn, &url, offset, piece, &[]);
        offset += piece.len() as u64;
        assert_eq!(r.status, 204, "{r:?}");
        assert_eq!(r.expect_header("Upload-Offset"), offset.to_string());
    }
    assert_eq!(s.published("image.bin"), data);
    let got = conn.roundtrip(&get("/incoming/image.bin"));
    assert!(got.status == 200 && got.body == data, "{got:?}");
    // The upload's URL still tells a client that resumes that it is complete.
    let head = tus_offset(&mut conn, &url);
    assert_eq!(head.expect_header("Upload-Offset"), "300000");
    // Too large for --upload-max-size.
    let r = conn.roundtrip(&req(
        "POST",
        "/incoming/",
        &[
            &auth(),
            "Tus-Resumable: 1.0.0",
            "Upload-Length: 1048577",
            "Content-Length: 0",
        ],
    ));
    assert_eq!(r.status, 413, "{r:?}");
}

fn tus_creation_with_upload_and_deferred_length(backend: Backend) {
    let s = Setup::new(backend, &[]);
    let mut conn = s.server.connect();
    let data = noise("deferred", 5000);
    conn.send(req(
        "POST",
        "/incoming/",
        &[
            &auth(),
            "Tus-Resumable: 1.0.0",
            "Upload-Defer-Length: 1",
            &format!("Upload-Metadata: filename {}", b64("later.bin")),
            "Content-Type: application/offset+octet-stream",
            "Content-Length: 3000",
        ],
    ));
    conn.send(&data[..3000]);
    let r = conn.read_response(false);
    assert_eq!(
        (r.status, r.expect_header("Upload-Offset")),
        (201, "3000"),
        "{r:?}"
    );
    let url = r.expect_header("Location").to_string();
    let head = tus_offset(&mut conn, &url);
    assert_eq!(head.expect_header("Upload-Defer-Length"), "1");
    let r = tus_patch(
        &mut conn,
        &url,
        3000,
        &data[3000..],
        &["Upload-Length: 5000"],
    );
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(s.published("later.bin"), data);
}

fn tus_checksum_mismatch_keeps_the_offset(backend: Backend) {
    let s = Setup::new(backend, &[]);
    let mut conn = s.server.connect();
    let data = noise("sum", 4000);
    let url = tus_create(&mut conn, 4000, "summed.bin");
    let sha1 = |d: &[u8]| {
        let digest = sha1::Sha1::digest(d);
        base64::engine::general_purpose::STANDARD.encode(digest)
    };
    let wrong = format!("Upload-Checksum: sha1 {}", sha1(b"something else"));
    let r = tus_patch(&mut conn, &url, 0, &data[..2000], &[&wrong]);
    assert_eq!(r.status, 460, "{r:?}");
    assert_eq!(
        tus_offset(&mut conn, &url).expect_header("Upload-Offset"),
        "0"
    );
    let right = format!("Upload-Checksum: sha1 {}", sha1(&data[..2000]));
    let r = tus_patch(&mut conn, &url, 0, &data[..2000], &[&right]);
    assert_eq!(
        (r.status, r.expect_header("Upload-Offset")),
        (204, "2000"),
        "{r:?}"
    );
    let sha256 =
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&data[2000..]));
    let r = tus_patch(
        &mut conn,
        &url,
        2000,
        &data[2000..],
        &[&format!("Upload-Checksum: sha256 {sha256}")],
    );
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(s.published("summed.bin"), data);
    let r = tus_patch(
        &mut conn,
        &url,
        0,
        b"x",
        &["Upload-Checksum: crc32 AAAAAA=="],
    );
    assert!(r.status == 400 || r.status == 409, "{r:?}");
}

fn tus_protocol_errors(backend: Backend) {
    let s = Setup::new(backend, &[]);
    let mut conn = s.server.connect();
    let url = tus_create(&mut conn, 10, "errors.bin");
    // Without Tus-Resumable.
    let r = conn.roundtrip(&req("HEAD", &url, &[&auth()]));
    assert_eq!(
        (r.status, r.expect_header("Tus-Version")),
        (412, "1.0.0"),
        "{r:?}"
    );
    // Wrong offset: 409 with the real one.
    let r = tus_patch(&mut conn, &url, 5, b"abc", &[]);
    assert_eq!(
        (r.status, r.expect_header("Upload-Offset")),
        (409, "0"),
        "{r:?}"
    );
    // Wrong media type.
    let mut conn = s.server.connect();
    conn.send(req(
        "PATCH",
        &url,
        &[
            &auth(),
            "Tus-Resumable: 1.0.0",
            "Content-Type: text/plain",
            "Upload-Offset: 0",
            "Content-Length: 3",
        ],
    ));
    conn.send("abc");
    assert_eq!(conn.read_response(false).status, 415);
    // More than the upload's length.
    let mut conn = s.server.connect();
    let r = tus_patch(&mut conn, &url, 0, &[b'x'; 11], &[]);
    assert_eq!(r.status, 413, "{r:?}");
    // Neither length nor deferral; bad metadata.
    for bad in [
        vec!["Content-Length: 0"],
        vec![
            "Upload-Length: 1",
            "Upload-Metadata: filename !!",
            "Content-Length: 0",
        ],
    ] {
        let mut headers = vec![auth(), "Tus-Resumable: 1.0.0".to_string()];
        headers.extend(bad.iter().map(|s| s.to_string()));
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let r = s.server.fetch(&req("POST", "/incoming/", &headers));
        assert_eq!(r.status, 400, "{bad:?}: {r:?}");
    }
    // Nothing of it was published.
    assert!(s.published("errors.bin").is_empty());
    // No metadata at all is fine: the upload is published under its id.
    let r = s.server.fetch(&req(
        "POST",
        "/incoming/",
        &[
            &auth(),
            "Tus-Resumable: 1.0.0",
            "Upload-Length: 0",
            "Content-Length: 0",
        ],
    ));
    assert_eq!(r.status, 201, "{r:?}");
    let id = r
        .expect_header("Location")
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        std::fs::metadata(s.corpus.root().join("incoming").join(id))
            .unwrap()
            .len(),
        0
    );
}

fn tus_delete_and_unknown_ids(backend: Backend) {
    let s = Setup::new(backend, &[]);
    let mut conn = s.server.connect();
    let url = tus_create(&mut conn, 10, "deleted.bin");
    assert_eq!(tus_patch(&mut conn, &url, 0, b"12345", &[]).status, 204);
    let r = conn.roundtrip(&req("DELETE", &url, &[&auth(), "Tus-Resumable: 1.0.0"]));
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(tus_offset(&mut conn, &url).status, 404);
    let unknown = "/incoming/.tus/0123456789abcdef0123456789abcdef";
    assert_eq!(tus_offset(&mut conn, unknown).status, 404);
    assert_eq!(tus_patch(&mut conn, unknown, 0, b"x", &[]).status, 404);
    // Not an id: not an upload URL at all.
    let r = conn.roundtrip(&req(
        "HEAD",
        "/incoming/.tus/../../etc/passwd",
        &[&auth(), "Tus-Resumable: 1.0.0"],
    ));
    assert_ne!(r.status, 200, "{r:?}");
}

fn tus_second_writer_is_locked_out(backend: Backend) {
    let s = Setup::new(backend, &[]);
    let mut first = s.server.connect();
    let url = tus_create(&mut first, 10, "locked.bin");
    // The first PATCH sends half its body and holds the upload.
    first.send(req(
        "PATCH",
        &url,
        &[
            &auth(),
            "Tus-Resumable: 1.0.0",
            "Content-Type: application/offset+octet-stream",
            "Upload-Offset: 0",
            "Content-Length: 10",
        ],
    ));
    first.send("12345");
    // Once the first five bytes are stored, a second writer is refused.
    let mut second = s.server.connect();
    loop {
        let head = tus_offset(&mut second, &url);
        if head.expect_header("Upload-Offset") == "5" {
            break;
        }
    }
    let r = tus_patch(&mut second, &url, 5, b"67890", &[]);
    assert_eq!(r.status, 423, "{r:?}");
    first.send("67890");
    assert_eq!(first.read_response(false).status, 204);
    assert_eq!(s.published("locked.bin"), b"1234567890");
}

fn auth_is_required_and_reveals_nothing(backend: Backend) {
    let s = Setup::new(backend, &[]);
    let mut conn = s.server.connect();
    let url = tus_create(&mut conn, 10, "secret.bin");
    let unknown = "/incoming/.tus/0123456789abcdef0123456789abcdef";
    for target in [url.as_str(), unknown] {
        let r = s
            .server
            .fetch(&req("HEAD", target, &["Tus-Resumable: 1.0.0"]));
        assert_eq!(r.status, 401, "{target}: {r:?}");
        assert!(r.expect_header("WWW-Authenticate").starts_with("Bearer"));
        let r = s.server.fetch(&req(
            "HEAD",
            target,
            &["Tus-Resumable: 1.0.0", "Authorization: Bearer nope"],
        ));
        assert_eq!(r.status, 403, "{target}: {r:?}");
    }
    let r = s
        .server
        .fetch(&req("PUT", "/incoming/x.bin", &["Content-Length: 0"]));
    assert_eq!(r.status, 401, "{r:?}");
    // Without any authorisation configured the server does not start.
    let corpus = Corpus::new();
    let (status, lines) = Server::run_to_exit(
        backend,
        corpus.root(),
        &["--uploads", "/incoming/"],
        std::time::Duration::from_secs(10),
    );
    assert!(!status.success());
    assert!(
        lines.iter().any(|l| l.contains("--upload-token-file")),
        "{lines:?}"
    );
}

/// `PUT` of `data` as bytes `first..` of a `total`-byte file.
fn put_chunk(conn: &mut Conn, name: &str, first: u64, data: &[u8], total: u64) -> Response {
    let last = first + data.len() as u64 - 1;
    conn.send(req(
        "PUT",
        &format!("/incoming/{name}"),
        &[
            &auth(),
            &format!("Content-Range: bytes {first}-{last}/{total}"),
            &format!("Content-Length: {}", data.len()),
        ],
    ));
    conn.send(data);
    conn.read_response(false)
}

fn put_in_chunks_resumes_and_publishes(backend: Backend) {
    let s = Setup::new(backend, &[]);
    let data = noise("put", 250_000);
    let total = data.len() as u64;
    let mut conn = s.server.connect();
    let r = put_chunk(&mut conn, "put.bin", 0, &data[..100_000], total);
    assert_eq!(r.status, 308, "{r:?}");
    assert_eq!(r.expect_header("Range"), "bytes=0-99999");
    // A client that lost track asks, as with Google's resumable uploads.
    let r = conn.roundtrip(&req("HEAD", "/incoming/put.bin", &[&auth()]));
    assert_eq!(
        (r.status, r.expect_header("Upload-Offset")),
        (308, "100000"),
        "{r:?}"
    );
    // Without credentials it is just a file that does not exist yet.
    assert_eq!(
        s.server
            .fetch(&req("HEAD", "/incoming/put.bin", &[]))
            .status,
        404
    );
    // A chunk out of order is refused with the real offset.
    let r = put_chunk(&mut conn, "put.bin", 200_000, &data[200_000..], total);
    assert_eq!(
        (r.status, r.expect_header("Upload-Offset")),
        (409, "100000"),
        "{r:?}"
    );
    let r = put_chunk(
        &mut conn,
        "put.bin",
        100_000,
        &data[100_000..200_000],
        total,
    );
    assert_eq!(r.status, 308, "{r:?}");
    let sha = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&data));
    conn.send(req(
        "PUT",
        "/incoming/put.bin",
        &[
            &auth(),
            &format!("Content-Range: bytes 200000-249999/{total}"),
            &format!("Repr-Digest: sha-256=:{sha}:"),
            "Content-Length: 50000",
        ],
    ));
    conn.send(&data[200_000..]);
    let r = conn.read_response(false);
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.expect_header("Location"), "/incoming/put.bin");
    assert_eq!(s.published("put.bin"), data);
    let got = conn.roundtrip(&get("/incoming/put.bin"));
    assert_eq!(got.body, data);
    // The name is taken now.
    let r = put_chunk(&mut conn, "put.bin", 0, b"new", 3);
    assert_eq!(r.status, 409, "{r:?}");
}

/// A chunked body several disk batches long, sent as fast as the client can in odd-sized
/// chunks (the session hands it over while earlier batches are still being written):
/// published byte-exact, then served.
fn a_large_chunked_upload_is_written_in_batches(backend: Backend) {
    let s = Setup::new(backend, &[]);
    let data = noise("large chunked", 5 << 20);
    let mut body = Vec::new();
    for piece in data.chunks(70_001) {
        body.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        body.extend_from_slice(piece);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let mut conn = s.server.connect();
    let head = req(
        "PUT",
        "/incoming/large.bin",
        &[&auth(), "Transfer-Encoding: chunked"],
    );
    conn.send([head.as_bytes(), &body].concat());
    let r = conn.read_response(false);
    assert_eq!(r.status, 201, "{r:?}");
    assert!(s.published("large.bin") == data, "other bytes published");
    let r = conn.roundtrip(&req("GET", "/incoming/large.bin", &[]));
    assert!(r.status == 200 && r.body == data, "served: {}", r.status);
}

fn put_whole_file_chunked_with_100_continue(backend: Backend) {
    let s = Setup::new(backend, &[]);
    let data = noise("chunked", 70_000);
    let mut conn = s.server.connect();
    conn.send(req(
        "PUT",
        "/incoming/whole.bin",
        &[
            &auth(),
            "Transfer-Encoding: chunked",
            "Expect: 100-continue",
        ],
    ));
    let interim = conn.read_response(false);
    assert_eq!(interim.status, 100, "{interim:?}");
    let mut body = Vec::new();
    for piece in data.chunks(9000) {
        body.extend_from_slice(format!("{:x};n=1\r\n", piece.len()).as_bytes());
        body.extend_from_slice(piece);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\nX-Note: done\r\n\r\n");
    conn.send(&body);
    let r = conn.read_response(false);
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(s.published("whole.bin"), data);
    // Refused before the body: no 100, the answer straight away.
    let mut conn = s.server.connect();
    let r = conn.roundtrip(&req(
        "PUT",
        "/incoming/whole2.bin",
        &["Content-Length: 10", "Expect: 100-continue"],
    ));
    assert_eq!(r.status, 401, "{r:?}");
}

fn put_digest_mismatch_is_not_published(backend: Backend) {
    let s = Setup::new(backend, &[]);
    let mut conn = s.server.connect();
    let wrong = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(b"other"));
    let r = conn.roundtrip(
        &(req(
            "PUT",
            "/incoming/bad.bin",
            &[
                &auth(),
                &format!("Repr-Digest: sha-256=:{wrong}:"),
                "Content-Length: 5",
            ],
        ) + "hello"),
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(s.published("bad.bin").is_empty());
    assert_eq!(s.server.fetch(&get("/incoming/bad.bin")).status, 404);
    // Nothing of it is left to resume either.
    let r = s
        .server
        .fetch(&req("HEAD", "/incoming/bad.bin", &[&auth()]));
    assert_eq!(r.status, 404, "{r:?}");
}

fn names_are_sanitised_and_state_is_hidden(backend: Backend) {
    let s = Setup::new(backend, &["--dotfiles"]);
    for name in ["../escape.bin", "a/b", "..", ""] {
        let r = s.server.fetch(&req(
            "POST",
            "/incoming/",
            &[
                &auth(),
                "Tus-Resumable: 1.0.0",
                "Upload-Length: 1",
                &format!("Upload-Metadata: filename {}", b64(name)),
                "Content-Length: 0",
            ],
        ));
        assert_eq!(r.status, 400, "{name:?}: {r:?}");
    }
    for target in ["/incoming/..%2fescape.bin", "/incoming/sub/x.bin"] {
        let r = s
            .server
            .fetch(&(req("PUT", target, &[&auth(), "Content-Length: 1"]) + "x"));
        assert!(r.status >= 400, "{target}: {r:?}");
    }
    assert!(!s.corpus.outside().join("escape.bin").exists());
    assert!(!s.corpus.root().join("escape.bin").exists());
    // The state directory is never served, even with --dotfiles.
    let mut conn = s.server.connect();
    tus_create(&mut conn, 5, "hidden.bin");
    for target in [
        "/.ringserve-uploads/",
        "/.ringserve-uploads",
        "/%2Eringserve-uploads/",
    ] {
        let r = s.server.fetch(&get(target));
        assert_eq!(r.status, 404, "{target}: {r:?}");
    }
}

fn uploads_resume_after_kill_9(backend: Backend) {
    let corpus = Corpus::new();
    let data = noise("crash", 2_000_000);
    let server = start(backend, &corpus, &[]);
    let mut conn = server.connect();
    let url = tus_create(&mut conn, data.len() as u64, "crash.bin");
    assert_eq!(
        tus_patch(&mut conn, &url, 0, &data[..500_000], &[]).status,
        204
    );
    // A PATCH under way when the server is killed.
    conn.send(req(
        "PATCH",
        &url,
        &[
            &auth(),
            "Tus-Resumable: 1.0.0",
            "Content-Type: application/offset+octet-stream",
            "Upload-Offset: 500000",
            "Content-Length: 1500000",
        ],
    ));
    conn.send(&data[500_000..900_000]);
    let mut probe = server.connect();
    loop {
        let head = tus_offset(&mut probe, &url);
        let at: u64 = head.expect_header("Upload-Offset").parse().unwrap();
        if at > 500_000 {
            break;
        }
    }
    // The same for the plain flow.
    let total = data.len() as u64;
    assert_eq!(
        put_chunk(&mut probe, "crash-put.bin", 0, &data[..700_000], total).status,
        308
    );
    drop(server); // SIGKILL

    let server = start(backend, &corpus, &[]);
    let mut conn = server.connect();
    let head = tus_offset(&mut conn, &url);
    let at: u64 = head.expect_header("Upload-Offset").parse().unwrap();
    assert!((500_000..=900_000).contains(&at), "offset {at}");
    let r = tus_patch(&mut conn, &url, at, &data[at as usize..], &[]);
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(
        std::fs::read(corpus.root().join("incoming/crash.bin")).unwrap(),
        data
    );

    let r = conn.roundtrip(&req("HEAD", "/incoming/crash-put.bin", &[&auth()]));
    assert_eq!(r.expect_header("Upload-Offset"), "700000", "{r:?}");
    let r = put_chunk(&mut conn, "crash-put.bin", 700_000, &data[700_000..], total);
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(
        std::fs::read(corpus.root().join("incoming/crash-put.bin")).unwrap(),
        data
    );
}

/// The reference Python client, tuspy, uploads through a server that is killed midway, then
/// resumes from where its URL store says, against a restarted server.
fn tuspy_uploads_and_resumes(backend: Backend) {
    let corpus = Corpus::new();
    let data = noise("tuspy", 3_000_000);
    let src = corpus.outside().join("src.bin");
    std::fs::write(&src, &data).unwrap();
    let script = r#"
import sys, urllib.parse
from tusclient import client
url, path, token, stop = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = client.TusClient(url, headers={"Authorization": "Bearer " + token})
with open(path + ".url", "a+") as f:
    f.seek(0)
    known = f.read().strip()
# The server comes back on another port: keep the upload's path, not its whole URL.
base = urllib.parse.urlsplit(url)
u = c.uploader(path, chunk_size=500000, metadata={"filename": "tuspy.bin"},
               url=(base.scheme + "://" + base.netloc + known) if known else None,
               upload_checksum=True)
if not known:
    u.set_url(u.create_url())
    with open(path + ".url", "w") as f:
        f.write(urllib.parse.urlsplit(u.url).path)
if stop:
    u.upload(stop_at=stop)
else:
    u.upload()
print(u.offset)
"#;
    let run = |server: &Server, stop: u64| {
        // Debian's python3-tuspy, whatever other python3 comes first on the PATH.
        let out = std::process::Command::new("/usr/bin/python3")
            .args(["-c", script])
            .arg(format!("http://{}/incoming/", server.addr()))
            .arg(&src)
            .arg(TOKEN)
            .arg(stop.to_string())
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "tuspy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    let server = start(backend, &corpus, &[]);
    assert_eq!(run(&server, 1_000_000), 1_000_000);
    drop(server);
    let server = start(backend, &corpus, &[]);
    assert_eq!(run(&server, 0), data.len() as u64);
    let published = std::fs::read(corpus.root().join("incoming/tuspy.bin")).unwrap();
    assert_eq!(
        sha2::Sha256::digest(&published),
        sha2::Sha256::digest(&data)
    );
}

/// A tmpfs of `size` mounted over a fresh directory for the test's life (the tests run as
/// root, as `.ci/run` does).
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount(8)");
        assert!(status.success(), "mounting a tmpfs needs root: {status}");
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

fn no_space_is_507_and_the_upload_resumes(backend: Backend) {
    let fs = Tmpfs::mount("4m");
    let root = fs.0.path();
    let filler = root.join("filler.bin");
    std::fs::write(&filler, vec![0u8; 2 << 20]).unwrap();
    std::fs::write(root.join("small.txt"), "small").unwrap();
    let corpus = Corpus::new();
    let tokens = corpus.outside().join("tokens");
    std::fs::write(&tokens, format!("{TOKEN}\n")).unwrap();
    let tokens = tokens.display().to_string();
    let server = Server::start(
        backend,
        root,
        &["--uploads", "/incoming/", "--upload-token-file", &tokens],
    );
    let data = noise("enospc", 3 << 20);
    let total = data.len() as u64;
    let mut conn = server.connect();
    let r = put_chunk(&mut conn, "big.bin", 0, &data, total);
    assert_eq!(r.status, 507, "{r:?}");
    let stored: u64 = r.expect_header("Upload-Offset").parse().unwrap();
    assert!(stored < total, "{stored}");
    // The offset is the truth: what the file holds.
    let r = server.fetch(&req("HEAD", "/incoming/big.bin", &[&auth()]));
    assert_eq!(
        r.expect_header("Upload-Offset"),
        stored.to_string(),
        "{r:?}"
    );
    // The server still serves, and once space is freed the upload goes on from there.
    // (Not the filler, which the open-file cache would then hold on to after its removal.)
    assert_eq!(server.fetch(&get("/small.txt")).body, b"small");
    std::fs::remove_file(&filler).unwrap();
    let mut conn = server.connect();
    let r = put_chunk(
        &mut conn,
        "big.bin",
        stored,
        &data[stored as usize..],
        total,
    );
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(std::fs::read(root.join("incoming/big.bin")).unwrap(), data);
}

fn tokens_are_reloaded_on_sighup(backend: Backend) {
    let s = Setup::new(backend, &[]);
    let put = |token: &str| {
        s.server
            .fetch(
                &(req(
                    "PUT",
                    "/incoming/t.bin",
                    &[
                        &format!("Authorization: Bearer {token}"),
                        "Content-Length: 1",
                    ],
                ) + "x"),
            )
            .status
    };
    assert_eq!(put("new-token"), 403);
    std::fs::write(s.corpus.outside().join("tokens"), "new-token\n").unwrap();
    s.server.signal("HUP");
    s.server.wait_line("ringserve: configuration reloaded");
    assert_eq!(put(TOKEN), 403);
    assert_eq!(put("new-token"), 201);
}

/// The IETF draft: a creation interrupted after its `104` resumes at the upload resource the
/// interim named, then completes with an append.
fn ietf_draft_upload_resumes_from_the_104_location(backend: Backend) {
    let s = Setup::new(backend, &["--upload-max-size", "10m"]);
    let data = noise("ietf", 400_000);
    let r = s.server.fetch(&req("OPTIONS", "/incoming/", &[]));
    assert_eq!(
        r.expect_header("Accept-Patch"),
        "application/partial-upload",
        "{r:?}"
    );
    assert!(
        r.expect_header("Upload-Limit")
            .contains("max-size=10485760"),
        "{r:?}"
    );
    // The creation says the whole file follows, then the client dies after 150,000 bytes.
    let mut conn = s.server.connect();
    conn.send(req(
        "PUT",
        "/incoming/draft.bin",
        &[
            &auth(),
            "Upload-Complete: ?1",
            "Upload-Draft-Interop-Version: 8",
            "Content-Length: 400000",
        ],
    ));
    let interim = conn.read_response(false);
    assert_eq!(interim.status, 104, "{interim:?}");
    let location = interim.expect_header("Location").to_string();
    assert!(location.starts_with("/incoming/.upload/"), "{location}");
    conn.send(&data[..150_000]);
    let offset = loop {
        let r = s.server.fetch(&req("HEAD", &location, &[&auth()]));
        assert_eq!(
            (r.status, r.expect_header("Upload-Complete")),
            (204, "?0"),
            "{r:?}"
        );
        assert_eq!(r.expect_header("Upload-Length"), "400000");
        assert_eq!(r.expect_header("Cache-Control"), "no-store");
        let at: u64 = r.expect_header("Upload-Offset").parse().unwrap();
        if at == 150_000 {
            break at;
        }
    };
    drop(conn);
    // A wrong offset is refused with the right one.
    let patch = |offset: u64, body: &[u8], complete: &str| {
        let mut conn = s.server.connect();
        conn.send(req(
            "PATCH",
            &location,
            &[
                &auth(),
                &format!("Upload-Complete: {complete}"),
                &format!("Upload-Offset: {offset}"),
                "Content-Type: application/partial-upload",
                &format!("Content-Length: {}", body.len()),
            ],
        ));
        conn.send(body);
        conn.read_response(false)
    };
    // Until the server has seen the first connection close, the upload is still held by
    // it: 423, which clients retry.
    let r = loop {
        let r = patch(0, &data[..10], "?0");
        if r.status != 423 {
            break r;
        }
    };
    assert_eq!(
        (r.status, r.expect_header("Upload-Offset")),
        (409, "150000"),
        "{r:?}"
    );
    let r = patch(offset, &data[150_000..300_000], "?0");
    assert_eq!(
        (r.status, r.expect_header("Upload-Offset")),
        (204, "300000"),
        "{r:?}"
    );
    assert!(s.published("draft.bin").is_empty());
    let r = patch(300_000, &data[300_000..], "?1");
    assert_eq!(
        (r.status, r.expect_header("Upload-Complete")),
        (201, "?1"),
        "{r:?}"
    );
    assert_eq!(s.published("draft.bin"), data);
    let r = s.server.fetch(&req("HEAD", &location, &[&auth()]));
    assert_eq!(r.expect_header("Upload-Complete"), "?1", "{r:?}");
    assert_eq!(patch(400_000, b"", "?1").status, 410);
    // A creation in parts, named by Content-Disposition, then cancelled.
    let mut conn = s.server.connect();
    conn.send(req(
        "POST",
        "/incoming/",
        &[
            &auth(),
            "Upload-Complete: ?0",
            "Content-Disposition: inline; filename=\"parts.bin\"",
            "Content-Length: 5",
        ],
    ));
    conn.send("hello");
    let interim = conn.read_response(false);
    assert_eq!(interim.status, 104);
    let r = conn.read_response(false);
    assert_eq!(
        (r.status, r.expect_header("Upload-Complete")),
        (201, "?0"),
        "{r:?}"
    );
    assert_eq!(
        r.expect_header("Location"),
        interim.expect_header("Location")
    );
    let r = conn.roundtrip(&req("DELETE", r.expect_header("Location"), &[&auth()]));
    assert_eq!(r.status, 204, "{r:?}");
    assert!(s.published("parts.bin").is_empty());
}

/// The upload form of a listing, in headless Chromium (driven by `tests/browser/upload.py`
/// over the DevTools protocol, the file chosen in the page's file input): the server is
/// killed midway and restarted on the same port, and the page resumes by itself.
fn browser_upload_resumes_after_the_server_is_killed(backend: Backend) {
    use std::io::BufRead;
    let corpus = Corpus::new();
    let data = noise("browser", 12 << 20);
    let src = corpus.outside().join("firmware.bin");
    std::fs::write(&src, &data).unwrap();
    let server = start(backend, &corpus, &["--listing"]);
    let port = server.addr().port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/upload.py");
    let mut page = std::process::Command::new("/usr/bin/python3")
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}/incoming/"))
        .arg(TOKEN)
        .arg(&src)
        // Throttled in the browser to 3 MB/s, so the upload is still going when cut.
        .arg("3000000")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 tests/browser/upload.py");
    let (tx, states) = std::sync::mpsc::channel();
    let out = page.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let wait_state = |want: &str| loop {
        match states.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(state) if state == want => break,
            Ok(_) => {}
            Err(e) => panic!("no {want:?} from the page: {e}"),
        }
    };
    wait_state("uploading");
    // Cut the server off once 2 MiB are stored.
    let state_dir = corpus.root().join(".ringserve-uploads");
    let stored = || {
        std::fs::read_dir(&state_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "part"))
            .map(|e| e.metadata().map_or(0, |m| m.len()))
            .max()
            .unwrap_or(0)
    };
    let started = std::time::Instant::now();
    while stored() < 2 << 20 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "upload stalled"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(server); // SIGKILL
    wait_state("retrying");
    let listen = format!("127.0.0.1:{port}");
    let _server = start(backend, &corpus, &["--listing", "--listen", &listen]);
    wait_state("done");
    let status = page.wait().unwrap();
    assert!(status.success(), "the page's upload failed: {status}");
    let published = std::fs::read(corpus.root().join("incoming/firmware.bin")).unwrap();
    assert!(
        published == data,
        "published {} bytes, not the file",
        published.len()
    );
    // Resumed, not started over: one upload was ever created.
    let records = std::fs::read_dir(&state_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "info"))
        .count();
    assert_eq!(records, 1);
}

/// The value of the sample `name` (with its labels, as written) in Prometheus text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn upload_metrics(backend: Backend) {
    let s = Setup::new(backend, &["--admin", "127.0.0.1:0"]);
    let admin: std::net::SocketAddr = s
        .server
        .wait_line("ringserve: admin listening on ")
        .trim()
        .parse()
        .unwrap();
    let metrics = || Conn::connect(admin).roundtrip(&get("/metrics"));
    let data = noise("metrics", 1 << 20);
    let mut conn = s.server.connect();
    assert_eq!(
        put_chunk(&mut conn, "m.bin", 0, &data, data.len() as u64).status,
        201
    );
    let url = tus_create(&mut conn, 10, "m2.bin");
    let bad = "Upload-Checksum: sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    assert_eq!(
        tus_patch(&mut conn, &url, 0, b"0123456789", &[bad]).status,
        460
    );
    // A client that goes away mid-body.
    let mut gone = s.server.connect();
    gone.send(req(
        "PUT",
        "/incoming/gone.bin",
        &[&auth(), "Content-Length: 100"],
    ));
    gone.send("0123456789");
    let started = std::time::Instant::now();
    while sample(
        &String::from_utf8_lossy(&metrics().body),
        "ringserve_uploads_in_progress",
    ) != Some(1.0)
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "not in progress"
        );
    }
    drop(gone);
    let text = loop {
        let text = String::from_utf8_lossy(&metrics().body).into_owned();
        if sample(&text, "ringserve_upload_failures_total{reason=\"aborted\"}") == Some(1.0) {
            break text;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{text}"
        );
    };
    let bytes = sample(&text, "ringserve_upload_bytes_total{path=\"splice\"}").unwrap()
        + sample(&text, "ringserve_upload_bytes_total{path=\"copied\"}").unwrap();
    assert_eq!(bytes, (data.len() + 10 + 10) as f64, "{text}");
    assert_eq!(
        sample(&text, "ringserve_uploads_published_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "ringserve_uploads_in_progress"),
        Some(0.0),
        "{text}"
    );
    let checksum = "ringserve_upload_failures_total{reason=\"checksum\"}";
    assert_eq!(sample(&text, checksum), Some(1.0), "{text}");
}

/// `ringserve sign --method M PATH` with the server's secret: the URL to upload with.
fn sign(secret: &std::path::Path, method: &str, path: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringserve"))
        .args(["sign", path, "--expires", "1h", "--method", method])
        .arg("--secure-link-secret-file")
        .arg(secret)
        .output()
        .expect("ringserve sign");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn signed_links_authorise_uploads(backend: Backend) {
    let corpus = Corpus::new();
    let secret = corpus.outside().join("secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef\n").unwrap();
    let secret_arg = secret.display().to_string();
    // No token file: signed links alone authorise.
    let server = Server::start(
        backend,
        corpus.root(),
        &[
            "--uploads",
            "/incoming/",
            "--secure-link-secret-file",
            &secret_arg,
            "--secure-link-prefix",
            "/private/",
        ],
    );
    let put_url = sign(&secret, "PUT", "/incoming/signed.bin");
    assert!(put_url.contains("method=PUT"), "{put_url}");
    let put = |url: &str| server.fetch(&(req("PUT", url, &["Content-Length: 5"]) + "hello"));
    assert_eq!(put(&put_url).status, 201);
    assert_eq!(
        std::fs::read(corpus.root().join("incoming/signed.bin")).unwrap(),
        b"hello"
    );
    // The link is for that path and that method only; a download link uploads nothing.
    let other = put_url.replace("signed.bin", "other.bin");
    assert_eq!(put(&other).status, 403);
    let post_url = sign(&secret, "POST", "/incoming/");
    assert_eq!(put(&sign(&secret, "PATCH", "/incoming/m.bin")).status, 403);
    assert_eq!(put("/incoming/plain.bin").status, 401);
    // tus through a POST link: the upload's own URL comes back signed for its operations.
    let mut conn = server.connect();
    let r = conn.roundtrip(&req(
        "POST",
        &post_url,
        &[
            "Tus-Resumable: 1.0.0",
            "Upload-Length: 3",
            &format!("Upload-Metadata: filename {}", b64("tus.bin")),
            "Content-Length: 0",
        ],
    ));
    assert_eq!(r.status, 201, "{r:?}");
    let location = r.expect_header("Location").to_string();
    assert!(location.contains("method=UPLOAD"), "{location}");
    let patch = |url: &str| {
        server.fetch(
            &(req(
                "PATCH",
                url,
                &[
                    "Tus-Resumable: 1.0.0",
                    "Content-Type: application/offset+octet-stream",
                    "Upload-Offset: 0",
                    "Content-Length: 3",
                ],
            ) + "abc"),
        )
    };
    let unsigned = location.split('?').next().unwrap();
    assert_eq!(patch(unsigned).status, 401);
    assert_eq!(patch(&location).status, 204);
    assert_eq!(
        std::fs::read(corpus.root().join("incoming/tus.bin")).unwrap(),
        b"abc"
    );
}

/// An upload not written for `--upload-expire` is gone (410), announced by `Upload-Expires`.
fn expired_uploads_are_gone(backend: Backend) {
    let s = Setup::new(backend, &["--upload-expire", "1s"]);
    let mut conn = s.server.connect();
    let url = tus_create(&mut conn, 10, "late.bin");
    assert_eq!(tus_patch(&mut conn, &url, 0, b"12345", &[]).status, 204);
    // Each worker reads the clock once per loop turn: once twenty requests in a row (on new
    // connections, so on both workers) find it gone, every worker's clock is past it.
    let started = std::time::Instant::now();
    let mut row = 0;
    while row < 20 {
        let r = tus_offset(&mut s.server.connect(), &url);
        if r.status == 410 {
            row += 1;
            continue;
        }
        row = 0;
        assert_eq!(r.status, 200, "{r:?}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "never expired"
        );
    }
    assert_eq!(tus_patch(&mut conn, &url, 5, b"67890", &[]).status, 410);
    assert!(s.published("late.bin").is_empty());
}

/// A chunked upload body whose framing breaks midway: 400 and the connection closes; what
/// arrived before the break is stored and the upload resumes from it.
fn broken_chunked_upload_is_400_and_keeps_what_was_stored(backend: Backend) {
    let s = Setup::new(backend, &[]);
    let mut conn = s.server.connect();
    conn.send(req(
        "PUT",
        "/incoming/broken.bin",
        &[
            &auth(),
            "Content-Range: bytes 0-9/10",
            "Transfer-Encoding: chunked",
        ],
    ));
    conn.send("5\r\n01234\r\nzz\r\n");
    let r = conn.read_response(false);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.closes());
    let r = s
        .server
        .fetch(&req("HEAD", "/incoming/broken.bin", &[&auth()]));
    assert_eq!(r.expect_header("Upload-Offset"), "5", "{r:?}");
    let mut conn = s.server.connect();
    assert_eq!(
        put_chunk(&mut conn, "broken.bin", 5, b"56789", 10).status,
        201
    );
    assert_eq!(s.published("broken.bin"), b"0123456789");
}
