//! The on-disk store of uploads in progress, shared by every protocol.
//!
//! Each upload is two files in the state directory: `ID.part`, its bytes so far, and
//! `ID.info`, what it is (protocol, declared length, metadata, where it is published),
//! replaced atomically (written to a temporary name, synced, renamed) on the rare occasions
//! it changes. The offset is never stored: it is the length of `ID.part`, so after a crash
//! (even `kill -9` mid-write) the offset is exactly what reached the file and the upload
//! resumes from there. Expiry counts from the last write (the part file's mtime).
//!
//! One writer at a time: a request that writes holds an open-file-description lock on
//! `ID.part` (see [`crate::sys::lock_exclusive`]), so a second writer, from any worker,
//! process or node sharing the directory, is refused instead of interleaving bytes.
//! Publishing is a `renameat2(RENAME_NOREPLACE)` of the part file into its directory in the
//! served root (same file system, checked at start-up): a reader sees no file, or all of it.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{self as rfs, Mode, OFlags, RenameFlags};
use serde_json::{json, Value};

/// Which protocol created an upload (and so how it is addressed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// tus 1.0: addressed by its random id.
    Tus,
    /// `PUT` with `Content-Range`: addressed by the name it publishes as.
    Put,
    /// The IETF resumable uploads draft: addressed by its random id.
    Ietf,
}

/// What an upload is, as kept in `ID.info`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    /// The protocol that created it.
    pub proto: Proto,
    /// Its declared length, once known.
    pub length: Option<u64>,
    /// Index of its upload prefix (in the order of `--uploads`).
    pub prefix: usize,
    /// The file name it is published as in the prefix's directory.
    pub name: String,
    /// tus `Upload-Metadata` as sent (echoed on `HEAD`).
    pub metadata: String,
    /// Unix time of creation.
    pub created: u64,
    /// It was published: the part file is gone, its offset is its length.
    pub done: bool,
}

impl Info {
    fn to_json(&self) -> Vec<u8> {
        let v = json!({
            "proto": match self.proto {
                Proto::Tus => "tus",
                Proto::Put => "put",
                Proto::Ietf => "ietf",
            },
            "length": self.length,
            "prefix": self.prefix,
            "name": self.name,
            "metadata": self.metadata,
            "created": self.created,
            "done": self.done,
        });
        let mut out = v.to_string().into_bytes();
        out.push(b'\n');
        out
    }

    fn from_json(bytes: &[u8]) -> Option<Info> {
        let v: Value = serde_json::from_slice(bytes).ok()?;
        Some(Info {
            proto: match v["proto"].as_str()? {
                "tus" => Proto::Tus,
                "put" => Proto::Put,
                "ietf" => Proto::Ietf,
                _ => return None,
            },
            length: match &v["length"] {
                Value::Null => None,
                n => Some(n.as_u64()?),
            },
            prefix: usize::try_from(v["prefix"].as_u64()?).ok()?,
            name: v["name"].as_str()?.to_owned(),
            metadata: v["metadata"].as_str()?.to_owned(),
            created: v["created"].as_u64()?,
            done: v["done"].as_bool()?,
        })
    }
}

/// An upload opened for writing: its part file, locked, and its offset.
#[derive(Debug)]
pub struct Part {
    file: File,
    offset: u64,
}

