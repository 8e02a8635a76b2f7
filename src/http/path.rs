//! Request target → relative file path, and its canonical spelling.
//!
//! [`decode`] turns the path of an origin-form target into a normalised path relative to the
//! served root, ready for `openat2`. The key decision is to refuse rather than repair anything
//! that could name something other than what it appears to: a `..` segment (literal or
//! percent-encoded), an encoded slash or backslash, a NUL or a broken escape is a bad request,
//! never silently resolved. Only harmless redundancy (repeated `/`, `.` segments) is normalised.
//! The kernel's `RESOLVE_BENEATH` remains the real barrier; this is the first, cheap one.
//!
//! [`canonical_path`] is the one spelling of a path the rest of the server keys on: signed
//! links sign it, download counts merge by it, header rules match it. [`split_query`] is the
//! one place a target is cut into its path and its query.

use std::fmt;

/// Why a target was refused; every case is answered `400 Bad Request`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    /// The target does not start with `/` (asterisk, authority or absolute form, or empty).
    NotOriginForm,
    /// The target carries a `#` fragment, which clients must not send.
    Fragment,
    /// A `..` segment, literal or percent-encoded.
    Traversal,
    /// A percent-encoded `/` or `\` (`%2F`, `%5C`), which would hide a segment boundary.
    EncodedSeparator,
    /// A literal `\`.
    Backslash,
    /// A NUL byte, literal or `%00`.
    Nul,
    /// A `%` not followed by two hex digits.
    BadEscape,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotOriginForm => "target is not in origin form",
            PathError::Fragment => "target carries a fragment",
            PathError::Traversal => "target contains a `..` segment",
            PathError::EncodedSeparator => "target contains an encoded slash or backslash",
            PathError::Backslash => "target contains a backslash",
            PathError::Nul => "target contains a NUL byte",
            PathError::BadEscape => "target contains an invalid percent escape",
        })
    }
}

impl std::error::Error for PathError {}

/// What [`decode`] learnt about the path besides the path itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The target names a directory form: it ends with `/` (or `/.`), or is the root `/`.
    pub trailing_slash: bool,
    /// Some segment of the path starts with `.` (a dotfile or dot-directory).
    pub dotfile: bool,
}

/// Splits an origin-form `target` at its first `?` into the path and, if there is one, the
/// query (without the `?`): `/a?x=1` is `(/a, Some(x=1))`, `/a` is `(/a, None)`.
pub fn split_query(target: &[u8]) -> (&[u8], Option<&[u8]>) {
    match memchr::memchr(b'?', target) {
        Some(q) => (&target[..q], Some(&target[q + 1..])),
        None => (target, None),
    }
}

/// Decodes the path of `target` (`/path?query`) into `scratch` (cleared first) as a relative
/// path without leading or trailing slash: `a/b/c`, or `.` for the root itself. On error the
/// contents of `scratch` are unspecified.
pub fn decode(target: &[u8], scratch: &mut Vec<u8>) -> Result<Decoded, PathError> {
    scratch.clear();
    if memchr::memchr(b'#', target).is_some() {
        return Err(PathError::Fragment);
    }
    let Some((b'/', rest)) = split_query(target).0.split_first() else {
        return Err(PathError::NotOriginForm);
    };
    percent_decode(rest, scratch)?;

    let last = match memchr::memrchr(b'/', scratch) {
        Some(p) => &scratch[p + 1..],
        None => &scratch[..],
    };
    let trailing_slash = last.is_empty() || last == b".";

    // Compact segments in place: the output never overtakes the input.
    let len = scratch.len();
    let (mut r, mut w) = (0, 0);
    let mut dotfile = false;
    while r < len {
        let end = memchr::memchr(b'/', &scratch[r..len]).map_or(len, |p| r + p);
        match &scratch[r..end] {
            b"" | b"." => {}
            b".." => return Err(PathError::Traversal),
            seg => {
                dotfile |= seg[0] == b'.';
                if w > 0 {
                    scratch[w] = b'/';
                    w += 1;
                }
                scratch.copy_within(r..end, w);
                w += end - r;
            }
        }
        r = end + 1;
    }
    scratch.truncate(w);
    if scratch.is_empty() {
        scratch.push(b'.');
    }
    Ok(Decoded {
        trailing_slash,
        dotfile,
    })
}

