//! The plain flow any script can do with curl: `PUT PREFIX/NAME`, whole or in
//! `Content-Range` chunks sent in order; `HEAD` (or an empty `PUT` with `bytes */N`) on an
//! unfinished one answers 308 with what is stored, as Google's resumable uploads do; the
//! chunk that completes the file publishes it, after checking a declared `Repr-Digest`.

use sha2::{Digest, Sha256};

use super::fields::{content_range, rfc9530_digest, safe_name, PutRange};
use super::store::{hex, Info, Proto};
use super::{io_answer, open_answer, Answer, Begin, Cx, Done, Receiver, StateFile};
use crate::http::Status;
use crate::upload::checksum::Hasher;

/// The store id of the `PUT` upload publishing as `name` under prefix `index`: derived
/// from both, so the next chunk finds it without the client holding an id.
fn id(index: usize, name: &str) -> String {
    let mut h = Sha256::new();
    h.update(index.to_le_bytes());
    h.update(name.as_bytes());
    format!("put-{}", hex(&h.finalize()))
}

/// The 308 answer of an unfinished upload at `offset`.
pub(super) fn incomplete(offset: u64, length: Option<u64>) -> Answer {
    let mut a = Answer::new(Status::PermanentRedirect).line("Upload-Offset", offset);
    if offset > 0 {
        a = a.line("Range", format!("bytes=0-{}", offset - 1));
    }
    if let Some(l) = length {
        a = a.line("Upload-Length", l);
    }
    a
}

/// `HEAD PREFIX/NAME`: the state of an unfinished upload to its client (authorised);
/// anyone else, and every name without one, gets the file as usual.
pub fn head(cx: &Cx<'_, '_>, name: &str) -> Begin {
    if cx.authorise(&["PUT"]).is_err() {
        return Begin::NotMine;
    }
    let id = id(cx.index, name);
    let store = &cx.uploads.store;
    match store.info(&id).filter(|i| i.proto == Proto::Put && !i.done) {
        Some(info) => match store.stored(&id) {
            Ok((offset, _)) => Begin::Answer(incomplete(offset, info.length)),
            Err(_) => Begin::NotMine,
        },
        None => Begin::NotMine,
    }
}

/// `PUT PREFIX/NAME`: a chunk (or the whole file).
pub fn put(cx: &Cx<'_, '_>, name: &str) -> Begin {
    match try_put(cx, name) {
        Ok(begin) => begin,
        Err(answer) => Begin::Answer(answer),
    }
}

fn try_put(cx: &Cx<'_, '_>, name: &str) -> Result<Begin, Answer> {
    cx.authorise(&["PUT"])?;
    if !safe_name(name, cx.settings.dotfiles) {
        return Err(Answer::new(Status::Forbidden));
    }
    let f = cx.fields;
    let bad = || Answer::new(Status::BadRequest);
    let range = match f.content_range {
        Some(v) => Some(content_range(v).ok_or_else(bad)?),
        None => None,
    };
    let digest = match f.repr_digest {
        Some(v) => rfc9530_digest(v).map_err(|()| bad())?,
        None => None,
    };
    let chunk_digest = match f.content_digest {
        Some(v) => rfc9530_digest(v).map_err(|()| bad())?,
        None => None,
    };
    let id = id(cx.index, name);
    let store = &cx.uploads.store;
    let existing = store.info(&id).filter(|i| i.proto == Proto::Put && !i.done);
    let (first, length) = match range {
        Some(PutRange::Length(n)) => {
            if cx.has_body() {
                return Err(bad());
            }
            // A status query: `PUT` with no bytes and `Content-Range: bytes */N`.
            let offset = match &existing {
                Some(_) => store.stored(&id).map_err(|e| io_answer(&e))?.0,
                None => 0,
            };
            return Ok(Begin::Answer(incomplete(offset, Some(n))));
        }
        Some(PutRange::Bytes {
            first,
            last,
            complete,
        }) => {
            if cx.body_len().is_some_and(|n| n != last - first + 1) {
                return Err(bad());
            }
            (first, complete)
        }
        None => (0, cx.body_len()),
    };
    let max = cx.settings.max_size;
    if max > 0 && (length.is_some_and(|l| l > max) || cx.body_len().is_some_and(|n| n > max)) {
        return Err(Answer::new(Status::PayloadTooLarge));
    }
    // A whole-file PUT (no Content-Range) starts over; so does a first chunk at 0.
    let restart = range.is_none() || (first == 0 && existing.is_some());
    let part = match existing {
        Some(info) if !restart => {
            if info.length.is_some() && length.is_some() && info.length != length {
                return Err(bad());
            }
            let part = store.open_part(&id).map_err(open_answer)?;
            if first != part.offset() {
                return Err(Answer {
                    status: Status::Conflict,
                    ..incomplete(part.offset(), info.length)
                });
            }
            Some((info, part, StateFile::Durable))
        }
        _ => None,
    };
    let (info, part, state) = match part {
        Some(found) => found,
        None => {
            if first != 0 {
                return Err(Answer {
                    status: Status::Conflict,
                    ..incomplete(0, length)
                });
            }
            if !cx.settings.overwrite && cx.published_exists(name) {
                return Err(Answer::new(Status::Conflict));
            }
            if restart {
                match store.remove_unlocked(&id) {
                    Ok(true) => {}
                    Ok(false) => return Err(Answer::new(Status::Locked)),
                    Err(e) => return Err(io_answer(&e)),
                }
            }
            let info = Info {
                proto: Proto::Put,
                length,
                prefix: cx.index,
                name: name.to_owned(),
                metadata: String::new(),
                created: cx.now,
                done: false,
            };
            let part = store.create(&id, &info).map_err(open_answer)?;
            (info, part, StateFile::Created)
        }
    };
    // A chunked whole-file PUT learns its length at the end: it may take up to the limit.
    let room = match (range, cx.body_len()) {
        (_, Some(n)) => n,
        (_, None) if max > 0 => max.saturating_sub(part.offset()),
        _ => u64::MAX,
    };
    let whole_unknown = range.is_none() && length.is_none();
    let mut receiver = Receiver::new(cx, id, info, part, room, Done::Put { digest })?;
    receiver.check = chunk_digest.map(|(a, d)| (Hasher::new(a), d));
    receiver.state = state;
    if whole_unknown {
        receiver.length_at_end = true;
    }
    Ok(Begin::Receive(Box::new(receiver)))
}
