//! `Content-Disposition: attachment` with a file name every client reads back correctly
//! (RFC 6266, RFC 8187).
//!
//! Key design decision: the name is sent twice when it is not plain ASCII. `filename="..."`
//! carries an ASCII fallback in which anything that could be misread (non-ASCII, controls,
//! `"`, `\`, `%`) became `_`, and `filename*=UTF-8''...` carries the real name
//! percent-encoded; clients that understand the second (all current browsers, curl `-J`)
//! prefer it. Names that are not valid UTF-8 (Linux allows any bytes) have each invalid
//! sequence replaced by U+FFFD, as the header declares UTF-8. Nothing is allocated.

/// Bytes allowed unencoded in an RFC 8187 `value-chars` (`attr-char`).
fn is_attr_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b)
}

/// Whether `b` may stand for itself in the quoted fallback name.
fn is_plain(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && !matches!(b, b'"' | b'\\' | b'%')
}

/// Appends `Content-Disposition: attachment; filename="…"` for a file called `name` (its
/// last path segment, raw bytes), with `filename*` when the fallback had to differ.
pub fn attachment(out: &mut Vec<u8>, name: &[u8]) {
    out.extend_from_slice(b"Content-Disposition: attachment; filename=\"");
    let mut exact = true;
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            match u8::try_from(c) {
                Ok(b) if is_plain(b) => out.push(b),
                _ => {
                    out.push(b'_');
                    exact = false;
                }
            }
        }
        if !chunk.invalid().is_empty() {
            out.push(b'_');
            exact = false;
        }
    }
    out.push(b'"');
    if !exact {
        out.extend_from_slice(b"; filename*=UTF-8''");
        let mut utf8 = [0u8; 4];
        for chunk in name.utf8_chunks() {
            for c in chunk.valid().chars() {
                percent_encode(out, c.encode_utf8(&mut utf8).as_bytes());
            }
            if !chunk.invalid().is_empty() {
                percent_encode(
                    out,
                    char::REPLACEMENT_CHARACTER
                        .encode_utf8(&mut utf8)
                        .as_bytes(),
                );
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends `bytes`, percent-encoding all but `attr-char`.
fn percent_encode(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if is_attr_char(b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(name: &[u8]) -> String {
        let mut out = Vec::new();
        attachment(&mut out, name);
        let text = String::from_utf8(out).expect("header is ASCII");
        assert!(text.is_ascii(), "{text}");
        text.strip_prefix("Content-Disposition: ")
            .and_then(|t| t.strip_suffix("\r\n"))
            .expect("one line")
            .to_string()
    }

    #[test]
    fn plain_names_once() {
        assert_eq!(value(b"report.pdf"), "attachment; filename=\"report.pdf\"");
        assert_eq!(
            value(b"a b (1).tar.gz"),
            "attachment; filename=\"a b (1).tar.gz\""
        );
    }

    #[test]
    fn odd_names_twice() {
        let cases: [(&[u8], &str); 6] = [
            (
                "café.txt".as_bytes(),
                "attachment; filename=\"caf_.txt\"; filename*=UTF-8''caf%C3%A9.txt",
            ),
            (
                b"say \"hi\".txt",
                "attachment; filename=\"say _hi_.txt\"; filename*=UTF-8''say%20%22hi%22.txt",
            ),
            (
                b"back\\slash",
                "attachment; filename=\"back_slash\"; filename*=UTF-8''back%5Cslash",
            ),
            (
                b"100%.txt",
                "attachment; filename=\"100_.txt\"; filename*=UTF-8''100%25.txt",
            ),
            (
                b"new\r\nline;x=1",
                "attachment; filename=\"new__line;x=1\"; filename*=UTF-8''new%0D%0Aline%3Bx%3D1",
            ),
            (
                b"bad\xff\xfe.bin",
                "attachment; filename=\"bad__.bin\"; filename*=UTF-8''bad%EF%BF%BD%EF%BF%BD.bin",
            ),
        ];
        for (name, want) in cases {
            assert_eq!(value(name), want, "{}", String::from_utf8_lossy(name));
        }
    }
}
