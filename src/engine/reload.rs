//! Configuration reload on SIGHUP (nginx `-s reload`), without dropping a connection.
//!
//! Key design decision: everything that can fail happens on the signal thread, before any
//! worker is touched. [`Reloader::reload`] reads the configuration again from the sources it
//! came from at start-up, keeps the options only a restart can change, opens what the workers
//! will need — the root once per worker (each worker has a descriptor of its own, as at
//! start-up) and, when the access log changed, one log per worker — and only then publishes
//! the result as one [`Update`]. A refused reload thus changes nothing anywhere. A worker
//! looks for an update with one relaxed atomic load per loop turn ([`Watch::poll`]) and swaps
//! it in between two turns, when no connection is in the middle of anything: a response under
//! way keeps its file and pacing, and what starts afterwards — accepts, requests, responses —
//! gets the new configuration. The signal thread waits for every worker to confirm before it
//! prints `configuration reloaded`, so a request sent after that line is served under the new
//! configuration.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::access_log::{AccessLog, Reopen};
use super::conn::Worker;
use crate::config::{Config, Sources};
use crate::fs::Root;
use crate::policy;

/// Longest the signal thread waits for the workers to confirm an update. A worker turns its
/// loop at least once a second, so only a wedged worker takes longer.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// A checked configuration, ready for the workers to swap in.
pub struct Update {
    /// The new configuration, restart-only options at their running values.
    pub config: Arc<Config>,
    /// The state all workers share under the new policy settings.
    shared: policy::Shared,
    /// What each worker needs of its own; each worker takes one.
    parts: Mutex<Vec<Parts>>,
}

/// One worker's own part of an update.
struct Parts {
    root: Root,
    /// The new access log, when its destination or format changed.
    log: Option<AccessLog>,
}

impl Update {
    /// Swaps this update into `w`: root, open-file cache, content options, access log,
    /// policies, and the configuration read per request (timeouts, limits).
    pub fn apply(&self, w: &mut Worker) {
        let c = &self.config;
        if let Some(parts) = lock(&self.parts).pop() {
            let (max, valid) = (c.open_file_cache, c.open_file_cache_valid);
            w.handler
                .reload(parts.root, Arc::clone(&c.content), max, valid);
            if let Some(log) = parts.log {
                // Dropping the old log writes out what it buffered.
                w.log = log;
            }
        }
        w.policy.reload(c.policy.clone(), self.shared.clone());
        w.config = Arc::clone(c);
    }
}

/// The latest update and the workers' confirmations, shared by the signal thread and the
/// workers.
#[derive(Default)]
pub struct Reloads {
    /// Generation of the latest update, which workers read without taking the lock.
    generation: AtomicU64,
    slot: Mutex<Slot>,
    confirmed: Condvar,
}

#[derive(Default)]
struct Slot {
    generation: u64,
    update: Option<Arc<Update>>,
    /// Workers that applied `update`.
    confirmations: usize,
}

impl Reloads {
    /// Makes `update` the latest; returns its generation.
    fn publish(&self, update: Update) -> u64 {
        let mut slot = lock(&self.slot);
        slot.generation += 1;
        slot.update = Some(Arc::new(update));
        slot.confirmations = 0;
        self.generation.store(slot.generation, Ordering::Relaxed);
        slot.generation
    }

    /// Waits until `workers` workers have applied update `generation`, or `timeout` has
    /// passed; returns how many have.
    fn wait_confirmed(&self, generation: u64, workers: usize, timeout: Duration) -> usize {
        let slot = lock(&self.slot);
        let (slot, _) = self
            .confirmed
            .wait_timeout_while(slot, timeout, |s| {
                s.generation == generation && s.confirmations < workers
            })
            .unwrap_or_else(PoisonError::into_inner);
        slot.confirmations
    }
}

/// One worker's view of [`Reloads`].
pub struct Watch {
    reloads: Arc<Reloads>,
    /// Generation of the update taken last.
    seen: u64,
    /// The worker's index, which its share of `--max-conns` depends on.
    pub index: usize,
}

impl Watch {
    /// Worker `index`'s watch on `reloads`.
    pub fn new(reloads: Arc<Reloads>, index: usize) -> Watch {
        Watch {
            reloads,
            seen: 0,
            index,
        }
    }

    /// The update published since the last call, if any. Costs one relaxed atomic load when
    /// there is none; the lock taken when there is one orders everything the update holds.
    #[inline]
    pub fn poll(&mut self) -> Option<Arc<Update>> {
        if self.reloads.generation.load(Ordering::Relaxed) == self.seen {
            return None;
        }
        let slot = lock(&self.reloads.slot);
        self.seen = slot.generation;
        slot.update.clone()
    }

    /// Tells the signal thread that this worker applied the update [`Watch::poll`] returned.
    pub fn confirm(&self) {
        let mut slot = lock(&self.reloads.slot);
        if slot.generation == self.seen {
            slot.confirmations += 1;
            self.reloads.confirmed.notify_all();
        }
    }
}

/// The signal thread's side: what the server runs with now, and where to read it again.
pub struct Reloader {
    sources: Sources,
    running: Arc<Config>,
    shared: policy::Shared,
    reopen: Reopen,
    reloads: Arc<Reloads>,
    /// The admin listener's root, opened again with the workers' ones.
    admin_root: Option<Arc<Mutex<Root>>>,
}

