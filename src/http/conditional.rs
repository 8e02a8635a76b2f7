//! Conditional requests (RFC 9110 §13): `If-Match`, `If-None-Match`, `If-Modified-Since`,
//! `If-Unmodified-Since` and `If-Range`.
//!
//! Key design decision: evaluation follows the precedence of RFC 9110 §13.2.2 literally, and
//! entity-tag lists are scanned in place (no splitting into a collection). A list that is not
//! syntactically valid matches nothing, so a malformed `If-Match` fails safe (412) and a
//! malformed `If-None-Match` just serves the full response.

use super::date::parse_http_date;
use super::{trim_ows, Method, Representation, Request};

/// Result of evaluating a request's preconditions against the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// No precondition stops the request: go on to Range handling and the normal response.
    Proceed,
    /// Answer 304: the client's cached copy is current.
    NotModified,
    /// Answer 412: a precondition the client set is false.
    Failed,
}

/// Evaluates the preconditions of `req` against `rep` in RFC 9110 §13.2.2 order.
pub fn evaluate(req: &Request<'_>, rep: &Representation) -> Precondition {
    let etag = rep.etag.as_bytes();
    if let Some(list) = req.if_match {
        // `*` matches any current representation, and the file exists.
        if !is_star(list) && !list_matches(list, etag, Comparison::Strong) {
            return Precondition::Failed;
        }
    } else if let Some(date) = req.if_unmodified_since.and_then(parse_http_date) {
        if rep.mtime.secs() > date {
            return Precondition::Failed;
        }
    }

    let safe = matches!(req.method, Method::Get | Method::Head);
    if let Some(list) = req.if_none_match {
        if is_star(list) || list_matches(list, etag, Comparison::Weak) {
            return if safe {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if safe {
        if let Some(date) = req.if_modified_since.and_then(parse_http_date) {
            if rep.mtime.secs() <= date {
                return Precondition::NotModified;
            }
        }
    }
    Precondition::Proceed
}

/// Whether an `If-Range` value lets the Range header apply (RFC 9110 §13.1.5): an
/// entity-tag must be strong and equal to the file's; an HTTP-date must equal its
/// modification time exactly. Anything else — weak tags, lists, garbage — means the client's
/// partial copy may be stale, so the full file is sent.
pub fn if_range_allows(if_range: &[u8], rep: &Representation) -> bool {
    let value = trim_ows(if_range);
    match value.first() {
        Some(b'"') => value == rep.etag.as_bytes(),
        Some(b'W') if value.starts_with(b"W/") => false,
        _ => parse_http_date(value) == Some(rep.mtime.secs()),
    }
}

/// Entity-tag comparison functions of RFC 9110 §8.8.3.2.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Comparison {
    /// Both tags strong and their opaque parts equal.
    Strong,
    /// Opaque parts equal, `W/` ignored.
    Weak,
}

fn is_star(value: &[u8]) -> bool {
    trim_ows(value) == b"*"
}

/// Whether the `#entity-tag` list contains a tag equal to `etag` (a strong tag, quotes
/// included); `false` when the list is malformed anywhere.
fn list_matches(list: &[u8], etag: &[u8], cmp: Comparison) -> bool {
    let mut rest = list;
    let mut matched = false;
    loop {
        // Skip separators and empty list elements (RFC 9110 §5.6.1.2).
        let skip = rest
            .iter()
            .position(|&b| !matches!(b, b' ' | b'\t' | b','))
            .unwrap_or(rest.len());
        rest = &rest[skip..];
        if rest.is_empty() {
            return matched;
        }
        let weak = rest.starts_with(b"W/");
        if weak {
            rest = &rest[2..];
        }
        let Some(tag_len) = quoted_len(rest) else {
            return false;
        };
        let (tag, after) = rest.split_at(tag_len);
        matched |= tag == etag && (cmp == Comparison::Weak || !weak);
        rest = trim_ows(after);
        if !rest.is_empty() && rest[0] != b',' {
            return false;
        }
    }
}

/// Length of the `opaque-tag` (`DQUOTE *etagc DQUOTE`) at the start of `s`, if valid.
fn quoted_len(s: &[u8]) -> Option<usize> {
    let body = s.strip_prefix(b"\"")?;
    let close = memchr::memchr(b'"', body)?;
    // etagc = %x21 / %x23-7E / obs-text; the quote itself is excluded by the search.
    body[..close]
        .iter()
        .all(|&b| b >= 0x21 && b != 0x7f)
        .then_some(close + 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::parse;
    use crate::http::{ETag, Fixdate, Limits, Parse};

    const MTIME: u64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT
    const DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const EARLIER: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
    const LATER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";

    fn rep() -> Representation {
        Representation {
            len: 100,
            mtime: Fixdate::new(MTIME),
            etag: ETag::from_parts(MTIME, 100, 7),
            version: ETag::from_parts(MTIME, 100, 7),
            mime: "text/plain",
        }
    }

    fn tag() -> String {
        String::from_utf8(rep().etag.as_bytes().to_vec()).unwrap()
    }

    fn eval_method(method: &str, fields: &[(&str, &str)]) -> Precondition {
        let mut head = format!("{method} / HTTP/1.1\r\nHost: x\r\n");
        for (name, value) in fields {
            head += &format!("{name}: {value}\r\n");
        }
        head += "\r\n";
        match parse(head.as_bytes(), &Limits::default()) {
            Parse::Complete(req) => evaluate(&req, &rep()),
            other => panic!("{head:?}: {other:?}"),
        }
    }

    fn eval(fields: &[(&str, &str)]) -> Precondition {
        eval_method("GET", fields)
    }

    use Precondition::{Failed, NotModified, Proceed};

    #[test]
    fn no_conditions_proceed() {
        assert_eq!(eval(&[]), Proceed);
    }

    #[test]
    fn if_match() {
        let t = tag();
        assert_eq!(eval(&[("If-Match", "*")]), Proceed);
        assert_eq!(eval(&[("If-Match", &t)]), Proceed);
        assert_eq!(
            eval(&[("If-Match", &format!("\"a\", {t} , \"c\""))]),
            Proceed
        );
        assert_eq!(eval(&[("If-Match", "\"other\"")]), Failed);
        // Strong comparison: a weak tag never matches.
        assert_eq!(eval(&[("If-Match", &format!("W/{t}"))]), Failed);
        assert_eq!(eval(&[("If-Match", "garbage")]), Failed);
        assert_eq!(eval(&[("If-Match", &format!("{t} garbage"))]), Failed);
    }

    #[test]
    fn if_unmodified_since() {
        assert_eq!(eval(&[("If-Unmodified-Since", DATE)]), Proceed);
        assert_eq!(eval(&[("If-Unmodified-Since", LATER)]), Proceed);
        assert_eq!(eval(&[("If-Unmodified-Since", EARLIER)]), Failed);
        assert_eq!(eval(&[("If-Unmodified-Since", "not a date")]), Proceed);
        // Ignored when If-Match is present.
        assert_eq!(
            eval(&[("If-Match", "*"), ("If-Unmodified-Since", EARLIER)]),
            Proceed
        );
        // Ignored when repeated (it would be a list of dates).
        assert_eq!(
            eval(&[
                ("If-Unmodified-Since", EARLIER),
                ("If-Unmodified-Since", EARLIER)
            ]),
            Proceed
        );
    }

    #[test]
    fn if_none_match() {
        let t = tag();
        assert_eq!(eval(&[("If-None-Match", &t)]), NotModified);
        assert_eq!(eval(&[("If-None-Match", &format!("W/{t}"))]), NotModified);
        assert_eq!(
            eval(&[("If-None-Match", &format!("\"x\",W/{t}"))]),
            NotModified
        );
        assert_eq!(eval(&[("If-None-Match", "*")]), NotModified);
        assert_eq!(eval(&[("If-None-Match", "\"x\"")]), Proceed);
        assert_eq!(eval(&[("If-None-Match", &format!("bad, {t}"))]), Proceed);
        assert_eq!(eval_method("HEAD", &[("If-None-Match", &t)]), NotModified);
        assert_eq!(eval_method("POST", &[("If-None-Match", &t)]), Failed);
        assert_eq!(eval_method("POST", &[("If-None-Match", "*")]), Failed);
        assert_eq!(eval_method("POST", &[("If-None-Match", "\"x\"")]), Proceed);
    }

    #[test]
    fn if_modified_since() {
        assert_eq!(eval(&[("If-Modified-Since", DATE)]), NotModified);
        assert_eq!(eval(&[("If-Modified-Since", LATER)]), NotModified);
        assert_eq!(eval(&[("If-Modified-Since", EARLIER)]), Proceed);
        assert_eq!(
            eval(&[("If-Modified-Since", "Sunday, 06-Nov-94 08:49:37 GMT")]),
            NotModified
        );
        assert_eq!(
            eval(&[("If-Modified-Since", "Sun Nov  6 08:49:37 1994")]),
            NotModified
        );
        assert_eq!(eval(&[("If-Modified-Since", "garbage")]), Proceed);
        assert_eq!(
            eval_method("HEAD", &[("If-Modified-Since", DATE)]),
            NotModified
        );
        assert_eq!(eval_method("POST", &[("If-Modified-Since", DATE)]), Proceed);
        assert_eq!(
            eval(&[("If-Modified-Since", DATE), ("If-Modified-Since", DATE)]),
            Proceed
        );
    }

    #[test]
    fn precedence() {
        let t = tag();
        // If-Match failure wins over everything.
        assert_eq!(
            eval(&[("If-Match", "\"x\""), ("If-None-Match", &t)]),
            Failed
        );
        // If-Unmodified-Since failure wins over If-None-Match / If-Modified-Since.
        assert_eq!(
            eval(&[
                ("If-Unmodified-Since", EARLIER),
                ("If-Modified-Since", DATE)
            ]),
            Failed
        );
        // If-None-Match present: If-Modified-Since is ignored.
        assert_eq!(
            eval(&[("If-None-Match", "\"x\""), ("If-Modified-Since", DATE)]),
            Proceed
        );
        assert_eq!(
            eval(&[("If-None-Match", &t), ("If-Modified-Since", EARLIER)]),
            NotModified
        );
        // Passing If-Match then matching If-None-Match.
        assert_eq!(
            eval(&[("If-Match", &t), ("If-None-Match", &t)]),
            NotModified
        );
    }

    #[test]
    fn duplicate_list_fields_keep_first() {
        let t = tag();
        assert_eq!(
            eval(&[("If-None-Match", &t), ("If-None-Match", "\"x\"")]),
            NotModified
        );
        assert_eq!(eval(&[("If-Match", "\"x\""), ("If-Match", &t)]), Failed);
    }

    #[test]
    fn if_range() {
        let r = rep();
        let t = tag();
        assert!(if_range_allows(t.as_bytes(), &r));
        assert!(if_range_allows(format!(" {t} ").as_bytes(), &r));
        assert!(!if_range_allows(format!("W/{t}").as_bytes(), &r));
        assert!(!if_range_allows(b"\"other\"", &r));
        assert!(!if_range_allows(format!("{t}, {t}").as_bytes(), &r));
        assert!(if_range_allows(DATE.as_bytes(), &r));
        assert!(!if_range_allows(LATER.as_bytes(), &r));
        assert!(!if_range_allows(EARLIER.as_bytes(), &r));
        assert!(!if_range_allows(b"", &r));
        assert!(!if_range_allows(b"W", &r));
        assert!(!if_range_allows(b"garbage", &r));
        assert!(!if_range_allows(b"\"", &r));
    }

    #[test]
    fn list_parsing() {
        let e = b"\"b\"";
        assert!(list_matches(b"\"a\", W/\"b\" , \"c\"", e, Comparison::Weak));
        assert!(!list_matches(
            b"\"a\", W/\"b\" , \"c\"",
            e,
            Comparison::Strong
        ));
        assert!(list_matches(b"\"a\",\"b\"", e, Comparison::Strong));
        assert!(list_matches(b", ,\"b\",,", e, Comparison::Strong));
        assert!(!list_matches(b"", e, Comparison::Strong));
        assert!(!list_matches(b"\"b", e, Comparison::Strong));
        assert!(!list_matches(b"\"b\" \"b\"", e, Comparison::Strong));
        assert!(!list_matches(b"b", e, Comparison::Strong));
        assert!(!list_matches(b"w/\"b\"", e, Comparison::Weak));
        assert!(!list_matches(b"W/", e, Comparison::Weak));
        assert!(!list_matches(b"\"b\", \"a b\"", e, Comparison::Strong));
        assert!(!list_matches(b"\"b\", *", e, Comparison::Strong));
        // Commas are legal inside an opaque-tag.
        assert!(list_matches(b"\"x,y\", \"b\"", e, Comparison::Strong));
        assert!(list_matches(b"\"x,y\"", b"\"x,y\"", Comparison::Strong));
        assert!(list_matches(
            "\"é\"".as_bytes(),
            "\"é\"".as_bytes(),
            Comparison::Strong
        ));
    }

    proptest::proptest! {
        #[test]
        fn list_matching_never_panics(list in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
            let _ = list_matches(&list, b"\"b\"", Comparison::Weak);
            let _ = if_range_allows(&list, &rep());
        }
    }
}
