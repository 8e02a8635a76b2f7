//! Decoding of the chunked transfer coding (RFC 9112 §7.1), incrementally and sans I/O.
//!
//! A request body sent chunked arrives in whatever pieces the network makes, so the decoder
//! is a byte-driven state machine that keeps no input: each [`Decoder::step`] consumes the
//! framing at the front of what it is given and returns at most one run of body bytes as a
//! slice of that input (no copy), until the last chunk, its trailer section and the final
//! CRLF are consumed. Framing never needs a buffer, so a line split across reads costs
//! nothing.
//!
//! Where a front end and this server could disagree about where a body ends, the difference
//! is a smuggled request; so anything outside the grammar is refused rather than guessed at:
//! a size that is not hex, empty, or larger than 64 bits; chunk extensions that are not
//! `; name[=token|"quoted"]` (whitespace allowed around `;` and `=` only); a bare CR; data not
//! followed by its line end; trailer lines that are not `name: value`. A line may end with
//! CRLF or a lone LF (RFC 9112 §2.2 lets a recipient accept it, as nginx does). A chunk-size
//! line is bounded by [`MAX_LINE`], the trailer section by [`MAX_TRAILERS`].

use super::Status;

/// Longest chunk-size line accepted, extensions included (bytes, without the line end).
pub const MAX_LINE: usize = 4096;

/// Largest trailer section accepted (all its lines together).
pub const MAX_TRAILERS: usize = 16 * 1024;

/// Where the decoder is in the grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// The first digit of a chunk size.
    SizeStart,
    /// More size digits.
    Size,
    /// Whitespace after the size, which only a `;` may follow.
    SizeWs,
    /// After `;`: whitespace, then an extension name.
    ExtNameStart,
    /// An extension name.
    ExtName,
    /// Whitespace after an extension name: `=`, `;` or nothing may follow.
    ExtNameWs,
    /// After `=`: whitespace, then a value.
    ExtValStart,
    /// A token value.
    ExtToken,
    /// Inside a quoted-string value.
    ExtQuoted,
    /// After a backslash in a quoted string.
    ExtEscape,
    /// Whitespace after a value.
    ExtValWs,
    /// A CR ended the size line: its LF.
    SizeLf,
    /// Chunk data: bytes still to come.
    Data(u64),
    /// The line end after chunk data.
    DataEnd,
    /// The LF after the CR of chunk data.
    DataLf,
    /// The start of a trailer line (or the final line end).
    TrailerStart,
    /// A trailer field name.
    TrailerName,
    /// A trailer field value.
    TrailerValue,
    /// The LF of a trailer line.
    TrailerLf,
    /// The LF of the final line.
    FinalLf,
    /// The body is complete.
    Done,
}

/// Incremental decoder of one chunked body.
#[derive(Clone, Debug)]
pub struct Decoder {
    state: State,
    /// Size of the chunk whose size line is being read.
    size: u64,
    /// Bytes of the current size line so far.
    line: usize,
    /// Bytes of the trailer section so far.
    trailers: usize,
    /// Body bytes decoded so far.
    total: u64,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

/// What one [`Decoder::step`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step<'a> {
    /// Input bytes consumed (framing and data).
    pub used: usize,
    /// Body bytes found in the consumed input (a sub-slice of it; may be empty).
    pub data: &'a [u8],
    /// The body ended: last chunk, trailers and the final line end consumed. Bytes after
    /// `used` belong to the next message.
    pub done: bool,
}

/// Whether `b` may be in a token (RFC 9110 §5.6.2).
fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Visible ASCII or obs-text, as field values and quoted pairs allow.
fn vchar(b: u8) -> bool {
    b.is_ascii_graphic() || b >= 0x80
}

impl Decoder {
    /// A decoder at the start of a body.
    pub fn new() -> Decoder {
        Decoder {
            state: State::SizeStart,
            size: 0,
            line: 0,
            trailers: 0,
            total: 0,
        }
    }

