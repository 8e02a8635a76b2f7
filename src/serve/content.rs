//! Content options: directory listings, precompressed sidecars and response header rules
//! (`Cache-Control` by glob, added headers, CORS, `Content-Disposition: attachment`).
//!
//! Key design decision: every rule is parsed, checked and formatted once, at start-up, by
//! the value parsers here (which `config` hands to clap, so a bad flag, variable or file key
//! is a one-line error naming it). A rule keeps its complete header line (`Name: value` and
//! CRLF), so applying it per request is one copy into a reused buffer: no formatting and no
//! allocation. Globs are [`wildmatch`] patterns: `*` matches any run of bytes, `/` included,
//! and `?` one character; they are matched against the decoded path of the file served,
//! starting with `/` (`/dir/` serves `/dir/index.html`), so `*.js` matches at any depth and
//! `/static/*` matches a subtree.

use std::borrow::Cow;

use wildmatch::WildMatch;

use crate::http::disposition;
use crate::http::negotiate::Coding;

/// A glob matched against request paths.
#[derive(Clone, Debug)]
pub struct Glob(WildMatch);

impl Glob {
    /// Whether the whole of `subject` (a decoded path starting with `/`) matches.
    pub fn matches(&self, subject: &str) -> bool {
        self.0.matches(subject)
    }
}

/// `--cache-control GLOB=VALUE`: the `Cache-Control` line for matching paths.
#[derive(Clone, Debug)]
pub struct CacheRule {
    glob: Glob,
    line: Box<[u8]>,
}

/// `--add-header`: a complete `Name: value` line.
#[derive(Clone, Debug)]
pub struct HeaderLine(Box<[u8]>);

/// `--cors`: the lines every successful response carries (`Access-Control-Allow-Origin`,
/// and `Access-Control-Expose-Headers` so that scripts can read the range and validator
/// fields), and those a preflight `OPTIONS` answer carries besides.
#[derive(Clone, Debug)]
pub struct CorsOrigin {
    lines: Box<[u8]>,
    preflight: Box<[u8]>,
}

/// What a cross-origin script may send and read: the methods served, the request fields of
/// conditional and range requests, the response fields those answer with.
const CORS_PREFLIGHT: &[u8] = b"Access-Control-Allow-Methods: GET, HEAD, OPTIONS\r\n\
Access-Control-Allow-Headers: Range, If-Range, If-Match, If-None-Match, If-Modified-Since, \
If-Unmodified-Since\r\nAccess-Control-Max-Age: 86400\r\n";
const CORS_EXPOSE: &[u8] =
    b"Access-Control-Expose-Headers: Content-Range, Content-Length, Accept-Ranges, ETag\r\n";

/// Everything the handler does beyond sending plain files, as configured.
#[derive(Clone, Debug, Default)]
pub struct Content {
    /// Answer directories without `index.html` with a listing (else 404).
    pub listing: bool,
    /// Sidecar codings tried, in the server's order of preference; empty: off.
    pub precompressed: Vec<Coding>,
    /// `Cache-Control` rules; the first whose glob matches applies.
    pub cache_control: Vec<CacheRule>,
    /// Lines added to every successful response.
    pub add_headers: Vec<HeaderLine>,
    /// `Access-Control-Allow-Origin` for every successful response.
    pub cors: Option<CorsOrigin>,
    /// Files answered with `Content-Disposition: attachment`.
    pub attachment: Vec<Glob>,
    /// Directories that take uploads (`--uploads`), as decoded paths below the root (`.`
    /// for the root): their HTML listings offer an upload form.
    pub upload_dirs: Vec<Vec<u8>>,
}

impl Content {
    /// Whether the file rules need the decoded path of the file served (computing it costs
    /// a path decode, skipped when no rule looks at it).
    pub fn needs_path(&self, download: bool) -> bool {
        download || !self.cache_control.is_empty() || !self.attachment.is_empty()
    }

    /// Appends the rule-made headers of a successful file response for the file at `path`
    /// (decoded, starting with `/`; empty when [`Content::needs_path`] said it is not
    /// needed): `Cache-Control`, CORS and added headers to `always`, and
    /// `Content-Disposition` to `content` when `download` (the query asked for it) or an
    /// `--attachment` glob matches. A path that is not UTF-8 is matched with each invalid
    /// sequence as U+FFFD (which allocates, for such paths only).
    pub fn file_headers(
        &self,
        path: &[u8],
        download: bool,
        always: &mut Vec<u8>,
        content: &mut Vec<u8>,
    ) {
        let subject = if self.cache_control.is_empty() && self.attachment.is_empty() {
            Cow::Borrowed("")
        } else {
            String::from_utf8_lossy(path)
        };
        if let Some(rule) = self.cache_control.iter().find(|r| r.glob.matches(&subject)) {
            always.extend_from_slice(&rule.line);
        }
        self.common_headers(always);
        if download || self.attachment.iter().any(|g| g.matches(&subject)) {
            let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
            disposition::attachment(content, name);
        }
    }

