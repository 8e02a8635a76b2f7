//! The HTTP/1 session's host on a real connection ([`Exchange`]): it plans each response with
//! the worker's handler under the policies, stages its access-log line, and hands it to the
//! send path (plain or TLS), finishing it once it is all with the kernel.

use std::net::IpAddr;
use std::os::fd::BorrowedFd;

use crate::http::h1::{Direct, Flush, Host, Reply};
use crate::http::response::{self, Context};
use crate::http::{Method, Request, Status};
use crate::metrics::Reject;
use crate::policy::{Grant, Refusal};
use crate::serve::Response;
use crate::tls::Tls;
use crate::upload::{Answer, Begin, Receiver};

use super::receiving::Receiving;

use super::out_pool::Out;
use super::pipes::Pipe;
use super::send::{response_len, send, Progress, Tail};
use super::worker::Worker;

/// The session's host on a real connection: plans responses with the worker's handler and
/// policies, and sends them on the socket.
pub struct Exchange<'a> {
    pub(super) sock: BorrowedFd<'a>,
    pub(super) peer: IpAddr,
    /// The client is within `--max-conns-per-ip`.
    pub(super) permit: bool,
    pub(super) out: &'a mut Option<Box<Out>>,
    pub(super) pipe: &'a mut Option<Pipe>,
    pub(super) tail: &'a mut Tail,
    /// The connection is HTTPS (records made by rustls or by the kernel).
    pub(super) secure: bool,
    /// The TLS state of an HTTPS connection whose records rustls makes: responses are
    /// encrypted through it.
    pub(super) tls: Option<&'a mut Tls>,
    /// The upload whose request body is arriving, if any.
    pub(super) upload: &'a mut Option<Box<Receiving>>,
    /// The connection's place in its worker's table (for answers from the finishing pool).
    pub(super) key: super::timer::TimerKey,
    pub(super) w: &'a mut Worker,
}

