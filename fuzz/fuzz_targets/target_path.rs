//! Request-target decoding: a decoded path never climbs out of the root, never holds a NUL,
//! a backslash or an empty segment, and its canonical form starts with exactly one `/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringserve::http::path::{canonical_path, decode};

fuzz_target!(|target: &[u8]| {
    let mut out = Vec::new();
    if decode(target, &mut out).is_ok() {
        assert!(!out.is_empty() && out[0] != b'/' && !out.ends_with(b"/"));
        assert!(!out.contains(&0) && !out.contains(&b'\\'));
        if out != b"." {
            for seg in out.split(|&b| b == b'/') {
                assert!(!seg.is_empty() && seg != b"." && seg != b"..", "{out:?}");
            }
        }
        let mut canonical = Vec::new();
        canonical_path(target, &mut canonical).expect("decodes, so canonicalises");
        assert!(canonical.starts_with(b"/") && !canonical.starts_with(b"//"));
    }
});