    /// The fields of an `OPTIONS` answer: with `--cors`, a CORS preflight answer (allowed
    /// origin, methods and request fields, cached for a day); otherwise none, and
    /// `--add-header` lines either way.
    pub fn options_headers(&self, out: &mut Vec<u8>) {
        if let Some(cors) = &self.cors {
            out.extend_from_slice(&cors.preflight);
        }
        for HeaderLine(line) in &self.add_headers {
            out.extend_from_slice(line);
        }
    }

    /// Appends the headers of a successful listing: never stored without revalidation, and
    /// varying with `Accept`, plus CORS and added headers.
    pub fn listing_headers(&self, always: &mut Vec<u8>) {
        always.extend_from_slice(b"Cache-Control: no-cache\r\nVary: Accept\r\n");
        self.common_headers(always);
    }

    fn common_headers(&self, always: &mut Vec<u8>) {
        if let Some(cors) = &self.cors {
            always.extend_from_slice(&cors.lines);
        }
        for HeaderLine(line) in &self.add_headers {
            always.extend_from_slice(line);
        }
    }
}

/// Field names an added header may not use: they frame the message or are always set by
/// the server, so a second copy would break or contradict the response.
const RESERVED: &[&str] = &[
    "accept-ranges",
    "connection",
    "content-encoding",
    "content-length",
    "content-range",
    "content-type",
    "date",
    "etag",
    "keep-alive",
    "last-modified",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Parses one `--precompressed` coding: `br`, `zstd` or `gzip`.
pub fn parse_coding(s: &str) -> Result<Coding, String> {
    Coding::from_token(s.trim().as_bytes())
        .filter(|c| c.token().eq_ignore_ascii_case(s.trim()))
        .ok_or_else(|| format!("unknown coding `{s}` (use br, zstd or gzip)"))
}

/// Parses a glob (`*` and `?`); it must be non-empty and printable.
pub fn parse_glob(s: &str) -> Result<Glob, String> {
    if s.is_empty() || s.chars().any(char::is_control) {
        return Err(format!("invalid glob {s:?}"));
    }
    Ok(Glob(WildMatch::new(s)))
}

/// Parses `GLOB=VALUE` (the glob cannot contain `=`; the value may).
pub fn parse_cache_rule(s: &str) -> Result<CacheRule, String> {
    let (glob, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected GLOB=VALUE, got {s:?}"))?;
    let glob = parse_glob(glob.trim())?;
    let line = line("Cache-Control", value)?;
    Ok(CacheRule { glob, line })
}

/// Parses `Name: value`; the name must be a token the server does not set itself.
pub fn parse_header(s: &str) -> Result<HeaderLine, String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("expected `Name: value`, got {s:?}"))?;
    if !is_token(name) {
        return Err(format!("invalid header name {name:?}"));
    }
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(format!("header {name} is set by the server"));
    }
    Ok(HeaderLine(line(name, value)?))
}

/// Parses a CORS origin: `*`, or `scheme://host[:port]` with nothing after it.
pub fn parse_origin(s: &str) -> Result<CorsOrigin, String> {
    let bad = || format!("invalid origin {s:?} (use * or scheme://host[:port])");
    if s != "*" {
        let (scheme, authority) = s.split_once("://").ok_or_else(bad)?;
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        let authority_ok = !authority.is_empty()
            && authority
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c));
        if !scheme_ok || !authority_ok {
            return Err(bad());
        }
    }
    let origin = line("Access-Control-Allow-Origin", s)?;
    Ok(CorsOrigin {
        lines: [&origin[..], CORS_EXPOSE].concat().into_boxed_slice(),
        preflight: [&origin[..], CORS_PREFLIGHT].concat().into_boxed_slice(),
    })
}

/// `name: value` and CRLF, the value trimmed, non-empty and free of control characters (so
/// it can never end the line early or smuggle another field).
fn line(name: &str, value: &str) -> Result<Box<[u8]>, String> {
    let value = value.trim_matches([' ', '\t']);
    if value.is_empty() {
        return Err(format!("empty value for {name}"));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!("control character in the value of {name}"));
    }
    Ok(format!("{name}: {value}\r\n")
        .into_bytes()
        .into_boxed_slice())
}

