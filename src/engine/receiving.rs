//! An upload's request body on its way to the disk: the bytes are taken from the socket by
//! the worker (spliced into a pipe, or received into a buffer when they must be hashed) and
//! written by the disk pool ([`crate::upload::pool`]), one batch at a time per connection,
//! so the worker never waits on the disk. While a batch is being written the connection
//! reads nothing more: its client is held back by TCP flow control.

use crate::http::h1::Direct;
use crate::http::Method;
use crate::upload::{Answer, Receiver};

use super::exchange::Exchange;
use super::pipes::{Pipe, PIPE_SIZE};
use super::timer::TimerKey;
use super::worker::Worker;

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
    /// Body bytes the session handed over, waiting for the batch being written to land.
    pub(super) staged: Vec<u8>,
    /// The other buffer of the two `staged` alternates between (one is with the pool).
    pub(super) spare: Vec<u8>,
    /// Its body's framing broke: what was staged is still stored, then the upload is let go.
    pub(super) abandoned: bool,
    /// Being finished by the pool; its answer is still to come.
    pub(super) pending: bool,
    /// The pool's answer, to plan when the session resumes.
    pub(super) answer: Option<Answer>,
    /// The keep-alive decision for that answer.
    pub(super) keep_alive: bool,
}

/// A batch of body bytes on its way to the disk, and where they wait meanwhile.
pub enum Batch {
    /// Spliced from the socket into a pipe (`filled` bytes): they never enter user space.
    Pipe(Pipe),
    /// Received from the socket into a buffer, the first `.1` bytes (they are hashed).
    Received(Vec<u8>, usize),
    /// Handed over by the session (a chunked body, or one decrypted from TLS).
    Staged(Vec<u8>),
}

/// What the disk pool hands back to a worker for one of its connections.
pub enum Landed {
    /// An upload was finished (synced, checked, published): its answer.
    Finished(Answer),
    /// A batch of body bytes was written, or could not be (`Err`: the answer to give).
    Stored {
        receiver: Box<Receiver>,
        batch: Batch,
        result: Result<(), Answer>,
    },
}

impl Landed {
    /// Gives back what a connection that is gone lent: its pipe to the worker's pool (the
    /// receiver keeps what it stored and lets go of its lock when dropped).
    pub fn dispose(self, w: &mut Worker) {
        if let Landed::Stored {
            batch: Batch::Pipe(pipe),
            ..
        } = self
        {
            w.pipes.give(pipe);
        }
    }
}

impl Receiving {
    /// An upload request's state: `receiver` takes its body (`None`: answered at once);
    /// the rest is what its answer and access-log line need.
    pub fn new(
        receiver: Option<Box<Receiver>>,
        record: crate::metrics::access_log::Record,
        method: Method,
        head_only: bool,
        started: std::time::Instant,
        keep_alive: bool,
    ) -> Receiving {
        Receiving {
            taken: receiver.is_some(),
            receiver,
            record,
            method,
            head_only,
            started,
            storing: false,
            finish_after: false,
            refused: None,
            buf: Vec::new(),
            staged: Vec::new(),
            spare: Vec::new(),
            abandoned: false,
            pending: false,
            answer: None,
            keep_alive,
        }
    }

    /// Whether its body is still being received (taken straight from the socket on a plain
    /// connection, see [`Exchange::take_direct`]).
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

    /// Body bytes the session handed over: kept until the batch being written lands (the
    /// transport reads no more meanwhile, so they are at most what it had already received).
    pub fn stage(&mut self, data: &[u8]) {
        self.staged.extend_from_slice(data);
    }

    /// Hands the bytes staged to the pool, unless a batch is already being written.
    pub fn store_staged(&mut self, w: &Worker, key: TimerKey) {
        if self.storing || self.staged.is_empty() || self.refused.is_some() {
            return;
        }
        let next = std::mem::take(&mut self.spare);
        let staged = std::mem::replace(&mut self.staged, next);
        self.store(Batch::Staged(staged), w, key);
    }

    /// Hands `batch` to the pool with the receiver; it comes back in [`Landed::Stored`].
    fn store(&mut self, mut batch: Batch, w: &Worker, key: TimerKey) {
        let (Some(pool), Some(landed), Some(mut receiver)) =
            (&w.disk, &w.landed, self.receiver.take())
        else {
            return;
        };
        pool.run(key, landed, move || {
            let result = match &mut batch {
                Batch::Pipe(pipe) => {
                    let r = receiver.write_from_pipe(pipe.r(), pipe.filled);
                    if r.is_ok() {
                        pipe.filled = 0;
                    }
                    r
                }
                Batch::Received(buf, n) => receiver.write(&buf[..*n]),
                Batch::Staged(buf) => receiver.write(buf),
            };
            Landed::Stored {
                receiver,
                batch,
                result,
            }
        });
        self.storing = true;
    }

