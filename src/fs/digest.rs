//! SHA-256 and SHA-512 of served files, for RFC 9530 `Repr-Digest`: computed once per file
//! version on a thread of their own and kept in the file's extended attributes.
//!
//! Key decisions: a worker never reads a file to digest it, nor waits for a digest. It asks
//! [`Digests::lookup`] (a lock and a map lookup, only for requests that want a digest); an
//! unknown version is queued for the digest thread and the response goes out without the
//! field. The thread first reads `user.ringserve.sha256` / `user.ringserve.sha512`, each
//! `"<mtime seconds>.<nanoseconds> <size> <hex>"`, and trusts them when mtime and size are the
//! file's now (so an `rsync -X` copy, or a restart, costs no rehash); otherwise it reads the
//! file once for both digests and writes the attributes back, where the file system and
//! permissions allow (else the digests live in memory only, and a restart computes them
//! again). Results are keyed by the file version (mtime, size, inode), so a replaced file is
//! never described by its predecessor's digest; memory is bounded by [`MAX_KNOWN`].

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};

use rustix::fs::{fgetxattr, fsetxattr, XattrFlags};
use sha2::{Digest, Sha256, Sha512};

use crate::http::digest::DigestAlg;
use crate::http::ETag;

/// File versions whose digests are kept in memory (about 200 bytes each).
pub const MAX_KNOWN: usize = 16 * 1024;
/// Files waiting for the digest thread; a request beyond it is simply not queued.
const MAX_PENDING: usize = 256;
/// Bytes read per `pread` while digesting.
const CHUNK: usize = 1 << 20;
const XATTR_SHA256: &str = "user.ringserve.sha256";
const XATTR_SHA512: &str = "user.ringserve.sha512";

/// The digests of one file version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sums {
    sha256: [u8; 32],
    sha512: [u8; 64],
}

impl Sums {
    /// The digest made with `alg`.
    pub fn get(&self, alg: DigestAlg) -> &[u8] {
        match alg {
            DigestAlg::Sha256 => &self.sha256,
            DigestAlg::Sha512 => &self.sha512,
        }
    }
}

#[derive(Default)]
struct State {
    known: HashMap<ETag, Arc<Sums>>,
    pending: HashSet<ETag>,
}

struct Job {
    file: Arc<File>,
    version: ETag,
}

/// The server's digests, shared by its workers; the thread starts with the first request.
#[derive(Default)]
pub struct Digests {
    state: Arc<Mutex<State>>,
    jobs: OnceLock<SyncSender<Job>>,
}

impl Digests {
    /// The digests of `file` if its version (`version`, see [`crate::http::Representation`])
    /// is known; otherwise `None`, and the file is queued to be digested.
    pub fn lookup(&self, file: &Arc<File>, version: &ETag) -> Option<Arc<Sums>> {
        let mut state = self.state.lock().ok()?;
        if let Some(sums) = state.known.get(version) {
            return Some(Arc::clone(sums));
        }
        if state.pending.len() >= MAX_PENDING || !state.pending.insert(*version) {
            return None;
        }
        let job = Job {
            file: Arc::clone(file),
            version: *version,
        };
        if self.sender().and_then(|s| s.try_send(job).ok()).is_none() {
            state.pending.remove(version);
        }
        None
    }

    /// The digest thread's queue, starting the thread the first time.
    fn sender(&self) -> Option<&SyncSender<Job>> {
        if let Some(s) = self.jobs.get() {
            return Some(s);
        }
        let (tx, rx) = sync_channel(MAX_PENDING);
        let state = Arc::clone(&self.state);
        std::thread::Builder::new()
            .name("ringserve-digest".into())
            .spawn(move || run(&rx, &state))
            .ok()?;
        Some(self.jobs.get_or_init(|| tx))
    }
}

/// The digest thread: each queued file digested (or its attributes read) and published.
fn run(jobs: &Receiver<Job>, state: &Mutex<State>) {
    let mut buf = vec![0u8; CHUNK];
    while let Ok(job) = jobs.recv() {
        let sums = sums(&job.file, &job.version, &mut buf).ok().flatten();
        let Ok(mut state) = state.lock() else {
            return;
        };
        state.pending.remove(&job.version);
        if let Some(sums) = sums {
            if state.known.len() >= MAX_KNOWN {
                if let Some(victim) = state.known.keys().next().copied() {
                    state.known.remove(&victim);
                }
            }
            state.known.insert(job.version, Arc::new(sums));
        }
    }
}

