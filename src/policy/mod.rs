//! Pacing and protection: the policies that decide whether a client is served and how fast.
//!
//! Like [`crate::http`], this layer is sans-I/O: it never touches a socket, a file or the
//! clock. The engine asks it questions — may this address connect ([`access`], [`per_ip`]),
//! may it make another request ([`per_ip`]), is this signed link genuine ([`signed`]), how many
//! bytes may this response send now ([`pacing`]) — passing the current time in, and acts on
//! the answers (close, 403/410/429/503, park the connection on a timer). So every policy is
//! deterministic and tested without a network, and the per-request and per-chunk checks
//! allocate nothing. [`Policy`] is one worker's view of them all, in the order the engine
//! applies them: [`Policy::admit`] right after accept, [`Policy::on_request`] before a request
//! is answered, [`Policy::pacing`] when a file body starts.
//!
//! Key decision: names and semantics follow nginx (`limit_rate`, `limit_rate_after`,
//! `limit_req`, `limit_conn`, `allow`/`deny`, `secure_link`) wherever nginx has the feature;
//! where this layer departs from it — a capped burst for pacing, connection counts shared
//! across workers — the module says why.
//!
//! A configuration reload (SIGHUP) carries the shared state over rather than starting afresh
//! ([`Shared::reload`]): connections open across the reload still count against the
//! per-client cap, and transfers under way share the server-wide rate with the new ones.

pub mod access;
pub mod memory;
pub mod pacing;
pub mod per_ip;
pub mod signed;
pub mod size;
pub mod token_bucket;
pub mod total;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use access::{load_deny_file, Action, Cidr, Rule, Rules};
pub use pacing::Pacing;
pub use per_ip::{retry_after_secs, ConnCounts, ConnPermit, PerIp};
pub use signed::{parse_expires_in, sign, verify, Secret, SecureLink, Verdict};
pub use size::{parse_rate, parse_req_rate, parse_size, ReqRate};
pub use token_bucket::{Allowance, Pacer, ReqLimit, ReqState, RequestBucket};
pub use total::{min_rate, Share, TotalLimit};

/// How long a client's request bucket may sit full before a sweep forgets it.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// The validated policy options (part of [`crate::config::Config`]).
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Bytes per second per response, 0 for none (`--limit-rate`, nginx `limit_rate`).
    pub limit_rate: u64,
    /// Bytes of each response sent before pacing starts (`--limit-rate-after`).
    pub limit_rate_after: u64,
    /// Server-wide bytes per second shared evenly by active transfers, 0 for none.
    pub limit_rate_total: u64,
    /// Connections over all workers, 0 for no cap (`--max-conns`).
    pub max_conns: usize,
    /// Connections per client, 0 for no cap (`--max-conns-per-ip`, nginx `limit_conn`).
    pub max_conns_per_ip: u32,
    /// Requests per client (`--req-rate`, `--req-burst`; nginx `limit_req ... nodelay`).
    pub req_limit: Option<ReqLimit>,
    /// Address rules, checked right after accept (`--allow`, `--deny`, `--deny-file`).
    pub rules: Rules,
    /// Signed-link protection (`--secure-link-secret-file`, `--secure-link-prefix`).
    pub secure_link: Option<SecureLink>,
}

impl Settings {
    /// Whether any policy needs the client's address.
    pub fn needs_peer(&self) -> bool {
        !self.rules.is_empty() || self.max_conns_per_ip > 0 || self.req_limit.is_some()
    }
}

/// State shared by every worker: the per-client connection counts and the server-wide rate.
#[derive(Clone, Debug, Default)]
pub struct Shared {
    conn_counts: Option<Arc<ConnCounts>>,
    total: Option<Arc<TotalLimit>>,
}

impl Shared {
    /// The shared state `settings` call for (nothing when their limits are off).
    pub fn new(settings: &Settings) -> Shared {
        Shared {
            conn_counts: (settings.max_conns_per_ip > 0)
                .then(|| ConnCounts::new(settings.max_conns_per_ip, per_ip::DEFAULT_SLOTS)),
            total: (settings.limit_rate_total > 0)
                .then(|| TotalLimit::new(settings.limit_rate_total)),
        }
    }

    /// The shared state for `settings` after a configuration reload, taken over from this
    /// one: the connection table is kept with the new cap, so connections open now still
    /// count, and the server-wide rate is kept with the new total, so transfers under way
    /// share it with new ones at once. A limit switched on starts a fresh table; a limit
    /// switched off lets go of it (transfers under way keep their old share). Call it only
    /// for a configuration that will be used: the new caps apply to the running workers too.
    pub fn reload(&self, settings: &Settings) -> Shared {
        let conn_counts = match (&self.conn_counts, settings.max_conns_per_ip) {
            (_, 0) => None,
            (Some(counts), max) => {
                counts.set_max(max);
                Some(Arc::clone(counts))
            }
            (None, max) => Some(ConnCounts::new(max, per_ip::DEFAULT_SLOTS)),
        };
        let total = match (&self.total, settings.limit_rate_total) {
            (_, 0) => None,
            (Some(total), rate) => {
                total.set_total(rate);
                Some(Arc::clone(total))
            }
            (None, rate) => Some(TotalLimit::new(rate)),
        };
        Shared { conn_counts, total }
    }
}

