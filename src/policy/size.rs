//! Parsers for the sizes and rates the pacing and protection flags take.
//!
//! Byte sizes follow nginx's `ngx_parse_size`: decimal digits with an optional `k`, `m` or `g`
//! suffix in either case, meaning powers of 1024 (`1m` = 1 048 576), so values copied from an
//! nginx configuration mean the same here. Request rates follow nginx `limit_req`'s `rate=`
//! (`10r/s`, `600r/m`, the `r` optional) and are kept as an exact fraction ([`ReqRate`]) rather
//! than a float, so the request bucket's arithmetic stays in integers.

use std::time::Duration;

use crate::http::parse_decimal;

/// Parses a byte size: digits with an optional `k`/`m`/`g` suffix (case-insensitive, powers of
/// 1024). Fractions, signs, spaces and values that overflow a u64 are errors.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (digits, unit) = match s.as_bytes().last().map(u8::to_ascii_lowercase) {
        Some(b'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'm') => (&s[..s.len() - 1], 1 << 20),
        Some(b'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    parse_decimal(digits.as_bytes())
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("invalid size {s:?} (expected e.g. 512k, 2m, 1g)"))
}

/// Parses a byte rate in bytes per second: a [`parse_size`] value with an optional `/s`
/// (`2m`, `2m/s`, `500k`). `0` means unlimited wherever a rate is used.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let size = match s
        .len()
        .checked_sub(2)
        .and_then(|i| s.get(i..).map(|t| (i, t)))
    {
        Some((i, tail)) if tail.eq_ignore_ascii_case("/s") => &s[..i],
        _ => s,
    };
    parse_size(size).map_err(|_| format!("invalid rate {s:?} (expected e.g. 500k, 2m/s)"))
}

/// A request rate as an exact fraction: `requests` per `per_secs` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReqRate {
    /// Requests allowed per period; at least 1.
    pub requests: u64,
    /// Length of the period in seconds: 1 (`/s`) or 60 (`/m`).
    pub per_secs: u64,
}

impl ReqRate {
    /// Time between two requests at this rate (the bucket's refill interval), at least 1 ns.
    pub fn interval(&self) -> Duration {
        let nanos = u128::from(self.per_secs) * 1_000_000_000 / u128::from(self.requests.max(1));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX).max(1))
    }

    /// The rate in requests per second, for display.
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.per_secs as f64
    }
}

/// Parses a request rate `N/s` or `N/m` (nginx's `Nr/s` and `Nr/m` too). `N` must be positive:
/// no request limit is expressed by leaving the flag out.
pub fn parse_req_rate(s: &str) -> Result<ReqRate, String> {
    let err = || format!("invalid request rate {s:?} (expected e.g. 10/s or 600/m)");
    let (count, unit) = s.split_once('/').ok_or_else(err)?;
    let per_secs = match unit {
        "s" | "S" => 1,
        "m" | "M" => 60,
        _ => return Err(err()),
    };
    let count = count.strip_suffix(['r', 'R']).unwrap_or(count).as_bytes();
    match parse_decimal(count) {
        Some(requests) if requests > 0 => Ok(ReqRate { requests, per_secs }),
        _ => Err(err()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_powers_of_1024() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1500"), Ok(1500));
        assert_eq!(parse_size("1k"), Ok(1024));
        assert_eq!(parse_size("1K"), Ok(1024));
        assert_eq!(parse_size("1m"), Ok(1_048_576));
        assert_eq!(parse_size("3M"), Ok(3 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
    }

    #[test]
    fn bad_sizes_are_errors() {
        for s in [
            "", "k", "1.5m", "-1", "+1", " 1", "1 ", "1t", "1kb", "1mm", "é", "1é",
        ] {
            assert!(parse_size(s).is_err(), "{s:?}");
        }
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        assert!(parse_size("18446744073709551616").is_err());
        assert!(parse_size("17179869184g").is_err());
    }

    #[test]
    fn rates_take_an_optional_per_second() {
        assert_eq!(parse_rate("2m"), Ok(2 << 20));
        assert_eq!(parse_rate("2m/s"), Ok(2 << 20));
        assert_eq!(parse_rate("500k/S"), Ok(500 << 10));
        assert_eq!(parse_rate("100/s"), Ok(100));
        assert_eq!(parse_rate("0"), Ok(0));
        for s in ["", "/s", "2m/m", "2m/", "2m/ss", "s", "/é", "é/s"] {
            assert!(parse_rate(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn request_rates() {
        let r = parse_req_rate("10/s").unwrap();
        assert_eq!(
            r,
            ReqRate {
                requests: 10,
                per_secs: 1
            }
        );
        assert_eq!(r.interval(), Duration::from_millis(100));
        assert_eq!(r.per_second(), 10.0);
        let r = parse_req_rate("600/m").unwrap();
        assert_eq!(r.interval(), Duration::from_millis(100));
        assert_eq!(parse_req_rate("5r/s").unwrap().requests, 5);
        assert_eq!(
            parse_req_rate("30r/m").unwrap().interval(),
            Duration::from_secs(2)
        );
        assert_eq!(
            parse_req_rate("18446744073709551615/s").unwrap().interval(),
            Duration::from_nanos(1)
        );
        for s in [
            "", "10", "0/s", "10/h", "10/", "/s", "r/s", "1.5/s", "10//s", "-1/s",
        ] {
            assert!(parse_req_rate(s).is_err(), "{s:?}");
        }
    }
}
