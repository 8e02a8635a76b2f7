//! tus 1.0.0 (tus.io/protocols/resumable-upload): core, creation, creation-with-upload,
//! creation-defer-length, checksum, termination and expiration.

use super::checksum::TUS_ALGORITHMS;
use super::fields::{metadata_filename, number, safe_name, tus_checksum};
use super::store::{random_id, Info, Proto};
use super::{
    http_date, io_answer, open_answer, Answer, Begin, Cx, Done, Receiver, Settings, StateFile,
};
use crate::http::Status;
use crate::policy::signed::Method;
use crate::upload::checksum::Hasher;

/// The protocol version served.
pub const VERSION: &str = "1.0.0";

/// Extensions served, as `Tus-Extension` lists them.
const EXTENSIONS: &str =
    "creation,creation-with-upload,creation-defer-length,checksum,termination,expiration";

/// Media type of a tus `PATCH` body.
const PATCH_TYPE: &str = "application/offset+octet-stream";

/// `OPTIONS`: what the server supports (no credentials needed: browsers send it as a CORS
/// preflight, and it reveals nothing about uploads).
pub fn options(s: &Settings) -> Answer {
    let mut a = Answer::new(Status::NoContent)
        .line("Tus-Resumable", VERSION)
        .line("Tus-Version", VERSION)
        .line("Tus-Extension", EXTENSIONS)
        .line("Tus-Checksum-Algorithm", TUS_ALGORITHMS);
    if s.max_size > 0 {
        a = a.line("Tus-Max-Size", s.max_size);
    }
    a
}

/// An answer with `Tus-Resumable`, as every tus response but `OPTIONS` carries.
fn tus(status: Status) -> Answer {
    Answer::new(status).line("Tus-Resumable", VERSION)
}

/// Checks what every tus request but `OPTIONS` needs: credentials (a token, or a link signed
/// for `methods`), then the version.
fn check(cx: &Cx<'_, '_>, methods: &[&str]) -> Result<(), Answer> {
    cx.authorise(methods)?;
    if cx.fields.tus_resumable != Some(VERSION.as_bytes()) {
        return Err(Answer::new(Status::PreconditionFailed).line("Tus-Version", VERSION));
    }
    Ok(())
}

/// `POST PREFIX`: creates an upload, storing the body if one came with it.
pub fn create(cx: &Cx<'_, '_>) -> Begin {
    match try_create(cx) {
        Ok(begin) => begin,
        Err(answer) => Begin::Answer(answer),
    }
}

fn try_create(cx: &Cx<'_, '_>) -> Result<Begin, Answer> {
    check(cx, &["POST"])?;
    let f = cx.fields;
    let bad = || tus(Status::BadRequest);
    let length = match (f.upload_length, f.upload_defer_length) {
        (Some(v), None) => Some(number(v).ok_or_else(bad)?),
        (None, Some(b"1")) => None,
        _ => return Err(bad()),
    };
    let max = cx.settings.max_size;
    if max > 0 && length.is_some_and(|l| l > max) {
        return Err(tus(Status::PayloadTooLarge));
    }
    let metadata = f.upload_metadata.unwrap_or_default();
    let name = metadata_filename(metadata).map_err(|()| bad())?;
    let id = random_id().map_err(|e| io_answer(&e))?;
    let name = match name {
        Some(n) if safe_name(&n, cx.settings.dotfiles) => n,
        Some(_) => return Err(bad()),
        None => id.clone(),
    };
    if !cx.settings.overwrite && cx.published_exists(&name) {
        return Err(tus(Status::Conflict));
    }
    if cx.has_body() && !f.content_type_is(PATCH_TYPE) {
        return Err(tus(Status::UnsupportedMediaType));
    }
    let info = Info {
        proto: Proto::Tus,
        length,
        prefix: cx.index,
        name,
        // Checked above to be tus metadata: base64 values and visible ASCII keys.
        metadata: String::from_utf8_lossy(metadata).into_owned(),
        created: cx.now,
        done: false,
    };
    let room = cx
        .room(length, 0)
        .ok_or_else(|| tus(Status::PayloadTooLarge))?;
    let check = checksum(cx)?;
    let part = cx.uploads.store.create(&id, &info).map_err(open_answer)?;
    let location = cx.resource_location(&format!("{}/.tus/{id}", cx.prefix()));
    let mut receiver = Receiver::new(
        cx,
        id,
        info,
        part,
        room,
        Done::Tus {
            created: Some(location),
        },
    )?;
    receiver.check = check;
    receiver.state = StateFile::Created;
    Ok(Begin::Receive(Box::new(receiver)))
}