impl Host for Exchange<'_> {
    fn takes_body(&mut self, req: &Request<'_>) -> bool {
        let w = &mut *self.w;
        let (Some(uploads), Some(settings)) = (&w.uploads, &w.config.uploads) else {
            return false;
        };
        let path = &mut w.scratch.path;
        crate::http::path::canonical_path(req.target, path).is_ok()
            && uploads.takes_body(req, path, settings)
    }

    fn body(&mut self, data: &[u8]) -> bool {
        let Some(receiving) = self.upload.as_deref_mut() else {
            return false;
        };
        if let Some(answer) = receiving.refused.take() {
            if let Some(receiving) = self.upload.take() {
                self.plan_upload(answer, false, *receiving);
            }
            return false;
        }
        self.w.metrics.upload_received(data.len() as u64, false);
        receiving.stage(data);
        true
    }

    fn body_direct(&mut self, max: u64) -> Direct {
        self.take_direct(max)
    }

    fn body_end(&mut self, keep_alive: bool) -> Reply {
        let Some(mut receiving) = self.upload.take() else {
            return Reply::new(false, false);
        };
        if let Some(answer) = receiving.refused.take() {
            return self.plan_upload(answer, false, *receiving);
        }
        // Writing, syncing and publishing may wait on the disk: the pool does them, and the
        // session waits for the answer as a paced response waits for its rate.
        receiving.end(keep_alive, self.w, self.key);
        *self.upload = Some(receiving);
        Reply::new(keep_alive, true)
    }

    fn respond(&mut self, req: &Request<'_>, keep_alive: bool) -> Reply {
        let checked = self.check(req);
        if checked.is_ok() && self.w.uploads.is_some() {
            if let Some(reply) = self.upload_request(req, keep_alive) {
                return reply;
            }
        }
        let w = &mut *self.w;
        let out = self.out.get_or_insert_with(|| w.out_pool.take());
        let secure = self.secure;
        let cx = Context {
            date: w.date.get(),
            limits: &w.config.limits,
            keep_alive,
            server: b"ringserve",
            hsts: w.config.hsts.as_deref().filter(|_| secure),
        };
        let redirect = w.config.redirect_https.filter(|_| !secure);
        let resp = match (checked, redirect) {
            (Ok(_), Some(port)) => Response {
                planned: response::to_https(
                    req.host,
                    port,
                    req.target_raw,
                    req.method == Method::Head,
                    keep_alive,
                    &cx,
                    &mut out.bytes,
                    &mut out.chunks,
                ),
                file: None,
                version: None,
            },
            (Ok(grant), None) => {
                let resp = w.handler.respond(
                    req,
                    &cx,
                    w.now,
                    &mut w.scratch,
                    &mut out.bytes,
                    &mut out.chunks,
                );
                if resp.file.is_some() {
                    out.pacing = w.policy.pacing(grant, w.now);
                }
                resp
            }
            (Err((status, retry_after)), _) => Response {
                planned: response::refuse(
                    status,
                    retry_after,
                    req.method == Method::Head,
                    keep_alive && req.keep_alive && self.permit,
                    &cx,
                    &mut out.bytes,
                    &mut out.chunks,
                ),
                file: None,
                version: None,
            },
        };
        w.log.stage(
            &mut out.record,
            Some(req),
            resp.planned.status,
            (response_len(&out.chunks), resp.planned.body_len),
            w.now,
        );
        let status = resp.planned.status;
        let download = matches!(status, Status::Ok | Status::PartialContent);
        if req.method == Method::Get && download {
            w.top.record(req.target);
        }
        (out.method, out.status, out.started) = (req.method, status, Some(w.now));
        (out.file, out.version) = (resp.file, resp.version);
        Reply::new(resp.planned.keep_alive, out.pacing.is_some())
    }

    fn reject(&mut self, status: Status) {
        // A body being taken whose framing broke: the upload keeps what it stored and is
        // let go (its lock too) once that is written, not when the connection closes.
        if let Some(upload) = self.upload.as_deref_mut() {
            if !upload.abandon(self.w, self.key) {
                self.upload.take();
                self.w.metrics.upload_body(false);
            }
        }
        let w = &mut *self.w;
        let out = self.out.get_or_insert_with(|| w.out_pool.take());
        let cx = Context {
            date: w.date.get(),
            limits: &w.config.limits,
            keep_alive: false,
            server: b"ringserve",
            hsts: w.config.hsts.as_deref().filter(|_| self.secure),
        };
        let planned = response::error(status, false, false, &cx, &mut out.bytes, &mut out.chunks);
        let lens = (response_len(&out.chunks), planned.body_len);
        w.log
            .stage(&mut out.record, None, planned.status, lens, w.now);
        (out.method, out.status, out.started) = (Method::Other, planned.status, Some(w.now));
    }

    fn flush(&mut self, hold_tail: bool) -> Flush {
        if let Some(upload) = self.upload.as_deref_mut() {
            if upload.pending {
                // Woken when the pool answers; the send timeout only guards against a pool
                // that never does.
                return Flush::Paced(self.w.now + self.w.config.send_timeout);
            }
            if let Some(answer) = upload.answer.take() {
                let keep_alive = upload.keep_alive;
                if let Some(receiving) = self.upload.take() {
                    self.plan_upload(answer, keep_alive, *receiving);
                }
            }
        }
        let Some(out) = self.out.as_deref_mut() else {
            return Flush::Done;
        };
        let sent = match self.tls.as_deref_mut() {
            Some(tls) => super::tls::send(out, self.sock, tls, self.w),
            None => {
                if hold_tail && *self.tail == Tail::Sent {
                    *self.tail = Tail::More;
                }
                send(out, self.sock, self.pipe, self.tail, self.w)
            }
        };
        match sent {
            Ok(Progress::Done) => {}
            Ok(Progress::Blocked) => return Flush::Blocked,
            Ok(Progress::Paced(until)) => return Flush::Paced(until),
            // Due at once: resumed in the loop's next pass over deadlines, after its I/O.
            Ok(Progress::Yield) => return Flush::Paced(self.w.now),
            Err(_) => return Flush::Failed,
        }
        if let Some(out) = self.out.take() {
            finish(out, self.peer, self.w, true);
        }
        Flush::Done
    }
}

