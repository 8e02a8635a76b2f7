//! A request body in the session: where it ends (`Content-Length`, or the chunked coding
//! decoded as it arrives), and whether its bytes go to the host or are skipped.

use crate::http::chunked::Decoder;
use crate::http::{Limits, Status};

use super::host::Host;

/// A request body in progress.
#[derive(Debug)]
pub(super) struct Body {
    pub(super) framing: Framing,
    /// The host takes the bytes (else they are skipped).
    pub(super) take: bool,
    /// The host stopped taking them while they were moved directly.
    pub(super) refused: bool,
    /// The keep-alive decision of the response to come.
    pub(super) keep_alive: bool,
}

/// Where a body ends.
#[derive(Debug)]
pub(super) enum Framing {
    /// `Content-Length`: bytes still to come.
    Length(u64),
    /// Chunked: found by decoding.
    Chunked(Decoder),
}

/// How a body ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum End {
    /// A skipped body was all read.
    Skipped,
    /// A taken body was all given to the host.
    Taken,
    /// The host stopped taking it (and planned its answer).
    Refused,
    /// The chunked framing of a taken body is broken: answer this and close.
    Invalid(Status),
    /// A skipped body cannot be read on (broken chunked framing, or grown past
    /// `max_discard_body`); its request was answered already, so the connection just closes.
    Abort,
}

impl Body {
    /// Consumes the body's bytes at the start of `input`, giving them to the host if it takes
    /// them. Returns the bytes consumed and, once it is over, how the body ended.
    pub(super) fn feed(
        &mut self,
        input: &[u8],
        limits: &Limits,
        host: &mut impl Host,
    ) -> (usize, Option<End>) {
        let ended = if self.take { End::Taken } else { End::Skipped };
        if self.refused {
            return (0, Some(End::Refused));
        }
        match &mut self.framing {
            Framing::Length(left) => {
                let n = (*left).min(input.len() as u64) as usize;
                *left -= n as u64;
                if self.take && n > 0 && !host.body(&input[..n]) {
                    return (n, Some(End::Refused));
                }
                (n, (*left == 0).then_some(ended))
            }
            Framing::Chunked(decoder) => {
                let mut used = 0;
                loop {
                    let step = match decoder.step(&input[used..]) {
                        Ok(step) => step,
                        Err(_) if !self.take => return (input.len(), Some(End::Abort)),
                        Err(status) => return (input.len(), Some(End::Invalid(status))),
                    };
                    used += step.used;
                    if self.take {
                        if !step.data.is_empty() && !host.body(step.data) {
                            return (used, Some(End::Refused));
                        }
                    } else if decoder.total() > limits.max_discard_body {
                        return (used, Some(End::Abort));
                    }
                    if step.done {
                        return (used, Some(ended));
                    }
                    if used == input.len() || step.used == 0 {
                        return (used, None);
                    }
                }
            }
        }
    }
}
