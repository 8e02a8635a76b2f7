//! Server metrics: per-worker counters, summed when scraped and rendered in the Prometheus
//! text format (0.0.4), plus the most downloaded files.
//!
//! Key design decision: nothing shared is written on the hot path. Each worker owns one
//! cache-line aligned [`WorkerMetrics`] in a shared array; its fields are `AtomicU64`s that
//! only that worker writes, with a `Relaxed` load and a `Relaxed` store (plain moves: with a
//! single writer no read-modify-write, hence no `lock` prefix, is needed), and the scraper
//! reads them with `Relaxed` loads. A scrape may thus see one worker's counters a few events
//! apart from each other, but each counter is monotonic.
//!
//! The most downloaded files are counted per worker with the Space-Saving algorithm in a
//! worker-local [`TopFiles`] (bounded memory, no locks), which the worker publishes at most
//! once a second into a mutex of its [`WorkerMetrics`] that it only ever `try_lock`s, so a
//! scrape in progress delays a publication instead of blocking the worker.

use std::collections::hash_map::{Entry, HashMap, RandomState};
use std::fmt::Write as _;
use std::hash::BuildHasher;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::http::path::canonical_path;
use crate::http::Method;

/// Upper bounds of the request-duration histogram buckets, in nanoseconds, with their `le`
/// label; a last `+Inf` bucket follows.
const BUCKETS: [(u64, &str); 16] = [
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
const METHODS: [&str; 4] = ["GET", "HEAD", "OPTIONS", "other"];

/// `code` label values: status classes 1xx to 5xx.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// How often a worker publishes its top files at most.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// Longest path [`TopFiles`] tracks; longer ones are not counted, bounding its memory.
const MAX_KEY: usize = 1024;

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
    /// File bytes of a prebuilt response, copied with `tee(2)` and spliced out.
    Tee,
}

impl BodyKind {
    const ALL: [BodyKind; 4] = [
        BodyKind::Memory,
        BodyKind::Sendfile,
        BodyKind::Splice,
        BodyKind::Tee,
    ];

    fn label(self) -> &'static str {
        match self {
            BodyKind::Memory => "memory",
            BodyKind::Sendfile => "sendfile",
            BodyKind::Splice => "splice",
            BodyKind::Tee => "tee",
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
}

impl Reject {
    const ALL: [Reject; 5] = [
        Reject::RateLimited,
        Reject::TooManyConns,
        Reject::Denied,
        Reject::Timeout,
        Reject::BadLink,
    ];

    fn label(self) -> &'static str {
        match self {
            Reject::RateLimited => "rate_limited",
            Reject::TooManyConns => "too_many_conns",
            Reject::Denied => "denied",
            Reject::Timeout => "timeout",
            Reject::BadLink => "bad_link",
        }
    }
}

/// One worker's counters. Written only by its worker (see the module doc), read by anyone.
#[repr(align(64))]
#[derive(Default)]
pub struct WorkerMetrics {
    requests: [[AtomicU64; CLASSES.len()]; METHODS.len()],
    /// Per-bucket (not cumulative) request counts; the last is `+Inf`.
    durations: [AtomicU64; BUCKETS.len() + 1],
    duration_sum_ns: AtomicU64,
    bytes: [AtomicU64; BodyKind::ALL.len()],
    conns_opened: AtomicU64,
    conns_closed: AtomicU64,
    rejected: [AtomicU64; Reject::ALL.len()],
    loop_iterations: AtomicU64,
    submissions: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    pipes_in_use: AtomicU64,
    backend: OnceLock<&'static str>,
    top: Published,
}

/// The top files a worker last published, on a cache line of its own so that the scraper
/// locking it does not disturb the worker's counters.
#[repr(align(64))]
#[derive(Default)]
struct Published(Mutex<Vec<(Arc<[u8]>, u64)>>);

