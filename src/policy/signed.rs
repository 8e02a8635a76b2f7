//! Signed expiring URLs, in the spirit of nginx's `secure_link`: a link carries its expiry time,
//! optionally a rate for its download, and an HMAC-SHA256 over both and the path, so that
//! links can be handed out without the server keeping any state.
//!
//! Key decision, the signed message: `EXPIRES "\n" RATE "\n" PATH`, where `EXPIRES` is the
//! expiry in Unix seconds and `RATE` the rate in bytes per second, both in canonical decimal
//! (`RATE` empty when the link has none), and `PATH` is the decoded request path, raw bytes to
//! the end. The two numbers cannot contain a newline and the path comes last, so every message
//! has one reading; a path with a newline in it cannot pose as another field. The signature is
//! the MAC in unpadded base64url (43 characters). A link can be made in a shell with
//! `printf '%s\n%s\n%s' "$expires" "$rate" "$path" | openssl dgst -sha256 -hmac "$secret"
//! -binary | basenc --base64url | tr -d =`.
//!
//! Verification allocates nothing: the query is scanned in place, the keyed MAC state is
//! cloned from [`Secret`], and the comparison is constant-time (`Mac::verify_slice`).
//!
//! [`SecureLink`] applies this to the part of the tree under `--secure-link-prefix`. The path
//! it signs and checks is the target's canonical path ([`canonical_path`]): percent-decoded
//! and normalised exactly as the file layer resolves it, so that no spelling of a URL
//! (`//a/./b`, `%61`) reaches a protected file without a signature for that file.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::size::parse_rate;
use crate::http::parse_decimal;
use crate::http::path::{canonical_path, split_query};

/// Length in bytes of an HMAC-SHA256 tag.
const TAG_LEN: usize = 32;

/// Length of the tag in unpadded base64.
const SIG_LEN: usize = 43;

/// A signing key, with the HMAC key schedule done once.
#[derive(Clone)]
pub struct Secret {
    mac: Hmac<Sha256>,
}

impl Secret {
    /// A key from secret bytes; empty secrets are refused (32 random bytes are recommended).
    pub fn new(secret: &[u8]) -> Result<Secret, String> {
        if secret.is_empty() {
            return Err("the signing secret is empty".into());
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret)
            .map_err(|_| String::from("unusable signing secret"))?;
        Ok(Secret { mac })
    }

    /// The MAC state after absorbing the message for these fields.
    fn message(
        &self,
        path: &[u8],
        expires: u64,
        rate: Option<u64>,
        method: Option<&[u8]>,
    ) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        let mut digits = itoa::Buffer::new();
        mac.update(digits.format(expires).as_bytes());
        mac.update(b"\n");
        if let Some(rate) = rate {
            mac.update(digits.format(rate).as_bytes());
        }
        mac.update(b"\n");
        mac.update(path);
        // A link signed for a method covers it too (after the path, so links without one
        // keep their signatures, and neither kind can pass for the other).
        if let Some(method) = method {
            mac.update(b"\n");
            mac.update(method);
        }
        mac
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The outcome of checking a request against its signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Authentic and not expired; serve it, paced at `rate` bytes per second if given.
    Valid {
        /// Rate the link was signed with.
        rate: Option<u64>,
        /// The method the link was signed for (`method=`), if any: an upload needs one.
        method: Option<Method>,
    },
    /// Signature missing, malformed or wrong, or parameters malformed or repeated: 403.
    Forbidden,
    /// Authentic but past its expiry time: 410.
    Expired,
}

