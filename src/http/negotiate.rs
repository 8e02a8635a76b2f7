//! Proactive content negotiation (RFC 9110 §12): which precompressed coding to send for an
//! `Accept-Encoding`, and whether an `Accept` prefers JSON to HTML (directory listings).
//!
//! Key design decision: both fields are lists of `value;q=weight` elements, walked once with
//! no allocation, and a malformed element (bad token, bad or repeated weight, unknown
//! parameter in `Accept-Encoding`) is skipped as if it were absent. Skipping can only make
//! the server fall back to its default (identity, HTML), which every client understands, and
//! never makes it send a coding the client did not list. Weights are kept as integer
//! thousandths, the precision RFC 9110 §12.4.2 allows.

use super::trim_ows;

/// A content coding the server can send from a precompressed sidecar file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Coding {
    /// Brotli, `file.br`.
    Br,
    /// Zstandard, `file.zst`.
    Zstd,
    /// gzip, `file.gz`.
    Gzip,
}

impl Coding {
    /// Every coding, in the default preference order.
    pub const ALL: [Coding; 3] = [Coding::Br, Coding::Zstd, Coding::Gzip];

    /// The coding's token as used in `Accept-Encoding` and `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
        }
    }

    /// The file-name suffix of a sidecar in this coding (what `brotli`, `zstd` and `gzip`
    /// write by default).
    pub fn suffix(self) -> &'static str {
        match self {
            Coding::Br => ".br",
            Coding::Zstd => ".zst",
            Coding::Gzip => ".gz",
        }
    }

    /// The coding named by `token` (case-insensitive; `x-gzip` is gzip, RFC 9110 §8.4.1.3).
    pub fn from_token(token: &[u8]) -> Option<Coding> {
        Coding::ALL
            .into_iter()
            .find(|c| token.eq_ignore_ascii_case(c.token().as_bytes()))
            .or_else(|| {
                token
                    .eq_ignore_ascii_case(b"x-gzip")
                    .then_some(Coding::Gzip)
            })
    }
}

/// Codings worth trying for one request, best first; each is preferred by the client over
/// the unencoded representation. Empty means: send identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ranked {
    codings: [Coding; 3],
    len: usize,
}

impl Ranked {
    /// The codings, best first.
    pub fn as_slice(&self) -> &[Coding] {
        &self.codings[..self.len]
    }
}

/// Ranks the `offered` codings (server preference order) against an `Accept-Encoding` value.
///
/// A coding is kept when its weight (its own element, else `*`'s) is above zero and at least
/// that of identity; higher weights come first and ties keep the server's order. Identity's
/// weight is its own element's, else `*`'s; when neither is listed it is acceptable but
/// ranks below every listed coding. No field (or an empty one) ranks nothing, so the file is
/// sent unencoded, as nginx's `gzip_static on` does. When every coding is excluded and
/// identity is too (`identity;q=0`), nothing is ranked either: RFC 9110 §12.5.3 says to send
/// the representation without content coding rather than fail.
pub fn rank_encodings(field: Option<&[u8]>, offered: &[Coding]) -> Ranked {
    let mut ranked = Ranked {
        codings: [Coding::Gzip; 3],
        len: 0,
    };
    let Some(field) = field else {
        return ranked;
    };
    let mut weights = [None::<u16>; 3];
    let (mut star, mut identity) = (None, None);
    for (value, q) in elements(field, false) {
        let q = q.unwrap_or(1000);
        let slot = if value == b"*" {
            &mut star
        } else if value.eq_ignore_ascii_case(b"identity") {
            &mut identity
        } else if let Some(coding) = Coding::from_token(value) {
            &mut weights[index(coding)]
        } else {
            continue;
        };
        slot.get_or_insert(q);
    }
    let floor = identity.or(star).unwrap_or(1);
    let mut kept = [(Coding::Gzip, 0u16); 3];
    for &coding in offered {
        let q = weights[index(coding)].or(star).unwrap_or(0);
        // Only three codings exist, so skipping repeats keeps `len` within the array.
        if q == 0 || q < floor || ranked.as_slice().contains(&coding) {
            continue;
        }
        // Insert after every kept coding of equal or higher weight: stable by server order.
        let at = kept[..ranked.len].iter().take_while(|k| k.1 >= q).count();
        kept.copy_within(at..ranked.len, at + 1);
        ranked.codings.copy_within(at..ranked.len, at + 1);
        kept[at] = (coding, q);
        ranked.codings[at] = coding;
        ranked.len += 1;
    }
    ranked
}

/// Position of `coding` in [`Coding::ALL`].
fn index(coding: Coding) -> usize {
    match coding {
        Coding::Br => 0,
        Coding::Zstd => 1,
        Coding::Gzip => 2,
    }
}

