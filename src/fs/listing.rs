//! Directory listings (nginx `autoindex`), read: the entries of one directory, described
//! and sorted, for `serve::listing` to render.
//!
//! Key design decision: entries are read into one compact arena (every name back to back in
//! one buffer, plus a fixed 24-byte record each) and sorted there. A directory of 100k
//! entries thus costs a few MB for the duration of one request.
//!
//! What is listed: everything but `.` and `..`, and names starting with `.` unless dotfiles
//! are served. Symbolic links are shown as what they point to, resolved beneath the root as
//! a request would be; links that leave the root or dangle are left out, since following
//! them would only give a 404 (and describing them would leak what lies outside).
//! Directories come first, then everything else, each sorted bytewise by name.
//! Names are raw bytes (Linux allows anything but `/` and NUL).

use std::ffi::CStr;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::MetadataExt;

use rustix::fs::{AtFlags, Dir, FileType, StatxFlags};

use super::Root;
use crate::sys::{self, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS};

/// What a listed name is (a symlink is listed as what it points to).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A directory: listed with a trailing `/`.
    Directory,
    /// A regular file.
    File,
    /// A FIFO, socket or device (listed, but never served).
    Other,
}

impl Kind {
    /// The `type` value in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Directory => "directory",
            Kind::File => "file",
            Kind::Other => "other",
        }
    }

    fn of(file_type: FileType) -> Kind {
        match file_type {
            FileType::Directory => Kind::Directory,
            FileType::RegularFile => Kind::File,
            _ => Kind::Other,
        }
    }
}

/// One entry: where its name lies in the arena, and what it is.
#[derive(Clone, Copy)]
struct Entry {
    name_start: u32,
    name_len: u16,
    kind: Kind,
    size: u64,
    mtime: i64,
}

/// One listed entry, as [`Listing::entries`] shows it.
#[derive(Clone, Copy, Debug)]
pub struct Shown<'a> {
    /// The name, raw bytes.
    pub name: &'a [u8],
    /// What it is (a symlink: what it points to).
    pub kind: Kind,
    /// Length in bytes.
    pub size: u64,
    /// Modification time, Unix seconds.
    pub mtime: i64,
}

/// The sorted entries of one directory.
pub struct Listing {
    names: Vec<u8>,
    entries: Vec<Entry>,
}

impl Listing {
    /// Reads the directory `dir` (the handle of a [`super::Lookup::Directory`]) whose path
    /// relative to the root is `rel` (`.` for the root itself).
    pub fn read(root: &Root, dir: BorrowedFd<'_>, rel: &[u8]) -> io::Result<Listing> {
        let flags = libc::O_RDONLY | libc::O_DIRECTORY;
        let fd = sys::openat2(dir, c".", flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)?;
        let mut stream = Dir::new(fd)?;
        let mut listing = Listing {
            names: Vec::new(),
            entries: Vec::new(),
        };
        let mut path = Vec::new();
        while let Some(entry) = stream.read() {
            let entry = entry?;
            let name = entry.file_name();
            let bytes = name.to_bytes();
            if bytes == b"." || bytes == b".." || (bytes[0] == b'.' && !root.dotfiles()) {
                continue;
            }
            if let Some((kind, size, mtime)) = describe(root, stream.fd()?, name, rel, &mut path) {
                listing.push(bytes, kind, size, mtime)?;
            }
        }
        listing.sort();
        Ok(listing)
    }

    fn push(&mut self, name: &[u8], kind: Kind, size: u64, mtime: i64) -> io::Result<()> {
        let too_big = || io::Error::other("directory listing too large");
        let name_start = u32::try_from(self.names.len()).map_err(|_| too_big())?;
        let name_len = u16::try_from(name.len()).map_err(|_| too_big())?;
        self.names.extend_from_slice(name);
        self.entries.push(Entry {
            name_start,
            name_len,
            kind,
            size,
            mtime,
        });
        Ok(())
    }

    /// The entries, directories first, each group sorted bytewise by name.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = Shown<'_>> {
        self.entries.iter().map(|e| Shown {
            name: self.name(e),
            kind: e.kind,
            size: e.size,
            mtime: e.mtime,
        })
    }

    fn name(&self, e: &Entry) -> &[u8] {
        let start = e.name_start as usize;
        &self.names[start..start + usize::from(e.name_len)]
    }

    fn sort(&mut self) {
        let mut entries = std::mem::take(&mut self.entries);
        entries.sort_unstable_by(|a, b| {
            (a.kind != Kind::Directory)
                .cmp(&(b.kind != Kind::Directory))
                .then_with(|| self.name(a).cmp(self.name(b)))
        });
        self.entries = entries;
    }
}

/// Kind, size and modification time of the entry `name` of `dir` (whose path relative to
/// the root is `rel`), a symlink described by its target beneath the root; `None` for an
/// entry that vanished, or a link that escapes the root or dangles. `path` is scratch space.
fn describe(
    root: &Root,
    dir: BorrowedFd<'_>,
    name: &CStr,
    rel: &[u8],
    path: &mut Vec<u8>,
) -> Option<(Kind, u64, i64)> {
    let mask = StatxFlags::TYPE | StatxFlags::SIZE | StatxFlags::MTIME;
    let stat = rustix::fs::statx(dir, name, AtFlags::SYMLINK_NOFOLLOW, mask).ok()?;
    let file_type = FileType::from_raw_mode(u32::from(stat.stx_mode));
    if file_type != FileType::Symlink {
        return Some((Kind::of(file_type), stat.stx_size, stat.stx_mtime.tv_sec));
    }
    path.clear();
    if rel != b"." {
        path.extend_from_slice(rel);
        path.push(b'/');
    }
    path.extend_from_slice(name.to_bytes_with_nul());
    let meta = root.metadata_beneath(CStr::from_bytes_with_nul(path).ok()?)?;
    let kind = if meta.is_dir() {
        Kind::Directory
    } else if meta.is_file() {
        Kind::File
    } else {
        Kind::Other
    };
    Some((kind, meta.len(), meta.mtime()))
}
