//! The HTTP/1 session's host on a real connection ([`Exchange`]): it plans each response with
//! the worker's handler under the policies, stages its access-log line, and hands it to the
//! send path (plain or TLS), finishing it once it is all with the kernel.

use std::net::IpAddr;
use std::os::fd::BorrowedFd;

use crate::http::h1::{Flush, Host, Reply};
use crate::http::response::{self, Context};
use crate::http::{Method, Request, Status};
use crate::metrics::Reject;
use crate::policy::{Grant, Refusal};
use crate::serve::Response;
use crate::tls::Tls;

use super::conn::Worker;
use super::out_pool::Out;
use super::pipes::Pipe;
use super::send::{response_len, send, Progress, Tail};

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
    /// The TLS state of an HTTPS connection: responses are encrypted through it.
    pub(super) tls: Option<&'a mut Tls>,
    pub(super) w: &'a mut Worker,
}

impl Host for Exchange<'_> {
    fn respond(&mut self, req: &Request<'_>, keep_alive: bool) -> Reply {
        let checked = self.check(req);
        let w = &mut *self.w;
        let out = self.out.get_or_insert_with(|| w.out_pool.take());
        let secure = self.tls.is_some();
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
        Reply {
            keep_alive: resp.planned.keep_alive,
            paced: out.pacing.is_some(),
        }
    }

    fn reject(&mut self, status: Status) {
        let w = &mut *self.w;
        let out = self.out.get_or_insert_with(|| w.out_pool.take());
        let cx = Context {
            date: w.date.get(),
            limits: &w.config.limits,
            keep_alive: false,
            server: b"ringserve",
            hsts: w.config.hsts.as_deref().filter(|_| self.tls.is_some()),
        };
        let planned = response::error(status, false, false, &cx, &mut out.bytes, &mut out.chunks);
        let lens = (response_len(&out.chunks), planned.body_len);
        w.log
            .stage(&mut out.record, None, planned.status, lens, w.now);
        (out.method, out.status, out.started) = (Method::Other, planned.status, Some(w.now));
    }

    fn flush(&mut self, hold_tail: bool) -> Flush {
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
            Err(_) => return Flush::Failed,
        }
        if let Some(out) = self.out.take() {
            finish(out, self.peer, self.w, true);
        }
        Flush::Done
    }
}

impl Exchange<'_> {
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
