//! Range headers: a satisfiable answer holds sorted, disjoint ranges inside the file, no more
//! than asked for and never more bytes than the file has.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringserve::http::range::{parse, RangeOutcome};

fuzz_target!(|input: (&[u8], u64, u8)| {
    let (header, len, max) = input;
    let mut out = Vec::new();
    if parse(header, len, usize::from(max), &mut out) == RangeOutcome::Satisfiable {
        assert!(!out.is_empty() && out.len() <= usize::from(max).max(1));
        let mut total = 0u64;
        for (i, r) in out.iter().enumerate() {
            assert!(r.first <= r.last && r.last < len, "{r:?} in {len}");
            total += r.size();
            if let Some(next) = out.get(i + 1) {
                assert!(r.last < next.first, "sorted and disjoint: {out:?}");
            }
        }
        assert!(total <= len);
    }
});
