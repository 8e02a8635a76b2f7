//! `Range` request header evaluation (RFC 9110 §14.1–§14.2).
//!
//! Design: one pass over the header both validates it and resolves each range-spec against
//! the file length, writing satisfiable ranges into a caller-owned vector that is then
//! sorted and coalesced in place (no allocation). Anything doubtful degrades to
//! [`RangeOutcome::Ignore`], i.e. a plain 200 — the RFC lets a server ignore Range, and
//! that is always safe — while a well-formed header that matches nothing gets a 416.
//! Like nginx, we refuse to amplify: too many ranges, or ranges that add up to more than
//! the file (overlaps asking for the same bytes many times), are ignored.

use super::{parse_decimal, trim_ows};

/// A satisfiable byte range, both ends inclusive as in `Content-Range: bytes first-last/len`
/// (the form it is written in most often); `first <= last < file length` always holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    /// Offset of the first byte.
    pub first: u64,
    /// Offset of the last byte (inclusive).
    pub last: u64,
}

impl ByteRange {
    /// Number of bytes in the range (never zero).
    pub fn size(self) -> u64 {
        self.last - self.first + 1
    }
}

/// What to do with a `Range` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeOutcome {
    /// Serve the whole file with 200: the header is malformed, uses a unit other than
    /// `bytes`, has more than `max_ranges` ranges, asks for more bytes in total than the
    /// file has, or (zero-length file) holds a suffix range that would be satisfiable but
    /// has no `Content-Range` form.
    Ignore,
    /// Well-formed, but no range overlaps the file: answer 416.
    Unsatisfiable,
    /// The output vector holds at least one range, sorted and coalesced: answer 206.
    Satisfiable,
}

/// Evaluates the `Range` header value `header` against a file of `len` bytes.
///
/// `out` is cleared first and, on [`RangeOutcome::Satisfiable`], holds the ranges sorted by
/// offset with overlapping or adjacent ones merged, so no byte is sent twice and parts are
/// in file order; otherwise it is left empty.
///
/// Zero-length files: `bytes=-N` (N > 0) is satisfiable per RFC 9110 §14.1.1 but cannot be
/// expressed as a 206, so such a header is ignored (200 with an empty body); every other
/// range on an empty file is unsatisfiable.
pub fn parse(header: &[u8], len: u64, max_ranges: usize, out: &mut Vec<ByteRange>) -> RangeOutcome {
    out.clear();
    let outcome = resolve(header, len, max_ranges, out);
    if outcome == RangeOutcome::Satisfiable {
        coalesce(out);
    } else {
        out.clear();
    }
    outcome
}

