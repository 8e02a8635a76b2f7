//! HTTP dates: parsing never panics, and a date written back parses to the same second.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringserve::http::date::{parse_http_date, write_http_date};

fuzz_target!(|data: &[u8]| {
    if let Some(secs) = parse_http_date(data) {
        let mut out = Vec::new();
        write_http_date(secs, &mut out);
        assert_eq!(
            parse_http_date(&out),
            Some(secs),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }
});
