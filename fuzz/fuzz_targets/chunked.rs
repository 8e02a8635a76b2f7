//! Chunked bodies: fed in pieces whose sizes come from the front of the input, the decoder
//! never panics, consumes only what it is given, hands out data from what it consumed, counts
//! it in `total`, stops at `done`, and decodes the same bytes however the input is split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringserve::http::chunked::Decoder;

/// Decodes `input` in pieces of the sizes `cuts` cycles through: the body, whether and where
/// it ended, or `None` on an error.
fn decode(input: &[u8], cuts: &[u8]) -> Option<(Vec<u8>, Option<usize>)> {
    let mut d = Decoder::new();
    let mut body = Vec::new();
    let mut at = 0;
    let mut k = 0;
    while at < input.len() {
        let n = cuts.get(k % cuts.len().max(1)).map_or(input.len(), |&c| usize::from(c) + 1);
        k += 1;
        let piece = &input[at..(at + n).min(input.len())];
        let mut rest = piece;
        loop {
            let step = d.step(rest).ok()?;
            assert!(step.used <= rest.len());
            let consumed = &rest[..step.used];
            if !step.data.is_empty() {
                let (start, end) = (consumed.as_ptr() as usize, consumed.as_ptr() as usize + consumed.len());
                let data = step.data.as_ptr() as usize;
                assert!(data >= start && data + step.data.len() <= end, "data outside the consumed input");
            }
            body.extend_from_slice(step.data);
            assert_eq!(d.total(), body.len() as u64);
            at += step.used;
            rest = &rest[step.used..];
            if step.done {
                let after = d.step(b"more").ok()?;
                assert_eq!((after.used, after.done), (0, true));
                return Some((body, Some(at)));
            }
            if rest.is_empty() {
                break;
            }
        }
    }
    Some((body, None))
}

fuzz_target!(|input: (&[u8], &[u8])| {
    let (cuts, body) = input;
    let split = decode(body, cuts);
    let whole = decode(body, &[]);
    assert_eq!(split, whole, "the split changed the outcome");
    if let Some((data, Some(_))) = whole {
        // What was decoded, re-encoded as one chunk, decodes to itself.
        let mut again = format!("{:x}\r\n", data.len()).into_bytes();
        again.extend_from_slice(&data);
        again.extend_from_slice(b"\r\n0\r\n\r\n");
        if data.is_empty() {
            again = b"0\r\n\r\n".to_vec();
        }
        assert_eq!(decode(&again, &[]), Some((data, Some(again.len()))));
    }
});