/// Checks a request's decoded `path` and raw `query` (without the `?`) at `now_unix`.
///
/// The query must hold `expires=UNIX` and `sig=...` and may hold `rate=R` (digits, or
/// [`parse_rate`] syntax such as `2m`; the signature covers its value in bytes per second),
/// each once, in any order, not percent-encoded; other parameters are ignored. A link is valid
/// up to and including its expiry second, like nginx's. Expiry is only reported for authentic
/// links, so a forged one learns nothing.
pub fn verify(secret: &Secret, path: &[u8], query: &[u8], now_unix: u64) -> Verdict {
    let (mut expires, mut sig, mut rate, mut method) = (None, None, None, None);
    for param in query.split(|&b| b == b'&') {
        let (name, value) = match param.iter().position(|&b| b == b'=') {
            Some(i) => (&param[..i], Some(&param[i + 1..])),
            None => (param, None),
        };
        let slot = match name {
            b"expires" => &mut expires,
            b"sig" => &mut sig,
            b"rate" => &mut rate,
            b"method" => &mut method,
            _ => continue,
        };
        if slot.is_some() {
            return Verdict::Forbidden;
        }
        match value {
            Some(v) => *slot = Some(v),
            None => return Verdict::Forbidden,
        }
    }
    let (Some(expires), Some(sig)) = (expires, sig) else {
        return Verdict::Forbidden;
    };
    let Some(expires) = parse_decimal(expires) else {
        return Verdict::Forbidden;
    };
    let rate = match rate.map(|r| std::str::from_utf8(r).ok().map(parse_rate)) {
        None => None,
        Some(Some(Ok(r))) => Some(r),
        Some(_) => return Verdict::Forbidden,
    };
    let method = match method.map(Method::new) {
        None => None,
        Some(Some(m)) => Some(m),
        Some(None) => return Verdict::Forbidden,
    };
    let mut tag = [0u8; TAG_LEN + 3];
    if sig.len() != SIG_LEN || URL_SAFE_NO_PAD.decode_slice(sig, &mut tag) != Ok(TAG_LEN) {
        return Verdict::Forbidden;
    }
    if secret
        .message(path, expires, rate, method.as_ref().map(Method::as_bytes))
        .verify_slice(&tag[..TAG_LEN])
        .is_err()
    {
        return Verdict::Forbidden;
    }
    if now_unix > expires {
        return Verdict::Expired;
    }
    Verdict::Valid { rate, method }
}

/// The method a link is signed for: an upper-case token of at most 16 characters (`PUT`,
/// `POST`, `PATCH`, or [`Method::UPLOAD`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Method {
    bytes: [u8; 16],
    len: u8,
}

impl Method {
    /// The pseudo-method of links to an upload resource (tus or the IETF draft): `HEAD`,
    /// `PATCH` and `DELETE` on that one resource. The server signs these itself, in the
    /// `Location` of an upload created through a signed link.
    pub const UPLOAD: &'static str = "UPLOAD";

    /// `name` as a method, if it is an upper-case token of at most 16 characters.
    pub fn new(name: &[u8]) -> Option<Method> {
        if name.is_empty() || name.len() > 16 || !name.iter().all(u8::is_ascii_uppercase) {
            return None;
        }
        let mut bytes = [0; 16];
        bytes[..name.len()].copy_from_slice(name);
        Some(Method {
            bytes,
            len: name.len() as u8,
        })
    }