impl Reloader {
    /// A reloader for a server started with `running` (read from `sources`) and the shared
    /// policy state `shared`, publishing to `reloads`; new access logs reopen on `reopen`.
    pub fn new(
        sources: Sources,
        running: Arc<Config>,
        shared: policy::Shared,
        reopen: Reopen,
        reloads: Arc<Reloads>,
        admin_root: Option<Arc<Mutex<Root>>>,
    ) -> Reloader {
        Reloader {
            sources,
            running,
            shared,
            reopen,
            reloads,
            admin_root,
        }
    }

    /// Handles a SIGHUP: either prints `ringserve: reload refused: REASON` and changes
    /// nothing, or names each restart-only option that changed (and is kept), publishes the
    /// new configuration, wakes the workers with `wake`, waits for them to take it and prints
    /// `ringserve: configuration reloaded`.
    pub fn reload(&mut self, wake: impl Fn()) {
        let (update, kept, admin_root) = match self.prepare() {
            Ok(prepared) => prepared,
            Err(reason) => return eprintln!("ringserve: reload refused: {reason}"),
        };
        for name in kept {
            eprintln!(
                "ringserve: reload: --{name} changed but needs a restart; keeping the running \
                 value"
            );
        }
        if let (Some(slot), Some(root)) = (&self.admin_root, admin_root) {
            *lock(slot) = root;
        }
        self.running = Arc::clone(&update.config);
        self.shared = update.shared.clone();
        let workers = self.running.workers;
        let generation = self.reloads.publish(update);
        wake();
        let confirmed = self
            .reloads
            .wait_confirmed(generation, workers, CONFIRM_TIMEOUT);
        if confirmed < workers {
            eprintln!(
                "ringserve: reload: {confirmed} of {workers} workers took the new configuration \
                 within {CONFIRM_TIMEOUT:?}; the others take it at their next loop turn"
            );
        }
        eprintln!("ringserve: configuration reloaded");
    }

    /// Reads and checks the new configuration and opens what the workers need; returns the
    /// update, the restart-only options that changed, and the admin listener's new root.
    fn prepare(&self) -> Result<(Update, Vec<&'static str>, Option<Root>), String> {
        let (config, kept) = self.running.reloaded(self.sources.load()?)?;
        let root = || {
            Root::open(&config.root, config.dotfiles)
                .map_err(|e| format!("root {}: {e}", config.root.display()))
        };
        let log_changed = config.access_log != self.running.access_log
            || config.access_log_format != self.running.access_log_format;
        let log = || {
            AccessLog::open(
                &config.access_log,
                config.access_log_format,
                self.reopen.clone(),
            )
            .map_err(|e| format!("access log: {e}"))
        };
        let mut parts = Vec::with_capacity(config.workers);
        for _ in 0..config.workers {
            parts.push(Parts {
                root: root()?,
                log: if log_changed { Some(log()?) } else { None },
            });
        }
        let admin_root = match self.admin_root {
            Some(_) => Some(root()?),
            None => None,
        };
        // Last: from here on nothing fails, and the new caps apply to the running workers too.
        let shared = self.shared.reload(&config.policy);
        let update = Update {
            config: Arc::new(config),
            shared,
            parts: Mutex::new(parts),
        };
        Ok((update, kept, admin_root))
    }
}

/// Locks `m`, going on after a panic elsewhere (the data stays consistent: every critical
/// section here is a few assignments).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(workers: usize) -> Update {
        let dir = std::env::temp_dir();
        let config = Config::try_from_iter(["ringserve", "--workers", &workers.to_string()]);
        Update {
            config: Arc::new(config.unwrap()),
            shared: policy::Shared::default(),
            parts: Mutex::new(
                (0..workers)
                    .map(|_| Parts {
                        root: Root::open(&dir, false).unwrap(),
                        log: None,
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn workers_see_each_update_once_and_confirm_it() {
        let reloads = Arc::new(Reloads::default());
        let mut watches: Vec<Watch> = (0..2)
            .map(|i| Watch::new(Arc::clone(&reloads), i))
            .collect();
        assert!(watches.iter_mut().all(|w| w.poll().is_none()));
        let generation = reloads.publish(update(2));
        let timeout = Duration::ZERO;
        assert_eq!(reloads.wait_confirmed(generation, 2, timeout), 0);
        let first = watches[0].poll().expect("published");
        assert!(watches[0].poll().is_none(), "taken once");
        watches[0].confirm();
        assert_eq!(reloads.wait_confirmed(generation, 2, timeout), 1);
        let second = watches[1].poll().expect("published");
        assert!(Arc::ptr_eq(&first, &second), "one update for all");
        let waiter = {
            let reloads = Arc::clone(&reloads);
            std::thread::spawn(move || reloads.wait_confirmed(generation, 2, CONFIRM_TIMEOUT))
        };
        watches[1].confirm();
        assert_eq!(waiter.join().unwrap(), 2);
    }

    #[test]
    fn a_worker_behind_takes_the_latest_update() {
        let reloads = Arc::new(Reloads::default());
        let mut watch = Watch::new(Arc::clone(&reloads), 0);
        reloads.publish(update(1));
        let latest = reloads.publish(update(1));
        assert!(watch.poll().is_some());
        watch.confirm();
        assert_eq!(reloads.wait_confirmed(latest, 1, Duration::ZERO), 1);
        assert!(watch.poll().is_none());
    }
}
