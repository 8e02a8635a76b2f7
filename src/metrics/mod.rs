//! What the server reports about its work: per-worker counters, summed when scraped and
//! rendered in the Prometheus text format (0.0.4), the most downloaded files, and the
//! access log ([`access_log`]).
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

pub mod access_log;
mod counters;
mod process;
mod prometheus;
#[cfg(test)]
mod tests;
mod top;

use counters::*;
pub use counters::{totals, BodyKind, Reject, Totals, UploadFailure, WorkerHandle, WorkerMetrics};
pub use prometheus::render;
pub use top::{path_key, top_files, TopFiles};
