//! The IETF resumable uploads draft (draft-ietf-httpbis-resumable-upload-15, November 2026):
//! a `POST PREFIX` or `PUT PREFIX/NAME` carrying `Upload-Complete` starts an upload; the
//! server announces the upload resource (`PREFIX/.upload/ID`) in an interim
//! `104 Upload Resumption Supported` before reading the body, so a client cut off midway can
//! ask it for `Upload-Offset` (`HEAD`) and append the rest (`PATCH` with
//! `application/partial-upload`). The request that completes the upload (`Upload-Complete:
//! ?1`) publishes the file, answered `201` as the original request would have been.
//! `Upload-Draft-Interop-Version` is neither required nor checked: the fields are the
//! draft's, and clients of earlier versions that send the same fields work alike.

use super::fields::{content_disposition_filename, number, safe_name};
use super::store::{random_id, Info, Proto};
use super::{io_answer, open_answer, Answer, Begin, Cx, Done, Receiver, StateFile};
use crate::http::Status;
use crate::policy::signed::Method;

/// Media type of an append.
const PARTIAL: &str = "application/partial-upload";

/// The `Upload-Limit` dictionary of the settings.
fn limits(cx: &Cx<'_, '_>) -> String {
    let mut v = format!("max-age={}", cx.settings.expire.as_secs());
    if cx.settings.max_size > 0 {
        v = format!("max-size={}, {v}", cx.settings.max_size);
    }
    v
}

/// The 413 of a request over the limits, which it names (the draft requires it).
fn too_large(cx: &Cx<'_, '_>) -> Answer {
    Answer::new(Status::PayloadTooLarge).line("Upload-Limit", limits(cx))
}

/// A structured-field boolean (`?0` / `?1`); `None` for anything else.
fn boolean(v: &[u8]) -> Option<bool> {
    match v {
        b"?1" => Some(true),
        b"?0" => Some(false),
        _ => None,
    }
}

/// A structured-field integer that is a byte count (at most 15 digits).
fn integer(v: &[u8]) -> Option<u64> {
    (v.len() <= 15).then(|| number(v)).flatten()
}

/// Whether the request is one of the draft's (it carries `Upload-Complete`).
pub fn applies(cx: &Cx<'_, '_>) -> bool {
    cx.fields.upload_complete.is_some()
}

/// `OPTIONS` where uploads can be created: what is accepted and the limits.
pub fn options(cx: &Cx<'_, '_>) -> Answer {
    Answer::new(Status::NoContent)
        .line("Accept-Patch", PARTIAL)
        .line("Upload-Limit", limits(cx))
}

/// Upload creation: `POST PREFIX` (named by `Content-Disposition`'s filename, else by its
/// id) or `PUT PREFIX/NAME`.
pub fn create(cx: &Cx<'_, '_>, name: Option<&str>) -> Begin {
    match try_create(cx, name) {
        Ok(begin) => begin,
        Err(answer) => Begin::Answer(answer),
    }
}

fn try_create(cx: &Cx<'_, '_>, name: Option<&str>) -> Result<Begin, Answer> {
    cx.authorise(&[cx.req.method_raw])?;
    let f = cx.fields;
    let bad = || Answer::new(Status::BadRequest);
    let complete = f.upload_complete.and_then(boolean).ok_or_else(bad)?;
    let length = declared_length(cx, complete, 0)?;
    let id = random_id().map_err(|e| io_answer(&e))?;
    let name = match (name, f.content_disposition) {
        (Some(n), _) => n.to_owned(),
        (None, Some(v)) => content_disposition_filename(v).ok_or_else(bad)?,
        (None, None) => id.clone(),
    };
    if !safe_name(&name, cx.settings.dotfiles) {
        return Err(bad());
    }
    if !cx.settings.overwrite && cx.published_exists(&name) {
        return Err(Answer::new(Status::Conflict));
    }
    let info = Info {
        proto: Proto::Ietf,
        length,
        prefix: cx.index,
        name,
        metadata: String::new(),
        created: cx.now,
        done: false,
    };
    let room = cx.room(length, 0).ok_or_else(|| too_large(cx))?;
    let part = cx.uploads.store.create(&id, &info).map_err(open_answer)?;
    let location = cx.resource_location(&format!("{}/.upload/{id}", cx.prefix()));
    let interim = format!(
        "HTTP/1.1 104 Upload Resumption Supported\r\nLocation: {location}\r\nUpload-Limit: {}\r\n\r\n",
        limits(cx)
    );
    let mut receiver = Receiver::new(
        cx,
        id,
        info,
        part,
        room,
        Done::Ietf {
            complete,
            created: Some(location),
        },
    )?;
    receiver.interim = interim.into_bytes();
    receiver.state = StateFile::Created;
    receiver.length_at_end = complete && length.is_none();
    Ok(Begin::Receive(Box::new(receiver)))
}

