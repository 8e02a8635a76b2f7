//! Per-client limits: connections per client (`--max-conns-per-ip`, nginx `limit_conn`) and
//! requests per client (`--req-rate N/s --req-burst B`, nginx `limit_req ... nodelay`).
//!
//! A client is an IPv4 address or an IPv6 /64 (one subscriber's usual allocation, so rotating
//! through a /64 gains nothing); IPv4-mapped IPv6 peers count as their IPv4 address.
//!
//! Key decisions:
//!
//! - Connection counts are shared by all workers, without locks, in [`ConnCounts`]: a
//!   count-min table of atomic counters (4 rows of [`DEFAULT_SLOTS`], 4 MiB). `SO_REUSEPORT`
//!   spreads one client's connections over the workers by hashing its ports, so per-worker
//!   counts would let a client hold the cap times the number of workers. The table's memory is
//!   fixed whatever the number of clients and needs no expiry. Hash collisions can only make
//!   a count too high, never too low: a client is never let past the cap, and an innocent one
//!   is refused only if all four of its counters are shared with clients already at the cap
//!   (with cap 1 and 10 000 connected clients, odds about 2 in a million). The hash is keyed
//!   per process, so collisions cannot be aimed. A configuration reload keeps the table and
//!   changes only its cap ([`ConnCounts::set_max`]), so the connections open across the reload
//!   still count.
//! - Request buckets are kept per worker in [`PerIp`], lock-free because unshared. A client on
//!   one keep-alive connection is limited exactly; one spreading requests over `k` connections
//!   may get up to `min(k, workers)` times the rate, which `--max-conns-per-ip` bounds. Sharing
//!   buckets would put a contended atomic update on every request.
//! - The request table holds at most `max_entries` clients ([`DEFAULT_MAX_ENTRIES`] per worker,
//!   about 4 MiB at most). An entry is dropped once its bucket is full again, as it then carries
//!   no information. When the table is full, a new client's request is refused with a 1 s
//!   retry, as nginx answers 503 when a `limit_req` zone is full: failing closed keeps a flood
//!   of fresh addresses from resetting everyone's buckets. A full table is swept for expired
//!   entries at most once a second, so a flood cannot make every request pay for a sweep.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::token_bucket::{ReqLimit, ReqState};

/// Default bound on the request table of one worker.
pub const DEFAULT_MAX_ENTRIES: usize = 65_536;

/// Default counters per row of [`ConnCounts`].
pub const DEFAULT_SLOTS: usize = 1 << 18;

/// Rows of [`ConnCounts`]: a client is refused only if all its counters are over the cap.
const ROWS: usize = 4;

/// Retry-after given to new clients while the request table is full.
const FULL_RETRY: Duration = Duration::from_secs(1);

/// Least time between two sweeps forced by a full request table.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The table key of a client: the IPv4-mapped form of an IPv4 address, or an IPv6 address
/// with its low 64 bits cleared. The two never meet: mapped keys have `ffff` in bits 32..48.
fn key(ip: IpAddr) -> u128 {
    match ip.to_canonical() {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a) & !u128::from(u64::MAX),
    }
}

/// Connections per client across all workers, as a lock-free count-min table.
#[derive(Debug)]
pub struct ConnCounts {
    /// The cap (0: unlimited); atomic so that a reload can change it for every worker at once.
    max: AtomicU32,
    mask: usize,
    /// `ROWS` rows of `mask + 1` counters each.
    counters: Box<[AtomicU32]>,
    hasher: RandomState,
}

impl ConnCounts {
    /// A table allowing `max_per_ip` connections per client (0: unlimited) with
    /// `slots_per_row` counters per row, rounded up to a power of two.
    pub fn new(max_per_ip: u32, slots_per_row: usize) -> Arc<ConnCounts> {
        let slots = slots_per_row.max(1).next_power_of_two();
        Arc::new(ConnCounts {
            max: AtomicU32::new(max_per_ip),
            mask: slots - 1,
            counters: (0..slots * ROWS).map(|_| AtomicU32::new(0)).collect(),
            hasher: RandomState::new(),
        })
    }

    /// Changes the cap to `max_per_ip` (0: unlimited) for connections made from now on; those
    /// already counted stay counted, none is closed.
    pub fn set_max(&self, max_per_ip: u32) {
        self.max.store(max_per_ip, Ordering::Relaxed);
    }

