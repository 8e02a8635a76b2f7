//! An upload's request body on its way to the disk: the bytes are taken from the socket by
//! the worker (spliced into a pipe, or received into a buffer when they must be hashed) and
//! written by the disk pool ([`crate::upload::pool`]), one batch at a time per connection,
//! so the worker never waits on the disk. While a batch is being written the connection
//! reads nothing more: its client is held back by TCP flow control.

use crate::http::h1::Direct;
use crate::http::Method;
use crate::upload::{Answer, Receiver};

use super::conn::Worker;
use super::exchange::Exchange;
use super::pipes::{Pipe, PIPE_SIZE};

/// Most bytes received into a buffer per batch when they must be seen (hashed).
const BATCH: usize = 256 * 1024;

/// An upload request whose body is being received: where the bytes go, and its request's
/// access-log fields and metrics, staged until its answer.
#[derive(Debug)]
pub struct Receiving {
    /// `None` for an upload request answered at once, and while the pool writes a batch.
    pub(super) receiver: Option<Box<Receiver>>,
    pub(super) record: crate::metrics::access_log::Record,
    pub(super) method: Method,
    pub(super) head_only: bool,
    pub(super) started: std::time::Instant,
    /// Its body was being received (counted in progress until answered).
    pub(super) taken: bool,
    /// The pool is writing a batch of its bytes (it has the receiver).
    pub(super) storing: bool,
    /// The body ended while a batch was being written: finish once it is.
    pub(super) finish_after: bool,
    /// Storing a batch failed: the answer to give instead of taking more.
    pub(super) refused: Option<Answer>,
    /// The buffer batches that must be seen are received into (sized on first use).
    pub(super) buf: Vec<u8>,
    /// Being finished by the pool; its answer is still to come.
    pub(super) pending: bool,
    /// The pool's answer, to plan when the session resumes.
    pub(super) answer: Option<Answer>,
    /// The keep-alive decision for that answer.
    pub(super) keep_alive: bool,
}

/// What the disk pool hands back to a worker for one of its connections.
pub enum Landed {
    /// An upload was finished (synced, checked, published): its answer.
    Finished(Answer),
    /// A batch of body bytes was written, or could not be (`Err`: the answer to give).
    Stored {
        receiver: Box<Receiver>,
        pipe: Option<Pipe>,
        buf: Vec<u8>,
        result: Result<(), Answer>,
    },
}

impl Landed {
    /// Gives back what a connection that is gone lent: its pipe to the worker's pool (the
    /// receiver keeps what it stored and lets go of its lock when dropped).
    pub fn dispose(self, w: &mut Worker) {
        if let Landed::Stored {
            pipe: Some(pipe), ..
        } = self
        {
            w.pipes.give(pipe);
        }
    }
}

impl Receiving {
    /// Whether its body is taken straight from the socket (see [`Exchange::take_direct`]).
    pub fn direct(&self) -> bool {
        self.receiver.is_some() || self.storing
    }

    /// Whether its body is still being received.
    pub fn receiving(&self) -> bool {
        self.receiver.is_some() || self.storing
    }

    /// Whether the pool is finishing it.
    pub fn pending(&self) -> bool {
        self.pending
    }

    /// The pool's answer arrived.
    pub fn finished(&mut self, answer: Answer) {
        self.pending = false;
        self.answer = Some(answer);
    }

    /// A batch landed: the receiver comes back. `true`: the body had ended, so the upload
    /// is to be finished now (or answered with the failure).
    pub fn stored(
        &mut self,
        receiver: Box<Receiver>,
        buf: Vec<u8>,
        result: Result<(), Answer>,
    ) -> bool {
        self.storing = false;
        self.buf = buf;
        self.receiver = Some(receiver);
        if let Err(answer) = result {
            self.refused = Some(answer);
        }
        self.finish_after
    }
}

impl Exchange<'_> {
    /// Moves up to `max` bytes of the upload body from the socket to the disk pool: spliced
    /// into a pipe when nothing has to see them, received into the upload's buffer when
    /// they must be hashed. One batch at a time: while the pool writes it, `Busy`.
    pub(super) fn take_direct(&mut self, max: u64) -> Direct {
        let w = &mut *self.w;
        let (Some(pool), Some(landed)) = (w.disk.clone(), w.landed.clone()) else {
            return Direct::Unsupported;
        };
        let Some(receiving) = self.upload.as_deref_mut().filter(|_| self.tls.is_none()) else {
            return Direct::Unsupported;
        };
        if let Some(answer) = receiving.refused.take() {
            if let Some(receiving) = self.upload.take() {
                self.plan_upload(answer, false, *receiving);
            }
            return Direct::Refused;
        }
        if receiving.storing {
            return Direct::Busy;
        }
        let Some(receiver) = receiving.receiver.take() else {
            return Direct::Unsupported;
        };
        let key = self.key;
        if receiver.direct() {
            // Lent until the batch lands, and given back empty (closed if bytes are stuck).
            let Ok(mut pipe) = w.pipes.take() else {
                receiving.receiver = Some(receiver);
                return Direct::Unsupported;
            };
            let len = max.min(PIPE_SIZE as u64) as usize;
            let n = match crate::sys::splice_from_socket(self.sock, pipe.w(), len) {
                Ok(n) if n > 0 => n,
                moved => {
                    receiving.receiver = Some(receiver);
                    w.pipes.give(pipe);
                    return nothing_moved(moved);
                }
            };
            w.metrics.upload_received(n as u64, true);
            pipe.filled = n;
            let mut receiver = receiver;
            pool.run(key, &landed, move || {
                let result = receiver.write_from_pipe(pipe.r(), n);
                if result.is_ok() {
                    pipe.filled = 0;
                }
                let (pipe, buf) = (Some(pipe), Vec::new());
                Landed::Stored {
                    receiver,
                    pipe,
                    buf,
                    result,
                }
            });
            receiving.storing = true;
            return Direct::Moved(n as u64);
        }
        let mut buf = std::mem::take(&mut receiving.buf);
        buf.resize(BATCH, 0);
        let len = max.min(BATCH as u64) as usize;
        let n = match crate::sys::recv(self.sock, &mut buf[..len]) {
            Ok(n) if n > 0 => n,
            moved => {
                (receiving.receiver, receiving.buf) = (Some(receiver), buf);
                return nothing_moved(moved);
            }
        };
        w.metrics.upload_received(n as u64, false);
        let mut receiver = receiver;
        pool.run(key, &landed, move || {
            let result = receiver.write(&buf[..n]);
            Landed::Stored {
                receiver,
                pipe: None,
                buf,
                result,
            }
        });
        receiving.storing = true;
        Direct::Moved(n as u64)
    }
}

/// What a splice or receive that moved no bytes means for the body.
fn nothing_moved(r: std::io::Result<usize>) -> Direct {
    match r {
        Ok(_) => Direct::Closed,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Direct::Drained,
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Direct::Moved(0),
        Err(_) => Direct::Closed,
    }
}