    /// The body ended: the upload is finished (synced, published) by the pool once its last
    /// batch is written, and the session waits for the answer as a paced response waits for
    /// its rate.
    pub fn end(&mut self, keep_alive: bool, w: &Worker, key: TimerKey) {
        (self.pending, self.keep_alive) = (true, keep_alive);
        self.store_staged(w, key);
        if self.storing {
            self.finish_after = true;
            return;
        }
        match (&w.disk, &w.landed, self.receiver.take()) {
            (Some(pool), Some(landed), Some(receiver)) => {
                pool.run(key, landed, move || Landed::Finished(receiver.finish()));
            }
            (_, _, receiver) => {
                let failed = || Answer::new(crate::http::Status::InternalServerError);
                self.finished(receiver.map_or_else(failed, |r| r.finish()));
            }
        }
    }

    /// The body's framing broke (the session rejects the request): what arrived before the
    /// break is still stored, and the rejection waits for it (so a client that resumes at
    /// once finds those bytes and the upload free). `false`: nothing to wait for, the upload
    /// can be let go now.
    pub fn abandon(&mut self, w: &Worker, key: TimerKey) -> bool {
        (self.abandoned, self.pending) = (true, true);
        self.store_staged(w, key);
        self.pending = self.storing;
        self.pending
    }

    /// A batch landed: the receiver comes back, and the next batch staged meanwhile goes.
    /// `true`: the body is still arriving; `false`: it had ended, and the upload is being
    /// finished or its answer (a failure) is ready, or it was abandoned.
    pub fn stored(
        &mut self,
        receiver: Box<Receiver>,
        batch: Batch,
        result: Result<(), Answer>,
        w: &mut Worker,
        key: TimerKey,
    ) -> bool {
        match batch {
            Batch::Pipe(pipe) => w.pipes.give(pipe),
            Batch::Received(buf, _) => self.buf = buf,
            Batch::Staged(mut buf) => {
                buf.clear();
                self.spare = buf;
            }
        }
        (self.storing, self.receiver) = (false, Some(receiver));
        if let Err(answer) = result {
            self.refused = Some(answer);
        }
        if self.abandoned {
            self.abandon(w, key);
            return false;
        }
        if !self.finish_after {
            self.store_staged(w, key);
            return true;
        }
        match self.refused.take() {
            Some(answer) => self.finished(answer),
            None => self.end(self.keep_alive, w, key),
        }
        false
    }
}

impl Exchange<'_> {
    /// Moves up to `max` bytes of the upload body from the socket to the disk pool: spliced
    /// into a pipe when nothing has to see them, received into the upload's buffer when
    /// they must be hashed. One batch at a time: while the pool writes it, `Busy`.
    pub(super) fn take_direct(&mut self, max: u64) -> Direct {
        let w = &mut *self.w;
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
        let Some(receiver) = receiving.receiver.as_deref() else {
            return Direct::Unsupported;
        };
        let (moved, batch) = if receiver.direct() {
            // Lent until the batch lands, and given back empty (closed if bytes are stuck).
            let Ok(mut pipe) = w.pipes.take() else {
                return Direct::Unsupported;
            };
            let len = max.min(PIPE_SIZE as u64) as usize;
            match crate::sys::splice_from_socket(self.sock, pipe.w(), len) {
                Ok(n) if n > 0 => {
                    pipe.filled = n;
                    (Ok(n), Some(Batch::Pipe(pipe)))
                }
                moved => {
                    w.pipes.give(pipe);
                    (moved, None)
                }
            }
        } else {
            let mut buf = std::mem::take(&mut receiving.buf);
            buf.resize(BATCH, 0);
            let len = max.min(BATCH as u64) as usize;
            match crate::sys::recv(self.sock, &mut buf[..len]) {
                Ok(n) if n > 0 => (Ok(n), Some(Batch::Received(buf, n))),
                moved => {
                    receiving.buf = buf;
                    (moved, None)
                }
            }
        };
        let Some(batch) = batch else {
            return match moved {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Direct::Drained,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Direct::Moved(0),
                _ => Direct::Closed,
            };
        };
        let n = moved.unwrap_or(0) as u64;
        w.metrics
            .upload_received(n, matches!(batch, Batch::Pipe(_)));
        receiving.store(batch, w, self.key);
        Direct::Moved(n)
    }
}