/// Whether `s` is a non-empty RFC 9110 token (a valid field name).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content() -> Content {
        Content {
            cache_control: [
                "*.js=public, max-age=31536000, immutable",
                "*.html=no-cache",
            ]
            .into_iter()
            .map(|r| parse_cache_rule(r).unwrap())
            .collect(),
            add_headers: vec![parse_header("X-Frame-Options: DENY").unwrap()],
            cors: Some(parse_origin("https://example.com").unwrap()),
            attachment: vec![parse_glob("/downloads/*").unwrap()],
            ..Content::default()
        }
    }

    fn file_headers(c: &Content, path: &[u8], download: bool) -> (String, String) {
        let (mut always, mut content) = (Vec::new(), Vec::new());
        c.file_headers(path, download, &mut always, &mut content);
        (
            String::from_utf8(always).unwrap(),
            String::from_utf8(content).unwrap(),
        )
    }

    #[test]
    fn rules_apply_by_path() {
        let c = content();
        let (always, content) = file_headers(&c, b"/static/app.js", false);
        assert_eq!(
            always,
            "Cache-Control: public, max-age=31536000, immutable\r\n\
             Access-Control-Allow-Origin: https://example.com\r\n\
             Access-Control-Expose-Headers: Content-Range, Content-Length, Accept-Ranges, ETag\r\n\
             X-Frame-Options: DENY\r\n"
        );
        assert_eq!(content, "");
        let (always, _) = file_headers(&c, b"/index.html", false);
        assert!(
            always.starts_with("Cache-Control: no-cache\r\n"),
            "{always}"
        );
        let (always, _) = file_headers(&c, b"/a.css", false);
        assert!(!always.contains("Cache-Control"), "{always}");
        let (_, content) = file_headers(&c, "/downloads/café.iso".as_bytes(), false);
        assert!(
            content.contains("filename*=UTF-8''caf%C3%A9.iso"),
            "{content}"
        );
        let (_, content) = file_headers(&c, b"/a.css", true);
        assert_eq!(
            content,
            "Content-Disposition: attachment; filename=\"a.css\"\r\n"
        );
        let (_, content) = file_headers(&c, b"/downloads/\xff.js", false);
        assert!(
            content.contains("filename=\"_.js\""),
            "non-UTF-8 paths still match"
        );
    }

    #[test]
    fn first_matching_rule_wins() {
        let c = Content {
            cache_control: vec![
                parse_cache_rule("/a/*=max-age=1").unwrap(),
                parse_cache_rule("*=max-age=2").unwrap(),
            ],
            ..Content::default()
        };
        assert_eq!(
            file_headers(&c, b"/a/x", false).0,
            "Cache-Control: max-age=1\r\n"
        );
        assert_eq!(
            file_headers(&c, b"/b/x", false).0,
            "Cache-Control: max-age=2\r\n"
        );
        let mut listing = Vec::new();
        c.listing_headers(&mut listing);
        assert_eq!(listing, b"Cache-Control: no-cache\r\nVary: Accept\r\n");
    }

    #[test]
    fn globs() {
        let g = |p: &str, s: &str| parse_glob(p).unwrap().matches(s);
        assert!(g("*.js", "/a/b/c.js"));
        assert!(!g("*.js", "/a.json"));
        assert!(g("/a/?.txt", "/a/é.txt"));
        assert!(!g("/a/?.txt", "/a/bc.txt"));
        assert!(g("*", "/"));
        assert!(parse_glob("").is_err());
        assert!(parse_glob("a\nb").is_err());
    }

    #[test]
    fn values_validated() {
        for bad in ["*.js", "=x", "*.js=", "*.js=a\r\nX-Evil: 1", "*.js=a\nb"] {
            assert!(parse_cache_rule(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            &*parse_cache_rule(" *.css =  max-age=60 ").unwrap().line,
            b"Cache-Control: max-age=60\r\n"
        );
        for bad in [
            "NoColon",
            ": v",
            "Bad Name: v",
            "X-A:",
            "X-A: a\r\nb",
            "X-A: a\0",
            "Content-Length: 5",
            "transfer-encoding: chunked",
        ] {
            assert!(parse_header(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            &*parse_header("X-Robots-Tag:noindex, nofollow").unwrap().0,
            b"X-Robots-Tag: noindex, nofollow\r\n"
        );
        for good in [
            "*",
            "https://example.com",
            "http://localhost:8080",
            "https://[::1]:443",
        ] {
            assert!(parse_origin(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "example.com",
            "https://",
            "https://a.com/",
            "https://a b",
            "*\r\n",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_coding("gzip"), Ok(Coding::Gzip));
        assert_eq!(parse_coding("zstd"), Ok(Coding::Zstd));
        assert!(parse_coding("x-gzip").is_err());
        assert!(parse_coding("deflate").is_err());
    }
}
