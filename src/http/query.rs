//! Query-string parameters of a request target, for the few switches the server honours
//! (`?download`, `?format=json`).
//!
//! Key design decision: names and values are compared as sent, without percent-decoding; the
//! switches are plain ASCII, so `?download` and `?format=json` are all a client ever sends,
//! and nothing is allocated.

/// The value of the first parameter called `name` in the query of `target` (`/path?query`):
/// `Some(b"")` for a bare `?name` or `?name=`, `None` when absent.
pub fn param<'a>(target: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let query = super::path::split_query(target).1?;
    query.split(|&b| b == b'&').find_map(|pair| {
        let (key, value) = match memchr::memchr(b'=', pair) {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &b""[..]),
        };
        (key == name).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params() {
        let cases: [(&str, &str, Option<&str>); 11] = [
            ("/a?download", "download", Some("")),
            ("/a?download=", "download", Some("")),
            ("/a?download=1", "download", Some("1")),
            ("/a?x=1&download&y", "download", Some("")),
            ("/a?format=json", "format", Some("json")),
            ("/a?format=json&format=html", "format", Some("json")),
            ("/a?format=a=b", "format", Some("a=b")),
            ("/a", "download", None),
            ("/a?downloads", "download", None),
            ("/a?xdownload", "download", None),
            ("/download?x", "download", None),
        ];
        for (target, name, want) in cases {
            let got = param(target.as_bytes(), name.as_bytes());
            assert_eq!(got, want.map(str::as_bytes), "{target}");
        }
    }
}
