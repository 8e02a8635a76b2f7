//! The transmit path of a response: its planned chunks handed to the socket inline and
//! non-blocking, heads with `send`, file bytes with `sendfile` or through a pipe with
//! `splice` (they never enter user space), a prebuilt copy of head and body with one
//! `sendfile`, each file chunk sized by the response's pacing, and the tail of a connection's
//! last response held back to leave with the FIN.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::Instant;

use crate::config::BodyPath;
use crate::http::Chunk;
use crate::metrics::BodyKind;
use crate::policy::Allowance;

use super::out_pool::Out;
use super::pipes::{Pipe, PipePool, PIPE_SIZE};
use super::worker::Worker;
use crate::sys;

/// How a connection's last response keeps its tail back until the shutdown at close sends
/// it with the FIN.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// Nothing held: a response that keeps the connection open, or a paced one.
    Sent,
    /// Every send of the response says more follows (`MSG_MORE`, `SPLICE_F_MORE`), so the
    /// last partial segment waits, at no cost beyond the flag.
    More,
    /// The socket is corked (`TCP_CORK`): `sendfile(2)` takes no flag, so a response that
    /// goes out through it sets the cork before its first call.
    Corked,
}

/// How far [`send`] got.
pub enum Progress {
    /// The whole response is with the kernel.
    Done,
    /// The socket is full.
    Blocked,
    /// The response is ahead of its rate until this instant.
    Paced(Instant),
    /// The response had its [`TURN_BYTES`]: it goes on at the loop's next turn, after the
    /// worker's other connections have had theirs.
    Yield,
}

/// Most bytes one response hands the kernel in one turn of its worker's loop, as nginx's
/// `sendfile_max_chunk` (2m): a client that reads a large file as fast as it arrives would
/// otherwise hold the worker for the whole file, every other connection on it waiting.
pub const TURN_BYTES: u64 = 2 << 20;

/// Most file bytes one `sendfile` takes where TCP paces itself (BBR without the `fq` qdisc).
/// A call that goes on for megabytes leaves TCP to send most of them from its pacing timer,
/// about one timer interrupt per 80 KiB on loopback; calls of 128 KiB let more leave from the
/// call itself: a 1 GiB stream to a client that keeps up moved 2× the bytes per second of
/// the server's core (64 KiB and 256 KiB: 1.2-1.4×). Without pacing, calls this short cost
/// 14 %, so there a call takes up to [`TURN_BYTES`] (perf/RESULTS.md, 2026-12-06).
const PACED_TCP_CALL: u64 = 128 << 10;

