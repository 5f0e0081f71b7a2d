//! Retention's calls on the metadata store, over either backend: a
//! partition's log start, where its retention settings let it start,
//! moving it under the lease, what it keeps in object storage, and the
//! dead chunks the sweep deletes. The statements are `retention_sql`'s,
//! the transactions each backend's `retention.rs`.

/// What a partition keeps in object storage ([`MetaBackend::stored`](super::MetaBackend::stored)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// Own bytes of its committed ranges.
    pub bytes: u64,
    /// Objects holding them (shared ones included).
    pub objects: u64,
}
