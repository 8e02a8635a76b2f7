//! Escaping text for the formats the server writes: JSON strings and HTML. Both take raw
//! bytes (targets, headers and file names may be any bytes), replace each invalid UTF-8
//! sequence with U+FFFD and append to a reused buffer, so the output is always valid UTF-8
//! and the hot path (the JSON access log) allocates nothing.

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Copies `s` as the inside of a JSON string: `"`, `\`, control characters and DEL are
/// escaped, valid UTF-8 is kept, and each invalid UTF-8 sequence (hostile targets and
/// headers carry any byte) becomes U+FFFD, so the line is always valid UTF-8 JSON.
pub fn json(out: &mut Vec<u8>, s: &[u8]) {
    for chunk in s.utf8_chunks() {
        for &c in chunk.valid().as_bytes() {
            match c {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0..0x20 | 0x7f => out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(c >> 4) as usize],
                    HEX[(c & 15) as usize],
                ]),
                _ => out.push(c),
            }
        }
        if !chunk.invalid().is_empty() {
            out.extend_from_slice(b"\\uFFFD");
        }
    }
}

/// Appends `text` as HTML text or attribute content: `& < > " '` as character references.
pub fn html(out: &mut Vec<u8>, text: &[u8]) {
    for chunk in text.utf8_chunks() {
        for &b in chunk.valid().as_bytes() {
            match b {
                b'&' => out.extend_from_slice(b"&amp;"),
                b'<' => out.extend_from_slice(b"&lt;"),
                b'>' => out.extend_from_slice(b"&gt;"),
                b'"' => out.extend_from_slice(b"&quot;"),
                b'\'' => out.extend_from_slice(b"&#39;"),
                _ => out.push(b),
            }
        }
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{FFFD}".as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escaping_yields_valid_json() {
        let mut v = b"\"".to_vec();
        json(
            &mut v,
            b"a\"b\\c\x01\x1f\x7f\n\t\r d\xff\xfe caf\xc3\xa9 \xe2\x82",
        );
        v.push(b'"');
        let text = std::str::from_utf8(&v).expect("valid UTF-8");
        let parsed: String = serde_json::from_str(text).expect("valid JSON string");
        assert_eq!(
            parsed,
            "a\"b\\c\u{1}\u{1f}\u{7f}\n\t\r d\u{fffd}\u{fffd} café \u{fffd}"
        );
    }

    #[test]
    fn html_escaping() {
        let mut v = Vec::new();
        html(&mut v, b"<a href=\"x\">'&'</a> bad\xff");
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt; bad\u{FFFD}"
        );
    }
}
