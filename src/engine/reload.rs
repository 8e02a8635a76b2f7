//! The hand-over of a reloaded configuration to the workers (see `server::reload` for how
//! it is read and checked): one [`Update`] published by the signal thread, found by each
//! worker with one relaxed atomic load per loop turn ([`Watch::poll`]), swapped in between
//! two turns when no connection is in the middle of anything, and confirmed, so the signal
//! thread knows when every worker serves under it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::worker::Worker;
use crate::config::Config;
use crate::fs::Root;
use crate::metrics::access_log::AccessLog;
use crate::policy;

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
    /// An update to `config`, with the policy state `shared` and, for each worker, its root
    /// and (when the log changed) its new access log.
    pub fn new(
        config: Arc<Config>,
        shared: policy::Shared,
        parts: Vec<(Root, Option<AccessLog>)>,
    ) -> Update {
        let parts = parts.into_iter().map(|(root, log)| Parts { root, log });
        Update {
            config,
            shared,
            parts: Mutex::new(parts.collect()),
        }
    }

    /// The state all workers share under the new policy settings.
    pub fn shared(&self) -> &policy::Shared {
        &self.shared
    }

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
        let to_kernel = !w.ktls.is_empty();
        w.tls = (c.tls.as_ref()).map(|c| crate::tls::per_worker(c, to_kernel));
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
    pub fn publish(&self, update: Update) -> u64 {
        let mut slot = lock(&self.slot);
        slot.generation += 1;
        slot.update = Some(Arc::new(update));
        slot.confirmations = 0;
        self.generation.store(slot.generation, Ordering::Relaxed);
        slot.generation
    }

    /// Waits until `workers` workers have applied update `generation`, or `timeout` has
    /// passed; returns how many have.
    pub fn wait_confirmed(&self, generation: u64, workers: usize, timeout: Duration) -> usize {
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
            std::thread::spawn(move || {
                reloads.wait_confirmed(generation, 2, Duration::from_secs(5))
            })
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
