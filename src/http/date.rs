//! HTTP dates (RFC 9110 §5.6.7): the cached `Date` header value and validator dates.
//!
//! Formatting a date per response would cost a calendar computation each time, so each
//! worker keeps a [`DateCache`] holding the IMF-fixdate inline and re-formats it only when
//! the second changes. Parsing and formatting delegate to `httpdate`, clamped to the range it
//! accepts so that no timestamp can make it panic.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use httpdate::HttpDate;

/// Length of an IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const IMF_FIXDATE_LEN: usize = 29;

/// Last second `httpdate` can format (9999-12-31T23:59:59Z); later times are clamped to it.
const MAX_SECS: u64 = 253_402_300_799;

/// A time in whole seconds since the epoch together with its IMF-fixdate, formatted once
/// when the time is read: a file's modification time is sent as `Last-Modified` with every
/// response for it, and compared with the conditional dates a client sends.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fixdate {
    secs: u64,
    bytes: [u8; IMF_FIXDATE_LEN],
}

impl Fixdate {
    /// `secs` since the epoch and its IMF-fixdate (times after year 9999 are written as its
    /// last second).
    pub fn new(secs: u64) -> Fixdate {
        let mut bytes = [0; IMF_FIXDATE_LEN];
        let mut cur = std::io::Cursor::new(&mut bytes[..]);
        // An IMF-fixdate is always exactly IMF_FIXDATE_LEN bytes, so the write fills the array.
        let written = write!(cur, "{}", to_http_date(secs));
        debug_assert!(written.is_ok());
        Fixdate { secs, bytes }
    }

    /// Seconds since the epoch.
    pub fn secs(&self) -> u64 {
        self.secs
    }

    /// The IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::fmt::Debug for Fixdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({})",
            self.secs,
            String::from_utf8_lossy(&self.bytes)
        )
    }
}

/// The current date as an IMF-fixdate, re-formatted at most once per second.
#[derive(Clone, Debug)]
pub struct DateCache(Fixdate);

impl DateCache {
    /// A cache holding the current time.
    pub fn new() -> DateCache {
        DateCache(Fixdate::new(unix_secs(SystemTime::now())))
    }

    /// Moves the cache to `now`; only formats when the whole second differs from the
    /// cached one, so calling this once per event-loop turn is cheap.
    pub fn update(&mut self, now: SystemTime) {
        let secs = unix_secs(now);
        if secs != self.0.secs {
            self.0 = Fixdate::new(secs);
        }
    }

    /// The cached date, ready to be used as the `Date` header value.
    pub fn get(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl Default for DateCache {
    fn default() -> DateCache {
        DateCache::new()
    }
}

/// Parses an HTTP-date in any of the three formats of RFC 9110 §5.6.7 (IMF-fixdate,
/// RFC 850, asctime) into seconds since the Unix epoch; `None` if it is not a valid date,
/// in which case the conditional header carrying it is ignored.
pub fn parse_http_date(bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let date: HttpDate = text.parse().ok()?;
    Some(unix_secs(SystemTime::from(date)))
}

/// Appends `secs` (seconds since the epoch) as an IMF-fixdate, e.g. for `Last-Modified`.
/// Times after year 9999 are clamped to its last second.
pub fn write_http_date(secs: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(Fixdate::new(secs).as_bytes());
}

fn to_http_date(secs: u64) -> HttpDate {
    HttpDate::from(UNIX_EPOCH + Duration::from_secs(secs.min(MAX_SECS)))
}

/// Whole seconds since the epoch; times before it count as the epoch itself.
fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_EXAMPLE: u64 = 784_111_777;

    #[test]
    fn parses_three_formats() {
        for text in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                parse_http_date(text.as_bytes()),
                Some(RFC_EXAMPLE),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_garbage() {
        for text in [
            &b""[..],
            b"yesterday",
            b"Sun, 06 Nov 1994 08:49:37",
            b"Sun, 31 Feb 1994 08:49:37 GMT",
            b"Sun, 06 Nov 1994 25:49:37 GMT",
            b"\xff\xfe",
            b"Sun, 06 Nov 1969 08:49:37 GMT",
        ] {
            assert_eq!(
                parse_http_date(text),
                None,
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn writes_imf_fixdate() {
        let mut out = b"x".to_vec();
        write_http_date(RFC_EXAMPLE, &mut out);
        assert_eq!(out, b"xSun, 06 Nov 1994 08:49:37 GMT");
        out.clear();
        write_http_date(u64::MAX, &mut out);
        assert_eq!(out, b"Fri, 31 Dec 9999 23:59:59 GMT");
        out.clear();
        write_http_date(0, &mut out);
        assert_eq!(out, b"Thu, 01 Jan 1970 00:00:00 GMT");
        let stamp = Fixdate::new(RFC_EXAMPLE);
        assert_eq!(stamp.as_bytes(), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(stamp.secs(), RFC_EXAMPLE);
        let last = Fixdate::new(u64::MAX);
        assert_eq!(last.as_bytes(), b"Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(last.secs(), u64::MAX);
    }

    #[test]
    fn cache_updates_per_second() {
        let mut cache = DateCache::new();
        assert_eq!(cache.get().len(), IMF_FIXDATE_LEN);
        let t = UNIX_EPOCH + Duration::from_secs(RFC_EXAMPLE);
        cache.update(t);
        assert_eq!(cache.get(), b"Sun, 06 Nov 1994 08:49:37 GMT");
        cache.update(t + Duration::from_millis(999));
        assert_eq!(cache.get(), b"Sun, 06 Nov 1994 08:49:37 GMT");
        cache.update(t + Duration::from_secs(1));
        assert_eq!(cache.get(), b"Sun, 06 Nov 1994 08:49:38 GMT");
        cache.update(UNIX_EPOCH - Duration::from_secs(5));
        assert_eq!(cache.get(), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(parse_http_date(cache.get()), Some(0));
    }
}
