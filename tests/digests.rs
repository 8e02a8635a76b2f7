//! RFC 9530 digests on downloads: `Want-Repr-Digest` / `Want-Content-Digest` answered with
//! the file's SHA-256 or SHA-512 once the background thread has it (never waited for), the
//! whole file's digest on a range, none of an old version for a replaced file, and the digests
//! kept in the file's extended attributes for the next start.

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use sha2::{Digest, Sha256, Sha512};

backend_tests!(
    a_wanted_digest_comes_once_computed,
    a_replaced_file_never_gets_the_old_digest,
);

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Sends `request` until its answer carries `field` (bounded), returning that answer.
fn until_field(s: &Server, request: &str, field: &str) -> Response {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = s.fetch(request);
        if r.header(field).is_some() {
            return r;
        }
        assert!(Instant::now() < deadline, "no {field}: {r:?}");
    }
}

fn a_wanted_digest_comes_once_computed(backend: Backend) {
    let files = Corpus::new();
    let data = noise("digest", 3 << 20);
    std::fs::write(files.path("big.bin"), &data).unwrap();
    let s = Server::start(backend, files.root(), &[]);
    let sha256 = format!("sha-256=:{}:", b64(&Sha256::digest(&data)));
    let sha512 = format!("sha-512=:{}:", b64(&Sha512::digest(&data)));
    let want = |v: &str| req("GET", "/big.bin", &[&format!("Want-Repr-Digest: {v}")]);

    // Not known yet: answered at once, without the field.
    let first = s.fetch(&want("sha-256=1"));
    assert_eq!(first.status, 200);
    assert!(first.body == data);
    assert_eq!(first.header("Repr-Digest"), None);
    // Not asked: never sent.
    assert_eq!(s.fetch(&get("/big.bin")).header("Repr-Digest"), None);

    let r = until_field(&s, &want("sha-256=1"), "Repr-Digest");
    assert_eq!(r.expect_header("Repr-Digest"), sha256);
    assert!(r.body == data);
    let r = until_field(&s, &want("sha-256=2, sha-512=9"), "Repr-Digest");
    assert_eq!(r.expect_header("Repr-Digest"), sha512);
    // Nothing offered that the client accepts: no field.
    let r = s.fetch(&want("sha-256=0, md5=5"));
    assert_eq!(r.header("Repr-Digest"), None);

    // A range: the representation's digest (the whole file's), never the part's content.
    let r = s.fetch(&req(
        "GET",
        "/big.bin",
        &[
            "Range: bytes=10-99",
            "Want-Repr-Digest: sha-256=1",
            "Want-Content-Digest: sha-256=1",
        ],
    ));
    assert_eq!(r.status, 206);
    assert_eq!(r.expect_header("Repr-Digest"), sha256);
    assert_eq!(r.header("Content-Digest"), None);
    // The whole file: its content is the representation.
    let r = s.fetch(&req("GET", "/big.bin", &["Want-Content-Digest: sha-512=1"]));
    assert_eq!(r.expect_header("Content-Digest"), sha512);
    assert_eq!(r.header("Repr-Digest"), None);
    let head = s.fetch(&req("HEAD", "/big.bin", &["Want-Repr-Digest: sha-256=1"]));
    assert_eq!(head.expect_header("Repr-Digest"), sha256);

    // Recorded with the file (where the file system keeps user attributes), so the next
    // start reads them instead of the file.
    let hex: String = Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut value = [0u8; 256];
    match rustix::fs::getxattr(
        files.path("big.bin"),
        "user.ringserve.sha256",
        &mut value[..],
    ) {
        Ok(n) => {
            let value = String::from_utf8_lossy(&value[..n]).into_owned();
            assert!(
                value.ends_with(&format!(" {} {hex}", data.len())),
                "{value}"
            );
        }
        Err(e) => eprintln!("no user attributes here ({e}): the digest lives in memory only"),
    }
}

fn a_replaced_file_never_gets_the_old_digest(backend: Backend) {
    let files = Corpus::new();
    let old = noise("old", 100_000);
    let new = noise("new", 100_000);
    std::fs::write(files.path("f.bin"), &old).unwrap();
    let s = Server::start(backend, files.root(), &[]);
    let want = req("GET", "/f.bin", &["Want-Repr-Digest: sha-256=1"]);
    let r = until_field(&s, &want, "Repr-Digest");
    assert_eq!(
        r.expect_header("Repr-Digest"),
        format!("sha-256=:{}:", b64(&Sha256::digest(&old)))
    );
    std::fs::write(files.path("f.tmp"), &new).unwrap();
    std::fs::rename(files.path("f.tmp"), files.path("f.bin")).unwrap();
    // Every answer's digest, when it has one, is its own body's.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = s.fetch(&want);
        if let Some(d) = r.header("Repr-Digest") {
            assert_eq!(d, format!("sha-256=:{}:", b64(&Sha256::digest(&r.body))));
            if r.body == new {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the new file never got its digest"
        );
    }
}
