//! `Host` values and the authority of an absolute-form target: `uri-host [":" port]` as
//! RFC 3986 §3.2.2–3.2.3 writes it (RFC 9110 §7.2, RFC 9112 §3.2).
//!
//! A host is a bracketed IPv6 literal, or a reg-name (which covers IPv4 addresses):
//! unreserved characters, sub-delims and `%XX` escapes only. The port is digits, at most 65535.
//! Anything else (a bad literal such as `[::1`, `[zz]` or a zone ID, a port such as `:8x` or
//! `:99999`, userinfo, a path, spaces) is not an authority, and a request carrying it is
//! answered 400, as nginx does.

use std::net::Ipv6Addr;

/// A parsed authority.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Authority<'a> {
    /// The host as sent: a reg-name, an IPv4 address, or an IPv6 literal with its brackets.
    pub host: &'a [u8],
    /// The port, if one was given (an empty port, `host:`, gives none, as RFC 3986 allows).
    pub port: Option<u16>,
}

/// Parses `value` as `uri-host [":" port]`; `None` if it is not one. An empty value is an
/// empty host (RFC 9110 §7.2 has clients send `Host:` empty for a URI without authority).
pub fn parse(value: &[u8]) -> Option<Authority<'_>> {
    let (host, rest) = if value.first() == Some(&b'[') {
        let end = memchr::memchr(b']', value)?;
        let inside = std::str::from_utf8(&value[1..end]).ok()?;
        inside.parse::<Ipv6Addr>().ok()?;
        value.split_at(end + 1)
    } else {
        let end = memchr::memchr(b':', value).unwrap_or(value.len());
        let (host, rest) = value.split_at(end);
        reg_name(host).then_some((host, rest))?
    };
    let port = match rest.split_first() {
        None => None,
        Some((b':', digits)) => port(digits)?,
        Some(_) => return None,
    };
    Some(Authority { host, port })
}

/// Bytes a reg-name holds as they are (RFC 3986 §3.2.2: unreserved and sub-delims). A table
/// rather than a `match` per byte, which compiled to an indirect jump per byte.
const REG_NAME_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        b += 1;
    }
    table
};

/// Whether `name` is a reg-name: unreserved, sub-delims and well-formed `%XX` only.
fn reg_name(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        let b = name[i];
        if REG_NAME_BYTES[usize::from(b)] {
            i += 1;
        } else if b == b'%'
            && name
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
        {
            i += 3;
        } else {
            return false;
        }
    }
    true
}

/// The port `digits` name: `Some(None)` for an empty port, `None` if it is not a port.
fn port(digits: &[u8]) -> Option<Option<u16>> {
    if digits.is_empty() {
        return Some(None);
    }
    if digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u32 = digits.iter().fold(0, |n, &d| n * 10 + u32::from(d - b'0'));
    u16::try_from(n).ok().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 3986's reg-name, spelled out byte by byte: what the table must agree with.
    fn reg_name_by_the_grammar(name: &[u8]) -> bool {
        let mut i = 0;
        while i < name.len() {
            let b = name[i];
            if b == b'%' {
                match name.get(i + 1..i + 3) {
                    Some(h) if h.iter().all(u8::is_ascii_hexdigit) => i += 3,
                    _ => return false,
                }
            } else if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b) {
                i += 1;
            } else {
                return false;
            }
        }
        true
    }

    proptest! {
        #[test]
        fn reg_name_matches_the_grammar(name in proptest::collection::vec(any::<u8>(), 0..24)) {
            prop_assert_eq!(reg_name(&name), reg_name_by_the_grammar(&name));
        }

        #[test]
        fn reg_name_matches_the_grammar_on_likely_bytes(
            name in proptest::collection::vec(
                proptest::sample::select(b"aZ09-._~!%%fF:@ []/\\\x7f\x80".to_vec()), 0..24)
        ) {
            prop_assert_eq!(reg_name(&name), reg_name_by_the_grammar(&name));
        }
    }

    fn host_port(value: &str) -> Option<(&str, Option<u16>)> {
        parse(value.as_bytes()).map(|a| (std::str::from_utf8(a.host).unwrap(), a.port))
    }

    #[test]
    fn valid_authorities() {
        for (value, host, port) in [
            ("example.com", "example.com", None),
            ("example.com:8080", "example.com", Some(8080)),
            ("EXAMPLE.com:", "EXAMPLE.com", None),
            ("127.0.0.1:65535", "127.0.0.1", Some(65535)),
            ("[::1]", "[::1]", None),
            ("[2001:db8::1]:443", "[2001:db8::1]", Some(443)),
            ("[::ffff:10.0.0.1]", "[::ffff:10.0.0.1]", None),
            ("caf%C3%A9.example", "caf%C3%A9.example", None),
            ("a_b~c!$&'()*+,;=", "a_b~c!$&'()*+,;=", None),
            ("", "", None),
        ] {
            assert_eq!(host_port(value), Some((host, port)), "{value}");
        }
    }

    #[test]
    fn invalid_authorities() {
        for value in [
            "[::1",
            "[zz]",
            "[]",
            "[::1]x",
            "[::1]:8x",
            "[fe80::1%25eth0]",
            "host:8x",
            "host:99999",
            "host:123456",
            "host:-1",
            "a:b:c",
            "u@host",
            "a/b",
            "a b",
            "a\\b",
            "%zz.example",
            "a%2",
            "[v1.x]",
            "a?b",
            "a#b",
        ] {
            assert_eq!(host_port(value), None, "{value}");
        }
    }
}
