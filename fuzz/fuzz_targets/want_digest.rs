//! `Want-Repr-Digest` / `Want-Content-Digest` preferences: an algorithm is chosen only when the
//! field names it with a weight from 1 to 10, and no other offered algorithm has a higher
//! one; the field written for any digest is one well-formed line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringserve::http::digest::{wanted, write_field, DigestAlg};

fuzz_target!(|field: &[u8]| {
    let Some(alg) = wanted(field) else {
        return;
    };
    let text = std::str::from_utf8(field).expect("a chosen field is ASCII");
    let weight = |key: &str| {
        text.split(',')
            .filter_map(|m| m.trim_matches([' ', '\t']).strip_prefix(key)?.strip_prefix('='))
            .filter_map(|v| v.split(';').next()?.parse::<u8>().ok())
            .max()
    };
    let chosen = weight(alg.key()).expect("the chosen algorithm is named");
    assert!((1..=10).contains(&chosen), "{text:?}");
    let other = match alg {
        DigestAlg::Sha256 => DigestAlg::Sha512,
        DigestAlg::Sha512 => DigestAlg::Sha256,
    };
    assert!(weight(other.key()).is_none_or(|w| w <= chosen), "{text:?}");
    let mut out = Vec::new();
    write_field(&mut out, "Repr-Digest", alg, &[0xa5; 64]);
    assert!(out.ends_with(b":\r\n") && !out[..out.len() - 2].contains(&b'\n'));
});
