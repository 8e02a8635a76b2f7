//! The file layer: maps request targets onto files beneath the served root and describes them
//! for the protocol core.
//!
//! [`decode`] (from `http::path`) vets the target without touching the disk, [`root`]
//! resolves it with `openat2(RESOLVE_BENEATH)` so the kernel, not string checks, guarantees
//! nothing outside the root is ever opened, [`mime`] names the content type, [`cache`] keeps
//! hot files open, and [`listing`] reads directories without an index (`serve::listing`
//! renders them). Lookups allocate nothing: the caller lends a scratch buffer that is reused
//! from request to request.

pub mod cache;
pub mod digest;
pub mod listing;
pub mod mime;
pub mod root;

pub use crate::http::path::{decode, Decoded, PathError};
pub use cache::{FileCache, Found};
pub use digest::Digests;
pub use root::{Lookup, Root};
