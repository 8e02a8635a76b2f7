//! Configuration reload on SIGHUP (nginx `-s reload`), without dropping a connection.
//!
//! Key design decision: everything that can fail happens on the signal thread, before any
//! worker is touched. [`Reloader::reload`] reads the configuration again from the sources it
//! came from at start-up, keeps the options only a restart can change, opens what the workers
//! will need — the root once per worker (each worker has a descriptor of its own, as at
//! start-up) and, when the access log changed, one log per worker — and only then publishes
//! the result as one `engine::reload::Update`. A refused reload thus changes nothing anywhere. A worker
//! looks for an update with one relaxed atomic load per loop turn (`Watch::poll`) and swaps
//! it in between two turns, when no connection is in the middle of anything: a response under
//! way keeps its file and pacing, and what starts afterwards — accepts, requests, responses —
//! gets the new configuration. The signal thread waits for every worker to confirm before it
//! prints `configuration reloaded`, so a request sent after that line is served under the new
//! configuration.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::config::{Config, Sources};
use crate::engine::reload::{Reloads, Update};
use crate::fs::Root;
use crate::metrics::access_log::{AccessLog, Reopen};
use crate::policy;

/// Longest the signal thread waits for the workers to confirm an update. A worker turns its
/// loop at least once a second, so only a wedged worker takes longer.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

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

    /// The configuration in force (the last one a reload accepted).
    pub fn running(&self) -> &Config {
        &self.running
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
        for note in &update.config.tls_notes {
            eprintln!("ringserve: {note}");
        }
        if let (Some(slot), Some(root)) = (&self.admin_root, admin_root) {
            *lock(slot) = root;
        }
        self.running = Arc::clone(&update.config);
        self.shared = update.shared().clone();
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
        let root = || config.open_root();
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
            parts.push((root()?, if log_changed { Some(log()?) } else { None }));
        }
        let admin_root = match self.admin_root {
            Some(_) => Some(root()?),
            None => None,
        };
        // Last: from here on nothing fails, and the new caps apply to the running workers too.
        let shared = self.shared.reload(&config.policy);
        let update = Update::new(Arc::new(config), shared, parts);
        Ok((update, kept, admin_root))
    }
}

/// Locks `m`, going on after a panic elsewhere (the admin listener's root is replaced whole).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
