//! Signed links: any query is judged without panicking, the query `sign` makes for a path
//! verifies for that path until it expires, and then is judged expired.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringserve::policy::{sign, verify, Secret, Verdict};

fuzz_target!(|input: (&[u8], &[u8], u32)| {
    let (path, query, ttl) = input;
    let secret = Secret::new(b"fuzzing secret").expect("secret");
    let now = 1_700_000_000;
    let _ = verify(&secret, path, query, now);
    let expires = now + u64::from(ttl);
    let signed = sign(&secret, path, expires, None, None);
    assert_eq!(
        verify(&secret, path, signed.as_bytes(), now),
        Verdict::Valid { rate: None, method: None }
    );
    assert_eq!(
        verify(&secret, path, signed.as_bytes(), expires + 1),
        Verdict::Expired
    );
});