/// Sends the chunks of `out` from its cursor on, inline and non-blocking: heads with `send`,
/// file bytes with `sendfile` (or through `pipe` with `splice`), each file chunk sized by the
/// response's pacing. A response the worker holds prebuilt is sent from the copy instead.
/// Whatever `pipe` holds goes out before anything else: those are the response's next bytes.
pub fn send(
    out: &mut Out,
    sock: BorrowedFd<'_>,
    pipe: &mut Option<Pipe>,
    tail: &mut Tail,
    w: &mut Worker,
) -> io::Result<Progress> {
    let held = *tail != Tail::Sent;
    if !out.prebuilt {
        start_prebuilt(out, w);
    }
    let mut this_turn = 0;
    loop {
        let sent = if let Some(p) = pipe.as_mut().filter(|p| p.filled > 0) {
            let before = p.filled;
            // More follows at once (unless a rate spaces the chunks out), or the tail waits
            // for the FIN.
            let more = held || (remaining(out) > before as u64 && out.pacing.is_none());
            let kind = if out.prebuilt {
                BodyKind::Prebuilt
            } else {
                BodyKind::Splice
            };
            let sent = sys::splice_to_socket(p.r(), sock, before, more);
            if let Ok(n) = sent {
                p.filled -= n;
                if let Some(empty) = pipe.take_if(|p| p.filled == 0) {
                    w.pipes.give(empty);
                }
            }
            sent.map(|n| (n, n < before, kind))
        } else {
            let Some(&chunk) = out.chunks.get(out.cursor.0) else {
                return Ok(Progress::Done);
            };
            let more = held || out.cursor.0 + 1 < out.chunks.len();
            let done = out.cursor.1;
            match chunk {
                Chunk::Mem { start, end } => {
                    let buf = &out.bytes[start + done as usize..end];
                    sys::send(sock, buf, more).map(|n| (n, n < buf.len(), BodyKind::Memory))
                }
                Chunk::File { offset, len } => {
                    // A prebuilt copy whose tail waits for the FIN goes through the pipe, where
                    // SPLICE_F_MORE holds the tail: cheaper than corking the socket for it.
                    let through_pipe =
                        matches!(w.config.body, BodyPath::Splice) || (out.prebuilt && held);
                    if *tail == Tail::More && !through_pipe {
                        // sendfile(2) takes no MSG_MORE: the cork holds its tail instead.
                        // Failing, the tail leaves in a segment of its own: no harm done.
                        let _ = socket2::SockRef::from(&sock).set_tcp_cork(true);
                        *tail = Tail::Corked;
                    }
                    let file = out
                        .file
                        .as_ref()
                        .ok_or(io::ErrorKind::InvalidInput)?
                        .as_fd();
                    let at = offset + done;
                    let after_a_head = done == 0 && out.cursor.0 > 0;
                    let mut want = call_len(len - done, at, this_turn, w.tcp_paced, after_a_head);
                    if let Some(pacing) = &mut out.pacing {
                        match pacing.allowance(w.now, want) {
                            Allowance::Send(n) => want = n,
                            Allowance::Wait(until) => return Ok(Progress::Paced(until)),
                        }
                    }
                    if through_pipe {
                        match fill(pipe, &mut w.pipes, file, at, want) {
                            Ok(()) => continue,
                            Err(e) => Err(e),
                        }
                    } else {
                        let kind = if out.prebuilt {
                            BodyKind::Prebuilt
                        } else {
                            BodyKind::Sendfile
                        };
                        // A short count is not taken for a full socket: it is also what the
                        // end of a file that shrank looks like, and an edge-triggered
                        // backend would then wait for a writability that never changes. The
                        // next call says which (EAGAIN, or 0 and the response is cut off).
                        sys::sendfile(sock, file, at, want).map(|n| (n, false, kind))
                    }
                }
            }
        };
        match sent {
            Ok((0, _, _)) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok((n, socket_full, kind)) => {
                let chunk = out.cursor.0;
                advance(out, n as u64, kind, w);
                if socket_full && (out.cursor.0 == chunk || pipe.is_some()) {
                    // Wait for writability rather than try again only to get EAGAIN.
                    return Ok(Progress::Blocked);
                }
                this_turn += n as u64;
                if this_turn >= TURN_BYTES && (remaining(out) > 0 || pipe.is_some()) {
                    return Ok(Progress::Yield);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Progress::Blocked),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Starts the response from its prebuilt copy when the worker holds one (see
/// [`Prebuilt`](super::prebuilt::Prebuilt)): the response becomes the copy's bytes, head and
/// body, sent from the copy as a file.
fn start_prebuilt(out: &mut Out, w: &mut Worker) {
    let Some((copy, len)) = w.prebuilt.lookup(out) else {
        return;
    };
    out.file = Some(Arc::clone(copy));
    out.chunks.clear();
    out.chunks.push(Chunk::File { offset: 0, len });
    out.prebuilt = true;
}

/// Moves the cursor of `out` past `n` bytes handed to the kernel, counting them in the
/// metrics (file bytes as `file_kind`, the rest as memory) and against the pacing.
pub fn advance(out: &mut Out, mut n: u64, file_kind: BodyKind, w: &Worker) {
    if let Some(pacing) = &mut out.pacing {
        pacing.sent(n);
    }
    while let Some(&chunk) = out.chunks.get(out.cursor.0) {
        let k = (chunk_len(chunk) - out.cursor.1).min(n);
        let kind = match chunk {
            Chunk::Mem { .. } => BodyKind::Memory,
            Chunk::File { .. } => file_kind,
        };
        w.metrics.bytes(kind, k);
        (out.cursor.1, n) = (out.cursor.1 + k, n - k);
        if out.cursor.1 < chunk_len(chunk) {
            break;
        }
        out.cursor = (out.cursor.0 + 1, 0);
        if n == 0 {
            break;
        }
    }
}

/// Bytes of the response still to send.
fn remaining(out: &Out) -> u64 {
    response_len(&out.chunks[out.cursor.0..]) - out.cursor.1
}

/// The splice body path: fills the connection's empty pipe with up to `want` bytes of `file`
/// at `at`, for [`send`] to move on to the socket. The pipe is borrowed from the pool only
/// while it holds bytes.
fn fill(
    slot: &mut Option<Pipe>,
    pool: &mut PipePool,
    file: BorrowedFd<'_>,
    at: u64,
    want: u64,
) -> io::Result<()> {
    let pipe = match slot {
        Some(p) => p,
        None => slot.insert(pool.take()?),
    };
    let cap = want.min(PIPE_SIZE as u64) as usize;
    pipe.filled = sys::splice_from_file(file, at, pipe.w(), cap)?;
    if pipe.filled == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// How many of the `left` file bytes from `at` the next call takes, `this_turn` bytes into
/// the response's turn: no more than the rest of its [`TURN_BYTES`], and where TCP paces
/// itself no more than [`PACED_TCP_CALL`], nor past [`after_head`] right after a head.
fn call_len(left: u64, at: u64, this_turn: u64, paced_tcp: bool, after_a_head: bool) -> u64 {
    let mut want = left.min(TURN_BYTES - this_turn);
    if paced_tcp {
        want = want.min(PACED_TCP_CALL);
        if after_a_head {
            want = want.min(after_head(at));
        }
    }
    want
}

/// Most pages a socket buffer (`MAX_SKB_FRAGS`, 17 by default) holds besides the head that
/// waits in it.
const HEAD_SKB_PAGES: u64 = 16;

/// How many file bytes from `at` go in the first `sendfile` after a head sent with
/// `MSG_MORE` where TCP paces itself: no more than the pages that fit in the socket buffer
/// holding the head. Past them the kernel starts a second buffer in the same call and
/// transmits both in one go, and a paced TCP (BBR without the `fq` qdisc) holds the second
/// for a pacing timer: one timer interrupt per response, +15 % CPU for 64 KiB ranges on
/// loopback. Cut at the pages' end, the rest leaves in a `sendfile` of its own, by when the
/// clock has moved on. Without pacing the cut would only cost a call (+7 %).
fn after_head(at: u64) -> u64 {
    let page = sys::page_size() as u64;
    HEAD_SKB_PAGES * page - at % page
}

/// Bytes of a whole response: head and body.
pub fn response_len(chunks: &[Chunk]) -> u64 {
    chunks.iter().map(|&c| chunk_len(c)).sum()
}

fn chunk_len(c: Chunk) -> u64 {
    match c {
        Chunk::Mem { start, end } => (end - start) as u64,
        Chunk::File { len, .. } => len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_takes_what_is_left_of_the_turn_and_less_where_tcp_paces() {
        let page = sys::page_size() as u64;
        assert_eq!(call_len(1 << 30, 0, 0, false, false), TURN_BYTES);
        assert_eq!(call_len(1 << 30, 0, TURN_BYTES - 5, false, true), 5);
        assert_eq!(call_len(1000, 0, 0, false, false), 1000);
        assert_eq!(call_len(1 << 30, 0, 0, true, false), PACED_TCP_CALL);
        assert_eq!(call_len(1 << 30, 100, 0, true, true), 16 * page - 100);
        assert_eq!(call_len(1 << 30, 0, TURN_BYTES - 5, true, false), 5);
    }

    #[test]
    fn the_first_bytes_after_a_head_end_at_the_sixteenth_page() {
        let page = sys::page_size() as u64;
        assert_eq!(after_head(0), 16 * page);
        assert_eq!(after_head(page - 1), 15 * page + 1);
        assert_eq!(after_head(5 * page + 100), 16 * page - 100);
        // So the head's page and the file's pages touched stay within MAX_SKB_FRAGS.
        for at in [0, 1, page / 2, page - 1, 7 * page + 3] {
            let pages = (at % page + after_head(at)).div_ceil(page);
            assert_eq!(pages, HEAD_SKB_PAGES);
        }
    }
}