impl Exchange<'_> {
    /// Answers `req` if it is an upload request (or asks for the state directory, which is
    /// never served); `None` for every other request.
    fn upload_request(&mut self, req: &Request<'_>, keep_alive: bool) -> Option<Reply> {
        let w = &mut *self.w;
        let (Some(uploads), config) = (w.uploads.clone(), w.config.clone()) else {
            return None;
        };
        let settings = config.uploads.as_ref()?;
        let path = &mut w.scratch.path;
        crate::http::path::canonical_path(req.target, path).ok()?;
        let hidden = uploads.hides(path);
        if !hidden && !uploads.claims(req, path, settings) {
            return None;
        }
        let keep_alive = keep_alive && req.keep_alive;
        let head_only = req.method == Method::Head;
        let mut record = crate::metrics::access_log::Record::default();
        w.log
            .stage(&mut record, Some(req), Status::Ok, (0, 0), w.now);
        let started = w.now;
        let receiving = |receiver: Option<Box<Receiver>>| {
            Receiving::new(receiver, record, req.method, head_only, started, keep_alive)
        };
        if hidden {
            let answer = Answer::new(Status::NotFound);
            return Some(self.plan_upload(answer, keep_alive, receiving(None)));
        }
        let link = config.policy.secure_link.as_ref();
        match uploads.begin(req, path, settings, link, w.unix_now) {
            Begin::NotMine => None,
            Begin::Answer(answer) => {
                // A body left unread is skipped only when small; a large one ends the
                // connection (lingering) rather than being read for nothing.
                let small = !req.chunked && req.body_len <= w.config.limits.max_discard_body;
                let receiving = receiving(None);
                Some(self.plan_upload(answer, keep_alive && small, receiving))
            }
            Begin::Receive(mut receiver) => {
                let announce = receiver.take_interim();
                let receiving = receiving(Some(receiver));
                if req.expect_continue || !announce.is_empty() {
                    let w = &mut *self.w;
                    let out = self.out.get_or_insert_with(|| w.out_pool.take());
                    if req.expect_continue {
                        response::interim(response::CONTINUE, &mut out.bytes, &mut out.chunks);
                    }
                    if !announce.is_empty() {
                        response::interim(&announce, &mut out.bytes, &mut out.chunks);
                    }
                    out.started = None;
                }
                *self.upload = Some(Box::new(receiving));
                self.w.metrics.upload_body(true);
                Some(Reply {
                    keep_alive,
                    paced: false,
                    take_body: true,
                })
            }
        }
    }

    /// Plans the answer to an upload request, with the access-log fields staged for it.
    pub(super) fn plan_upload(
        &mut self,
        answer: Answer,
        keep_alive: bool,
        mut staged: Receiving,
    ) -> Reply {
        let w = &mut *self.w;
        let out = self.out.get_or_insert_with(|| w.out_pool.take());
        let cx = Context {
            date: w.date.get(),
            limits: &w.config.limits,
            keep_alive,
            server: b"ringserve",
            hsts: w.config.hsts.as_deref().filter(|_| self.secure),
        };
        let planned = response::upload(
            answer.status,
            &answer.lines,
            staged.head_only,
            keep_alive,
            &cx,
            &mut out.bytes,
            &mut out.chunks,
        );
        std::mem::swap(&mut out.record, &mut staged.record);
        let lens = (response_len(&out.chunks), planned.body_len);
        out.record.answered(planned.status, lens);
        (out.method, out.status, out.started) =
            (staged.method, planned.status, Some(staged.started));
        w.metrics
            .upload_answered(planned.status.code(), answer.published);
        if staged.taken {
            w.metrics.upload_body(false);
        }
        Reply::new(planned.keep_alive, false)
    }

    /// Applies the request policies: the connection cap of its client, its request rate,
    /// signed links. Refusals are counted and returned as the status (and `Retry-After`) to
    /// answer with.
    fn check(&mut self, req: &Request<'_>) -> Result<Grant, (Status, Option<u64>)> {
        if !self.permit {
            return Err((Status::ServiceUnavailable, None));
        }
        let w = &mut *self.w;
        let scratch = &mut w.scratch.path;
        let refusal = match w
            .policy
            .on_request(self.peer, req.target, w.now, w.unix_now, scratch)
        {
            Ok(grant) => return Ok(grant),
            Err(refusal) => refusal,
        };
        let (reason, status, retry_after) = match refusal {
            Refusal::RateLimited(secs) => {
                (Reject::RateLimited, Status::TooManyRequests, Some(secs))
            }
            Refusal::Forbidden => (Reject::BadLink, Status::Forbidden, None),
            Refusal::Expired => (Reject::BadLink, Status::Gone, None),
        };
        w.metrics.rejected(reason);
        Err((status, retry_after))
    }
}

/// Ends the response `out`: writes its access-log line with the bytes it got out, counts it
/// in the metrics if it was `complete`, and gives its state back to the pool.
pub fn finish(mut out: Box<Out>, peer: IpAddr, w: &mut Worker, complete: bool) {
    if out.record.is_staged() {
        let (done, partial) = out.cursor;
        let sent = response_len(&out.chunks[..done]) + partial;
        w.log.write(&mut out.record, peer, sent);
    }
    if let (true, Some(started)) = (complete, out.started) {
        let took = w.now.saturating_duration_since(started);
        w.metrics.request(out.method, out.status.code(), took);
    }
    w.out_pool.give(out);
}