    /// The method's name.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Signs `path` (decoded, as [`verify`] will see it) until `expires_unix`, optionally with a
/// rate, and returns the query string to append after `?`: `expires=E[&rate=R]&sig=S`.
pub fn sign(
    secret: &Secret,
    path: &[u8],
    expires_unix: u64,
    rate: Option<u64>,
    method: Option<Method>,
) -> String {
    let tag = secret
        .message(
            path,
            expires_unix,
            rate,
            method.as_ref().map(Method::as_bytes),
        )
        .finalize()
        .into_bytes();
    let sig = URL_SAFE_NO_PAD.encode(tag);
    let mut q = format!("expires={expires_unix}");
    if let Some(r) = rate {
        q.push_str(&format!("&rate={r}"));
    }
    if let Some(m) = method {
        q.push_str("&method=");
        q.push_str(&String::from_utf8_lossy(m.as_bytes()));
    }
    q.push_str(&format!("&sig={sig}"));
    q
}

/// Bytes left as they are when a signed path is written into a URL.
const PATH_SAFE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The part of the tree reachable only through signed links (nginx `secure_link` in a
/// `location`).
#[derive(Clone, Debug)]
pub struct SecureLink {
    secret: Secret,
    /// Canonical path of the protected directory (`/` protects everything).
    prefix: Vec<u8>,
}

impl SecureLink {
    /// Protects everything under `prefix` (a URL path such as `/downloads`) with `secret`.
    pub fn new(secret: Secret, prefix: &str) -> Result<SecureLink, String> {
        let mut canonical = Vec::new();
        canonical_path(prefix.as_bytes(), &mut canonical)
            .map_err(|e| format!("secure link prefix {prefix:?}: {e}"))?;
        Ok(SecureLink {
            secret,
            prefix: canonical,
        })
    }

    /// Judges a request for `target` (origin form, query included) at `now_unix`, using
    /// `scratch` for its canonical path: `None` when the target is outside the protected part
    /// (or not a valid path, which the file layer refuses anyway).
    pub fn check(&self, target: &[u8], now_unix: u64, scratch: &mut Vec<u8>) -> Option<Verdict> {
        canonical_path(target, scratch).ok()?;
        if !self.covers(scratch) {
            return None;
        }
        let query = split_query(target).1.unwrap_or_default();
        Some(verify(&self.secret, scratch, query, now_unix))
    }

    /// Whether a canonical path lies in the protected part: the prefix itself or below it.
    fn covers(&self, path: &[u8]) -> bool {
        self.prefix == b"/"
            || path
                .strip_prefix(&self.prefix[..])
                .is_some_and(|rest| rest.is_empty() || rest[0] == b'/')
    }

    /// A signed URL (path and query) for `path`, valid until `expires_unix`, paced at `rate`
    /// if given. `path` is read like a request target: it may be percent-encoded.
    pub fn sign_url(
        &self,
        path: &str,
        expires_unix: u64,
        rate: Option<u64>,
        method: Option<Method>,
    ) -> Result<String, String> {
        let mut canonical = Vec::new();
        canonical_path(path.as_bytes(), &mut canonical).map_err(|e| format!("{path:?}: {e}"))?;
        // A link for a method (an upload) is checked by the uploads, wherever they are.
        if method.is_none() && !self.covers(&canonical) {
            let prefix = String::from_utf8_lossy(&self.prefix);
            return Err(format!(
                "{path:?} is not under the secure link prefix {prefix}"
            ));
        }
        let text = String::from_utf8(canonical)
            .map_err(|_| format!("{path:?}: the decoded path is not UTF-8"))?;
        let query = sign(&self.secret, text.as_bytes(), expires_unix, rate, method);
        Ok(format!("{}?{query}", utf8_percent_encode(&text, PATH_SAFE)))
    }

    /// Whether `target` carries a valid link signed for one of `methods` at `now_unix`,
    /// wherever it lies (uploads check their links themselves); with the link's expiry.
    pub fn authorises(
        &self,
        target: &[u8],
        methods: &[&str],
        now_unix: u64,
        scratch: &mut Vec<u8>,
    ) -> Option<u64> {
        canonical_path(target, scratch).ok()?;
        let query = split_query(target).1?;
        match verify(&self.secret, scratch, query, now_unix) {
            Verdict::Valid {
                method: Some(m), ..
            } if methods.iter().any(|&x| x.as_bytes() == m.as_bytes()) => expiry(query),
            _ => None,
        }
    }
}

/// The `expires` of a query already verified.
fn expiry(query: &[u8]) -> Option<u64> {
    query
        .split(|&b| b == b'&')
        .find_map(|p| p.strip_prefix(b"expires="))
        .and_then(parse_decimal)
}

/// Parses a link lifetime for `--expires`: a positive number with an optional unit `s`
/// (default), `m`, `h` or `d` (`90`, `15m`, `1h`, `7d`).
pub fn parse_expires_in(s: &str) -> Result<Duration, String> {
    let (digits, unit) = match s.as_bytes().last() {
        Some(b's') => (&s[..s.len() - 1], 1),
        Some(b'm') => (&s[..s.len() - 1], 60),
        Some(b'h') => (&s[..s.len() - 1], 3600),
        Some(b'd') => (&s[..s.len() - 1], 86_400),
        _ => (s, 1),
    };
    match parse_decimal(digits.as_bytes()).and_then(|n| n.checked_mul(unit)) {
        Some(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
        _ => Err(format!(
            "invalid lifetime {s:?} (expected e.g. 30m, 1h, 7d)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn secret() -> Secret {
        Secret::new(b"0123456789abcdef0123456789abcdef").unwrap()
    }

    fn check(path: &str, query: &str) -> Verdict {
        verify(&secret(), path.as_bytes(), query.as_bytes(), NOW)
    }

    #[test]
    fn round_trips() {
        let q = sign(&secret(), b"/downloads/file.iso", NOW + 60, None, None);
        assert!(q.starts_with("expires=1700000060&sig="), "{q}");
        assert_eq!(q.len(), "expires=1700000060&sig=".len() + SIG_LEN);
        assert_eq!(
            check("/downloads/file.iso", &q),
            Verdict::Valid {
                rate: None,
                method: None
            }
        );
        let q = sign(&secret(), b"/a", NOW, Some(2 << 20), None);
        assert!(q.starts_with("expires=1700000000&rate=2097152&sig="), "{q}");
        assert_eq!(
            check("/a", &q),
            Verdict::Valid {
                rate: Some(2 << 20),
                method: None
            }
        );
    }

    #[test]
    fn matches_the_documented_layout() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"0123456789abcdef0123456789abcdef").unwrap();
        mac.update(b"1700000060\n1024\n/x y\nz");
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        let q = sign(&secret(), b"/x y\nz", NOW + 60, Some(1024), None);
        assert_eq!(q, format!("expires=1700000060&rate=1024&sig={sig}"));
    }

    #[test]
    fn parameters_in_any_order_with_others_and_rate_syntax() {
        let q = sign(&secret(), b"/f", NOW + 1, Some(2 << 20), None);
        let sig = q.rsplit_once("sig=").unwrap().1;
        for query in [
            format!("sig={sig}&rate=2097152&expires={}", NOW + 1),
            format!("x=1&rate=2m&&expires={}&utm=a=b&sig={sig}&flag", NOW + 1),
            format!("rate=2m/s&sig={sig}&expires={}", NOW + 1),
        ] {
            assert_eq!(
                check("/f", &query),
                Verdict::Valid {
                    rate: Some(2 << 20),
                    method: None
                },
                "{query}"
            );
        }
    }

    #[test]
    fn tampering_is_forbidden() {
        let q = sign(&secret(), b"/f", NOW + 10, Some(1000), None);
        let sig = q.rsplit_once("sig=").unwrap().1;
        assert_eq!(check("/g", &q), Verdict::Forbidden);
        assert_eq!(check("/f/", &q), Verdict::Forbidden);
        let later = format!("expires={}&rate=1000&sig={sig}", NOW + 11);
        assert_eq!(check("/f", &later), Verdict::Forbidden);
        let faster = format!("expires={}&rate=1001&sig={sig}", NOW + 10);
        assert_eq!(check("/f", &faster), Verdict::Forbidden);
        let unpaced = format!("expires={}&sig={sig}", NOW + 10);
        assert_eq!(check("/f", &unpaced), Verdict::Forbidden);
        let mut bad = sig.as_bytes().to_vec();
        bad[5] = if bad[5] == b'A' { b'B' } else { b'A' };
        let bad = format!(
            "expires={}&rate=1000&sig={}",
            NOW + 10,
            String::from_utf8(bad).unwrap()
        );
        assert_eq!(check("/f", &bad), Verdict::Forbidden);
        let other = Secret::new(b"another secret").unwrap();
        assert_eq!(verify(&other, b"/f", q.as_bytes(), NOW), Verdict::Forbidden);
    }

    #[test]
    fn non_canonical_signatures_are_forbidden() {
        let q = sign(&secret(), b"/f", NOW + 10, None, None);
        let (head, sig) = q.rsplit_once("sig=").unwrap();
        // The last character carries 2 padding bits that must be zero.
        let last = sig.as_bytes()[SIG_LEN - 1];
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let pos = alphabet.iter().position(|&c| c == last).unwrap();
        let twin = alphabet[pos ^ 1] as char;
        let forged = format!("{head}sig={}{twin}", &sig[..SIG_LEN - 1]);
        assert_eq!(check("/f", &forged), Verdict::Forbidden);
        for s in [
            format!("{sig}="),
            format!("{sig}A"),
            sig[1..].to_string(),
            format!("+{}", &sig[1..]),
        ] {
            assert_eq!(
                check("/f", &format!("{head}sig={s}")),
                Verdict::Forbidden,
                "{s}"
            );
        }
    }

    #[test]
    fn expiry_is_reported_only_for_authentic_links() {
        let q = sign(&secret(), b"/f", NOW - 1, None, None);
        assert_eq!(check("/f", &q), Verdict::Expired);
        assert_eq!(check("/g", &q), Verdict::Forbidden);
        let q = sign(&secret(), b"/f", NOW, None, None);
        assert_eq!(
            check("/f", &q),
            Verdict::Valid {
                rate: None,
                method: None
            }
        );
        assert_eq!(
            verify(&secret(), b"/f", q.as_bytes(), u64::MAX),
            Verdict::Expired
        );
    }

    #[test]
    fn missing_repeated_or_malformed_parameters_are_forbidden() {
        let q = sign(&secret(), b"/f", NOW + 10, Some(5), None);
        let sig = q.rsplit_once("sig=").unwrap().1;
        let e = NOW + 10;
        for query in [
            String::new(),
            format!("expires={e}&rate=5"),
            format!("rate=5&sig={sig}"),
            format!("expires={e}&expires={e}&rate=5&sig={sig}"),
            format!("expires={e}&rate=5&rate=5&sig={sig}"),
            format!("expires={e}&rate=5&sig={sig}&sig={sig}"),
            format!("expires&expires={e}&rate=5&sig={sig}"),
            format!("expires={e}&rate=5&sig"),
            format!("expires=&rate=5&sig={sig}"),
            format!("expires=+{e}&rate=5&sig={sig}"),
            format!("expires={e}&rate=&sig={sig}"),
            format!("expires={e}&rate=5x&sig={sig}"),
            format!("expires={e}&rate=5&sig="),
            format!("expires=99999999999999999999&rate=5&sig={sig}"),
            format!("expires={e}&rate=5&sig={sig}%3D"),
            format!("EXPIRES={e}&rate=5&sig={sig}"),
        ] {
            assert_eq!(check("/f", &query), Verdict::Forbidden, "{query}");
        }
    }

    #[test]
    fn non_utf8_input_is_handled() {
        let path = b"/caf\xe9/\xff\xfe";
        let q = sign(&secret(), path, NOW + 10, None, None);
        assert_eq!(
            verify(&secret(), path, q.as_bytes(), NOW),
            Verdict::Valid {
                rate: None,
                method: None
            }
        );
        assert_eq!(
            verify(&secret(), b"/caf\xe9/\xff", q.as_bytes(), NOW),
            Verdict::Forbidden
        );
        let mut query = q.clone().into_bytes();
        query.extend_from_slice(b"&\xff=\xfe&rate=\xc3");
        assert_eq!(verify(&secret(), path, &query, NOW), Verdict::Forbidden);
        let mut query = q.into_bytes();
        query.extend_from_slice(b"&\xff\xfe=\x80");
        assert_eq!(
            verify(&secret(), path, &query, NOW),
            Verdict::Valid {
                rate: None,
                method: None
            }
        );
        assert_eq!(verify(&secret(), b"", b"\xff&=&&", NOW), Verdict::Forbidden);
    }

    #[test]
    fn secrets() {
        assert!(Secret::new(b"").is_err());
        assert_eq!(format!("{:?}", secret()), "Secret(..)");
    }

    #[test]
    fn secure_link_protects_its_prefix_only() {
        let link = SecureLink::new(secret(), "/dl/").unwrap();
        let mut scratch = Vec::new();
        assert_eq!(link.check(b"/public/x", NOW, &mut scratch), None);
        assert_eq!(link.check(b"/dlx", NOW, &mut scratch), None);
        assert_eq!(
            link.check(b"/dl/x", NOW, &mut scratch),
            Some(Verdict::Forbidden)
        );
        assert_eq!(
            link.check(b"/dl", NOW, &mut scratch),
            Some(Verdict::Forbidden)
        );
        let url = link
            .sign_url("/dl/my file.iso", NOW + 5, Some(1000), None)
            .unwrap();
        assert!(url.starts_with("/dl/my%20file.iso?expires="), "{url}");
        // Any spelling of the same file carries the same signature.
        let query = url.split_once('?').unwrap().1;
        for path in [
            "/dl/my%20file.iso",
            "//dl/./my%20file.iso",
            "/%64l/my file.iso",
        ] {
            let target = format!("{path}?{query}");
            assert_eq!(
                link.check(target.as_bytes(), NOW, &mut scratch),
                Some(Verdict::Valid {
                    rate: Some(1000),
                    method: None
                }),
                "{target}"
            );
        }
        assert_eq!(
            link.check(url.as_bytes(), NOW + 6, &mut scratch),
            Some(Verdict::Expired)
        );
        assert!(link.sign_url("/elsewhere", NOW, None, None).is_err());
        assert!(SecureLink::new(secret(), "/a/../b").is_err());
        let all = SecureLink::new(secret(), "/").unwrap();
        assert!(all.check(b"/anything", NOW, &mut scratch).is_some());
    }

    #[test]
    fn lifetimes() {
        assert_eq!(parse_expires_in("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_expires_in("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_expires_in("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_expires_in("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_expires_in("7d"), Ok(Duration::from_secs(604_800)));
        for s in [
            "",
            "0",
            "0h",
            "h",
            "1.5h",
            "-1h",
            "1w",
            "1H",
            "1 h",
            "99999999999999999999d",
            "é",
        ] {
            assert!(parse_expires_in(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn links_for_a_method_cover_it() {
        let put = Method::new(b"PUT");
        let q = sign(&secret(), b"/in/a.iso", NOW + 60, None, put);
        assert!(q.contains("&method=PUT&"), "{q}");
        assert_eq!(
            verify(&secret(), b"/in/a.iso", q.as_bytes(), NOW),
            Verdict::Valid {
                rate: None,
                method: put
            }
        );
        // Dropped or changed, the method no longer matches the signature.
        let dropped = q.replace("&method=PUT", "");
        let changed = q.replace("method=PUT", "method=POST");
        for q in [dropped, changed, q.replace("method=PUT", "method=put")] {
            assert_eq!(
                verify(&secret(), b"/in/a.iso", q.as_bytes(), NOW),
                Verdict::Forbidden,
                "{q}"
            );
        }
        // A link without one does not pass for one.
        let get = sign(&secret(), b"/in/a.iso", NOW + 60, None, None) + "&method=PUT";
        assert_eq!(
            verify(&secret(), b"/in/a.iso", get.as_bytes(), NOW),
            Verdict::Forbidden
        );
        assert!(Method::new(b"").is_none() && Method::new(&[b'A'; 17]).is_none());
    }
}
