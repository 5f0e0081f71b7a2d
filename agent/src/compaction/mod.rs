//! Object compaction, the decisions and the bytes: which of a partition's
//! committed ranges are worth moving into a new object of their own
//! ([`plan`]), the new object's bytes and index rows built from the
//! ranges' frames ([`rewrite`]), and key compaction's choice of the
//! records that stay ([`keys`]). Pure functions over what the chunk index
//! and the objects hold: the reads, the PUT, the switch of the index and
//! the metrics are `control/compaction.rs`'s; deleting the old objects is
//! the sweep's.

pub mod keys;
pub mod plan;
pub mod rewrite;

pub use plan::{plan, CompactionPolicy};
pub use rewrite::{own_frames, Rewrite};

/// Key prefix of the objects compaction writes (one partition's ranges
/// each). The sweep lists it for objects a compaction wrote but never
/// switched to.
pub const COMPACTED_PREFIX: &str = "compacted/";
