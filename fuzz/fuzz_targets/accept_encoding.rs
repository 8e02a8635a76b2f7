//! `Accept-Encoding` negotiation: the ranking holds only codings the server offered, each at
//! most once, whatever the field says.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringserve::http::negotiate::{rank_encodings, Coding};

fuzz_target!(|field: &[u8]| {
    let offered = [Coding::Br, Coding::Zstd, Coding::Gzip];
    for n in 0..=offered.len() {
        let ranked = rank_encodings(Some(field), &offered[..n]);
        let got = ranked.as_slice();
        assert!(got.iter().all(|c| offered[..n].contains(c)), "{got:?}");
        for (i, c) in got.iter().enumerate() {
            assert!(!got[i + 1..].contains(c), "{got:?} repeats");
        }
    }
});