/// The `Upload-Checksum` to verify this request's bytes against.
fn checksum(cx: &Cx<'_, '_>) -> Result<Option<(Hasher, Vec<u8>)>, Answer> {
    let Some(value) = cx.fields.upload_checksum else {
        return Ok(None);
    };
    let (algorithm, digest) = tus_checksum(value).map_err(|_| tus(Status::BadRequest))?;
    Ok(Some((Hasher::new(algorithm), digest)))
}

/// `HEAD`, `PATCH` or `DELETE` on an upload's URL.
pub fn resource(cx: &Cx<'_, '_>, id: &str) -> Begin {
    let answer = match check(cx, &[Method::UPLOAD]) {
        Err(a) => a,
        Ok(()) => match cx.req.method_raw {
            "HEAD" => head(cx, id),
            "PATCH" => match patch(cx, id) {
                Ok(begin) => return begin,
                Err(a) => a,
            },
            _ => delete(cx, id),
        },
    };
    Begin::Answer(answer)
}

/// The upload `id` if it exists and has not expired (a published one never expires here:
/// its URL keeps answering until the sweeper removes its record), with its offset and the
/// Unix time of its last write, from which it expires.
fn find(cx: &Cx<'_, '_>, id: &str) -> Result<(Info, u64, u64), Answer> {
    let store = &cx.uploads.store;
    let info = store
        .info(id)
        .filter(|i| i.proto == Proto::Tus && i.prefix == cx.index);
    let info = info.ok_or_else(|| tus(Status::NotFound))?;
    if info.done {
        return Ok((info.clone(), info.length.unwrap_or(0), info.created));
    }
    let (offset, mtime) = store.stored(id).map_err(|_| tus(Status::NotFound))?;
    let last = mtime
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .max(info.created);
    if cx.expiry(last) < cx.now {
        return Err(tus(Status::Gone));
    }
    Ok((info, offset, last))
}

fn head(cx: &Cx<'_, '_>, id: &str) -> Answer {
    let (info, offset, last) = match find(cx, id) {
        Ok(found) => found,
        Err(a) => return a,
    };
    let mut a = tus(Status::Ok)
        .line("Upload-Offset", offset)
        .line("Cache-Control", "no-store");
    a = match info.length {
        Some(l) => a.line("Upload-Length", l),
        None => a.line("Upload-Defer-Length", 1),
    };
    if !info.metadata.is_empty() {
        a = a.line("Upload-Metadata", &info.metadata);
    }
    if !info.done {
        a = a.line("Upload-Expires", http_date(cx.expiry(last)));
    }
    a
}

fn patch(cx: &Cx<'_, '_>, id: &str) -> Result<Begin, Answer> {
    let f = cx.fields;
    if !f.content_type_is(PATCH_TYPE) {
        return Err(tus(Status::UnsupportedMediaType));
    }
    let claimed = f
        .upload_offset
        .and_then(number)
        .ok_or_else(|| tus(Status::BadRequest))?;
    let (mut info, _, _) = find(cx, id)?;
    if info.done {
        let length = info.length.unwrap_or(0);
        return Err(if claimed == length && !cx.has_body() {
            tus(Status::NoContent).line("Upload-Offset", length)
        } else {
            tus(Status::Conflict).line("Upload-Offset", length)
        });
    }
    let part = cx.uploads.store.open_part(id).map_err(|e| {
        let mut a = open_answer(e);
        a = a.line("Tus-Resumable", VERSION);
        a
    })?;
    let offset = part.offset();
    if claimed != offset {
        return Err(tus(Status::Conflict).line("Upload-Offset", offset));
    }
    let mut changed = false;
    if let Some(v) = f.upload_length {
        let length = number(v).ok_or_else(|| tus(Status::BadRequest))?;
        match info.length {
            Some(l) if l != length => return Err(tus(Status::BadRequest)),
            Some(_) => {}
            None => {
                let max = cx.settings.max_size;
                if length < offset || (max > 0 && length > max) {
                    return Err(tus(Status::PayloadTooLarge));
                }
                // Written when the request's bytes are, off the worker.
                info.length = Some(length);
                changed = true;
            }
        }
    }
    let room = cx
        .room(info.length, offset)
        .ok_or_else(|| tus(Status::PayloadTooLarge))?;
    let check = checksum(cx)?;
    let mut receiver = Receiver::new(
        cx,
        id.to_owned(),
        info,
        part,
        room,
        Done::Tus { created: None },
    )?;
    receiver.check = check;
    if changed {
        receiver.state = StateFile::Changed;
    }
    Ok(Begin::Receive(Box::new(receiver)))
}

fn delete(cx: &Cx<'_, '_>, id: &str) -> Answer {
    if let Err(a) = find(cx, id) {
        return a;
    }
    match cx.uploads.store.remove_unlocked(id) {
        Ok(true) => tus(Status::NoContent),
        Ok(false) => tus(Status::Locked),
        Err(e) => io_answer(&e),
    }
}
