//! RFC 9530 integrity fields on downloads: which digest a client asks for
//! (`Want-Repr-Digest`, `Want-Content-Digest`) and how the answer is written
//! (`Repr-Digest: sha-256=:BASE64:`).
//!
//! Key decision: only `sha-256` and `sha-512` are offered (the RFC's active algorithms; `md5`
//! and `sha` are deprecated) and one digest is sent, the client's most preferred. A preference
//! field that does not parse is ignored as a whole (RFC 9651 §4.2: a failed parse discards
//! the field), as is a preference of 0 ("not acceptable").

use base64::Engine;

use super::trim_ows;

/// A digest algorithm offered for downloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestAlg {
    /// `sha-256`
    Sha256,
    /// `sha-512`
    Sha512,
}

impl DigestAlg {
    /// The RFC 9530 key.
    pub fn key(self) -> &'static str {
        match self {
            DigestAlg::Sha256 => "sha-256",
            DigestAlg::Sha512 => "sha-512",
        }
    }
}

/// The offered algorithm a `Want-*-Digest` value prefers most (ties go to `sha-256`, the
/// cheaper to check), or `None` when it prefers none of them or does not parse.
pub fn wanted(value: &[u8]) -> Option<DigestAlg> {
    let mut best: Option<(u8, DigestAlg)> = None;
    for member in value.split(|&b| b == b',') {
        let member = trim_ows(member);
        let (key, rest) = match member.iter().position(|&b| b == b'=') {
            Some(i) => (&member[..i], &member[i + 1..]),
            None => return None, // a bare key is `true`, not the integer this field holds
        };
        if !is_key(key) {
            return None;
        }
        // Parameters (`;a=b`) may follow the value; they say nothing here.
        let value = rest.split(|&b| b == b';').next().unwrap_or_default();
        let weight = match value {
            [d] if d.is_ascii_digit() => d - b'0',
            b"10" => 10,
            _ => return None,
        };
        let alg = match key {
            b"sha-256" => DigestAlg::Sha256,
            b"sha-512" => DigestAlg::Sha512,
            _ => continue,
        };
        if weight > 0 && best.is_none_or(|(w, _)| weight > w) {
            best = Some((weight, alg));
        }
    }
    best.map(|(_, alg)| alg)
}

/// Writes the field line `NAME: KEY=:BASE64:` for `digest`, made with `alg`.
pub fn write_field(out: &mut Vec<u8>, name: &str, alg: DigestAlg, digest: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(alg.key().as_bytes());
    out.extend_from_slice(b"=:");
    let start = out.len();
    out.resize(
        start + base64::encoded_len(digest.len(), true).unwrap_or(0),
        0,
    );
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(digest, &mut out[start..])
        .unwrap_or(0);
    out.truncate(start + written);
    out.extend_from_slice(b":\r\n");
}

/// A structured-field key (RFC 9651 §3.1.2): lowercase letter or `*`, then lowercase letters,
/// digits, `_ - . *`.
fn is_key(key: &[u8]) -> bool {
    match key.split_first() {
        Some((first, rest)) => {
            (first.is_ascii_lowercase() || *first == b'*')
                && rest
                    .iter()
                    .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.*".contains(&b))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_preferred_offered_algorithm_wins() {
        assert_eq!(wanted(b"sha-256=1"), Some(DigestAlg::Sha256));
        assert_eq!(wanted(b"sha-512=3, sha-256=10"), Some(DigestAlg::Sha256));
        assert_eq!(wanted(b"sha-256=3, sha-512=10"), Some(DigestAlg::Sha512));
        assert_eq!(wanted(b"sha-256=5,sha-512=5"), Some(DigestAlg::Sha256));
        assert_eq!(wanted(b"md5=10, sha-512=1"), Some(DigestAlg::Sha512));
        assert_eq!(
            wanted(b"unixsum=3;x=1, sha-512=2;p"),
            Some(DigestAlg::Sha512)
        );
    }

    #[test]
    fn zero_unknown_and_malformed_want_nothing() {
        assert_eq!(wanted(b"sha-256=0"), None);
        assert_eq!(wanted(b"md5=10, crc32c=3"), None);
        for bad in [
            &b""[..],
            b"sha-256",
            b"sha-256=11",
            b"sha-256=-1",
            b"SHA-256=1",
            b"sha-256=1.0",
            b"sha-256=1,,",
            b"sha-256=1, Bad=2",
        ] {
            assert_eq!(wanted(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn field_is_a_byte_sequence() {
        let mut out = Vec::new();
        write_field(&mut out, "Repr-Digest", DigestAlg::Sha256, &[0xff; 32]);
        assert_eq!(
            out,
            b"Repr-Digest: sha-256=://////////////////////////////////////////8=:\r\n"
        );
    }
}