/// Whether an `Accept` value prefers `application/json` to `text/html`: each gets the weight
/// of its most specific matching media range (`type/subtype` over `type/*` over `*/*`), and
/// JSON is chosen only with a strictly higher weight, so browsers and `*/*` get HTML.
pub fn prefers_json(field: Option<&[u8]>) -> bool {
    let Some(field) = field else {
        return false;
    };
    let (mut json, mut html) = ((0u8, 0u16), (0u8, 0u16));
    for (range, q) in elements(field, true) {
        let q = q.unwrap_or(1000);
        let Some((kind, sub)) = split_media_range(range) else {
            continue;
        };
        for ((want_kind, want_sub), best) in [
            ((&b"application"[..], &b"json"[..]), &mut json),
            ((&b"text"[..], &b"html"[..]), &mut html),
        ] {
            let specificity = match (kind, sub) {
                (b"*", b"*") => 1,
                (k, b"*") if k.eq_ignore_ascii_case(want_kind) => 2,
                (k, s) if k.eq_ignore_ascii_case(want_kind) && s.eq_ignore_ascii_case(want_sub) => {
                    3
                }
                _ => 0,
            };
            if specificity > best.0 {
                *best = (specificity, q);
            }
        }
    }
    json.1 > html.1
}

/// `type/subtype` of a media range, both tokens.
fn split_media_range(range: &[u8]) -> Option<(&[u8], &[u8])> {
    let slash = memchr::memchr(b'/', range)?;
    let (kind, sub) = (&range[..slash], &range[slash + 1..]);
    (is_token(kind) && is_token(sub)).then_some((kind, sub))
}

/// The well-formed elements of a comma-separated list field, each as its value and its
/// weight (`None` when absent). `media` allows parameters other than `q` (as `Accept` does;
/// they are ignored), else an element with any other parameter is malformed. A value must be
/// a token, or `type/subtype` of tokens when `media`.
fn elements(field: &[u8], media: bool) -> impl Iterator<Item = (&[u8], Option<u16>)> {
    field.split(|&b| b == b',').filter_map(move |element| {
        let mut parts = element.split(|&b| b == b';').map(trim_ows);
        let value = parts.next()?;
        let well_formed = if media {
            split_media_range(value).is_some()
        } else {
            is_token(value)
        };
        if !well_formed {
            return None;
        }
        let mut weight = None;
        for param in parts {
            match param {
                [b'q' | b'Q', b'=', q @ ..] if weight.is_none() => weight = Some(qvalue(q)?),
                _ if media && weight.is_none() && param.contains(&b'=') => {}
                // After the weight, `Accept` may carry extension parameters.
                _ if media && weight.is_some() => {}
                _ => return None,
            }
        }
        Some((value, weight))
    })
}

/// A `qvalue` (RFC 9110 §12.4.2: `0[.ddd]` or `1[.000]`) in thousandths.
fn qvalue(q: &[u8]) -> Option<u16> {
    let (int, frac) = match q.split_first()? {
        (b'0', rest) => (0, rest),
        (b'1', rest) => (1000, rest),
        _ => return None,
    };
    let digits = match frac {
        [] => &[][..],
        [b'.', digits @ ..] if digits.len() <= 3 => digits,
        _ => return None,
    };
    let mut thousandths = 0u16;
    for i in 0..3 {
        let d = match digits.get(i) {
            Some(d) if d.is_ascii_digit() => u16::from(d - b'0'),
            Some(_) => return None,
            None => 0,
        };
        thousandths = thousandths * 10 + d;
    }
    (int == 0 || thousandths == 0).then_some(int + thousandths)
}