/// The length a request declares at `offset`: `Upload-Length`, or with `Upload-Complete: ?1`
/// the offset plus `Content-Length`; both must agree.
fn declared_length(cx: &Cx<'_, '_>, complete: bool, offset: u64) -> Result<Option<u64>, Answer> {
    let bad = || Answer::new(Status::BadRequest);
    let field = match cx.fields.upload_length {
        Some(v) => Some(integer(v).ok_or_else(bad)?),
        None => None,
    };
    let implied = cx.body_len().filter(|_| complete).map(|n| offset + n);
    match (field, implied) {
        (Some(a), Some(b)) if a != b => Err(bad()),
        (a, b) => {
            let length = a.or(b);
            let max = cx.settings.max_size;
            if max > 0 && length.is_some_and(|l| l > max) {
                return Err(too_large(cx));
            }
            Ok(length)
        }
    }
}

/// `HEAD`, `PATCH` or `DELETE` on an upload resource.
pub fn resource(cx: &Cx<'_, '_>, id: &str) -> Begin {
    if let Err(a) = cx.authorise(&[Method::UPLOAD]) {
        return Begin::Answer(a);
    }
    let store = &cx.uploads.store;
    let Some(mut info) = store
        .info(id)
        .filter(|i| i.proto == Proto::Ietf && i.prefix == cx.index)
    else {
        return Begin::Answer(Answer::new(Status::NotFound));
    };
    let stored = if info.done {
        info.length.unwrap_or(0)
    } else {
        match store.stored(id) {
            Ok((n, _)) => n,
            Err(_) => return Begin::Answer(Answer::new(Status::NotFound)),
        }
    };
    match cx.req.method_raw {
        "HEAD" => {
            let mut a = Answer::new(Status::NoContent)
                .line("Upload-Offset", stored)
                .line("Upload-Complete", if info.done { "?1" } else { "?0" })
                .line("Cache-Control", "no-store");
            if let Some(l) = info.length {
                a = a.line("Upload-Length", l);
            }
            if !info.done {
                a = a.line("Upload-Limit", limits(cx));
            }
            Begin::Answer(a)
        }
        "DELETE" => Begin::Answer(match store.remove_unlocked(id) {
            Ok(true) => Answer::new(Status::NoContent),
            Ok(false) => Answer::new(Status::Locked),
            Err(e) => io_answer(&e),
        }),
        _ => match append(cx, id, &mut info) {
            Ok(begin) => begin,
            Err(a) => Begin::Answer(a),
        },
    }
}

/// `PATCH` with `application/partial-upload`: appends at `Upload-Offset`.
fn append(cx: &Cx<'_, '_>, id: &str, info: &mut Info) -> Result<Begin, Answer> {
    let f = cx.fields;
    let bad = || Answer::new(Status::BadRequest);
    if !f.content_type_is(PARTIAL) {
        return Err(Answer::new(Status::UnsupportedMediaType).line("Accept-Patch", PARTIAL));
    }
    let complete = f.upload_complete.and_then(boolean).ok_or_else(bad)?;
    let claimed = f.upload_offset.and_then(integer).ok_or_else(bad)?;
    if info.done {
        // Nothing may change a completed upload.
        let status = if cx.has_body() {
            Status::BadRequest
        } else {
            Status::Gone
        };
        return Err(Answer::new(status).line("Upload-Complete", "?1"));
    }
    let part = cx.uploads.store.open_part(id).map_err(open_answer)?;
    let offset = part.offset();
    if claimed != offset {
        return Err(Answer::new(Status::Conflict)
            .line("Upload-Offset", offset)
            .line("Upload-Complete", "?0"));
    }
    let length = declared_length(cx, complete, offset)?;
    let changed = info.length.is_none();
    match (info.length, length) {
        (Some(a), Some(b)) if a != b => return Err(bad()),
        // Written when the request's bytes are, off the worker.
        (None, Some(l)) => info.length = Some(l),
        _ => {}
    }
    let room = cx.room(info.length, offset).ok_or_else(|| too_large(cx))?;
    let mut receiver = Receiver::new(
        cx,
        id.to_owned(),
        info.clone(),
        part,
        room,
        Done::Ietf {
            complete,
            created: None,
        },
    )?;
    receiver.length_at_end = complete && info.length.is_none();
    if changed && info.length.is_some() {
        receiver.state = StateFile::Changed;
    }
    Ok(Begin::Receive(Box::new(receiver)))
}
