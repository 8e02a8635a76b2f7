//! Host values: an accepted authority's host is a prefix of the value, and what follows it is
//! empty or `:` and the port's digits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringserve::http::host::parse;

fuzz_target!(|value: &[u8]| {
    if let Some(a) = parse(value) {
        assert!(value.starts_with(a.host));
        let rest = &value[a.host.len()..];
        match a.port {
            Some(port) => {
                assert!(rest.starts_with(b":") && rest[1..].ends_with(port.to_string().as_bytes()))
            }
            None => assert!(rest.is_empty() || rest == b":"),
        }
        assert!(!a.host.iter().any(|b| b" /@?#\\".contains(b)));
    }
});
