//! The upload request fields: tus `Upload-Metadata` and `Upload-Checksum`, a `PUT`'s
//! `Content-Range`, RFC 9530 digests and `Content-Disposition`. None panics; what they accept
//! holds: a parsed range is ordered and inside its declared length, a checksum or digest has
//! its algorithm's length, a file name taken from metadata or a disposition that passes
//! `safe_name` is one plain path segment, and a range written back parses to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringserve::upload::fields::{
    content_disposition_filename, content_range, metadata_filename, rfc9530_digest,
    safe_name, tus_checksum, PutRange,
};

fn check_name(name: &str) {
    if safe_name(name, false) {
        assert!(!name.contains('/') && !name.contains('\\') && !name.starts_with('.'));
        assert!(name != ".." && !name.is_empty() && name.len() <= 255);
    }
    if safe_name(name, true) {
        assert!(name != "." && name != ".." && !name.contains('/'));
    }
}

fuzz_target!(|data: &[u8]| {
    match content_range(data) {
        Some(PutRange::Bytes { first, last, complete }) => {
            assert!(first <= last);
            if let Some(len) = complete {
                assert!(last < len);
            }
            let again = match complete {
                Some(len) => format!("bytes {first}-{last}/{len}"),
                None => format!("bytes {first}-{last}/*"),
            };
            assert_eq!(content_range(again.as_bytes()), content_range(data));
        }
        Some(PutRange::Length(len)) => {
            assert_eq!(content_range(format!("bytes */{len}").as_bytes()), Some(PutRange::Length(len)));
        }
        None => {}
    }
    if let Ok((algorithm, digest)) = tus_checksum(data) {
        assert_eq!(digest.len(), algorithm.digest_len());
    }
    if let Ok(Some((algorithm, digest))) = rfc9530_digest(data) {
        assert_eq!(digest.len(), algorithm.digest_len());
    }
    if let Ok(Some(name)) = metadata_filename(data) {
        check_name(&name);
    }
    if let Some(name) = content_disposition_filename(data) {
        check_name(&name);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        check_name(text);
    }
});