/// Adds `n` to a counter only the calling thread writes: a load and a store, no `lock`.
#[inline]
fn add(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

fn method_index(method: Method) -> usize {
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

    fn read(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }

    /// Connections open now. `closed` is read first: it never exceeds `opened`.
    fn active(&self) -> u64 {
        let closed = Self::read(&self.conns_closed);
        Self::read(&self.conns_opened).saturating_sub(closed)
    }
}

/// A worker's view of its own [`WorkerMetrics`] in the shared array.
#[derive(Clone)]
pub struct WorkerHandle {
    all: Arc<[WorkerMetrics]>,
    index: usize,
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

/// Writes every metric of `workers` (and whether the server is `draining`) to `out` in the
/// Prometheus text format 0.0.4.
pub fn render(workers: &[WorkerMetrics], draining: bool, out: &mut String) {
    let sum = |f: &dyn Fn(&WorkerMetrics) -> u64| workers.iter().map(f).sum::<u64>();
    let read = WorkerMetrics::read;
    let mut e = Writer { out, family: "" };

    let help = "Requests answered, by method and status class.";
    e.family("requests_total", "counter", help);
    for (m, method) in METHODS.iter().enumerate() {
        for (c, class) in CLASSES.iter().enumerate() {
            let n = sum(&|w| read(&w.requests[m][c]));
            e.sample(&[("method", method), ("code", class)], n);
        }
    }

    let help = "Time from a parsed request to its response sent.";
    e.family("request_duration_seconds", "histogram", help);
    let mut cumulative = 0;
    let les = BUCKETS.iter().map(|&(_, le)| le).chain(["+Inf"]);
    for (i, le) in les.enumerate() {
        cumulative += sum(&|w| read(&w.durations[i]));
        e.part("_bucket", &[("le", le)], cumulative);
    }
    e.part("_sum", &[], sum(&|w| read(&w.duration_sum_ns)) as f64 / 1e9);
    e.part("_count", &[], cumulative);

    let help = "Response bytes sent, by how they were sent.";
    e.family("sent_bytes_total", "counter", help);
    for kind in BodyKind::ALL {
        e.sample(
            &[("path", kind.label())],
            sum(&|w| read(&w.bytes[kind as usize])),
        );
    }

    let help = "Client connections open now.";
    e.family("connections_active", "gauge", help);
    e.sample(&[], sum(&|w| w.active()));
    let help = "Client connections accepted.";
    e.family("connections_total", "counter", help);
    e.sample(&[], sum(&|w| read(&w.conns_opened)));

    let help = "Connections or requests turned away, by reason.";
    e.family("rejected_total", "counter", help);
    for reason in Reject::ALL {
        let n = sum(&|w| read(&w.rejected[reason as usize]));
        e.sample(&[("reason", reason.label())], n);
    }

    let help = "Event loop turns (io_uring_enter or epoll_wait calls), by worker.";
    e.family("loop_iterations_total", "counter", help);
    for (i, w) in workers.iter().enumerate() {
        e.sample(&[("worker", &i.to_string())], read(&w.loop_iterations));
    }
    let help = "Operations submitted to the kernel by the event loop, by worker.";
    e.family("submissions_total", "counter", help);
    for (i, w) in workers.iter().enumerate() {
        e.sample(&[("worker", &i.to_string())], read(&w.submissions));
    }

    let help = "Open-file cache lookups, by result.";
    e.family("open_file_cache_lookups_total", "counter", help);
    e.sample(&[("result", "hit")], sum(&|w| read(&w.cache_hits)));
    e.sample(&[("result", "miss")], sum(&|w| read(&w.cache_misses)));

    e.family("pipes_in_use", "gauge", "Pipes held for splice(2) bodies.");
    e.sample(&[], sum(&|w| read(&w.pipes_in_use)));

    e.family("backend_info", "gauge", "The I/O backend of each worker.");
    for (i, w) in workers.iter().enumerate() {
        if let Some(backend) = w.backend() {
            e.sample(&[("worker", &i.to_string()), ("backend", backend)], 1);
        }
    }

    e.family("draining", "gauge", "1 while the server is shutting down.");
    e.sample(&[], u64::from(draining));
}

/// Writes metric families and their samples, each sample under the family declared last.
struct Writer<'a> {
    out: &'a mut String,
    family: &'static str,
}

impl Writer<'_> {
    /// Starts family `ringserve_<name>` with its `# HELP` and `# TYPE` lines.
    fn family(&mut self, name: &'static str, kind: &str, help: &str) {
        self.family = name;
        let name = format!("ringserve_{name}");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample of the current family.
    fn sample(&mut self, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.part("", labels, value);
    }

    /// One sample of series `ringserve_<family><suffix>` (a histogram's `_bucket`, ...).
    fn part(&mut self, suffix: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = write!(self.out, "ringserve_{}{suffix}", self.family);
        for (i, (key, value)) in labels.iter().enumerate() {
            let sep = if i == 0 { '{' } else { ',' };
            let _ = write!(self.out, "{sep}{key}=\"");
            for c in value.chars() {
                match c {
                    '\\' => self.out.push_str("\\\\"),
                    '"' => self.out.push_str("\\\""),
                    '\n' => self.out.push_str("\\n"),
                    c => self.out.push(c),
                }
            }
            self.out.push('"');
        }
        if !labels.is_empty() {
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// A worker's approximate download counts per path, with Space-Saving: at most `capacity`
/// counters; a path not tracked replaces the one with the smallest count and inherits that
/// count plus one. Every path requested more than `total / capacity` times is tracked, and a
/// tracked count overestimates by at most the count it inherited.
///
/// The counters form a binary min-heap. Paths live in fixed slots that the heap points to and
/// are found by a keyed 64-bit hash, so a recording hashes its path once, moves no path, and
/// allocates nothing once every slot is in use: an evicted slot's buffer takes the new path
/// (growing only for a path longer than any it held). With many more distinct files than
/// counters that is most requests. Two paths with the same keyed hash would share a counter,
/// which for random keys and 64 bits does not happen in practice.
pub struct TopFiles {
    capacity: usize,
    hasher: RandomState,
    /// `(count, slot)`, a min-heap on count.
    heap: Vec<(u64, usize)>,
    slots: Vec<Slot>,
    /// Path hash to slot.
    index: HashMap<u64, usize>,
    changed: bool,
    published: Option<Instant>,
}

/// A tracked path.
struct Slot {
    path: Vec<u8>,
    hash: u64,
    /// Its counter's position in the heap.
    at: usize,
}

/// Bytes reserved for a slot's path when it is created, so that eviction seldom has to grow
/// it.
const SLOT_PATH: usize = 128;

impl TopFiles {
    /// Tracks at most `capacity` paths (at least one).
    pub fn new(capacity: usize) -> TopFiles {
        let capacity = capacity.max(1);
        TopFiles {
            capacity,
            hasher: RandomState::new(),
            heap: Vec::with_capacity(capacity),
            slots: Vec::with_capacity(capacity),
            // Twice the room: evictions leave tombstones, and a table at most half full
            // clears them in place instead of growing.
            index: HashMap::with_capacity(2 * capacity),
            changed: false,
            published: None,
        }
    }

    /// Counts one download of `target` (a request target as received: its path is the key,
    /// any `?query` is ignored). The engine calls it for each GET answered 200 or 206.
    pub fn record(&mut self, target: &[u8]) {
        let path = match memchr::memchr(b'?', target) {
            Some(q) => &target[..q],
            None => target,
        };
        if path.len() > MAX_KEY {
            return;
        }
        self.changed = true;
        let hash = self.hasher.hash_one(path);
        if let Some(&slot) = self.index.get(&hash) {
            let at = self.slots[slot].at;
            self.heap[at].0 += 1;
            self.sift_down(at);
            return;
        }
        if self.heap.len() < self.capacity {
            let slot = self.slots.len();
            let mut buf = Vec::with_capacity(path.len().max(SLOT_PATH));
            buf.extend_from_slice(path);
            let at = self.heap.len();
            self.slots.push(Slot {
                path: buf,
                hash,
                at,
            });
            self.heap.push((1, slot));
            self.index.insert(hash, slot);
            self.sift_up(at);
            return;
        }
        let (min, slot) = self.heap[0];
        let s = &mut self.slots[slot];
        self.index.remove(&s.hash);
        s.path.clear();
        s.path.extend_from_slice(path);
        s.hash = hash;
        self.index.insert(hash, slot);
        self.heap[0].0 = min + 1;
        self.sift_down(0);
    }

    /// The tracked paths and counts, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = (&[u8], u64)> {
        self.heap
            .iter()
            .map(|&(n, slot)| (&self.slots[slot].path[..], n))
    }

    /// Publishes the counts into `to` if they changed and a second has passed since the
    /// last publication, unless a scrape holds the lock (then the next call retries). `now`
    /// is the worker's clock; call it once per loop turn.
    pub fn publish(&mut self, now: Instant, to: &WorkerMetrics) {
        let due = self
            .published
            .is_none_or(|at| now.saturating_duration_since(at) >= PUBLISH_EVERY);
        if !self.changed || !due {
            return;
        }
        if let Ok(mut shared) = to.top.0.try_lock() {
            shared.clear();
            shared.extend(self.entries().map(|(k, n)| (Arc::from(k), n)));
            self.changed = false;
            self.published = Some(now);
        }
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        for i in [a, b] {
            self.slots[self.heap[i].1].at = i;
        }
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.heap[parent].0 <= self.heap[i].0 {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let mut smallest = i;
            for child in [2 * i + 1, 2 * i + 2] {
                if child < self.heap.len() && self.heap[child].0 < self.heap[smallest].0 {
                    smallest = child;
                }
            }
            if smallest == i {
                return;
            }
            self.swap(i, smallest);
            i = smallest;
        }
    }
}

/// The download counts published by `workers`, merged: paths are canonicalised with
/// [`path_key`] (so `/a%20b` and `/a b` count together; paths that do not decode are
/// dropped), counts summed, sorted by count (descending) then path.
pub fn top_files(workers: &[WorkerMetrics]) -> Vec<(String, u64)> {
    let mut merged: HashMap<String, u64> = HashMap::new();
    let mut scratch = Vec::new();
    for w in workers {
        let published = match w.top.0.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        for (path, n) in published {
            if let Some(key) = path_key(&path, &mut scratch) {
                match merged.entry(key) {
                    Entry::Occupied(mut e) => *e.get_mut() += n,
                    Entry::Vacant(e) => {
                        e.insert(n);
                    }
                }
            }
        }
    }
    let mut list: Vec<(String, u64)> = merged.into_iter().collect();
    list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    list
}

/// The canonical path of `target` ([`canonical_path`]) as text, the key download counts
/// merge by; `None` for a target the file layer refuses.
pub fn path_key(target: &[u8], scratch: &mut Vec<u8>) -> Option<String> {
    canonical_path(target, scratch).ok()?;
    Some(String::from_utf8_lossy(scratch).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Checks `text` against the exposition format rules this module promises: every sample
    /// belongs to a family declared by `# HELP` and `# TYPE` before it, counters end in
    /// `_total`, values are numbers, no series repeats, and each histogram's buckets are
    /// cumulative, end in `+Inf` and agree with `_count`. Returns the number of samples.
    fn check_exposition(text: &str) -> usize {
        let mut types: HashMap<String, String> = HashMap::new();
        let mut helped = HashSet::new();
        let mut series = HashSet::new();
        let mut buckets: HashMap<String, Vec<(String, f64)>> = HashMap::new();
        let mut counts: HashMap<String, f64> = HashMap::new();
        let mut samples = 0;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("HELP text");
                assert!(
                    !help.is_empty() && helped.insert(name.to_string()),
                    "{line}"
                );
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE kind");
                assert!(helped.contains(name), "TYPE before HELP: {line}");
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                assert!(types.insert(name.into(), kind.into()).is_none(), "{line}");
                if kind == "counter" {
                    assert!(name.ends_with("_total"), "{line}");
                }
                continue;
            }
            assert!(!line.starts_with('#'), "{line}");
            samples += 1;
            let (series_id, value) = line.rsplit_once(' ').expect("value");
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
            assert!(value >= 0.0, "{line}");
            assert!(series.insert(series_id.to_string()), "duplicate: {line}");
            let name = series_id.split('{').next().unwrap();
            assert!(name.starts_with("ringserve_"), "{line}");
            let (family, suffix) = match types.get(name) {
                Some(_) => (name, ""),
                None => ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| Some((name.strip_suffix(s)?, *s)))
                    .unwrap_or_else(|| panic!("no family for {line}")),
            };
            let kind = types
                .get(family)
                .unwrap_or_else(|| panic!("untyped: {line}"));
            assert_eq!(kind == "histogram", !suffix.is_empty(), "{line}");
            if kind == "counter" {
                assert_eq!(value.fract(), 0.0, "{line}");
            }
            match suffix {
                "_bucket" => {
                    let le = series_id
                        .split("le=\"")
                        .nth(1)
                        .and_then(|s| s.split('"').next())
                        .expect("le label");
                    let list = buckets.entry(family.into()).or_default();
                    if let Some((prev_le, prev)) = list.last() {
                        assert!(value >= *prev, "not cumulative: {line}");
                        let prev_le: f64 = prev_le.parse().expect("finite le before +Inf");
                        assert!(le == "+Inf" || le.parse::<f64>().unwrap() > prev_le);
                    }
                    list.push((le.into(), value));
                }
                "_count" => {
                    counts.insert(family.into(), value);
                }
                _ => {}
            }
        }
        for (family, kind) in &types {
            if kind == "histogram" {
                let list = &buckets[family];
                let (le, last) = list.last().expect("buckets");
                assert_eq!(le, "+Inf", "{family}");
                assert_eq!(Some(last), counts.get(family), "{family}");
            }
        }
        samples
    }

    fn busy_workers() -> Arc<[WorkerMetrics]> {
        let all = WorkerMetrics::for_workers(2);
        for (i, w) in all.iter().enumerate() {
            w.set_backend(if i == 0 { "uring" } else { "epoll" });
            w.request(Method::Get, 200, Duration::from_micros(50));
            w.request(Method::Get, 206, Duration::from_millis(3));
            w.request(Method::Head, 404, Duration::from_secs(30));
            w.request(Method::Other, 999, Duration::from_micros(100));
            w.bytes(BodyKind::Sendfile, 1000);
            w.bytes(BodyKind::Memory, 200);
            w.conn_opened();
            w.conn_opened();
            w.conn_closed();
            w.rejected(Reject::Timeout);
            w.loop_turn(3);
            w.cache_totals(1, 1);
            w.pipes_in_use(2);
        }
        all
    }

    #[test]
    fn render_is_valid_exposition() {
        let all = busy_workers();
        let mut out = String::new();
        render(&all, true, &mut out);
        assert!(check_exposition(&out) > 40, "{out}");
        for line in [
            "ringserve_requests_total{method=\"GET\",code=\"2xx\"} 4",
            "ringserve_requests_total{method=\"other\",code=\"5xx\"} 2",
            "ringserve_request_duration_seconds_bucket{le=\"0.0001\"} 4",
            "ringserve_request_duration_seconds_bucket{le=\"0.005\"} 6",
            "ringserve_request_duration_seconds_bucket{le=\"10\"} 6",
            "ringserve_request_duration_seconds_bucket{le=\"+Inf\"} 8",
            "ringserve_request_duration_seconds_count 8",
            "ringserve_sent_bytes_total{path=\"sendfile\"} 2000",
            "ringserve_connections_active 2",
            "ringserve_connections_total 4",
            "ringserve_rejected_total{reason=\"timeout\"} 2",
            "ringserve_loop_iterations_total{worker=\"1\"} 1",
            "ringserve_submissions_total{worker=\"0\"} 3",
            "ringserve_open_file_cache_lookups_total{result=\"miss\"} 2",
            "ringserve_pipes_in_use 4",
            "ringserve_backend_info{worker=\"0\",backend=\"uring\"} 1",
            "ringserve_backend_info{worker=\"1\",backend=\"epoll\"} 1",
            "ringserve_draining 1",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line}:\n{out}");
        }
        let sum = out
            .lines()
            .find_map(|l| l.strip_prefix("ringserve_request_duration_seconds_sum "))
            .unwrap();
        let sum: f64 = sum.parse().unwrap();
        assert!((sum - 2.0 * 30.00315).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn render_of_nothing_is_valid() {
        let mut out = String::new();
        render(&WorkerMetrics::for_workers(0), false, &mut out);
        check_exposition(&out);
        assert!(out.contains("ringserve_draining 0\n"));
    }

    #[test]
    fn layout_keeps_workers_apart() {
        fn shareable<T: Send + Sync>() {}
        fn movable<T: Send>() {}
        shareable::<WorkerHandle>();
        movable::<TopFiles>();
        assert_eq!(std::mem::align_of::<WorkerMetrics>(), 64);
        assert_eq!(std::mem::size_of::<WorkerMetrics>() % 64, 0);
        let all = WorkerMetrics::for_workers(1);
        assert!(WorkerHandle::new(&all, 1).is_none());
        let mine = WorkerHandle::new(&all, 0).unwrap();
        mine.conn_opened();
        assert_eq!(totals(&all).connections, 1);
    }

    #[test]
    fn totals_sum_workers() {
        let t = totals(&busy_workers());
        assert_eq!(
            t,
            Totals {
                requests: 8,
                bytes_sent: 2400,
                connections: 4,
                active_connections: 2,
            }
        );
    }

    fn counts(top: &TopFiles) -> HashMap<String, u64> {
        top.entries()
            .map(|(k, n)| (String::from_utf8_lossy(k).into_owned(), n))
            .collect()
    }

    #[test]
    fn space_saving_counts_exactly_below_capacity() {
        let mut top = TopFiles::new(4);
        for t in ["/a", "/b", "/a", "/c?x=1", "/a", "/c"] {
            top.record(t.as_bytes());
        }
        let c = counts(&top);
        assert_eq!((c["/a"], c["/b"], c["/c"]), (3, 1, 2));
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn space_saving_replaces_the_minimum() {
        let mut top = TopFiles::new(2);
        for t in ["/a", "/a", "/a", "/b", "/c"] {
            top.record(t.as_bytes());
        }
        let c = counts(&top);
        assert_eq!(c.len(), 2);
        assert_eq!(c["/a"], 3);
        assert_eq!(c["/c"], 2, "inherits the evicted count plus one");
        assert!(!c.contains_key("/b"));
        top.record(&[b'/'; MAX_KEY + 1]);
        assert_eq!(counts(&top).len(), 2, "overlong paths are not tracked");
    }

    /// Space-Saving's guarantees on a skewed stream: heavy hitters are kept, counts never
    /// underestimate, total equals the stream length, and the heap index stays consistent.
    #[test]
    fn space_saving_keeps_heavy_hitters() {
        let mut top = TopFiles::new(8);
        let mut exact: HashMap<String, u64> = HashMap::new();
        let mut x = 12345u64;
        let n = 20_000;
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let path = match x % 10 {
                0..=3 => "/hot".to_string(),
                4 | 5 => "/warm".to_string(),
                _ => format!("/cold/{}", x % 5000),
            };
            *exact.entry(path.clone()).or_default() += 1;
            top.record(path.as_bytes());
        }
        let c = counts(&top);
        assert_eq!(c.values().sum::<u64>(), n);
        for hot in ["/hot", "/warm"] {
            assert!(c[hot] >= exact[hot], "{hot}");
        }
        for (i, &(_, slot)) in top.heap.iter().enumerate() {
            let s = &top.slots[slot];
            assert_eq!((s.at, top.index[&s.hash]), (i, slot));
            assert_eq!(s.hash, top.hasher.hash_one(&s.path[..]));
        }
        for i in 1..top.heap.len() {
            assert!(top.heap[(i - 1) / 2].0 <= top.heap[i].0);
        }
    }

    #[test]
    fn publication_is_rate_limited_and_merged() {
        let all = WorkerMetrics::for_workers(2);
        let t0 = Instant::now();
        let mut a = TopFiles::new(4);
        let mut b = TopFiles::new(4);
        a.record(b"/x%20y");
        a.record(b"/a");
        b.record(b"/x y");
        a.publish(t0, &all[0]);
        b.publish(t0, &all[1]);
        a.record(b"/a");
        a.publish(t0 + Duration::from_millis(500), &all[0]);
        assert_eq!(
            top_files(&all),
            vec![("/x y".to_string(), 2), ("/a".to_string(), 1)]
        );
        let guard = all[0].top.0.lock().unwrap();
        a.publish(t0 + Duration::from_secs(2), &all[0]);
        drop(guard);
        a.publish(t0 + Duration::from_secs(2), &all[0]);
        assert_eq!(top_files(&all)[0], ("/a".to_string(), 2));
    }
}
