//! Pacing and protection: the policies that decide whether a client is served and how fast.
//!
//! Like [`crate::http`], this layer is sans-I/O: it never touches a socket, a file or the
//! clock. The engine asks it questions — may this address connect ([`access`], [`per_ip`]),
//! may it make another request ([`per_ip`]), is this signed link genuine ([`signed`]), how many
//! bytes may this response send now ([`token_bucket`], [`total`]) — passing the current time
//! in, and acts on the answers (close, 403/410/429, park the connection on a timer). So every
//! policy is deterministic and tested without a network, and the per-request and per-chunk
//! checks allocate nothing.
//!
//! Key decision: names and semantics follow nginx (`limit_rate`, `limit_rate_after`,
//! `limit_req`, `limit_conn`, `allow`/`deny`, `secure_link`) wherever nginx has the feature;
//! where this layer departs from it — a capped burst for pacing, connection counts shared
//! across workers — the module says why.

pub mod access;
pub mod per_ip;
pub mod signed;
pub mod size;
pub mod token_bucket;
pub mod total;

pub use access::{load_deny_file, Action, Cidr, Rule, Rules};
pub use per_ip::{retry_after_secs, ConnCounts, PerIp};
pub use signed::{parse_expires_in, sign, verify, Secret, Verdict};
pub use size::{parse_rate, parse_req_rate, parse_size, ReqRate};
pub use token_bucket::{Allowance, Pacer, ReqLimit, ReqState, RequestBucket};
pub use total::{min_rate, Share, TotalLimit};
