//! `Content-Range` and `multipart/byteranges` bodies, parsed for checking.

use super::*;

/// One part of a `multipart/byteranges` body.
#[derive(Debug)]
pub struct Part {
    /// The part's Content-Type, if any.
    pub content_type: Option<String>,
    /// First byte position from the part's Content-Range.
    pub first: u64,
    /// Last byte position (inclusive).
    pub last: u64,
    /// Complete length from the Content-Range.
    pub total: u64,
    /// The part's bytes.
    pub data: Vec<u8>,
}

/// Parses `bytes FIRST-LAST/TOTAL`.
pub fn parse_content_range(value: &str) -> (u64, u64, u64) {
    let parse = || {
        let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
        let (first, last) = range.split_once('-')?;
        Some((first.parse().ok()?, last.parse().ok()?, total.parse().ok()?))
    };
    let (first, last, total) = parse().unwrap_or_else(|| panic!("bad Content-Range {value:?}"));
    assert!(first <= last && last < total, "bad Content-Range {value:?}");
    (first, last, total)
}

/// Parses a `206 multipart/byteranges` response body into its parts, reading each part's data
/// by the length its Content-Range announces and checking every delimiter on the way.
pub fn parse_multipart(resp: &Response) -> Vec<Part> {
    let ctype = resp.expect_header("Content-Type");
    let mut params = ctype.split(';');
    let mime = params.next().unwrap().trim();
    assert!(
        mime.eq_ignore_ascii_case("multipart/byteranges"),
        "Content-Type {ctype:?}"
    );
    let boundary = params
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"'))
        .unwrap_or_else(|| panic!("no boundary in {ctype:?}"));
    let delim = format!("--{boundary}");
    let body = &resp.body[..];
    let mut pos = memchr::memmem::find(body, delim.as_bytes())
        .unwrap_or_else(|| panic!("no delimiter in {resp:?}"));
    assert!(
        body[..pos].iter().all(|b| b.is_ascii_whitespace()),
        "preamble before first delimiter"
    );
    let mut parts = Vec::new();
    loop {
        pos += delim.len();
        if body[pos..].starts_with(b"--") {
            let epilogue = &body[pos + 2..];
            assert!(
                epilogue.is_empty() || epilogue == b"\r\n",
                "epilogue {}",
                lossy(epilogue)
            );
            return parts;
        }
        assert!(body[pos..].starts_with(b"\r\n"), "no CRLF after delimiter");
        pos += 2;
        let head_len = memchr::memmem::find(&body[pos..], b"\r\n\r\n").expect("part head end");
        let head = std::str::from_utf8(&body[pos..pos + head_len]).expect("UTF-8 part head");
        pos += head_len + 4;
        let field = |name: &str| {
            head.split("\r\n").find_map(|line| {
                let (n, v) = line.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let range = field("Content-Range").unwrap_or_else(|| panic!("part without range"));
        let (first, last, total) = parse_content_range(&range);
        let end = pos + usize::try_from(last - first + 1).unwrap();
        assert!(end <= body.len(), "part {range} truncated");
        parts.push(Part {
            content_type: field("Content-Type"),
            first,
            last,
            total,
            data: body[pos..end].to_vec(),
        });
        pos = end;
        assert!(
            body[pos..].starts_with(b"\r\n") && body[pos + 2..].starts_with(delim.as_bytes()),
            "part {range} not followed by a delimiter: {}",
            lossy(&body[pos..])
        );
        pos += 2;
    }
}