/// Writes the canonical form of `target`'s path into `out`: `/` followed by the decoded,
/// normalised path below the root (`/a/b.txt`; `/` for the root), so that no spelling of a
/// URL (`//a/./b`, `%61`) differs from another that names the same file. Refuses what
/// [`decode`] refuses; `out` is then unspecified.
pub fn canonical_path(target: &[u8], out: &mut Vec<u8>) -> Result<Decoded, PathError> {
    let decoded = decode(target, out)?;
    if out == b"." {
        out.clear();
    }
    out.insert(0, b'/');
    Ok(decoded)
}

/// Percent-decodes `raw` onto the end of `out`, refusing separators and NULs hidden in escapes.
fn percent_decode(raw: &[u8], out: &mut Vec<u8>) -> Result<(), PathError> {
    let mut i = 0;
    while let Some(&c) = raw.get(i) {
        let b = match c {
            b'%' => {
                let hi = raw.get(i + 1).copied().and_then(hex);
                let lo = raw.get(i + 2).copied().and_then(hex);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(PathError::BadEscape);
                };
                i += 3;
                match hi << 4 | lo {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    b => b,
                }
            }
            b'\\' => return Err(PathError::Backslash),
            _ => {
                i += 1;
                c
            }
        };
        if b == 0 {
            return Err(PathError::Nul);
        }
        out.push(b);
    }
    Ok(())
}

