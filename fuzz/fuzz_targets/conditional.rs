//! Conditional requests: any `If-*` values evaluate without panicking, and the evaluation is
//! consistent — with every precondition true the request proceeds, empty list elements and
//! optional whitespace change nothing, and `If-Range` holds only for the exact strong tag
//! or the exact date.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringserve::http::conditional::{evaluate, if_range_allows, Precondition};
use ringserve::http::date::{parse_http_date, write_http_date};
use ringserve::http::request::{parse, Parse};
use ringserve::http::{ETag, Fixdate, Limits, Representation};

const FIELDS: [&str; 5] = [
    "If-Match",
    "If-None-Match",
    "If-Modified-Since",
    "If-Unmodified-Since",
    "If-Range",
];

/// The head of a `GET` carrying `values` for [`FIELDS`] in order (an empty value: absent).
fn head(values: &[&[u8]]) -> Vec<u8> {
    let mut h = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for (name, v) in FIELDS.iter().zip(values) {
        if !v.is_empty() {
            h.extend_from_slice(name.as_bytes());
            h.extend_from_slice(b": ");
            h.extend_from_slice(v);
            h.extend_from_slice(b"\r\n");
        }
    }
    h.extend_from_slice(b"\r\n");
    h
}

fn eval(values: &[&[u8]], rep: &Representation) -> Option<Precondition> {
    match parse(&head(values), &Limits::default()) {
        Parse::Complete(req) => Some(evaluate(&req, rep)),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    // Up to the year 2100, and a representation whose tag is nginx's form.
    let mtime = u64::from_le_bytes(data[..8].try_into().unwrap()) % 4_102_444_800;
    let etag = ETag::nginx(mtime, 1000);
    let rep = Representation {
        len: 1000,
        mtime: Fixdate::new(mtime),
        etag,
        version: etag,
        mime: "text/plain",
    };
    let values: Vec<&[u8]> = data[8..].split(|&b| b == 0).take(FIELDS.len()).collect();
    // Field values cannot hold line breaks or NUL, nor start or end with whitespace.
    let fine = |v: &&[u8]| {
        !v.iter().any(|&b| b == b'\r' || b == b'\n')
            && v.first().is_none_or(|&b| b != b' ' && b != b'\t')
            && v.last().is_none_or(|&b| b != b' ' && b != b'\t')
    };
    if !values.iter().all(fine) {
        return;
    }
    let Some(result) = eval(&values, &rep) else {
        return;
    };
    // Empty list elements and whitespace around them do not change the lists' meaning
    // (`*` is not a list: it stands alone).
    for i in 0..2 {
        if values.get(i).is_some_and(|v| !v.is_empty() && *v != b"*") {
            let padded = [b", ,\t".as_slice(), values[i], b" , ,"].concat();
            let mut other = values.clone();
            other[i] = &padded;
            assert_eq!(eval(&other, &rep), Some(result), "{}", FIELDS[i]);
        }
    }
    // Preconditions that all hold: the request proceeds.
    let mut date = Vec::new();
    write_http_date(mtime, &mut date);
    let tag = etag.as_bytes();
    let holding: [&[u8]; 5] = [tag, b"\"other\"", b"", &date, tag];
    assert_eq!(eval(&holding, &rep), Some(Precondition::Proceed));
    // If-Range: the exact strong tag or date, nothing else.
    if let Some(v) = values.get(4) {
        if if_range_allows(v, &rep) {
            assert!(*v == tag || parse_http_date(v) == Some(mtime), "If-Range");
        }
    }
    assert!(if_range_allows(tag, &rep) && if_range_allows(&date, &rep));
});