/// The digests of `file`, from its attributes when they describe it as it is, else by
/// reading it (and recording them); `None` if it is no longer `version`, or changed while
/// being read.
fn sums(file: &File, version: &ETag, buf: &mut [u8]) -> io::Result<Option<Sums>> {
    let stamp = |meta: &std::fs::Metadata| {
        format!("{}.{:09} {}", meta.mtime(), meta.mtime_nsec(), meta.len())
    };
    let meta = file.metadata()?;
    let mtime = u64::try_from(meta.mtime()).unwrap_or(0);
    if ETag::from_parts(mtime, meta.len(), meta.ino()) != *version {
        return Ok(None);
    }
    let before = stamp(&meta);
    if let (Some(sha256), Some(sha512)) = (
        recorded(file, XATTR_SHA256, &before),
        recorded(file, XATTR_SHA512, &before),
    ) {
        return Ok(Some(Sums { sha256, sha512 }));
    }
    let (mut a, mut b) = (Sha256::new(), Sha512::new());
    let mut offset = 0u64;
    loop {
        let n = file.read_at(buf, offset)?;
        if n == 0 {
            break;
        }
        a.update(&buf[..n]);
        b.update(&buf[..n]);
        offset += n as u64;
    }
    if stamp(&file.metadata()?) != before || offset != meta.len() {
        return Ok(None);
    }
    let sums = Sums {
        sha256: a.finalize().into(),
        sha512: b.finalize().into(),
    };
    for (name, digest) in [
        (XATTR_SHA256, &sums.sha256[..]),
        (XATTR_SHA512, &sums.sha512),
    ] {
        let mut value = before.clone();
        value.push(' ');
        for byte in digest {
            let _ = write!(value, "{byte:02x}");
        }
        // Read-only roots, file systems without user attributes, files not ours: kept in
        // memory only.
        let _ = fsetxattr(file, name, value.as_bytes(), XattrFlags::empty());
    }
    Ok(Some(sums))
}

/// The digest recorded in the attribute `name`, if it was recorded for `stamp`.
fn recorded<const N: usize>(file: &File, name: &str, stamp: &str) -> Option<[u8; N]> {
    let mut value = [0u8; 256];
    let len = fgetxattr(file, name, &mut value[..]).ok()?;
    let value = std::str::from_utf8(&value[..len]).ok()?;
    let hex = value.strip_prefix(stamp)?.strip_prefix(' ')?;
    if hex.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn version(file: &File) -> ETag {
        let m = file.metadata().unwrap();
        ETag::from_parts(u64::try_from(m.mtime()).unwrap(), m.len(), m.ino())
    }

    /// Asks until the digest thread has answered (bounded).
    fn wait(d: &Digests, file: &Arc<File>, v: &ETag) -> Arc<Sums> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = d.lookup(file, v) {
                return s;
            }
            assert!(Instant::now() < deadline, "no digest");
            std::thread::yield_now();
        }
    }

    #[test]
    fn digests_are_computed_in_the_background_and_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..3 * CHUNK + 7).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = Arc::new(File::open(&path).unwrap());
        let v = version(&file);
        let d = Digests::default();
        let sums = wait(&d, &file, &v);
        assert_eq!(sums.get(DigestAlg::Sha256), &Sha256::digest(&data)[..]);
        assert_eq!(sums.get(DigestAlg::Sha512), &Sha512::digest(&data)[..]);
        // Recorded where the file system keeps user attributes: read back without hashing.
        let stamp = {
            let m = file.metadata().unwrap();
            format!("{}.{:09} {}", m.mtime(), m.mtime_nsec(), m.len())
        };
        if let Some(sha256) = recorded::<32>(&file, XATTR_SHA256, &stamp) {
            assert_eq!(&sha256[..], sums.get(DigestAlg::Sha256));
            let again = sums_of(&file, &v);
            assert_eq!(again, *sums);
        } else {
            eprintln!("no user xattrs on {}: memory only", dir.path().display());
        }
    }

    fn sums_of(file: &File, v: &ETag) -> Sums {
        sums(file, v, &mut vec![0; CHUNK]).unwrap().unwrap()
    }

    #[test]
    fn a_stale_record_or_another_version_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"one").unwrap();
        let file = File::open(&path).unwrap();
        let v = version(&file);
        let first = sums_of(&file, &v);
        // A record claiming other bytes for another mtime is ignored.
        let bogus = format!("1.000000000 3 {}", "00".repeat(32));
        if fsetxattr(&file, XATTR_SHA256, bogus.as_bytes(), XattrFlags::empty()).is_ok() {
            assert_eq!(sums_of(&file, &v), first);
        }
        // The file is no longer the version asked about.
        let other = ETag::from_parts(1, 3, 1);
        assert_eq!(sums(&file, &other, &mut [0; 16]).unwrap(), None);
    }
}