/// Whether a new connection is let in.
#[derive(Debug)]
pub enum Admission {
    /// Serve it; the permit counts it against its client's cap until dropped.
    Admit(ConnPermit),
    /// The client has `--max-conns-per-ip` connections: answer its first request 503 and close.
    OverLimit,
    /// An access rule denies the address: close at once.
    Deny,
    /// The process is close to its memory limit: answer its first request 503 and close.
    NoMemory,
}

/// Why a request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Over the client's request rate: 429 with `Retry-After` of this many seconds.
    RateLimited(u64),
    /// A protected path without a genuine signature: 403.
    Forbidden,
    /// A genuine signed link past its expiry: 410.
    Expired,
}

/// What an admitted request is granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Grant {
    /// The rate its signed link carries, which replaces `--limit-rate` for its response.
    pub link_rate: Option<u64>,
}

/// One worker's view of every policy.
#[derive(Debug)]
pub struct Policy {
    settings: Settings,
    shared: Shared,
    per_ip: PerIp,
    last_sweep: Option<Instant>,
    memory: memory::MemoryGuard,
}

impl Policy {
    /// The worker's policies under `settings`, with the state all workers share.
    pub fn new(settings: Settings, shared: Shared) -> Policy {
        let per_ip = PerIp::new(
            shared.conn_counts.clone(),
            settings.req_limit,
            per_ip::DEFAULT_MAX_ENTRIES,
        );
        Policy {
            settings,
            shared,
            per_ip,
            last_sweep: None,
            memory: memory::MemoryGuard::default(),
        }
    }

    /// Switches to the settings of a reloaded configuration and the state `shared` that goes
    /// with them (see [`Shared::reload`]). The request buckets of clients are kept when the
    /// request limit is unchanged, and start afresh otherwise. Pacing already handed out is
    /// not affected: responses under way keep their rate.
    pub fn reload(&mut self, settings: Settings, shared: Shared) {
        self.per_ip
            .reload(shared.conn_counts.clone(), settings.req_limit);
        self.settings = settings;
        self.shared = shared;
    }

    /// Judges a connection just accepted from `ip` at `now`; `memory` reads the process's
    /// memory use and limit when [`memory::MemoryGuard`] wants a fresh look.
    pub fn admit(
        &self,
        ip: IpAddr,
        now: Instant,
        memory: impl FnOnce() -> Option<(u64, u64)>,
    ) -> Admission {
        if !self.settings.rules.allows(ip) {
            return Admission::Deny;
        }
        if self.memory.low(now, memory) {
            return Admission::NoMemory;
        }
        match self.per_ip.on_connect(ip) {
            Some(permit) => Admission::Admit(permit),
            None => Admission::OverLimit,
        }
    }

    /// Judges a request from `ip` for `target` at `now` (`now_unix` in Unix seconds), using
    /// `scratch` for the target's canonical path when it needs one.
    pub fn on_request(
        &mut self,
        ip: IpAddr,
        target: &[u8],
        now: Instant,
        now_unix: u64,
        scratch: &mut Vec<u8>,
    ) -> Result<Grant, Refusal> {
        self.per_ip
            .on_request(ip, now)
            .map_err(|wait| Refusal::RateLimited(retry_after_secs(wait)))?;
        let Some(link) = &self.settings.secure_link else {
            return Ok(Grant::default());
        };
        match link.check(target, now_unix, scratch) {
            None => Ok(Grant::default()),
            Some(Verdict::Valid { rate, .. }) => Ok(Grant { link_rate: rate }),
            Some(Verdict::Forbidden) => Err(Refusal::Forbidden),
            Some(Verdict::Expired) => Err(Refusal::Expired),
        }
    }

    /// Pacing for a file response starting at `now` under `grant`, or `None` when nothing
    /// limits it.
    pub fn pacing(&self, grant: Grant, now: Instant) -> Option<Pacing> {
        Pacing::new(
            grant.link_rate.unwrap_or(self.settings.limit_rate),
            self.settings.limit_rate_after,
            self.shared.total.as_ref(),
            now,
        )
    }

