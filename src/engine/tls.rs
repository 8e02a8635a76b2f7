//! The transport of an HTTPS connection: records written to the socket with non-blocking
//! sends, and a response's bytes encrypted on their way out, file bytes read a few records at
//! a time (`pread`), so a transfer holds at most [`CHUNK`] of plaintext in user space.

use std::io::{self, Write};
use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt;

use crate::http::Chunk;
use crate::metrics::BodyKind;
use crate::policy::Allowance;
use crate::sys;
use crate::tls::{BufferPool, Tls, CHUNK};

use super::out_pool::Out;
use super::send::{advance, Progress, TURN_BYTES};
use super::worker::Worker;

/// Who makes an HTTPS connection's records.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub enum Kernel {
    /// rustls, in user space.
    #[default]
    No,
    /// rustls still, but the session can go to the kernel (kTLS): it does at the next input,
    /// once the backend has stopped receiving ahead (see [`offload`]).
    Ready,
    /// The kernel: the connection sends and receives plaintext, file bodies with
    /// `sendfile`.
    Yes,
}

/// Whether the session in `tls` can go to the kernel now, given what this worker's probe
/// found ([`Kernel::Ready`]).
pub fn kernel_ready(tls: Option<&Tls>, w: &Worker) -> Kernel {
    match tls {
        Some(tls) if tls.kernel_cipher(w.ktls).is_some() => Kernel::Ready,
        _ => Kernel::No,
    }
}

/// Hands the session in `slot` to the kernel: installs its keys on `sock` (kTLS). Called with
/// no input read ahead of the session (the backend stopped receiving), so the kernel decrypts
/// from the next record on. `Ok(false)`: the session stays in user space. An error leaves the
/// connection without a session: it closes.
pub fn offload(
    slot: &mut Option<Box<Tls>>,
    sock: BorrowedFd<'_>,
    w: &mut Worker,
) -> io::Result<bool> {
    let Some(tls) = slot.take_if(|t| t.kernel_cipher(w.ktls).is_some()) else {
        return Ok(false);
    };
    let (tx, rx) = (*tls).into_kernel().map_err(|e| io::Error::other(e.0))?;
    sys::ktls_install(sock, &tx, &rx)?;
    w.metrics.tls_kernel();
    Ok(true)
}

/// The socket as rustls writes records to it: non-blocking sends.
struct Socket<'a>(BorrowedFd<'a>);

impl Write for Socket<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        sys::send(self.0, buf, false)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes the records `tls` holds to `sock`: `Ok(true)` when all are out (their buffer back in
/// `pool`), `Ok(false)` when the socket is full.
pub fn write_records(
    tls: &mut Tls,
    sock: BorrowedFd<'_>,
    pool: &mut BufferPool,
) -> io::Result<bool> {
    loop {
        match tls.write_records(&mut Socket(sock), pool) {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Sends the chunks of `out` from its cursor on through `tls`: each piece encrypted once the
/// records before it are written, file chunks read with `pread` into the worker's buffer and
/// sized by the response's pacing; at most [`TURN_BYTES`] in one turn of the loop.
pub fn send(
    out: &mut Out,
    sock: BorrowedFd<'_>,
    tls: &mut Tls,
    w: &mut Worker,
) -> io::Result<Progress> {
    let mut this_turn = 0;
    loop {
        if !write_records(tls, sock, &mut w.tls_bufs)? {
            return Ok(Progress::Blocked);
        }
        let Some(&chunk) = out.chunks.get(out.cursor.0) else {
            return Ok(Progress::Done);
        };
        if this_turn >= TURN_BYTES {
            return Ok(Progress::Yield);
        }
        let done = out.cursor.1;
        let (taken, kind) = match chunk {
            Chunk::Mem { start, end } => {
                let piece = &out.bytes[start + done as usize..end];
                (tls.encrypt(piece, &mut w.tls_bufs), BodyKind::Memory)
            }
            Chunk::File { offset, len } => {
                let mut want = (len - done).min(CHUNK as u64);
                if let Some(pacing) = &mut out.pacing {
                    match pacing.allowance(w.now, want) {
                        Allowance::Send(n) => want = n,
                        Allowance::Wait(until) => return Ok(Progress::Paced(until)),
                    }
                }
                let file = out.file.as_ref().ok_or(io::ErrorKind::InvalidInput)?;
                let buf = &mut w.tls_buf;
                buf.resize(CHUNK, 0);
                let got = file.read_at(&mut buf[..want as usize], offset + done)?;
                if got == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                (tls.encrypt(&buf[..got], &mut w.tls_bufs), BodyKind::Tls)
            }
        };
        if taken == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        advance(out, taken as u64, kind, w);
        this_turn += taken as u64;
    }
}
