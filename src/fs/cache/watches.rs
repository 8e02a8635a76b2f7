//! The cache's directory watches: which directories are watched, what each cache entry
//! depends on, and which entries a batch of inotify events made stale.
//!
//! An entry depends on every (directory, name) its path was resolved through: for
//! `/current/app.bin`, the name `current` in the root and `app.bin` in the directory `current`
//! led to. A change to any of them (a rename over it, a removal, a write, a swapped symlink)
//! drops the entry. Watched directories are remembered by path, each with the names that led
//! to it, so a miss on a file in a directory already watched costs no system call; a change
//! to one of those names forgets the directory too (`current` now leads elsewhere).

use std::collections::HashMap;
use std::ffi::CStr;
use std::hash::{DefaultHasher, Hasher};
use std::time::{Duration, Instant};

use crate::sys::{Change, Watcher};

/// The longest a lookup goes without reading the watches' events: how soon after a change on
/// disk the cache drops what it made stale (given a request in the meantime).
pub const DRAIN_EVERY: Duration = Duration::from_millis(100);

/// What a cache entry depends on: (watched directory, hash of the name in it) pairs.
pub type Deps = Box<[(i32, u64)]>;

/// A watched directory, by the path it was reached by.
struct Dir {
    wd: i32,
    /// The names that led to it.
    chain: Deps,
}

/// What [`Watches::read`] found.
pub enum Read {
    /// Nothing changed, or it is not yet time to read.
    Nothing,
    /// Some names changed: test entries with [`Watches::stale`].
    Changed,
    /// Events were lost: every entry may be stale.
    Lost,
}

/// The directory watches of one cache.
pub struct Watches {
    watcher: Watcher,
    /// How many entry dependencies each watched directory has; unwatched at zero.
    users: HashMap<i32, u32>,
    /// Watched directories by path (`/proc/self/fd/N/a/b`).
    dirs: HashMap<Box<[u8]>, Dir>,
    drained: Instant,
    /// Scratch: the path of a directory to watch.
    path: Vec<u8>,
    /// The changes the last read found: a directory, and one name in it or all of them.
    changed: Vec<(i32, Option<u64>)>,
}

impl Watches {
    /// Watches for a cache, or none where inotify is unavailable (then `valid` alone holds).
    pub fn new() -> Option<Watches> {
        Some(Watches {
            watcher: Watcher::new().ok()?,
            users: HashMap::new(),
            dirs: HashMap::new(),
            drained: Instant::now(),
            path: Vec::new(),
            changed: Vec::new(),
        })
    }

    /// Watches the directories `points` names (each with the name looked up in it, see
    /// [`super::Root::watch_points`]) and returns what an entry resolved through them depends
    /// on. A directory that cannot be watched is left out: `valid` covers it.
    pub fn depend(
        &mut self,
        scratch: &mut Vec<u8>,
        points: impl FnOnce(&mut Vec<u8>, &mut Vec<u8>, &mut dyn FnMut(&CStr, &[u8])),
    ) -> Deps {
        let mut deps = Vec::new();
        let Watches {
            watcher,
            users,
            dirs,
            path,
            ..
        } = self;
        points(scratch, path, &mut |dir, name| {
            let wd = match dirs.get(dir.to_bytes()) {
                Some(d) => d.wd,
                None => match watcher.add(dir) {
                    Ok(wd) => {
                        let chain = deps.clone().into_boxed_slice();
                        dirs.insert(dir.to_bytes().into(), Dir { wd, chain });
                        wd
                    }
                    Err(_) => return,
                },
            };
            *users.entry(wd).or_default() += 1;
            deps.push((wd, name_hash(name)));
        });
        deps.into_boxed_slice()
    }

    /// Gives up an entry's dependencies, unwatching (and forgetting) directories nothing
    /// depends on any more.
    pub fn release(&mut self, deps: &[(i32, u64)]) {
        for &(wd, _) in deps {
            if let Some(n) = self.users.get_mut(&wd) {
                *n -= 1;
                if *n == 0 {
                    self.users.remove(&wd);
                    self.watcher.remove(wd);
                    self.dirs
                        .retain(|_, d| d.wd != wd && !d.chain.iter().any(|&(w, _)| w == wd));
                }
            }
        }
    }

    /// Reads the queued events if the last read was [`DRAIN_EVERY`] ago or more; directories
    /// reached through a changed name are forgotten (their entries are the caller's, through
    /// [`Watches::stale`]).
    pub fn read(&mut self, now: Instant) -> Read {
        if now.saturating_duration_since(self.drained) < DRAIN_EVERY {
            return Read::Nothing;
        }
        self.drained = now;
        let mut lost = false;
        let changed = &mut self.changed;
        changed.clear();
        self.watcher.drain(|change| match change {
            Change::Entry { wd, name } => changed.push((wd, Some(name_hash(name)))),
            Change::Directory { wd } => changed.push((wd, None)),
            Change::Lost => lost = true,
        });
        if lost {
            return Read::Lost;
        }
        if self.changed.is_empty() {
            return Read::Nothing;
        }
        let changed = &self.changed;
        self.dirs
            .retain(|_, d| !stale(&d.chain, changed) && !changed.contains(&(d.wd, None)));
        Read::Changed
    }

    /// Whether an entry with `deps` was resolved through something the last read saw change.
    pub fn stale(&self, deps: &[(i32, u64)]) -> bool {
        stale(deps, &self.changed)
    }

    /// How many directories are watched, and how many dependencies they have in all.
    #[cfg(test)]
    pub fn counts(&self) -> (usize, u32) {
        (self.users.len(), self.users.values().sum())
    }
}

fn stale(deps: &[(i32, u64)], changed: &[(i32, Option<u64>)]) -> bool {
    deps.iter().any(|&(wd, name)| {
        changed
            .iter()
            .any(|&(c, n)| c == wd && n.is_none_or(|n| n == name))
    })
}

/// A name's hash, as dependencies remember names (a collision only drops an entry early).
fn name_hash(name: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    h.write(name);
    h.finish()
}