    /// The counters of `ip`'s client, one per row (double hashing of one keyed hash).
    fn slots(&self, ip: IpAddr) -> [usize; ROWS] {
        let h = self.hasher.hash_one(key(ip));
        let (h1, h2) = (h as usize, (h >> 32) as usize | 1);
        let slots = self.mask + 1;
        std::array::from_fn(|row| row * slots + (h1.wrapping_add(row.wrapping_mul(h2)) & self.mask))
    }

    /// Counts a new connection from `ip`, or refuses it (returns `None`) if the client already
    /// has the maximum. The connection is uncounted when the returned permit is dropped, so no
    /// way of closing a connection can leak a count.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<ConnPermit> {
        let max = self.max.load(Ordering::Relaxed);
        if max == 0 {
            return Some(ConnPermit { held: None, ip });
        }
        let slots = self.slots(ip);
        for &s in &slots {
            self.counters[s].fetch_add(1, Ordering::SeqCst);
        }
        // Reading after all increments (sequentially consistent) means that of two racing
        // connections, the later one sees both and at most one of them is let in.
        let count = slots
            .iter()
            .map(|&s| self.counters[s].load(Ordering::SeqCst))
            .min()
            .unwrap_or(0);
        if count <= max {
            return Some(ConnPermit {
                held: Some(Arc::clone(self)),
                ip,
            });
        }
        self.release_slots(slots);
        None
    }

    fn release_slots(&self, slots: [usize; ROWS]) {
        for s in slots {
            self.counters[s].fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Connections counted for `ip`'s client: exact, or too high after a hash collision.
    pub fn count(&self, ip: IpAddr) -> u32 {
        self.slots(ip)
            .iter()
            .map(|&s| self.counters[s].load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }
}

/// One connection's place in [`ConnCounts`], given back when dropped.
#[derive(Debug)]
pub struct ConnPermit {
    /// The table counting the connection (`None` when there is no cap).
    held: Option<Arc<ConnCounts>>,
    ip: IpAddr,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        if let Some(counts) = &self.held {
            counts.release_slots(counts.slots(self.ip));
        }
    }
}

/// The `Retry-After` value for a refusal from [`PerIp::on_request`]: whole seconds, rounded
/// up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0))
        .max(1)
}

/// One worker's view of the per-client limits: the shared connection counts and its own
/// request buckets.
#[derive(Debug)]
pub struct PerIp {
    conns: Option<Arc<ConnCounts>>,
    req: Option<ReqLimit>,
    buckets: HashMap<u128, ReqState>,
    max_entries: usize,
    last_sweep: Option<Instant>,
}

impl PerIp {
    /// Limits connections with `conns` (shared by all workers) and requests with `req`; either
    /// may be absent. The request table holds at most `max_entries` clients.
    pub fn new(conns: Option<Arc<ConnCounts>>, req: Option<ReqLimit>, max_entries: usize) -> PerIp {
        PerIp {
            conns,
            req,
            buckets: HashMap::new(),
            max_entries,
            last_sweep: None,
        }
    }

    /// Takes the limits of a reloaded configuration: the connection table `conns` and the
    /// request limit `req`. The request buckets are kept when `req` is unchanged and forgotten
    /// otherwise (a bucket's state means nothing under another rate).
    pub fn reload(&mut self, conns: Option<Arc<ConnCounts>>, req: Option<ReqLimit>) {
        self.conns = conns;
        if req != self.req {
            self.req = req;
            self.buckets.clear();
        }
    }

    /// Admits a new connection from `ip`, or refuses it (`None`) because the client has
    /// `--max-conns-per-ip` connections already. The connection counts until the permit is
    /// dropped.
    pub fn on_connect(&self, ip: IpAddr) -> Option<ConnPermit> {
        match &self.conns {
            None => Some(ConnPermit { held: None, ip }),
            Some(c) => c.try_acquire(ip),
        }
    }

    /// Admits a request from `ip` at `now`, or refuses it with the time after which the client
    /// may retry (answer 429 with `Retry-After` rounded up to whole seconds).
    pub fn on_request(&mut self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let Some(limit) = self.req else {
            return Ok(());
        };
        let key = key(ip);
        if let Some(state) = self.buckets.get_mut(&key) {
            return limit.try_take(state, now);
        }
        if self.buckets.len() >= self.max_entries {
            if self
                .last_sweep
                .is_none_or(|t| now.saturating_duration_since(t) >= SWEEP_EVERY)
            {
                self.expire(now);
            }
            if self.buckets.len() >= self.max_entries {
                return Err(FULL_RETRY);
            }
        }
        let mut state = ReqState::default();
        let taken = limit.try_take(&mut state, now);
        self.buckets.insert(key, state);
        taken
    }