/// Whether `s` is a non-empty RFC 9110 token.
fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Coding::{Br, Gzip, Zstd};

    fn rank(field: Option<&str>, offered: &[Coding]) -> Vec<Coding> {
        rank_encodings(field.map(str::as_bytes), offered)
            .as_slice()
            .to_vec()
    }

    #[test]
    fn negotiation_table() {
        let all = &Coding::ALL[..];
        let cases: &[(Option<&str>, &[Coding], &[Coding])] = &[
            // No field or an empty one: identity.
            (None, all, &[]),
            (Some(""), all, &[]),
            (Some("  ,  ,"), all, &[]),
            // Plain lists keep the server's order.
            (Some("gzip"), all, &[Gzip]),
            (Some("gzip, deflate, br, zstd"), all, &[Br, Zstd, Gzip]),
            (Some("gzip, br"), &[Gzip, Br], &[Gzip, Br]),
            (Some("br"), &[Gzip], &[]),
            // Weights order, zero excludes.
            (Some("br;q=0.5, gzip;q=0.9"), all, &[Gzip, Br]),
            (Some("br;q=0, gzip"), all, &[Gzip]),
            (Some("gzip;q=0"), all, &[]),
            (Some("gzip;q=0.001"), all, &[Gzip]),
            (Some("zstd;q=1.000, br;q=1"), all, &[Br, Zstd]),
            // `*` covers unlisted codings only.
            (Some("*"), all, &[Br, Zstd, Gzip]),
            (Some("*;q=0.5, gzip"), all, &[Gzip, Br, Zstd]),
            (Some("*, br;q=0"), all, &[Zstd, Gzip]),
            (Some("*;q=0"), all, &[]),
            (Some("*;q=0, gzip"), all, &[Gzip]),
            // identity: implicit (lowest), explicit, or through `*`.
            (Some("gzip;q=0.1"), all, &[Gzip]),
            (Some("gzip;q=0.5, identity"), all, &[]),
            (Some("gzip;q=0.5, identity;q=0.5"), all, &[Gzip]),
            (Some("gzip, identity;q=0"), all, &[Gzip]),
            (Some("identity;q=0"), all, &[]),
            (Some("identity"), all, &[]),
            (Some("*;q=0.5, gzip;q=0.4"), all, &[Br, Zstd]),
            (
                Some("*;q=0.5, gzip;q=0.4, identity;q=0.1"),
                all,
                &[Br, Zstd, Gzip],
            ),
            // Case and whitespace.
            (Some("GZIP;Q=0.5, Br"), all, &[Br, Gzip]),
            (Some(" gzip ;\tq=0.5 ,\tbr "), all, &[Br, Gzip]),
            (Some("x-gzip"), all, &[Gzip]),
            // Malformed elements are skipped.
            (Some("gzip;q=abc, br"), all, &[Br]),
            (Some("gzip;q=1.5"), all, &[]),
            (Some("gzip;q=0.1234"), all, &[]),
            (Some("gzip;q=2"), all, &[]),
            (Some("gzip;q="), all, &[]),
            (Some("gzip; q = 0.5"), all, &[]),
            (Some("gzip;q=0.5;q=1"), all, &[]),
            (Some("gzip;level=9"), all, &[]),
            (Some("gz ip, br"), all, &[Br]),
            (Some("\"gzip\""), all, &[]),
            (Some("gzip;q=0.5, gzip"), all, &[Gzip]),
            // First occurrence of a coding wins.
            (Some("gzip;q=0, gzip"), all, &[]),
            (Some("br, unknown, compress, deflate"), all, &[Br]),
        ];
        for (field, offered, want) in cases {
            assert_eq!(
                rank(*field, offered),
                *want,
                "{field:?} offered {offered:?}"
            );
        }
    }

    #[test]
    fn ranked_never_exceeds_offers() {
        assert_eq!(rank(Some("*"), &[Gzip, Gzip]), [Gzip]);
        assert_eq!(rank(Some("*"), &[]), []);
    }

    #[test]
    fn qvalues() {
        assert_eq!(qvalue(b"0"), Some(0));
        assert_eq!(qvalue(b"0."), Some(0));
        assert_eq!(qvalue(b"0.5"), Some(500));
        assert_eq!(qvalue(b"0.05"), Some(50));
        assert_eq!(qvalue(b"0.999"), Some(999));
        assert_eq!(qvalue(b"1"), Some(1000));
        assert_eq!(qvalue(b"1.000"), Some(1000));
        for bad in [
            &b""[..],
            b"1.001",
            b".5",
            b"0.5x",
            b"0,5",
            b"01",
            b"-0",
            b"0.0000",
        ] {
            assert_eq!(qvalue(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn coding_tokens() {
        for c in Coding::ALL {
            assert_eq!(Coding::from_token(c.token().as_bytes()), Some(c));
        }
        assert_eq!(Coding::from_token(b"GZip"), Some(Gzip));
        assert_eq!(Coding::from_token(b"deflate"), None);
        assert_eq!(Coding::from_token(b"zst"), None);
    }

    #[test]
    fn json_preference() {
        let cases: &[(Option<&str>, bool)] = &[
            (None, false),
            (Some(""), false),
            (Some("application/json"), true),
            (Some("Application/JSON"), true),
            (Some("*/*"), false),
            (Some("application/*"), true),
            (Some("text/*, application/json"), false),
            (Some("text/html;q=0.5, application/json"), true),
            (Some("application/json;q=0.5, text/html"), false),
            (Some("application/json, */*;q=0.1"), true),
            (
                Some("application/json;charset=utf-8;q=0.9, text/html;q=0.8"),
                true,
            ),
            (Some("application/json;q=0.9;ext=1, text/html;q=0.8"), true),
            (
                Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
                false,
            ),
            (Some("application/json;q=0"), false),
            (Some("application/json;q=x"), false),
            (Some("application json"), false),
            (Some("*/*;q=0.5, application/*;q=0.1"), false),
        ];
        for (field, want) in cases {
            assert_eq!(prefers_json(field.map(str::as_bytes)), *want, "{field:?}");
        }
    }
}