    /// Forgets idle clients' request buckets every few seconds; call once per loop turn.
    pub fn tick(&mut self, now: Instant) {
        if self.per_ip.is_empty() {
            return;
        }
        if self
            .last_sweep
            .is_none_or(|t| now.saturating_duration_since(t) >= SWEEP_EVERY)
        {
            self.per_ip.expire(now);
            self.last_sweep = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn secret() -> Secret {
        Secret::new(b"test secret").unwrap()
    }

    #[test]
    fn admission_checks_rules_then_the_per_client_cap() {
        let settings = Settings {
            max_conns_per_ip: 1,
            rules: Rules::parse([(Action::Deny, "10.0.0.0/8")]).unwrap(),
            ..Settings::default()
        };
        let policy = Policy::new(settings.clone(), Shared::new(&settings));
        assert!(matches!(
            policy.admit(ip("10.1.2.3"), Instant::now(), || None),
            Admission::Deny
        ));
        let first = policy.admit(ip("192.0.2.1"), Instant::now(), || None);
        assert!(matches!(first, Admission::Admit(_)));
        assert!(matches!(
            policy.admit(ip("192.0.2.1"), Instant::now(), || None),
            Admission::OverLimit
        ));
        drop(first);
        assert!(matches!(
            policy.admit(ip("192.0.2.1"), Instant::now(), || None),
            Admission::Admit(_)
        ));
    }

    #[test]
    fn requests_are_rate_limited_before_links_are_checked() {
        let settings = Settings {
            req_limit: Some(ReqLimit::new(parse_req_rate("1/s").unwrap(), 0)),
            secure_link: Some(SecureLink::new(secret(), "/private").unwrap()),
            ..Settings::default()
        };
        let mut policy = Policy::new(settings.clone(), Shared::new(&settings));
        let (t0, mut scratch) = (Instant::now(), Vec::new());
        let a = ip("192.0.2.1");
        assert_eq!(
            policy.on_request(a, b"/private/f", t0, 100, &mut scratch),
            Err(Refusal::Forbidden)
        );
        assert_eq!(
            policy.on_request(a, b"/public", t0, 100, &mut scratch),
            Err(Refusal::RateLimited(1))
        );
        let t1 = t0 + Duration::from_secs(1);
        let url = settings.secure_link.as_ref().unwrap();
        let url = url.sign_url("/private/f", 100, Some(5000), None).unwrap();
        assert_eq!(
            policy.on_request(a, url.as_bytes(), t1, 100, &mut scratch),
            Ok(Grant {
                link_rate: Some(5000)
            })
        );
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(
            policy.on_request(a, url.as_bytes(), t2, 101, &mut scratch),
            Err(Refusal::Expired)
        );
    }

    #[test]
    fn reload_carries_the_shared_state_over() {
        let old = Settings {
            max_conns_per_ip: 1,
            limit_rate_total: 1000,
            ..Settings::default()
        };
        let shared = Shared::new(&old);
        let mut policy = Policy::new(old, shared.clone());
        let held = policy.admit(ip("192.0.2.1"), Instant::now(), || None);
        assert!(matches!(held, Admission::Admit(_)));
        let t0 = Instant::now();
        let _under_way = policy.pacing(Grant::default(), t0).unwrap();
        let new = Settings {
            max_conns_per_ip: 1,
            limit_rate_total: 4000,
            rules: Rules::parse([(Action::Deny, "10.0.0.0/8")]).unwrap(),
            ..Settings::default()
        };
        let reloaded = shared.reload(&new);
        policy.reload(new, reloaded.clone());
        assert!(matches!(
            policy.admit(ip("10.1.2.3"), Instant::now(), || None),
            Admission::Deny
        ));
        assert!(
            matches!(
                policy.admit(ip("192.0.2.1"), Instant::now(), || None),
                Admission::OverLimit
            ),
            "the connection open across the reload still counts"
        );
        let total = reloaded.total.as_ref().unwrap();
        assert_eq!((total.total(), total.active()), (4000, 1));
        let off = reloaded.reload(&Settings::default());
        assert!(off.conn_counts.is_none() && off.total.is_none());
        policy.reload(Settings::default(), off);
        assert!(matches!(
            policy.admit(ip("192.0.2.1"), Instant::now(), || None),
            Admission::Admit(_)
        ));
        assert!(policy.pacing(Grant::default(), t0).is_none());
    }

    #[test]
    fn link_rate_replaces_the_default_rate() {
        let settings = Settings {
            limit_rate: 1000,
            ..Settings::default()
        };
        let policy = Policy::new(settings.clone(), Shared::new(&settings));
        let t0 = Instant::now();
        let mut paced = policy.pacing(Grant::default(), t0).unwrap();
        assert_eq!(paced.allowance(t0, 1 << 20), Allowance::Send(100));
        let fast = Grant {
            link_rate: Some(1 << 20),
        };
        let mut premium = policy.pacing(fast, t0).unwrap();
        assert_eq!(premium.allowance(t0, 1 << 20), Allowance::Send(104_857));
        let none = Policy::new(Settings::default(), Shared::default());
        assert!(none.pacing(Grant::default(), t0).is_none());
    }
}