/// Value of one hex digit.
fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(target: &str) -> (String, Decoded) {
        let mut s = Vec::new();
        let d = decode(target.as_bytes(), &mut s).unwrap_or_else(|e| panic!("{target}: {e}"));
        (String::from_utf8(s).expect("utf-8"), d)
    }

    fn err(target: &[u8]) -> PathError {
        let mut s = Vec::new();
        match decode(target, &mut s) {
            Ok(_) => panic!("{:?} accepted as {:?}", target, String::from_utf8_lossy(&s)),
            Err(e) => e,
        }
    }

    #[test]
    fn traversal_is_refused() {
        for t in [
            "/..",
            "/../x",
            "/a/../../x",
            "/a/..",
            "/a/../b",
            "/%2e%2e/x",
            "/.%2e/x",
            "/%2E./x",
            "/%2E%2E",
            "/a/%2e%2e?x",
        ] {
            assert_eq!(err(t.as_bytes()), PathError::Traversal, "{t}");
        }
    }

    #[test]
    fn hidden_separators_are_refused() {
        assert_eq!(err(b"/%2E%2E%2fetc"), PathError::EncodedSeparator);
        assert_eq!(err(b"/a%2fb"), PathError::EncodedSeparator);
        assert_eq!(err(b"/a%2Fb"), PathError::EncodedSeparator);
        assert_eq!(err(b"/a%5cb"), PathError::EncodedSeparator);
        assert_eq!(err(b"/a%5Cb"), PathError::EncodedSeparator);
        assert_eq!(err(b"/a\\b"), PathError::Backslash);
        assert_eq!(err(b"/..\\x"), PathError::Backslash);
    }

    #[test]
    fn nul_and_bad_escapes_are_refused() {
        assert_eq!(err(b"/a%00b"), PathError::Nul);
        assert_eq!(err(b"/a\0b"), PathError::Nul);
        assert_eq!(err(b"/%zz"), PathError::BadEscape);
        assert_eq!(err(b"/%4"), PathError::BadEscape);
        assert_eq!(err(b"/%"), PathError::BadEscape);
        assert_eq!(err(b"/%4g"), PathError::BadEscape);
        assert_eq!(err(b"/%%41"), PathError::BadEscape);
    }

    #[test]
    fn non_origin_forms_are_refused() {
        assert_eq!(err(b""), PathError::NotOriginForm);
        assert_eq!(err(b"*"), PathError::NotOriginForm);
        assert_eq!(err(b"a/b"), PathError::NotOriginForm);
        assert_eq!(err(b"http://host/a"), PathError::NotOriginForm);
        assert_eq!(err(b"?a"), PathError::NotOriginForm);
        assert_eq!(err(b"/a#frag"), PathError::Fragment);
        assert_eq!(err(b"/a?q#frag"), PathError::Fragment);
    }

    #[test]
    fn normalises_redundancy() {
        let plain = Decoded {
            trailing_slash: false,
            dotfile: false,
        };
        let dir = Decoded {
            trailing_slash: true,
            dotfile: false,
        };
        assert_eq!(ok("//a///b/./c"), ("a/b/c".into(), plain));
        assert_eq!(ok("/a/b/"), ("a/b".into(), dir));
        assert_eq!(ok("/a/b/."), ("a/b".into(), dir));
        assert_eq!(ok("/a/b//"), ("a/b".into(), dir));
        assert_eq!(ok("/./a"), ("a".into(), plain));
        assert_eq!(ok("/%2e/a"), ("a".into(), plain));
    }

    #[test]
    fn root_is_dot() {
        let dir = Decoded {
            trailing_slash: true,
            dotfile: false,
        };
        for t in ["/", "//", "/.", "/./", "/?x=1", "/%2e"] {
            assert_eq!(ok(t), (".".into(), dir), "{t}");
        }
    }

    #[test]
    fn query_is_dropped_and_not_decoded() {
        assert_eq!(ok("/a.txt?x=%zz/../..").0, "a.txt");
        assert_eq!(ok("/a.txt?").0, "a.txt");
    }

    #[test]
    fn escapes_are_decoded() {
        assert_eq!(ok("/%C3%A9t%c3%a9.txt").0, "été.txt");
        assert_eq!(ok("/a%20b/c%20d.txt").0, "a b/c d.txt");
        assert_eq!(ok("/100%25.txt").0, "100%.txt");
        assert_eq!(ok("/%2541").0, "%41");
        assert_eq!(ok("/a+b").0, "a+b");
    }

    #[test]
    fn dotfiles_are_flagged() {
        assert!(ok("/.env").1.dotfile);
        assert!(ok("/a/.git/config").1.dotfile);
        assert!(ok("/%2egit/").1.dotfile);
        assert!(ok("/.../x").1.dotfile);
        assert!(!ok("/a.b/c.d").1.dotfile);
        assert!(!ok("/./a").1.dotfile);
    }

    #[test]
    fn scratch_is_reused() {
        let mut s = b"garbage".to_vec();
        decode(b"/x", &mut s).expect("valid");
        assert_eq!(s, b"x");
        assert!(decode(b"/../x", &mut s).is_err());
        decode(b"/y/z", &mut s).expect("valid");
        assert_eq!(s, b"y/z");
    }

    proptest! {
        #[test]
        fn output_is_always_a_clean_relative_path(target in proptest::collection::vec(
            prop_oneof![
                Just(b'/'), Just(b'.'), Just(b'%'), Just(b'2'), Just(b'e'), Just(b'f'),
                Just(b'?'), Just(b'\\'), Just(b'a'), any::<u8>()
            ],
            0..24,
        )) {
            let mut s = Vec::new();
            if decode(&target, &mut s).is_ok() {
                prop_assert!(!s.is_empty());
                prop_assert!(!s.contains(&0) && !s.contains(&b'\\'));
                if s != b"." {
                    for seg in s.split(|&b| b == b'/') {
                        prop_assert!(!seg.is_empty() && seg != b"." && seg != b"..");
                    }
                }
            }
        }
    }

    #[test]
    fn query_split() {
        assert_eq!(split_query(b"/a?x=1?y"), (&b"/a"[..], Some(&b"x=1?y"[..])));
        assert_eq!(split_query(b"/a?"), (&b"/a"[..], Some(&b""[..])));
        assert_eq!(split_query(b"/a"), (&b"/a"[..], None));
    }

    #[test]
    fn canonical_paths() {
        let mut out = Vec::new();
        for (target, want) in [
            ("/", "/"),
            ("/a//./b/", "/a/b"),
            ("/%61/b?x=1", "/a/b"),
            ("/caf%C3%A9.txt", "/caf\u{e9}.txt"),
            ("//a/./b%2Ec?q", "/a/b.c"),
        ] {
            canonical_path(target.as_bytes(), &mut out).unwrap();
            assert_eq!(out, want.as_bytes(), "{target}");
        }
        assert!(canonical_path(b"/a/../b", &mut out).is_err());
        assert!(canonical_path(b"/../x", &mut out).is_err());
        assert!(canonical_path(b"x", &mut out).is_err());
    }
}