    /// Body bytes decoded so far (the sum of the chunk sizes seen).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Decodes from the start of `input`: consumes framing, then at most one run of data
    /// bytes, and returns. Call again with the rest (`&input[used..]`) until it is empty or
    /// the body is `done`. An error (`400` for bad framing or an over-long size line, `431`
    /// for oversized trailers) leaves the decoder unusable.
    pub fn step<'a>(&mut self, input: &'a [u8]) -> Result<Step<'a>, Status> {
        let mut i = 0;
        loop {
            if let State::Data(left) = self.state {
                let n = left.min((input.len() - i) as u64);
                if n == 0 {
                    return Ok(Step {
                        used: i,
                        data: &[],
                        done: false,
                    });
                }
                let data = &input[i..i + n as usize];
                self.total += n;
                self.state = if left == n {
                    State::DataEnd
                } else {
                    State::Data(left - n)
                };
                return Ok(Step {
                    used: i + n as usize,
                    data,
                    done: false,
                });
            }
            if self.state == State::Done {
                return Ok(Step {
                    used: i,
                    data: &[],
                    done: true,
                });
            }
            let Some(&b) = input.get(i) else {
                return Ok(Step {
                    used: i,
                    data: &[],
                    done: false,
                });
            };
            i += 1;
            self.byte(b)?;
        }
    }

    /// Advances the framing by one byte.
    fn byte(&mut self, b: u8) -> Result<(), Status> {
        use State::*;
        let bad = Err(Status::BadRequest);
        if b != b'\r'
            && b != b'\n'
            && matches!(
                self.state,
                SizeStart
                    | Size
                    | SizeWs
                    | ExtNameStart
                    | ExtName
                    | ExtNameWs
                    | ExtValStart
                    | ExtToken
                    | ExtQuoted
                    | ExtEscape
                    | ExtValWs
            )
        {
            self.line += 1;
            if self.line > MAX_LINE {
                return bad;
            }
        }
        if matches!(
            self.state,
            TrailerStart | TrailerName | TrailerValue | TrailerLf
        ) {
            self.trailers += 1;
            if self.trailers > MAX_TRAILERS {
                return Err(Status::HeaderFieldsTooLarge);
            }
        }
        self.state = match (self.state, b) {
            (SizeStart | Size, _) if b.is_ascii_hexdigit() => {
                let digit = u64::from((b as char).to_digit(16).unwrap_or(0));
                self.size = match self.size.checked_mul(16) {
                    Some(v) => v + digit,
                    None => return bad,
                };
                Size
            }
            (Size, b';') | (SizeWs, b';') => ExtNameStart,
            (Size, _) if ws(b) => SizeWs,
            (SizeWs, _) if ws(b) => SizeWs,
            (ExtNameStart, _) if ws(b) => ExtNameStart,
            (ExtNameStart | ExtName, _) if tchar(b) => ExtName,
            (ExtName, _) if ws(b) => ExtNameWs,
            (ExtNameWs, _) if ws(b) => ExtNameWs,
            (ExtName | ExtNameWs, b'=') => ExtValStart,
            (ExtName | ExtNameWs | ExtToken | ExtValWs, b';') => ExtNameStart,
            (ExtValStart, _) if ws(b) => ExtValStart,
            (ExtValStart, b'"') => ExtQuoted,
            (ExtValStart | ExtToken, _) if tchar(b) => ExtToken,
            (ExtToken, _) if ws(b) => ExtValWs,
            (ExtValWs, _) if ws(b) => ExtValWs,
            (ExtQuoted, b'"') => ExtValWs,
            (ExtQuoted, b'\\') => ExtEscape,
            (ExtQuoted, _) if ws(b) || vchar(b) => ExtQuoted,
            (ExtEscape, _) if ws(b) || vchar(b) => ExtQuoted,
            (Size | ExtName | ExtToken | ExtValWs, b'\r') => SizeLf,
            (Size | ExtName | ExtToken | ExtValWs, b'\n') | (SizeLf, b'\n') => {
                self.size_line_done()
            }
            (DataEnd, b'\r') => DataLf,
            (DataEnd, b'\n') | (DataLf, b'\n') => SizeStart,
            (TrailerStart, b'\r') => FinalLf,
            (TrailerStart, b'\n') | (FinalLf, b'\n') => Done,
            (TrailerStart | TrailerName, _) if tchar(b) => TrailerName,
            (TrailerName, b':') => TrailerValue,
            (TrailerValue, _) if ws(b) || vchar(b) => TrailerValue,
            (TrailerValue, b'\r') => TrailerLf,
            (TrailerValue, b'\n') | (TrailerLf, b'\n') => TrailerStart,
            _ => return bad,
        };
        Ok(())
    }

    /// The size line ended: data follows, or for the last chunk the trailers.
    fn size_line_done(&mut self) -> State {
        let size = std::mem::take(&mut self.size);
        self.line = 0;
        if size == 0 {
            State::TrailerStart
        } else {
            State::Data(size)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Decodes `pieces` one after the other: the body, and where in the concatenated input
    /// the body ended (`None` if it did not).
    fn decode(pieces: &[&[u8]]) -> Result<(Vec<u8>, Option<usize>), Status> {
        let mut d = Decoder::new();
        let mut body = Vec::new();
        let mut offset = 0;
        for piece in pieces {
            let mut rest = *piece;
            loop {
                let step = d.step(rest)?;
                body.extend_from_slice(step.data);
                offset += step.used;
                rest = &rest[step.used..];
                if step.done {
                    assert_eq!(d.total(), body.len() as u64);
                    return Ok((body, Some(offset)));
                }
                if rest.is_empty() {
                    break;
                }
            }
        }
        Ok((body, None))
    }

    fn whole(input: &[u8]) -> Result<(Vec<u8>, Option<usize>), Status> {
        decode(&[input])
    }

    #[test]
    fn valid_bodies() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"0\r\n\r\n", b""),
            (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
            (b"A\r\n0123456789\r\n000\r\n\r\n", b"0123456789"),
            (b"0005\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"5;a=b\r\nhello\r\n0;last\r\n\r\n", b"hello"),
            (b"5 ; a = \"x \\\" y\" ; b\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"5;a\t;b=c\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"5\r\nhello\r\n0\r\nX-Sum: abc\r\nY:\r\n\r\n", b"hello"),
            (b"5\nhello\n0\n\n", b"hello"),
            (b"1\r\n\r\r\n0\r\n\r\n", b"\r"),
        ];
        for (input, body) in cases {
            let (got, end) = whole(input).unwrap_or_else(|e| panic!("{input:?}: {e:?}"));
            assert_eq!(got, *body, "{input:?}");
            assert_eq!(end, Some(input.len()), "{input:?}");
        }
    }

    #[test]
    fn bytes_after_the_body_are_not_consumed() {
        let input = b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        let (body, end) = whole(input).unwrap();
        assert_eq!((body.as_slice(), end), (&b"abc"[..], Some(13)));
        let mut d = Decoder::new();
        let step = d.step(&input[..13]).unwrap();
        assert_eq!(step.data, b"abc");
        let step = d.step(&input[step.used..]).unwrap();
        assert!(step.done);
        // After the end, nothing more is taken.
        let step = d.step(b"more").unwrap();
        assert_eq!((step.used, step.done), (0, true));
    }

    #[test]
    fn malformed_framing_is_refused() {
        let bad: &[&[u8]] = &[
            b"\r\n",                      // empty size
            b"5\r\nhelloXX0\r\n\r\n",     // no line end after data
            b"5\r\nhello\rX",             // CR not followed by LF
            b"0x5\r\nhello\r\n0\r\n\r\n", // 0x prefix
            b"+5\r\nhello\r\n0\r\n\r\n",  // sign
            b"-5\r\n",                    // sign
            b"5 5\r\nhello\r\n",          // space inside the size
            b"5 \r\nhello\r\n",           // whitespace not followed by ;
            b"10000000000000000\r\n",     // over 64 bits
            b"5\rhello\r\n",              // bare CR on the size line
            b"5;\x00\r\n",                // NUL in an extension
            b"5;a=\x01\r\n",              // control character in a value
            b"5;=b\r\n",                  // no extension name
            b"5;a b\r\n",                 // whitespace inside a name
            b"5;a=\"open\r\n",            // unterminated quoted string
            b"5;a=\"x\"y\r\n",            // junk after a quoted string
            b"5;a=b c\r\n",               // two values
            b"0\r\nNoColon\r\n\r\n",      // trailer without a colon
            b"0\r\nName : v\r\n\r\n",     // whitespace before the colon
            b"0\r\n: v\r\n\r\n",          // empty trailer name
            b"0\r\nA: \x00\r\n\r\n",      // NUL in a trailer
            b"0\r\n\rX",                  // final CR without LF
            b"g\r\n",                     // not hex
        ];
        for input in bad {
            assert_eq!(whole(input), Err(Status::BadRequest), "{input:?}");
        }
    }

    #[test]
    fn lines_and_trailers_are_bounded() {
        let mut line = b"5;".to_vec();
        line.resize(MAX_LINE, b'a');
        line.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        assert_eq!(whole(&line).unwrap().0, b"hello");
        let mut long = b"5;".to_vec();
        long.resize(MAX_LINE + 1, b'a');
        long.extend_from_slice(b"\r\n");
        assert_eq!(whole(&long), Err(Status::BadRequest));
        let mut trailers = b"0\r\n".to_vec();
        while trailers.len() < MAX_TRAILERS + 10 {
            trailers.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(whole(&trailers), Err(Status::HeaderFieldsTooLarge));
        // Leading zeros count against the line, not the 64 bits.
        let mut zeros = vec![b'0'; 100];
        zeros.extend_from_slice(b"1\r\nx\r\n0\r\n\r\n");
        assert_eq!(whole(&zeros).unwrap().0, b"x");
    }

    #[test]
    fn every_split_into_three_pieces_decodes_alike() {
        let input: &[u8] =
            b"4;n=\"v\"\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nT: 1\r\n\r\nNEXT";
        let end = input.len() - 4;
        let expect = b"Wikipedia in\r\n\r\nchunks.".to_vec();
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let got = decode(&[&input[..i], &input[i..j], &input[j..]]).unwrap();
                assert_eq!(got, (expect.clone(), Some(end)), "split {i} {j}");
            }
        }
    }

    /// `data` chunked as `sizes` say (cycled), with an extension on some chunks.
    fn encode(data: &[u8], sizes: &[usize], ext: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = data;
        let mut k = 0;
        while !rest.is_empty() {
            let n = sizes[k % sizes.len()].clamp(1, rest.len());
            k += 1;
            out.extend_from_slice(format!("{n:x}").as_bytes());
            if ext && k % 2 == 0 {
                out.extend_from_slice(b" ; k=\"v;\" ");
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&rest[..n]);
            out.extend_from_slice(b"\r\n");
            rest = &rest[n..];
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    }

    proptest! {
        #[test]
        fn encoded_bodies_decode_in_any_pieces(
            data in proptest::collection::vec(any::<u8>(), 0..2000),
            sizes in proptest::collection::vec(1usize..300, 1..8),
            cuts in proptest::collection::vec(0usize..3000, 0..6),
            ext in any::<bool>(),
        ) {
            let input = encode(&data, &sizes, ext);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (input.len() + 1)).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut at = 0;
            for c in cuts {
                pieces.push(&input[at..c]);
                at = c;
            }
            pieces.push(&input[at..]);
            let got = decode(&pieces).unwrap();
            prop_assert_eq!(got, (data, Some(input.len())));
        }
    }
}
