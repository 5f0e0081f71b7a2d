//! Retention's calls on the metadata store, over either backend: a
//! partition's log start, where its retention settings let it start,
//! moving it under the lease, what it keeps in object storage, and the
//! dead chunks the sweep deletes. The statements are `retention_sql`'s,
//! the transactions each backend's `retention.rs`.

use crate::ids::TopicKey;

use super::{MetaError, MetaStore};

/// What a partition keeps in object storage ([`MetaStore::stored`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// Own bytes of its committed ranges.
    pub bytes: u64,
    /// Objects holding them (shared ones included).
    pub objects: u64,
}

impl MetaStore {
    /// A partition's first readable offset, as retention and DeleteRecords
    /// moved it (0: never moved).
    pub async fn log_start(&self, topic: &TopicKey, partition: u32) -> Result<u64, MetaError> {
        match self {
            MetaStore::Sqlite(s) => s.log_start(topic, partition),
            MetaStore::Postgres(s) => s.bounded(s.log_start(topic, partition)).await,
        }
    }

    /// Where retention lets a partition start: past its committed ranges
    /// wholly older than `cutoff_ms` (their largest timestamp, ms since the
    /// Unix epoch) and past the oldest ranges beyond `max_bytes`, whole
    /// ranges only. `None`: nothing committed, or neither setting given.
    pub async fn retention_point(
        &self,
        topic: &TopicKey,
        partition: u32,
        cutoff_ms: Option<i64>,
        max_bytes: Option<u64>,
    ) -> Result<Option<u64>, MetaError> {
        match self {
            MetaStore::Sqlite(s) => s.retention_point(topic, partition, cutoff_ms, max_bytes),
            MetaStore::Postgres(s) => {
                s.bounded(s.retention_point(topic, partition, cutoff_ms, max_bytes))
                    .await
            }
        }
    }

    /// Moves a partition's log start to `to` (never back) and deletes the
    /// committed ranges wholly below it, as `agent` holding its lease at
    /// `epoch` (`Fenced` otherwise); returns the log start now. Ranges
    /// committed later below it are counted as committed but not kept.
    pub async fn advance_log_start(
        &self,
        agent: &str,
        topic: &TopicKey,
        partition: u32,
        epoch: u64,
        to: u64,
    ) -> Result<u64, MetaError> {
        match self {
            MetaStore::Sqlite(s) => s.advance_log_start(agent, topic, partition, epoch, to),
            MetaStore::Postgres(s) => {
                s.bounded(s.advance_log_start(agent, topic, partition, epoch, to))
                    .await
            }
        }
    }

    /// What a partition keeps in object storage: its committed ranges'
    /// own bytes and the objects holding them.
    pub async fn stored(&self, topic: &TopicKey, partition: u32) -> Result<Stored, MetaError> {
        match self {
            MetaStore::Sqlite(s) => s.stored(topic, partition),
            MetaStore::Postgres(s) => s.bounded(s.stored(topic, partition)).await,
        }
    }

    /// Up to `limit` chunk objects no committed range references (their
    /// ranges expired or were deleted with their topic), in key order.
    pub async fn dead_chunks(&self, limit: u32) -> Result<Vec<String>, MetaError> {
        match self {
            MetaStore::Sqlite(s) => s.dead_chunks(limit),
            MetaStore::Postgres(s) => s.bounded(s.dead_chunks(limit)).await,
        }
    }

    /// Forgets a dead chunk once its object is deleted; `false` when it is
    /// gone already or a range references it.
    pub async fn forget_chunk(&self, key: &str) -> Result<bool, MetaError> {
        match self {
            MetaStore::Sqlite(s) => s.forget_chunk(key),
            MetaStore::Postgres(s) => s.bounded(s.forget_chunk(key)).await,
        }
    }
}