impl Part {
    /// Bytes stored.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Appends `data` at the offset. On an error (ENOSPC, say) the bytes that did reach the
    /// file are cut off again, so the offset stays what it was before the call.
    pub fn append(&mut self, data: &[u8]) -> io::Result<()> {
        match self.file.write_all_at(data, self.offset) {
            Ok(()) => {
                self.offset += data.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.offset);
                Err(e)
            }
        }
    }

    /// Appends the `len` bytes waiting in a pipe at the offset, moving them with `splice`
    /// (they never enter user space). On an error the bytes that did reach the file are cut
    /// off again, as with [`Part::append`]; the rest stay in the pipe.
    pub fn append_from_pipe(&mut self, pipe_r: BorrowedFd<'_>, len: usize) -> io::Result<()> {
        let mut moved = 0;
        while moved < len {
            let at = self.offset + moved as u64;
            match crate::sys::splice_to_file(pipe_r, self.file.as_fd(), at, len - moved) {
                Ok(0) => {
                    let _ = self.file.set_len(self.offset);
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                Ok(n) => moved += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = self.file.set_len(self.offset);
                    return Err(e);
                }
            }
        }
        self.offset += len as u64;
        Ok(())
    }

    /// Cuts the file back to `offset` (a request whose checksum failed is undone).
    pub fn truncate(&mut self, offset: u64) -> io::Result<()> {
        self.file.set_len(offset)?;
        self.offset = offset;
        Ok(())
    }

    /// Makes the bytes stored durable.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Hashes the whole part file from its start (for a digest of the whole upload).
    pub fn hash_all(&self, hasher: &mut super::checksum::Hasher) -> io::Result<()> {
        let mut buf = vec![0u8; 256 * 1024];
        let mut at = 0;
        while at < self.offset {
            let n = self.file.read_at(&mut buf, at)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            hasher.update(&buf[..n]);
            at += n as u64;
        }
        Ok(())
    }
}

/// Why an upload could not be opened for writing.
#[derive(Debug)]
pub enum OpenError {
    /// No such upload.
    Missing,
    /// Another request holds it.
    Locked,
    /// The file system failed.
    Io(io::Error),
}

impl From<io::Error> for OpenError {
    fn from(e: io::Error) -> OpenError {
        if e.kind() == io::ErrorKind::NotFound {
            OpenError::Missing
        } else {
            OpenError::Io(e)
        }
    }
}

/// Why publishing failed.
#[derive(Debug)]
pub enum PublishError {
    /// A file of that name exists (and overwriting is off).
    Exists,
    /// The file system failed.
    Io(io::Error),
}

/// The state directory.
#[derive(Debug)]
pub struct Store {
    dir: OwnedFd,
}

impl Store {
    /// Opens the state directory (already created).
    pub fn open(dir: OwnedFd) -> Store {
        Store { dir }
    }

    /// The state directory.
    pub fn dir(&self) -> &OwnedFd {
        &self.dir
    }

    /// Creates upload `id` described by `info`, empty, and opens it for writing. Its state
    /// file is not durable yet (the disk may be slow and this runs on a worker): call
    /// [`Store::sync_info`] before the upload is acknowledged.
    pub fn create(&self, id: &str, info: &Info) -> Result<Part, OpenError> {
        let flags = OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::CLOEXEC;
        let fd = rfs::openat(&self.dir, part(id), flags, Mode::from_raw_mode(0o644))
            .map_err(io::Error::from)?;
        let file = File::from(fd);
        if !crate::sys::lock_exclusive(file.as_fd())? {
            return Err(OpenError::Locked);
        }
        if let Err(e) = self.put_info(id, info, false) {
            let _ = rfs::unlinkat(&self.dir, part(id), rfs::AtFlags::empty());
            return Err(OpenError::Io(e));
        }
        Ok(Part { file, offset: 0 })
    }

