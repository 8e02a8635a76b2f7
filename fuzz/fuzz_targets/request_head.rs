//! Request heads: whatever the bytes, `parse` answers without panicking, and a complete head
//! lies within the input, has an origin-form (or `*`) target, and a body within the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringserve::http::request::{parse, Parse};
use ringserve::http::Limits;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Parse::Complete(req) = parse(data, &limits) {
        assert!(req.head_len <= data.len().min(limits.max_head));
        assert!(req.target.first() == Some(&b'/') || req.target == b"*");
        assert!(req.body_len <= limits.max_discard_body);
        assert!(data[..req.head_len].ends_with(b"\n"));
    }
});