/// A syntactically valid range-spec, not yet resolved against the length.
enum Spec {
    /// `first-last` or `first-` (open end).
    Span(u64, Option<u64>),
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

/// Validates the header and pushes each satisfiable range, unsorted, into `out`.
fn resolve(header: &[u8], len: u64, max_ranges: usize, out: &mut Vec<ByteRange>) -> RangeOutcome {
    let Some(set) = strip_unit(header) else {
        return RangeOutcome::Ignore;
    };
    let mut count = 0usize;
    let mut total = 0u64;
    let mut empty_file_suffix = false;
    // Empty list elements are allowed and skipped (RFC 9110 §5.6.1.2).
    for elem in set
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
    {
        count += 1;
        if count > max_ranges {
            return RangeOutcome::Ignore;
        }
        let range = match parse_spec(elem) {
            None => return RangeOutcome::Ignore,
            Some(Spec::Span(first, _)) if first >= len => continue,
            Some(Spec::Span(first, last)) => {
                let last = last.map_or(len - 1, |l| l.min(len - 1));
                ByteRange { first, last }
            }
            Some(Spec::Suffix(0)) => continue,
            Some(Spec::Suffix(_)) if len == 0 => {
                empty_file_suffix = true;
                continue;
            }
            Some(Spec::Suffix(n)) => ByteRange {
                first: len - n.min(len),
                last: len - 1,
            },
        };
        // Each size is at most `len`, but two of them may not fit in a u64.
        match total.checked_add(range.size()) {
            Some(sum) if sum <= len => total = sum,
            _ => return RangeOutcome::Ignore,
        }
        out.push(range);
    }
    if count == 0 || empty_file_suffix {
        RangeOutcome::Ignore
    } else if out.is_empty() {
        RangeOutcome::Unsatisfiable
    } else {
        RangeOutcome::Satisfiable
    }
}

/// Strips the case-insensitive `bytes=` unit prefix.
fn strip_unit(header: &[u8]) -> Option<&[u8]> {
    let (unit, rest) = header.split_at_checked(6)?;
    (unit[..5].eq_ignore_ascii_case(b"bytes") && unit[5] == b'=').then_some(rest)
}

/// Parses one range-spec (`a-b`, `a-`, `-n`); `None` if malformed, reversed, or overflowing.
fn parse_spec(elem: &[u8]) -> Option<Spec> {
    let dash = memchr::memchr(b'-', elem)?;
    let (first, last) = (&elem[..dash], &elem[dash + 1..]);
    if first.is_empty() {
        return parse_decimal(last).map(Spec::Suffix);
    }
    let first = parse_decimal(first)?;
    if last.is_empty() {
        return Some(Spec::Span(first, None));
    }
    let last = parse_decimal(last)?;
    (last >= first).then_some(Spec::Span(first, Some(last)))
}

/// Sorts by offset and merges overlapping or adjacent ranges, in place.
fn coalesce(ranges: &mut Vec<ByteRange>) {
    ranges.sort_unstable_by_key(|r| r.first);
    let mut kept = 0;
    for i in 1..ranges.len() {
        let next = ranges[i];
        // `last` is below the file length, so `last + 1` cannot overflow.
        if next.first <= ranges[kept].last + 1 {
            ranges[kept].last = ranges[kept].last.max(next.last);
        } else {
            kept += 1;
            ranges[kept] = next;
        }
    }
    ranges.truncate(kept + 1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(header: &str, len: u64) -> (RangeOutcome, Vec<(u64, u64)>) {
        let mut out = vec![ByteRange { first: 9, last: 9 }];
        let outcome = parse(header.as_bytes(), len, 16, &mut out);
        (outcome, out.iter().map(|r| (r.first, r.last)).collect())
    }

    fn sat(header: &str, len: u64) -> Vec<(u64, u64)> {
        let (outcome, ranges) = run(header, len);
        assert_eq!(outcome, RangeOutcome::Satisfiable, "{header:?} len {len}");
        ranges
    }

    fn outcome(header: &str, len: u64) -> RangeOutcome {
        let (outcome, ranges) = run(header, len);
        if outcome != RangeOutcome::Satisfiable {
            assert!(ranges.is_empty());
        }
        outcome
    }

    #[test]
    fn basic_forms() {
        assert_eq!(sat("bytes=0-499", 1000), [(0, 499)]);
        assert_eq!(sat("bytes=500-", 1000), [(500, 999)]);
        assert_eq!(sat("bytes=-200", 1000), [(800, 999)]);
        assert_eq!(sat("bytes=5-5", 1000), [(5, 5)]);
        assert_eq!(sat("BYTES=0-0", 10), [(0, 0)]);
        assert_eq!(sat("Bytes=0-0", 10), [(0, 0)]);
    }

    #[test]
    fn clamping() {
        assert_eq!(sat("bytes=0-99999", 1000), [(0, 999)]);
        assert_eq!(sat("bytes=-5000", 1000), [(0, 999)]);
        assert_eq!(sat("bytes=999-", 1000), [(999, 999)]);
        assert_eq!(sat("bytes=0-18446744073709551615", 10), [(0, 9)]);
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(outcome("bytes=1000-", 1000), RangeOutcome::Unsatisfiable);
        assert_eq!(
            outcome("bytes=1000-2000", 1000),
            RangeOutcome::Unsatisfiable
        );
        assert_eq!(outcome("bytes=-0", 1000), RangeOutcome::Unsatisfiable);
        assert_eq!(
            outcome("bytes=2000-3000, 1500-", 1000),
            RangeOutcome::Unsatisfiable
        );
        assert_eq!(outcome("bytes=0-0", 0), RangeOutcome::Unsatisfiable);
        assert_eq!(outcome("bytes=0-", 0), RangeOutcome::Unsatisfiable);
        assert_eq!(outcome("bytes=-0", 0), RangeOutcome::Unsatisfiable);
        // Unsatisfiable parts are dropped when another part is satisfiable.
        assert_eq!(sat("bytes=2000-3000, 0-1", 1000), [(0, 1)]);
    }

    #[test]
    fn empty_file_suffix_is_ignored() {
        assert_eq!(outcome("bytes=-5", 0), RangeOutcome::Ignore);
        assert_eq!(outcome("bytes=0-1, -5", 0), RangeOutcome::Ignore);
    }

    #[test]
    fn invalid_is_ignored() {
        for h in [
            "",
            "bytes",
            "bytes=",
            "bytes= ",
            "bytes=,",
            "bytes=-",
            "bytes=--1",
            "bytes=5-4",
            "bytes=0-1-2",
            "bytes=a-b",
            "bytes=0 -1",
            "bytes=0- 1",
            "bytes=+1-2",
            "bytes=1-+2",
            "bytes = 0-1",
            "bytes=0-1,5-4",
            "bytes=0-1;2-3",
            "items=0-1",
            "byte=0-1",
            "bytes=18446744073709551616-",
            "bytes=-18446744073709551616",
            "bytes=0-18446744073709551616",
            "bytes=0x10-20",
            "bytes=1e3-",
        ] {
            assert_eq!(outcome(h, 1000), RangeOutcome::Ignore, "{h:?}");
        }
    }

    #[test]
    fn whitespace_and_empty_elements() {
        assert_eq!(sat("bytes=0-1 , 5-6", 10), [(0, 1), (5, 6)]);
        assert_eq!(sat("bytes=\t0-1,\t5-6\t", 10), [(0, 1), (5, 6)]);
        assert_eq!(sat("bytes=,0-1,,5-6,", 10), [(0, 1), (5, 6)]);
        assert_eq!(sat("bytes= 0-1", 10), [(0, 1)]);
    }

    #[test]
    fn coalescing_and_sorting() {
        assert_eq!(sat("bytes=5-6,0-1", 100), [(0, 1), (5, 6)]);
        assert_eq!(sat("bytes=0-1,2-3", 100), [(0, 3)]);
        assert_eq!(sat("bytes=0-5,3-8", 100), [(0, 8)]);
        assert_eq!(sat("bytes=10-20,0-4,5-9,30-31", 100), [(0, 20), (30, 31)]);
        assert_eq!(sat("bytes=0-9,2-3", 100), [(0, 9)]);
        assert_eq!(sat("bytes=-10,0-9", 100), [(0, 9), (90, 99)]);
        assert_eq!(sat("bytes=0-49,-50", 100), [(0, 99)]);
    }

    #[test]
    fn max_ranges() {
        let mut out = Vec::new();
        let h = b"bytes=0-0,2-2,4-4";
        assert_eq!(parse(h, 100, 3, &mut out), RangeOutcome::Satisfiable);
        assert_eq!(out.len(), 3);
        assert_eq!(parse(h, 100, 2, &mut out), RangeOutcome::Ignore);
        assert!(out.is_empty());
        assert_eq!(parse(b"bytes=0-0", 100, 0, &mut out), RangeOutcome::Ignore);
        // Counted before coalescing and including unsatisfiable specs.
        assert_eq!(
            parse(b"bytes=0-0,1-1,2-2", 100, 2, &mut out),
            RangeOutcome::Ignore
        );
        assert_eq!(
            parse(b"bytes=0-0,500-,600-", 100, 2, &mut out),
            RangeOutcome::Ignore
        );
    }

    #[test]
    fn amplification_is_ignored() {
        assert_eq!(outcome("bytes=0-,0-", 1000), RangeOutcome::Ignore);
        assert_eq!(outcome("bytes=0-599,400-999", 1000), RangeOutcome::Ignore);
        assert_eq!(outcome("bytes=-1000,0-0", 1000), RangeOutcome::Ignore);
        assert_eq!(outcome("bytes=0-,0-", u64::MAX), RangeOutcome::Ignore);
        assert_eq!(outcome("bytes=1-,-5", u64::MAX), RangeOutcome::Ignore);
        // Exactly the file length in total is fine.
        assert_eq!(sat("bytes=0-499,500-999", 1000), [(0, 999)]);
        assert_eq!(sat("bytes=0-499,250-499", 1000), [(0, 499)]);
    }

    #[test]
    fn byte_range_size() {
        assert_eq!(ByteRange { first: 3, last: 3 }.size(), 1);
        let widest = ByteRange {
            first: 0,
            last: u64::MAX - 1,
        };
        assert_eq!(widest.size(), u64::MAX);
    }

    /// A generated range-spec: (kind, a, b) rendered as `a-b`, `a-` or `-a`.
    fn spec_strategy() -> impl Strategy<Value = (u8, u64, u64)> {
        (0u8..3, 0u64..70, 0u64..70)
    }

    fn render(specs: &[(u8, u64, u64)], ws: &[bool]) -> String {
        let mut h = String::from("bytes=");
        for (i, &(kind, a, b)) in specs.iter().enumerate() {
            if i > 0 {
                h.push(',');
                if ws.get(i).copied().unwrap_or(false) {
                    h.push(' ');
                }
            }
            match kind {
                0 => h += &format!("{}-{}", a.min(b), a.max(b)),
                1 => h += &format!("{a}-"),
                _ => h += &format!("-{a}"),
            }
        }
        h
    }

    /// Brute-force model: the byte set each spec selects in a file of `len` bytes.
    fn model_bytes(kind: u8, a: u64, b: u64, len: u64) -> Vec<u64> {
        let (lo, hi) = match kind {
            0 => (a.min(b), a.max(b) + 1),
            1 => (a, u64::MAX),
            _ => (len.saturating_sub(a), len),
        };
        (0..len).filter(|&i| i >= lo && i < hi).collect()
    }

    proptest! {
        #[test]
        fn matches_brute_force_model(
            specs in proptest::collection::vec(spec_strategy(), 1..6),
            ws in proptest::collection::vec(any::<bool>(), 6),
            len in 0u64..60,
            max_ranges in 0usize..7,
        ) {
            let header = render(&specs, &ws);
            let mut out = Vec::new();
            let outcome = parse(header.as_bytes(), len, max_ranges, &mut out);

            let per_spec: Vec<Vec<u64>> =
                specs.iter().map(|&(k, a, b)| model_bytes(k, a, b, len)).collect();
            let total: usize = per_spec.iter().map(Vec::len).sum();
            let empty_suffix = len == 0 && specs.iter().any(|&(k, a, _)| k == 2 && a > 0);
            let expected = if specs.len() > max_ranges || total as u64 > len || empty_suffix {
                RangeOutcome::Ignore
            } else if total == 0 {
                RangeOutcome::Unsatisfiable
            } else {
                RangeOutcome::Satisfiable
            };
            prop_assert_eq!(outcome, expected, "{}", header);

            if outcome == RangeOutcome::Satisfiable {
                for r in &out {
                    prop_assert!(r.first <= r.last && r.last < len);
                }
                for w in out.windows(2) {
                    // Sorted, non-overlapping and non-adjacent.
                    prop_assert!(w[0].last + 1 < w[1].first);
                }
                let mut union: Vec<u64> = per_spec.concat();
                union.sort_unstable();
                union.dedup();
                let covered: Vec<u64> = out.iter().flat_map(|r| r.first..=r.last).collect();
                prop_assert_eq!(covered, union);
            } else {
                prop_assert!(out.is_empty());
            }
        }

        #[test]
        fn never_panics(header in proptest::collection::vec(any::<u8>(), 0..40), len in any::<u64>()) {
            let mut out = Vec::new();
            let outcome = parse(&header, len, 8, &mut out);
            prop_assert_eq!(outcome == RangeOutcome::Satisfiable, !out.is_empty());
            for r in &out {
                prop_assert!(r.first <= r.last && r.last < len);
            }
        }

        #[test]
        fn never_panics_on_range_like_input(
            header in "(?i:bytes)=[0-9, \t-]{0,30}",
            len in prop_oneof![Just(0u64), Just(u64::MAX), 0u64..100],
        ) {
            let mut out = Vec::new();
            let outcome = parse(header.as_bytes(), len, 8, &mut out);
            prop_assert_eq!(outcome == RangeOutcome::Satisfiable, !out.is_empty());
            for r in &out {
                prop_assert!(r.first <= r.last && r.last < len);
            }
        }
    }
}
