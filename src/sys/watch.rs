//! Directory watches (`inotify(7)`): the open-file cache learns that a name it depends on was
//! replaced, removed or written to, without a system call per request.

use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};

/// What a drained event says changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change<'a> {
    /// The entry `name` of the directory watched as `wd` was created, removed, renamed,
    /// written or had its attributes changed.
    Entry { wd: i32, name: &'a [u8] },
    /// The directory watched as `wd` itself went away (removed, moved, unmounted); its watch
    /// is gone.
    Directory { wd: i32 },
    /// The kernel's queue overflowed: events were lost, anything may have changed.
    Lost,
}

/// An inotify instance, non-blocking, with the buffer it is drained into.
pub struct Watcher {
    fd: OwnedFd,
    buf: Box<[MaybeUninit<u8>]>,
}

/// Every change to a directory's entries that can alter what a path through it resolves to.
const EVENTS: WatchFlags = WatchFlags::CREATE
    .union(WatchFlags::DELETE)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::MODIFY)
    .union(WatchFlags::ATTRIB)
    .union(WatchFlags::CLOSE_WRITE)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::ONLYDIR);

impl Watcher {
    /// A new instance; fails where inotify is unavailable or `fs.inotify.max_user_instances`
    /// is reached.
    pub fn new() -> io::Result<Watcher> {
        let fd = inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC)?;
        Ok(Watcher {
            fd,
            buf: vec![MaybeUninit::uninit(); 16 * 1024].into_boxed_slice(),
        })
    }

    /// Watches the directory at `path` (following symlinks); the same directory twice gives
    /// the same descriptor. Fails for a path that is not a directory, or at
    /// `fs.inotify.max_user_watches`.
    pub fn add(&self, path: &CStr) -> io::Result<i32> {
        Ok(inotify::add_watch(&self.fd, path, EVENTS)?)
    }

    /// Stops watching `wd` (an `IN_IGNORED` event for it follows, read as
    /// [`Change::Directory`]). A watch the kernel already dropped is no error.
    pub fn remove(&self, wd: i32) {
        let _ = inotify::remove_watch(&self.fd, wd);
    }

    /// Reads every queued event, passing each to `each`; returns when none is left.
    pub fn drain(&mut self, mut each: impl FnMut(Change<'_>)) {
        let mut reader = inotify::Reader::new(&self.fd, &mut self.buf);
        loop {
            let Ok(event) = reader.next() else {
                return; // EAGAIN: drained (any other error: nothing more to read either)
            };
            let flags = event.events();
            let change = if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                Change::Lost
            } else if flags
                .intersects(ReadFlags::IGNORED | ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF)
            {
                Change::Directory { wd: event.wd() }
            } else {
                match event.file_name() {
                    Some(name) => Change::Entry {
                        wd: event.wd(),
                        name: name.to_bytes(),
                    },
                    None => Change::Directory { wd: event.wd() },
                }
            };
            each(change);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    fn drained(w: &mut Watcher) -> Vec<String> {
        let mut seen = Vec::new();
        w.drain(|c| {
            seen.push(match c {
                Change::Entry { name, .. } => String::from_utf8_lossy(name).into_owned(),
                Change::Directory { .. } => "<dir>".into(),
                Change::Lost => "<lost>".into(),
            })
        });
        seen
    }

    #[test]
    fn renames_and_removals_are_read_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "1").unwrap();
        let mut w = Watcher::new().unwrap();
        let path = CString::new(dir.path().as_os_str().as_bytes()).unwrap();
        let wd = w.add(&path).unwrap();
        assert_eq!(w.add(&path).unwrap(), wd, "one watch per directory");
        assert!(drained(&mut w).is_empty());
        std::fs::write(dir.path().join("b"), "2").unwrap();
        std::fs::rename(dir.path().join("b"), dir.path().join("a")).unwrap();
        let seen = drained(&mut w);
        assert!(seen.contains(&"a".to_string()), "{seen:?}");
        std::fs::remove_file(dir.path().join("a")).unwrap();
        assert!(drained(&mut w).contains(&"a".to_string()));
        w.remove(wd);
        assert_eq!(drained(&mut w), ["<dir>"], "IN_IGNORED after removal");
    }

    #[test]
    fn a_file_is_not_a_directory_to_watch() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "").unwrap();
        let path = CString::new(dir.path().join("f").as_os_str().as_bytes()).unwrap();
        assert!(Watcher::new().unwrap().add(&path).is_err());
    }
}