    /// Drops the clients whose request bucket is full again; call it every few seconds.
    pub fn expire(&mut self, now: Instant) {
        self.buckets.retain(|_, s| !s.is_full(now));
        self.last_sweep = Some(now);
    }

    /// Clients in the request table.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether the request table is empty.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::size::ReqRate;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::sync::atomic::AtomicI64;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn per_second(requests: u64, burst: u32) -> ReqLimit {
        ReqLimit::new(
            ReqRate {
                requests,
                per_secs: 1,
            },
            burst,
        )
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::MAX), u64::MAX);
    }

    #[test]
    fn keys_group_ipv6_by_64_and_unmap_ipv4() {
        assert_eq!(key(ip("2001:db8::1")), key(ip("2001:db8::ffff:1:2:3")));
        assert_ne!(key(ip("2001:db8::1")), key(ip("2001:db8:0:1::1")));
        assert_eq!(key(ip("::ffff:192.0.2.7")), key(ip("192.0.2.7")));
        assert_ne!(key(ip("192.0.2.7")), key(ip("192.0.2.8")));
        assert_ne!(key(ip("0.0.0.0")), key(ip("::")));
        assert_ne!(key(ip("0.0.0.1")), key(ip("::1")));
    }

    #[test]
    fn connection_cap_counts_per_client() {
        let counts = ConnCounts::new(2, 1024);
        let per_ip = PerIp::new(Some(Arc::clone(&counts)), None, 16);
        let first = per_ip.on_connect(ip("2001:db8::1")).unwrap();
        let _second = per_ip.on_connect(ip("2001:db8::2")).unwrap();
        assert!(per_ip.on_connect(ip("2001:db8::3")).is_none());
        assert_eq!(counts.count(ip("2001:db8::4")), 2);
        let _other_64 = per_ip.on_connect(ip("2001:db8:0:1::1")).unwrap();
        drop(first);
        let _third = per_ip.on_connect(ip("2001:db8::5")).unwrap();
        assert!(per_ip.on_connect(ip("2001:db8::5")).is_none());
        let _v4 = per_ip.on_connect(ip("10.0.0.1")).unwrap();
        let _mapped = per_ip.on_connect(ip("::ffff:10.0.0.1")).unwrap();
        assert!(per_ip.on_connect(ip("10.0.0.1")).is_none());
    }

    #[test]
    fn a_new_cap_applies_to_new_connections_and_keeps_the_old_ones_counted() {
        let counts = ConnCounts::new(3, 1024);
        let a = ip("192.0.2.1");
        let held: Vec<ConnPermit> = (0..3).map(|_| counts.try_acquire(a).unwrap()).collect();
        counts.set_max(2);
        assert!(counts.try_acquire(a).is_none(), "3 open, cap now 2");
        drop(held);
        let _one = counts.try_acquire(a).unwrap();
        let _two = counts.try_acquire(a).unwrap();
        assert!(counts.try_acquire(a).is_none());
        counts.set_max(0);
        assert!(counts.try_acquire(a).is_some(), "0 lifts the cap");
    }

    #[test]
    fn reload_keeps_request_buckets_only_under_the_same_limit() {
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        let mut per_ip = PerIp::new(None, Some(per_second(1, 0)), 16);
        assert_eq!(per_ip.on_request(a, t0), Ok(()));
        per_ip.reload(None, Some(per_second(1, 0)));
        assert!(per_ip.on_request(a, t0).is_err(), "same limit: bucket kept");
        per_ip.reload(None, Some(per_second(2, 0)));
        assert!(per_ip.is_empty());
        assert_eq!(per_ip.on_request(a, t0), Ok(()), "new limit: fresh bucket");
        per_ip.reload(None, None);
        assert!(per_ip.is_empty());
        assert_eq!(per_ip.on_request(a, t0), Ok(()));
    }

    #[test]
    fn no_limits_admit_everything() {
        let per_ip = PerIp::new(None, None, 0);
        let mut per_ip2 = PerIp::new(Some(ConnCounts::new(0, 1)), None, 0);
        let t0 = Instant::now();
        let mut held = Vec::new();
        for _ in 0..100 {
            held.push(per_ip.on_connect(ip("10.0.0.1")).unwrap());
            held.push(per_ip2.on_connect(ip("10.0.0.1")).unwrap());
            assert_eq!(per_ip2.on_request(ip("10.0.0.1"), t0), Ok(()));
        }
        assert!(per_ip2.is_empty());
    }

    #[test]
    fn collisions_never_let_a_client_past_the_cap() {
        // A tiny table, so that clients collide a lot.
        let counts = ConnCounts::new(1, 4);
        let mut admitted = Vec::new();
        for i in 0..200u32 {
            let a = IpAddr::V4(Ipv4Addr::from(i));
            if let Some(p) = counts.try_acquire(a) {
                admitted.push(p);
                assert!(counts.try_acquire(a).is_none());
            }
            assert!(counts.count(a) >= 1);
        }
        assert!(!admitted.is_empty());
    }

    #[test]
    fn a_roomy_table_admits_distinct_clients() {
        let counts = ConnCounts::new(1, DEFAULT_SLOTS);
        let permits: Vec<ConnPermit> = (0..1000u32)
            .map(|i| counts.try_acquire(IpAddr::V4(Ipv4Addr::from(i))).unwrap())
            .collect();
        drop(permits);
        assert!(counts
            .counters
            .iter()
            .all(|c| c.load(Ordering::Relaxed) == 0));
    }

    #[test]
    fn racing_connections_respect_the_cap() {
        let counts = ConnCounts::new(3, 64);
        let holders = Arc::new(AtomicI64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (counts, holders) = (Arc::clone(&counts), Arc::clone(&holders));
                std::thread::spawn(move || {
                    let a = ip("198.51.100.1");
                    for _ in 0..20_000 {
                        if let Some(permit) = counts.try_acquire(a) {
                            assert!(holders.fetch_add(1, Ordering::SeqCst) < 3);
                            holders.fetch_sub(1, Ordering::SeqCst);
                            drop(permit);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(counts.count(ip("198.51.100.1")), 0);
    }

    #[test]
    fn requests_are_limited_per_client() {
        let t0 = Instant::now();
        let mut per_ip = PerIp::new(None, Some(per_second(10, 1)), 16);
        let a = ip("2001:db8::1");
        assert_eq!(per_ip.on_request(a, t0), Ok(()));
        assert_eq!(per_ip.on_request(ip("2001:db8::2"), t0), Ok(()));
        assert_eq!(
            per_ip.on_request(ip("2001:db8::3"), t0),
            Err(Duration::from_millis(100))
        );
        assert_eq!(per_ip.on_request(ip("10.0.0.1"), t0), Ok(()));
        assert_eq!(per_ip.len(), 2);
        per_ip.expire(t0 + Duration::from_millis(150));
        assert_eq!(per_ip.len(), 1);
        per_ip.expire(t0 + Duration::from_millis(200));
        assert!(per_ip.is_empty());
        assert_eq!(
            per_ip.on_request(a, t0 + Duration::from_millis(200)),
            Ok(())
        );
    }

    #[test]
    fn a_full_table_refuses_newcomers_until_entries_expire() {
        let t0 = Instant::now();
        let mut per_ip = PerIp::new(None, Some(per_second(1, 0)), 2);
        assert_eq!(per_ip.on_request(ip("10.0.0.1"), t0), Ok(()));
        assert_eq!(per_ip.on_request(ip("10.0.0.2"), t0), Ok(()));
        assert_eq!(per_ip.on_request(ip("10.0.0.3"), t0), Err(FULL_RETRY));
        // The forced sweep just ran, so none runs again for a second.
        let later = t0 + Duration::from_millis(999);
        assert_eq!(per_ip.on_request(ip("10.0.0.3"), later), Err(FULL_RETRY));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(per_ip.on_request(ip("10.0.0.3"), t1), Ok(()));
        assert_eq!(per_ip.len(), 1);
    }

    #[test]
    fn a_million_clients_stay_bounded() {
        let t0 = Instant::now();
        let mut per_ip = PerIp::new(None, Some(per_second(10, 5)), DEFAULT_MAX_ENTRIES);
        let (mut admitted, mut refused) = (0u32, 0u32);
        for i in 0..1_000_000u32 {
            let now = t0 + Duration::from_micros(u64::from(i));
            let a = if i % 2 == 0 {
                IpAddr::V4(Ipv4Addr::from(i))
            } else {
                IpAddr::V6(Ipv6Addr::from(u128::from(i) << 64))
            };
            match per_ip.on_request(a, now) {
                Ok(()) => admitted += 1,
                Err(d) => {
                    assert_eq!(d, FULL_RETRY);
                    refused += 1;
                }
            }
            assert!(per_ip.len() <= DEFAULT_MAX_ENTRIES);
        }
        assert_eq!(admitted as usize, DEFAULT_MAX_ENTRIES);
        assert_eq!(refused as usize, 1_000_000 - DEFAULT_MAX_ENTRIES);
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(per_ip.on_request(ip("192.0.2.1"), t1), Ok(()));
        assert_eq!(per_ip.len(), 1);
    }
}
