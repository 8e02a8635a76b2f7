//! Per-worker counters: written by their worker alone, summed when read (see the module
//! above for why nothing shared is written on the hot path).

use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::http::Method;

/// Upper bounds of the request-duration histogram buckets, in nanoseconds, with their `le`
/// label; a last `+Inf` bucket follows.
pub(super) const BUCKETS: [(u64, &str); 16] = [
    (100_000, "0.0001"),
    (250_000, "0.00025"),
    (500_000, "0.0005"),
    (1_000_000, "0.001"),
    (2_500_000, "0.0025"),
    (5_000_000, "0.005"),
    (10_000_000, "0.01"),
    (25_000_000, "0.025"),
    (50_000_000, "0.05"),
    (100_000_000, "0.1"),
    (250_000_000, "0.25"),
    (500_000_000, "0.5"),
    (1_000_000_000, "1"),
    (2_500_000_000, "2.5"),
    (5_000_000_000, "5"),
    (10_000_000_000, "10"),
];

/// `method` label values, indexed like [`method_index`].
pub(super) const METHODS: [&str; 4] = ["GET", "HEAD", "OPTIONS", "other"];

/// `code` label values: status classes 1xx to 5xx.
pub(super) const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Why an upload request failed, for `ringserve_upload_failures_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadFailure {
    /// Its bytes did not match their checksum or digest.
    Checksum,
    /// No space left (ENOSPC, EDQUOT).
    NoSpace,
    /// Larger than the upload or `--upload-max-size` allows.
    TooLarge,
    /// The client went away (or timed out) before its body ended.
    Aborted,
    /// Left unfinished for `--upload-expire`, and swept away.
    Expired,
}

impl UploadFailure {
    pub(super) const ALL: [UploadFailure; 5] = [
        UploadFailure::Checksum,
        UploadFailure::NoSpace,
        UploadFailure::TooLarge,
        UploadFailure::Aborted,
        UploadFailure::Expired,
    ];

    pub(super) fn label(self) -> &'static str {
        match self {
            UploadFailure::Checksum => "checksum",
            UploadFailure::NoSpace => "no_space",
            UploadFailure::TooLarge => "too_large",
            UploadFailure::Aborted => "aborted",
            UploadFailure::Expired => "expired",
        }
    }
}

/// How response bytes reached the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// From memory with `send(2)`: response heads and in-memory bodies (error pages,
    /// multipart delimiters).
    Memory,
    /// File bytes with `sendfile(2)`.
    Sendfile,
    /// File bytes with `splice(2)` through a pipe.
    Splice,
    /// Head and file bytes of a prebuilt response, sent from the worker's copy of it.
    Prebuilt,
    /// File bytes read into user space and encrypted (HTTPS without kTLS).
    Tls,
}

impl BodyKind {
    pub(super) const ALL: [BodyKind; 5] = [
        BodyKind::Memory,
        BodyKind::Sendfile,
        BodyKind::Splice,
        BodyKind::Prebuilt,
        BodyKind::Tls,
    ];

    pub(super) fn label(self) -> &'static str {
        match self {
            BodyKind::Memory => "memory",
            BodyKind::Sendfile => "sendfile",
            BodyKind::Splice => "splice",
            BodyKind::Prebuilt => "prebuilt",
            BodyKind::Tls => "tls",
        }
    }
}

/// Why a connection or request was turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// A rate limit was exceeded.
    RateLimited,
    /// The connection limit was reached.
    TooManyConns,
    /// An access rule denied the client.
    Denied,
    /// A header, idle or send deadline passed.
    Timeout,
    /// A protected path was asked for without a genuine, unexpired signed link.
    BadLink,
    /// No memory for another connection (its worker's table could not grow).
    NoMemory,
}

impl Reject {
    pub(super) const ALL: [Reject; 6] = [
        Reject::RateLimited,
        Reject::TooManyConns,
        Reject::Denied,
        Reject::Timeout,
        Reject::BadLink,
        Reject::NoMemory,
    ];

    pub(super) fn label(self) -> &'static str {
        match self {
            Reject::RateLimited => "rate_limited",
            Reject::TooManyConns => "too_many_conns",
            Reject::Denied => "denied",
            Reject::Timeout => "timeout",
            Reject::BadLink => "bad_link",
            Reject::NoMemory => "no_memory",
        }
    }
}

/// One worker's counters. Written only by its worker (see the module doc), read by anyone.
#[repr(align(64))]
#[derive(Default)]
pub struct WorkerMetrics {
    pub(super) requests: [[AtomicU64; CLASSES.len()]; METHODS.len()],
    /// Per-bucket (not cumulative) request counts; the last is `+Inf`.
    pub(super) durations: [AtomicU64; BUCKETS.len() + 1],
    pub(super) duration_sum_ns: AtomicU64,
    pub(super) bytes: [AtomicU64; BodyKind::ALL.len()],
    pub(super) conns_opened: AtomicU64,
    pub(super) conns_closed: AtomicU64,
    pub(super) rejected: [AtomicU64; Reject::ALL.len()],
    pub(super) loop_iterations: AtomicU64,
    pub(super) submissions: AtomicU64,
    pub(super) cache_hits: AtomicU64,
    pub(super) cache_misses: AtomicU64,
    pub(super) pipes_in_use: AtomicU64,
    /// TLS handshakes completed, and failed (a protocol error from the client).
    pub(super) tls_handshakes: [AtomicU64; 2],
    /// HTTPS connections whose records were handed to the kernel (kTLS) after the handshake.
    pub(super) tls_kernel: AtomicU64,
    /// Upload body bytes: spliced, copied.
    pub(super) upload_bytes: [AtomicU64; 2],
    pub(super) upload_answers: [AtomicU64; 5],
    /// Upload bodies started and ended (the difference is in progress).
    pub(super) upload_bodies: [AtomicU64; 2],
    pub(super) uploads_published: AtomicU64,
    pub(super) upload_failures: [AtomicU64; UploadFailure::ALL.len()],
    pub(super) backend: OnceLock<&'static str>,
    pub(super) top: Published,
}

/// The top files a worker last published, on a cache line of its own so that the scraper
/// locking it does not disturb the worker's counters.
#[repr(align(64))]
#[derive(Default)]
pub(super) struct Published(pub(super) Mutex<Vec<(Arc<[u8]>, u64)>>);

/// Adds `n` to a counter only the calling thread writes: a load and a store, no `lock`.
#[inline]
pub(super) fn add(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

pub(super) fn method_index(method: Method) -> usize {
    match method {
        Method::Get => 0,
        Method::Head => 1,
        Method::Options => 2,
        Method::Other => 3,
    }
}

impl WorkerMetrics {
    /// One zeroed set of counters per worker, to be shared by the workers (each writing its
    /// own through a [`WorkerHandle`]) and the admin listener.
    pub fn for_workers(n: usize) -> Arc<[WorkerMetrics]> {
        (0..n).map(|_| WorkerMetrics::default()).collect()
    }

    /// A request was answered with `status` after `duration`.
    #[inline]
    pub fn request(&self, method: Method, status: u16, duration: Duration) {
        let class = usize::from(status / 100).clamp(1, CLASSES.len()) - 1;
        add(&self.requests[method_index(method)][class], 1);
        let ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BUCKETS.partition_point(|&(le, _)| le < ns);
        if let Some(count) = self.durations.get(bucket) {
            add(count, 1);
        }
        add(&self.duration_sum_ns, ns);
    }

    /// `n` response bytes were sent by way of `kind`.
    #[inline]
    pub fn bytes(&self, kind: BodyKind, n: u64) {
        add(&self.bytes[kind as usize], n);
    }

    /// A TLS handshake ended: completed (`ok`) or failed.
    #[inline]
    pub fn tls_handshake(&self, ok: bool) {
        add(&self.tls_handshakes[usize::from(!ok)], 1);
    }

    /// An HTTPS connection's records were handed to the kernel (kTLS).
    #[inline]
    pub fn tls_kernel(&self) {
        add(&self.tls_kernel, 1);
    }

    /// `n` bytes of upload bodies were received: `spliced` straight to the file, or copied
    /// through the worker (to be hashed).
    pub fn upload_received(&self, n: u64, spliced: bool) {
        add(&self.upload_bytes[usize::from(!spliced)], n);
    }

    /// An upload request was answered with `status`; `published`: it completed a file.
    pub fn upload_answered(&self, status: u16, published: bool) {
        let class = usize::from(status / 100).clamp(1, CLASSES.len()) - 1;
        add(&self.upload_answers[class], 1);
        if published {
            add(&self.uploads_published, 1);
        }
        let failure = match status {
            460 => Some(UploadFailure::Checksum),
            507 => Some(UploadFailure::NoSpace),
            413 => Some(UploadFailure::TooLarge),
            _ => None,
        };
        if let Some(f) = failure {
            self.upload_failed(f);
        }
    }

    /// An upload failed for `reason`.
    pub fn upload_failed(&self, reason: UploadFailure) {
        add(&self.upload_failures[reason as usize], 1);
    }

    /// An upload body started (`true`) or ended, answered or cut off (`false`).
    pub fn upload_body(&self, started: bool) {
        add(&self.upload_bodies[usize::from(!started)], 1);
    }

    /// A connection was accepted.
    #[inline]
    pub fn conn_opened(&self) {
        add(&self.conns_opened, 1);
    }

    /// A connection was closed (for any reason, after [`WorkerMetrics::conn_opened`]).
    #[inline]
    pub fn conn_closed(&self) {
        add(&self.conns_closed, 1);
    }

    /// A connection or request was turned away for `reason`.
    #[inline]
    pub fn rejected(&self, reason: Reject) {
        add(&self.rejected[reason as usize], 1);
    }

    /// One turn of the event loop (one `io_uring_enter` or `epoll_wait`) that submitted
    /// `submissions` operations.
    #[inline]
    pub fn loop_turn(&self, submissions: u64) {
        add(&self.loop_iterations, 1);
        add(&self.submissions, submissions);
    }

    /// The worker's open-file cache has answered `hits` lookups from memory and resolved
    /// `misses` paths so far (totals kept by the cache, published once per loop turn).
    #[inline]
    pub fn cache_totals(&self, hits: u64, misses: u64) {
        self.cache_hits.store(hits, Relaxed);
        self.cache_misses.store(misses, Relaxed);
    }

    /// The worker now holds `n` pipes (splice body path).
    #[inline]
    pub fn pipes_in_use(&self, n: u64) {
        self.pipes_in_use.store(n, Relaxed);
    }

    /// Names the worker's backend (`"uring"`, `"epoll"`); only the first call counts.
    pub fn set_backend(&self, name: &'static str) {
        let _ = self.backend.set(name);
    }

    /// The worker's backend, once set.
    pub fn backend(&self) -> Option<&'static str> {
        self.backend.get().copied()
    }

    pub(super) fn read(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }

    /// Connections open now. `closed` is read first: it never exceeds `opened`.
    pub(super) fn active(&self) -> u64 {
        let closed = Self::read(&self.conns_closed);
        Self::read(&self.conns_opened).saturating_sub(closed)
    }
}

/// A worker's view of its own [`WorkerMetrics`] in the shared array.
#[derive(Clone)]
pub struct WorkerHandle {
    pub(super) all: Arc<[WorkerMetrics]>,
    pub(super) index: usize,
}

impl WorkerHandle {
    /// The handle of worker `index`, if `all` has it.
    pub fn new(all: &Arc<[WorkerMetrics]>, index: usize) -> Option<WorkerHandle> {
        (index < all.len()).then(|| WorkerHandle {
            all: Arc::clone(all),
            index,
        })
    }
}

impl Deref for WorkerHandle {
    type Target = WorkerMetrics;

    fn deref(&self) -> &WorkerMetrics {
        &self.all[self.index]
    }
}

/// Totals over every worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Requests answered.
    pub requests: u64,
    /// Response bytes sent, all body paths together.
    pub bytes_sent: u64,
    /// Connections accepted.
    pub connections: u64,
    /// Connections open now.
    pub active_connections: u64,
}

/// Sums the counters of `workers`.
pub fn totals(workers: &[WorkerMetrics]) -> Totals {
    let mut t = Totals::default();
    for w in workers {
        t.requests += w
            .requests
            .iter()
            .flatten()
            .map(WorkerMetrics::read)
            .sum::<u64>();
        t.bytes_sent += w.bytes.iter().map(WorkerMetrics::read).sum::<u64>();
        t.connections += WorkerMetrics::read(&w.conns_opened);
        t.active_connections += w.active();
    }
    t
}