    /// Reads what upload `id` is; `None` if there is no such upload (or its state file is
    /// unreadable, which is treated alike).
    pub fn info(&self, id: &str) -> Option<Info> {
        let fd = rfs::openat(
            &self.dir,
            info(id),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let mut bytes = Vec::new();
        File::from(fd)
            .take(64 * 1024)
            .read_to_end(&mut bytes)
            .ok()?;
        Info::from_json(&bytes)
    }

    /// Bytes stored for `id` and the time of its last write, without locking it (for `HEAD`).
    pub fn stored(&self, id: &str) -> io::Result<(u64, SystemTime)> {
        let st = rfs::statat(&self.dir, part(id), rfs::AtFlags::empty())?;
        let mtime = UNIX_EPOCH + Duration::new(st.st_mtime as u64, st.st_mtime_nsec as u32);
        Ok((st.st_size as u64, mtime))
    }

    /// Opens upload `id` for writing, taking its lock.
    pub fn open_part(&self, id: &str) -> Result<Part, OpenError> {
        let fd = rfs::openat(
            &self.dir,
            part(id),
            OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .map_err(io::Error::from)?;
        let file = File::from(fd);
        if !crate::sys::lock_exclusive(file.as_fd())? {
            return Err(OpenError::Locked);
        }
        let offset = file.metadata()?.size();
        Ok(Part { file, offset })
    }

    /// Replaces the state file of `id` atomically and durably.
    pub fn write_info(&self, id: &str, info: &Info) -> io::Result<()> {
        self.put_info(id, info, true)
    }

    /// Writes the state file of `id` (atomically; durably only when `durable`, which costs
    /// two disk flushes).
    fn put_info(&self, id: &str, info: &Info, durable: bool) -> io::Result<()> {
        let tmp = format!("{id}.info.tmp");
        let flags = OFlags::CREATE | OFlags::TRUNC | OFlags::WRONLY | OFlags::CLOEXEC;
        let fd = rfs::openat(&self.dir, &tmp, flags, Mode::from_raw_mode(0o644))?;
        let mut file = File::from(fd);
        file.write_all(&info.to_json())?;
        if durable {
            file.sync_data()?;
        }
        rfs::renameat(&self.dir, &tmp, &self.dir, info_name(id))?;
        if durable {
            rfs::fsync(&self.dir)?;
        }
        Ok(())
    }

    /// Makes the state file of a new upload durable (see [`Store::create`]).
    pub fn sync_info(&self, id: &str) -> io::Result<()> {
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let fd = rfs::openat(&self.dir, info_name(id), flags, Mode::empty())?;
        rustix::fs::fdatasync(&fd)?;
        rfs::fsync(&self.dir)?;
        Ok(())
    }

    /// Publishes the complete upload `id` held by `part` as `name` in `dir`: synced, then
    /// renamed into place (refusing to replace a file unless `overwrite`), then recorded as
    /// done.
    pub fn publish(
        &self,
        id: &str,
        part_file: Part,
        info: &mut Info,
        dir: &OwnedFd,
        overwrite: bool,
    ) -> Result<(), PublishError> {
        part_file.sync().map_err(PublishError::Io)?;
        let flags = if overwrite {
            RenameFlags::empty()
        } else {
            RenameFlags::NOREPLACE
        };
        let name = info.name.as_str();
        let renamed = match rfs::renameat_with(&self.dir, part(id), dir, name, flags) {
            // A file system without RENAME_NOREPLACE (FUSE before 7.23, older NFS): a hard
            // link refuses an existing name just as atomically, then the part name goes.
            Err(rustix::io::Errno::INVAL) if !overwrite => {
                let linked = rfs::linkat(&self.dir, part(id), dir, name, rfs::AtFlags::empty());
                if linked.is_ok() {
                    // Published either way; a part left over goes with the upload's state.
                    let _ = rfs::unlinkat(&self.dir, part(id), rfs::AtFlags::empty());
                }
                linked
            }
            r => r,
        };
        match renamed {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST) => return Err(PublishError::Exists),
            Err(e) => return Err(PublishError::Io(e.into())),
        }
        let _ = rfs::fsync(dir);
        info.done = true;
        self.write_info(id, info).map_err(PublishError::Io)
    }

    /// Removes upload `id` (its part file, if any, and its state).
    pub fn remove(&self, id: &str) -> io::Result<()> {
        match rfs::unlinkat(&self.dir, part(id), rfs::AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        match rfs::unlinkat(&self.dir, info_name(id), rfs::AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Ids of every upload in the directory (from its state files).
    pub fn ids(&self) -> io::Result<Vec<String>> {
        let fd = rfs::openat(
            &self.dir,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut ids = Vec::new();
        for entry in rfs::Dir::read_from(&fd)? {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if let Some(id) = name.strip_suffix(b".info") {
                if let Ok(id) = std::str::from_utf8(id) {
                    ids.push(id.to_owned());
                }
            }
        }
        Ok(ids)
    }

    /// Removes upload `id` if nobody is writing to it; `false` when it is in use.
    pub fn remove_unlocked(&self, id: &str) -> io::Result<bool> {
        match self.open_part(id) {
            Ok(held) => {
                self.remove(id)?;
                drop(held);
                Ok(true)
            }
            Err(OpenError::Missing) => self.remove(id).map(|()| true),
            Err(OpenError::Locked) => Ok(false),
            Err(OpenError::Io(e)) => Err(e),
        }
    }
}

fn part(id: &str) -> String {
    format!("{id}.part")
}

fn info_name(id: &str) -> String {
    format!("{id}.info")
}

fn info(id: &str) -> String {
    info_name(id)
}

/// A new random tus upload id: 32 lowercase hex digits (128 bits from the kernel).
pub fn random_id() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    while filled < bytes.len() {
        filled +=
            rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty())?;
    }
    Ok(hex(&bytes))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Whether `id` has the shape of an upload id (so it can name files in the state directory).
pub fn valid_id(id: &[u8]) -> bool {
    let hex_digits = |s: &[u8], n: usize| {
        s.len() == n && s.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    hex_digits(id, 32)
        || id
            .strip_prefix(b"put-")
            .is_some_and(|rest| hex_digits(rest, 64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store, OwnedFd) {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("state")).unwrap();
        std::fs::create_dir(tmp.path().join("pub")).unwrap();
        let open = |p: &str| {
            rfs::open(
                tmp.path().join(p),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .unwrap()
        };
        let (state, public) = (open("state"), open("pub"));
        (tmp, Store::open(state), public)
    }

    fn info() -> Info {
        Info {
            proto: Proto::Tus,
            length: Some(6),
            prefix: 0,
            name: "out.bin".into(),
            metadata: "filename b3V0LmJpbg==".into(),
            created: 1_700_000_000,
            done: false,
        }
    }

    #[test]
    fn info_round_trips() {
        let i = info();
        assert_eq!(Info::from_json(&i.to_json()), Some(i.clone()));
        let deferred = Info {
            length: None,
            proto: Proto::Put,
            ..i
        };
        assert_eq!(Info::from_json(&deferred.to_json()), Some(deferred));
        assert_eq!(Info::from_json(b"{\"proto\":\"x\"}"), None);
    }

    #[test]
    fn write_lock_resume_publish() {
        let (tmp, store, public) = store();
        let id = random_id().unwrap();
        assert!(valid_id(id.as_bytes()));
        let mut part = store.create(&id, &info()).unwrap();
        assert_eq!(
            store.info(&id),
            Some(info()),
            "readable before it is synced"
        );
        store.sync_info(&id).unwrap();
        assert!(store.sync_info("nosuchid").is_err());
        part.append(b"abc").unwrap();
        // A second writer is refused while the first holds the upload, even in-process.
        assert!(matches!(store.open_part(&id), Err(OpenError::Locked)));
        drop(part);
        // Free again once closed. (A process another test spawns at that moment holds a copy
        // of the descriptor, and with it the lock, until its exec: allow for that.)
        let started = std::time::Instant::now();
        let mut part = loop {
            match store.open_part(&id) {
                Err(OpenError::Locked) if started.elapsed().as_secs() < 5 => {
                    std::thread::yield_now()
                }
                other => break other.unwrap(),
            }
        };
        assert_eq!(part.offset(), 3);
        part.append(b"dXX").unwrap();
        part.truncate(4).unwrap();
        part.append(b"ef").unwrap();
        assert_eq!(store.stored(&id).unwrap().0, 6);
        let mut i = store.info(&id).unwrap();
        store.publish(&id, part, &mut i, &public, false).unwrap();
        assert_eq!(
            std::fs::read(tmp.path().join("pub/out.bin")).unwrap(),
            b"abcdef"
        );
        assert!(store.info(&id).unwrap().done);
        // The same name again is refused, not replaced.
        let id2 = random_id().unwrap();
        let part = store.create(&id2, &info()).unwrap();
        let mut i2 = info();
        assert!(matches!(
            store.publish(&id2, part, &mut i2, &public, false),
            Err(PublishError::Exists)
        ));
        assert_eq!(store.ids().unwrap().len(), 2);
        assert!(store.remove_unlocked(&id2).unwrap());
        assert!(matches!(store.open_part(&id2), Err(OpenError::Missing)));
    }

    #[test]
    fn ids_are_checked() {
        assert!(valid_id(&[b'a'; 32]));
        assert!(!valid_id(&[b'A'; 32]));
        assert!(!valid_id(b"../../etc/passwd"));
        assert!(valid_id(format!("put-{}", "0".repeat(64)).as_bytes()));
        assert!(!valid_id(b"put-0"));
    }
}
