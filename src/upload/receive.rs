//! Taking one request's body into an upload: its bytes written (or spliced) to the part
//! file within the room the protocol allows, checked against a checksum when one was sent,
//! then synced and, once the upload is complete, its digest checked and the file published.

use std::os::fd::OwnedFd;

use crate::http::Status;

use super::checksum::{self, Hasher};
use super::store::{self, Info, Part, PublishError, Store};
use super::{encode_path, http_date, io_answer, put, tus, Answer, Cx, Settings, SyncMode};

/// What a receiver answers once its body ends, per protocol.
#[derive(Debug)]
pub(super) enum Done {
    /// tus `PATCH` (204) or creation-with-upload `POST` (201 with `Location`).
    Tus { created: Option<String> },
    /// `PUT` chunk; `digest`: the whole file's declared digest, checked before publishing.
    Put {
        digest: Option<(checksum::Algorithm, Vec<u8>)>,
    },
    /// The IETF draft's creation or append: `complete` is its `Upload-Complete`; `created`
    /// the upload resource's URL for a creation.
    Ietf {
        complete: bool,
        created: Option<String>,
    },
}

/// Whether the upload's state file on disk is what the receiver holds, durably.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StateFile {
    /// It is.
    Durable,
    /// The upload was just created: its state file is written but not yet synced.
    Created,
    /// This request changed the state (it declared the length): not yet written.
    Changed,
}

/// Takes one request's body into an upload.
#[derive(Debug)]
pub struct Receiver {
    id: String,
    info: Info,
    /// The part file, locked; `None` once finished.
    part: Option<Part>,
    /// Offset when the request began (a failed checksum goes back to it).
    start: u64,
    /// Most bytes this request may add.
    room: u64,
    /// Checksum of this request's bytes and the digest it must have.
    pub(super) check: Option<(Hasher, Vec<u8>)>,
    done: Done,
    /// The upload's length is what the body turns out to be (a chunked whole-file `PUT`).
    pub(super) length_at_end: bool,
    /// Whether the state file still has to be made durable (off the worker, with the bytes).
    pub(super) state: StateFile,
    /// An interim response to send before the body is read (the draft's `104`).
    pub(super) interim: Vec<u8>,
    /// The state directory (its own handle, as the receiver outlives the request).
    store: Store,
    /// The directory it is published in.
    dir: OwnedFd,
    settings: Settings,
    now: u64,
    prefix: String,
}

impl Receiver {
    /// A receiver of `room` bytes for upload `id`, held by `part`.
    pub(super) fn new(
        cx: &Cx<'_, '_>,
        id: String,
        info: Info,
        part: Part,
        room: u64,
        done: Done,
    ) -> Result<Receiver, Answer> {
        let dup = |fd: &OwnedFd| rustix::io::dup(fd).map_err(|e| io_answer(&e.into()));
        Ok(Receiver {
            id,
            info,
            start: part.offset(),
            part: Some(part),
            room,
            check: None,
            done,
            length_at_end: false,
            state: StateFile::Durable,
            interim: Vec::new(),
            store: Store::open(dup(cx.uploads.store.dir())?),
            dir: dup(cx.dir())?,
            settings: cx.settings.clone(),
            now: cx.now,
            prefix: cx.prefix().to_owned(),
        })
    }

