//! The state a worker thread's connections share while they are driven: the handler, the
//! configuration in force, clocks, policies, counters, and the pools connections borrow from
//! (response states, pipes, TLS buffers).

use std::sync::Arc;
use std::time::{Instant, UNIX_EPOCH};

use crate::config::Config;
use crate::http::date::DateCache;
use crate::http::h1::{Cx, Settings};
use crate::metrics::access_log::AccessLog;
use crate::metrics::{TopFiles, WorkerHandle};
use crate::policy::Policy;
use crate::serve::{Handler, Scratch};
use crate::sys;

use super::out_pool::OutPool;
use super::pipes::PipePool;
use super::prebuilt::Prebuilt;
use super::receiving::Landed;
use super::timer::TimerKey;

/// Paths tracked per worker for the most-downloaded list.
const TOP_FILES: usize = 64;

/// Per-worker state every connection of the worker uses while it is being driven.
pub struct Worker {
    /// The static-file handler.
    pub handler: Handler,
    /// Run-time configuration.
    pub config: Arc<Config>,
    /// `Date` header value, refreshed once per second.
    pub date: DateCache,
    /// Time of the current loop turn.
    pub now: Instant,
    /// Set once the server is shutting down: every response then closes its connection.
    pub draining: bool,
    /// Buffered access log.
    pub log: AccessLog,
    /// Pacing and protection.
    pub policy: Policy,
    /// Wall-clock time of the current loop turn in Unix seconds (for signed-link expiry).
    pub(super) unix_now: u64,
    /// This worker's counters (read by the admin listener).
    pub metrics: WorkerHandle,
    /// Most downloaded files, published to `metrics` once a second.
    pub(super) top: TopFiles,
    /// The handler's reusable buffers.
    pub(super) scratch: Scratch,
    /// Pipes lent to connections on the splice and prebuilt paths.
    pub(super) pipes: PipePool,
    /// TCP paces its connections itself (BBR): see [`super::send`] on heads and file bytes.
    pub(super) tcp_paced: bool,
    /// Prebuilt copies of hot small responses.
    pub(super) prebuilt: Prebuilt,
    /// Plaintext an HTTPS connection's input carried, handed to its session (reused).
    pub(super) tls_plain: Vec<u8>,
    /// File bytes on their way to being encrypted (reused; sized on first use).
    pub(super) tls_buf: Vec<u8>,
    /// Buffers lent to HTTPS connections while records wait in them.
    pub(super) tls_bufs: crate::tls::BufferPool,
    /// This worker's TLS settings (its own session cache), from the configuration's.
    pub(super) tls: Option<Arc<rustls::ServerConfig>>,
    /// The ciphers this worker's probe found the kernel taking over (kTLS); none without.
    pub(super) ktls: sys::KtlsCiphers,
    /// Response states lent to connections while they send.
    pub(super) out_pool: OutPool,
    /// Uploads, when `--uploads` is given.
    pub uploads: Option<Arc<crate::upload::Uploads>>,
    /// The pool that does uploads' disk work (writes, sync, digest, publish) off the worker.
    pub disk: Option<Arc<crate::upload::pool::Pool>>,
    /// Where the pool's results for this worker's connections land.
    pub(super) landed: Option<Arc<crate::upload::pool::Done<TimerKey, Landed>>>,
    /// Reads memory use against the process's limits (see [`crate::policy::memory`]).
    pub(super) memory: sys::MemoryProbe,
}

impl Worker {
    /// Worker state serving with `handler` under `config`.
    pub fn new(
        handler: Handler,
        config: Arc<Config>,
        log: AccessLog,
        policy: Policy,
        metrics: WorkerHandle,
    ) -> Worker {
        let mut date = DateCache::new();
        date.update(std::time::SystemTime::now());
        let pipes = PipePool::new(metrics.clone());
        let prebuilt = Prebuilt::new(Instant::now(), config.workers, sys::fd_limit());
        let ktls = sys::probe_ktls().unwrap_or_default();
        let tls = (config.tls.as_ref()).map(|c| crate::tls::per_worker(c, !ktls.is_empty()));
        Worker {
            handler,
            config,
            date,
            now: Instant::now(),
            draining: false,
            log,
            policy,
            unix_now: 0,
            metrics,
            top: TopFiles::new(TOP_FILES),
            scratch: Scratch::default(),
            pipes,
            tcp_paced: false,
            prebuilt,
            out_pool: OutPool::default(),
            tls_plain: Vec::new(),
            tls_buf: Vec::new(),
            tls_bufs: Default::default(),
            tls,
            ktls,
            uploads: None,
            disk: None,
            landed: None,
            memory: sys::MemoryProbe::open(),
        }
    }

    /// Advances the worker's clock (once per loop turn).
    pub fn tick(&mut self) {
        self.clock();
        self.policy.tick(self.now);
        let (hits, misses) = self.handler.cache_stats();
        self.metrics.cache_totals(hits, misses);
        self.top.publish(self.now, &self.metrics);
        self.prebuilt.sweep(self.now);
    }

    /// Reads the clocks again after the loop's wait, which may have lasted up to a second:
    /// the events of the turn are then handled at their own time (deadlines, expiry, pacing,
    /// `Date`), not at the time the wait began.
    pub fn clock(&mut self) {
        self.now = Instant::now();
        let wall = std::time::SystemTime::now();
        self.date.update(wall);
        self.log.tick(wall);
        self.unix_now = wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    }

    /// The session settings of the configuration in force.
    pub(super) fn session_settings(&self) -> Settings {
        let c = &self.config;
        Settings {
            limits: c.limits.clone(),
            header_timeout: c.header_timeout,
            keepalive_timeout: c.keepalive_timeout,
            send_timeout: c.send_timeout,
            body_timeout: c.body_timeout,
            lingering_timeout: c.lingering_timeout,
            lingering_time: c.lingering_time,
            keepalive_requests: c.keepalive_requests,
        }
    }

    /// What a session is told with an event of this loop turn.
    pub(super) fn cx<'a>(&self, settings: &'a Settings) -> Cx<'a> {
        Cx {
            now: self.now,
            draining: self.draining,
            settings,
        }
    }
}