    /// The interim response to send before reading the body, if any (taken once).
    pub fn take_interim(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.interim)
    }

    /// Bytes stored.
    pub fn offset(&self) -> u64 {
        self.part.as_ref().map_or(0, Part::offset)
    }

    /// Whether bytes may go to the file without being seen: nothing to hash, so they can be
    /// spliced from the socket ([`Receiver::write_from_pipe`]).
    pub fn direct(&self) -> bool {
        self.check.is_none() && self.part.is_some()
    }

    /// Bytes this request may still add.
    pub fn room(&self) -> u64 {
        self.room - (self.offset() - self.start)
    }

    /// Stores the `len` bytes waiting in a pipe (see [`Receiver::direct`]); errors as for
    /// [`Receiver::write`].
    pub fn write_from_pipe(
        &mut self,
        pipe_r: std::os::fd::BorrowedFd<'_>,
        len: usize,
    ) -> Result<(), Answer> {
        if len as u64 > self.room() {
            return Err(self.answer_error(Status::PayloadTooLarge));
        }
        let Some(part) = self.part.as_mut() else {
            return Err(Answer::new(Status::InternalServerError));
        };
        if let Err(e) = part.append_from_pipe(pipe_r, len) {
            let status = match e.raw_os_error() {
                Some(libc::ENOSPC) | Some(libc::EDQUOT) => Status::InsufficientStorage,
                _ => Status::InternalServerError,
            };
            return Err(self.answer_error(status));
        }
        Ok(())
    }

    /// Stores `data`; `Err` with the answer to give when the upload cannot take it (too
    /// large, no space): the bytes stored so far stay and are reported.
    pub fn write(&mut self, data: &[u8]) -> Result<(), Answer> {
        let Some(part) = self.part.as_mut() else {
            return Err(Answer::new(Status::InternalServerError));
        };
        if part.offset() - self.start + data.len() as u64 > self.room {
            let answer = self.answer_error(Status::PayloadTooLarge);
            return Err(answer);
        }
        if let Some((hasher, _)) = &mut self.check {
            hasher.update(data);
        }
        if let Err(e) = part.append(data) {
            let status = match e.raw_os_error() {
                Some(libc::ENOSPC) | Some(libc::EDQUOT) => Status::InsufficientStorage,
                _ => Status::InternalServerError,
            };
            let answer = self.answer_error(status);
            return Err(answer);
        }
        Ok(())
    }

    /// An error answer carrying the truthful offset (after undoing a checksummed request's
    /// bytes, which cannot be verified now).
    fn answer_error(&mut self, status: Status) -> Answer {
        self.undo_unverified();
        if let Some(part) = &self.part {
            let _ = part.sync();
        }
        let answer = Answer::new(status).line("Upload-Offset", self.offset());
        match self.info.proto {
            store::Proto::Tus => answer.line("Tus-Resumable", tus::VERSION),
            store::Proto::Put | store::Proto::Ietf => answer,
        }
    }

    /// Bytes of a request with a checksum are stored only once verified.
    fn undo_unverified(&mut self) {
        if self.check.take().is_some() {
            if let Some(part) = self.part.as_mut() {
                let _ = part.truncate(self.start);
            }
        }
    }

    /// The body ended: verifies, syncs, publishes a complete upload, and answers.
    pub fn finish(mut self) -> Answer {
        if let Some((hasher, expected)) = self.check.take() {
            if hasher.finish() != expected {
                self.check = Some((Hasher::new(checksum::Algorithm::Md5), Vec::new()));
                self.undo_unverified();
                let status = match self.info.proto {
                    store::Proto::Tus => Status::ChecksumMismatch,
                    store::Proto::Put | store::Proto::Ietf => Status::BadRequest,
                };
                return self.answer_error(status);
            }
        }
        let Some(part) = self.part.take() else {
            return Answer::new(Status::InternalServerError);
        };
        let stored = match self.state {
            StateFile::Durable => Ok(()),
            StateFile::Created => self.store.sync_info(&self.id),
            StateFile::Changed => self.store.write_info(&self.id, &self.info),
        };
        if let Err(e) = stored {
            return io_answer(&e);
        }
        let offset = part.offset();
        if self.length_at_end {
            self.info.length = Some(offset);
        }
        let complete = match self.done {
            // The draft's upload completes only when the client says so, at its length.
            Done::Ietf { complete: true, .. } if self.info.length.is_none_or(|l| l == offset) => {
                self.info.length = Some(offset);
                true
            }
            Done::Ietf { complete: true, .. } => {
                return Answer::new(Status::BadRequest).line("Upload-Offset", offset)
            }
            Done::Ietf {
                complete: false, ..
            } => false,
            _ => self.info.length == Some(offset),
        };
        if !complete {
            if self.settings.sync == SyncMode::Always {
                if let Err(e) = part.sync() {
                    return io_answer(&e);
                }
            }
            return self.progress(offset);
        }
        if let Done::Put {
            digest: Some((algorithm, expected)),
        } = &self.done
        {
            let mut hasher = Hasher::new(*algorithm);
            if let Err(e) = part.hash_all(&mut hasher) {
                return io_answer(&e);
            }
            if hasher.finish() != *expected {
                drop(part);
                let _ = self.store.remove(&self.id);
                return Answer::new(Status::BadRequest).line(
                    "X-Upload-Error",
                    "Repr-Digest does not match the uploaded bytes; upload discarded",
                );
            }
        }
        match self.store.publish(
            &self.id,
            part,
            &mut self.info,
            &self.dir,
            self.settings.overwrite,
        ) {
            Ok(()) => Answer {
                published: true,
                ..self.progress(offset)
            },
            Err(PublishError::Exists) => {
                Answer::new(Status::Conflict).line("X-Upload-Error", "a file of that name exists")
            }
            Err(PublishError::Io(e)) => io_answer(&e),
        }
    }

    /// The success answer at `offset`.
    fn progress(&self, offset: u64) -> Answer {
        match &self.done {
            Done::Tus { created } => {
                let status = if created.is_some() {
                    Status::Created
                } else {
                    Status::NoContent
                };
                let mut a = Answer::new(status).line("Tus-Resumable", tus::VERSION);
                if let Some(location) = created {
                    a = a.line("Location", location);
                }
                a = a.line("Upload-Offset", offset);
                if !self.info.done {
                    a = a.line(
                        "Upload-Expires",
                        http_date(self.now + self.settings.expire.as_secs()),
                    );
                }
                a
            }
            Done::Put { .. } if self.info.done => {
                let location = format!("{}/{}", self.prefix, self.info.name);
                Answer::new(Status::Created)
                    .line("Location", encode_path(&location))
                    .line("Upload-Offset", offset)
            }
            Done::Put { .. } => put::incomplete(offset, self.info.length),
            Done::Ietf { .. } if self.info.done => {
                let location = format!("{}/{}", self.prefix, self.info.name);
                Answer::new(Status::Created)
                    .line("Location", encode_path(&location))
                    .line("Upload-Complete", "?1")
            }
            Done::Ietf { created, .. } => {
                let status = if created.is_some() {
                    Status::Created
                } else {
                    Status::NoContent
                };
                let mut a = Answer::new(status);
                if let Some(location) = created {
                    a = a.line("Location", location);
                }
                a.line("Upload-Complete", "?0")
                    .line("Upload-Offset", offset)
            }
        }
    }
}

impl Drop for Receiver {
    /// A request cut off mid-body keeps the bytes it delivered, unless they were to be
    /// checked against a checksum, which can no longer be done.
    fn drop(&mut self) {
        self.undo_unverified();
    }
}
