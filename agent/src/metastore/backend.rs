//! The metadata store's operations as one trait, [`MetaBackend`], with
//! one implementation per backend (`sqlite::backend`, `postgres::backend`).
//! [`MetaStore`](super::MetaStore) holds one behind a pointer and adds
//! the rules that are the same for every backend (opening by URL, topic
//! changes as closures, the chunk index's gap and switch checks). Owns
//! no SQL and no connection.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::compaction::{CompactedFrom, RangeSwitch};
use super::groups::{OffsetCommit, StoredGroup, StoredOffset};
use super::security::{ChangeOutcome, SecurityChange, SecurityRows};
use super::{
    AgentRow, ChunkCommit, LeaseGrant, LeaseRow, MetaError, RangeLocation, RememberedBatch, Stored,
    Takeover, TimeQuery, TopicChange, TopicRow,
};
use crate::cluster::leader_epochs::EpochStart;
use crate::ids::{PartitionId, TopicKey};

/// One metadata store backend. Every call is one transaction (or one
/// read); times are passed in (ms since the Unix epoch), so lease expiry
/// is deterministic in tests. Cancelling a call abandons waiting for its
/// answer: a write already sent (PostgreSQL) or started (SQLite, which
/// runs on tokio's blocking pool) may still take effect.
#[async_trait::async_trait]
pub trait MetaBackend: Send + Sync {
    /// Schema version now in the store.
    async fn schema_version(&self) -> Result<i64, MetaError>;

    /// Every topic row, by name.
    async fn topics(&self) -> Result<Vec<TopicRow>, MetaError>;

    /// Creates a topic with a fresh incarnation id and the configuration
    /// keys it sets (checked by the caller).
    async fn create_topic_with(
        &self,
        name: &str,
        partitions: u32,
        config: &BTreeMap<String, String>,
    ) -> Result<TopicRow, MetaError>;

    /// Writes back what `change` makes of a topic's stored row (its
    /// partition count and configuration), in one transaction holding the
    /// row; `change`'s error leaves it unchanged.
    async fn update_topic(
        &self,
        name: &str,
        change: Arc<TopicChange>,
    ) -> Result<TopicRow, MetaError>;

    /// Deletes a topic, its leases and its chunk index entries (the chunk
    /// objects stay; they may hold other topics' data).
    async fn delete_topic(&self, name: &str) -> Result<TopicRow, MetaError>;

    /// Allocates an idempotent-producer id, never handed out twice.
    async fn next_producer_id(&self) -> Result<i64, MetaError>;

    /// Re-initialises idempotent producer `producer_id` whose instance last
    /// used epoch `claimed`: returns the next epoch (fencing every earlier
    /// instance), or `ProducerFenced` if another instance moved past it.
    async fn bump_producer_epoch(&self, producer_id: i64, claimed: i32) -> Result<i32, MetaError>;

    /// Acquires (or re-acquires) a partition's lease: a new one, one
    /// released, one this agent holds, or another agent's as `take` saw it
    /// (else `LeaseHeld`). `times` is `(now_ms, ttl_ms)`: `now_ms + ttl_ms`
    /// is stored as the expiry for
    /// people and older agents; the grant counts in `agent`'s
    /// `lease_beats`.
    async fn acquire_lease(
        &self,
        topic: &TopicKey,
        partition: u32,
        agent: &str,
        times: (i64, i64),
        take: Option<&Takeover>,
    ) -> Result<LeaseGrant, MetaError>;

    /// Extends a lease held at `epoch`; `Fenced` if it is no longer ours.
    async fn renew_lease(
        &self,
        topic: &TopicKey,
        partition: u32,
        agent: &str,
        epoch: u64,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<LeaseGrant, MetaError>;

    /// Renews many leases in one transaction (one sync instead of one per
    /// partition); one result per `(partition, epoch)`, in order.
    async fn renew_leases(
        &self,
        leases: &[(PartitionId, u64)],
        agent: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Vec<Result<LeaseGrant, MetaError>>, MetaError>;

    /// Gives a lease up at once (expiry set to 0), keeping holder and epoch;
    /// a no-op if it is no longer ours.
    async fn release_lease(
        &self,
        topic: &TopicKey,
        partition: u32,
        agent: &str,
        epoch: u64,
    ) -> Result<(), MetaError>;

    /// A partition's lease row, if it ever had one.
    async fn lease(&self, topic: &TopicKey, partition: u32) -> Result<Option<LeaseRow>, MetaError>;

    /// Every lease row of a topic, by partition.
    async fn topic_leases(&self, topic: &TopicKey) -> Result<Vec<(u32, LeaseRow)>, MetaError>;

    /// Commits a chunk's ranges atomically, fenced by each range's epoch,
    /// with the producer state each range carries (stamped `now_ms`;
    /// state older than [`PRODUCER_STATE_TTL_MS`](super::PRODUCER_STATE_TTL_MS) is dropped, and past
    /// [`MAX_STORED_PRODUCERS`](super::MAX_STORED_PRODUCERS) per partition the oldest). Returns
    /// `false` if the chunk was already committed (nothing changed).
    async fn commit_chunk(
        &self,
        agent: &str,
        chunk: &ChunkCommit,
        now_ms: i64,
    ) -> Result<bool, MetaError>;

    /// The remembered producer batches committed for a partition, for a
    /// new owner's deduplication.
    async fn producer_state(
        &self,
        topic: &TopicKey,
        partition: u32,
    ) -> Result<Vec<RememberedBatch>, MetaError>;

    /// Whether chunk `key` was committed.
    async fn chunk_committed(&self, key: &str) -> Result<bool, MetaError>;

    /// The committed range holding `offset`, or the first one after it;
    /// `None` when `offset` is at or past the committed end. Callers use
    /// [`MetaStore::find_range`](super::MetaStore::find_range), which refuses a range after `offset`.
    async fn range_at(
        &self,
        topic: &TopicKey,
        partition: u32,
        offset: u64,
    ) -> Result<Option<RangeLocation>, MetaError>;

    /// Where each of the newest
    /// [`crate::cluster::leader_epochs::MAX_EPOCHS_KEPT`] lease epochs began writing
    /// (see [`MetaStore::leader_epochs`](super::MetaStore::leader_epochs)).
    async fn epoch_starts(
        &self,
        topic: &TopicKey,
        partition: u32,
    ) -> Result<Vec<EpochStart>, MetaError>;

    /// The committed ranges of a partition that may hold a record at or
    /// after `q.timestamp_ms` between `q.from` and `q.below`, in offset
    /// order, at most `q.limit`: the chunk index read as a time index.
    /// Ranges committed before it existed (schema 6 and older) have no
    /// recorded timestamp and are always candidates.
    async fn time_ranges(
        &self,
        topic: &TopicKey,
        partition: u32,
        q: &TimeQuery,
    ) -> Result<Vec<RangeLocation>, MetaError>;

    /// Offset after the last committed record of a partition (0 if none).
    async fn committed_end(&self, topic: &TopicKey, partition: u32) -> Result<u64, MetaError>;

    /// Registers an agent or refreshes its heartbeat and addresses.
    async fn heartbeat(&self, agent: &AgentRow) -> Result<(), MetaError>;

    /// Every registered agent, by id (whether each is alive is for the
    /// reader to judge from how its counters move).
    async fn agents(&self) -> Result<Vec<AgentRow>, MetaError>;

    /// The group's row, if it exists.
    async fn load_group(&self, group: &str) -> Result<Option<StoredGroup>, MetaError>;

    /// The version of the group's row (bumped by every save), if it exists:
    /// how a coordinator checks that the state it holds in memory is still
    /// the stored one without reading the state.
    async fn group_version(&self, group: &str) -> Result<Option<i64>, MetaError>;

    /// Every group's row, by name.
    async fn list_groups(&self) -> Result<Vec<StoredGroup>, MetaError>;

    /// Saves `state` over version `expected` (`None`: creates the group).
    /// The new version, or `None` when the row is at another version (or,
    /// creating, already exists): read it again and redo the change.
    async fn save_group(
        &self,
        group: &str,
        state: &str,
        expected: Option<i64>,
        now_ms: i64,
    ) -> Result<Option<i64>, MetaError>;

    /// Deletes the group and its offsets if it is at version `expected`;
    /// `false` (nothing deleted) otherwise.
    async fn delete_group(&self, group: &str, expected: i64) -> Result<bool, MetaError>;

    /// Stores `offsets` (stamped `now_ms`, also the group's `updated_ms`)
    /// in one transaction if the group is still at version `expected`;
    /// `false` (nothing stored) otherwise.
    async fn commit_offsets(
        &self,
        group: &str,
        expected: i64,
        offsets: &[OffsetCommit],
        now_ms: i64,
    ) -> Result<bool, MetaError>;

    /// How many groups exist.
    async fn count_groups(&self) -> Result<u64, MetaError>;

    /// Ids of at most `limit` groups neither saved nor committed to since
    /// `before_ms`, the longest unchanged first: candidates for expiry.
    async fn groups_unchanged_since(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<String>, MetaError>;

    /// The group's committed offsets, by topic key and partition.
    async fn group_offsets(&self, group: &str) -> Result<Vec<StoredOffset>, MetaError>;

    /// A partition's first readable offset, as retention and DeleteRecords
    /// moved it (0: never moved).
    async fn log_start(&self, topic: &TopicKey, partition: u32) -> Result<u64, MetaError>;

    /// Where retention lets a partition start: past its committed ranges
    /// wholly older than `cutoff_ms` (their largest timestamp, ms since the
    /// Unix epoch) and past the oldest ranges beyond `max_bytes`, whole
    /// ranges only. `None`: nothing committed, or neither setting given.
    async fn retention_point(
        &self,
        topic: &TopicKey,
        partition: u32,
        cutoff_ms: Option<i64>,
        max_bytes: Option<u64>,
    ) -> Result<Option<u64>, MetaError>;

    /// Moves a partition's log start to `to` (never back) and deletes the
    /// committed ranges wholly below it, as `agent` holding its lease at
    /// `epoch` (`Fenced` otherwise); returns the log start now. Ranges
    /// committed later below it are counted as committed but not kept.
    async fn advance_log_start(
        &self,
        agent: &str,
        topic: &TopicKey,
        partition: u32,
        epoch: u64,
        to: u64,
    ) -> Result<u64, MetaError>;

    /// What a partition keeps in object storage: its committed ranges'
    /// own bytes and the objects holding them.
    async fn stored(&self, topic: &TopicKey, partition: u32) -> Result<Stored, MetaError>;

    /// Up to `limit` chunk objects no committed range references (their
    /// ranges expired or were deleted with their topic), in key order.
    async fn dead_chunks(&self, limit: u32) -> Result<Vec<String>, MetaError>;

    /// Forgets a dead chunk once its object is deleted; `false` when it is
    /// gone already or a range references it.
    async fn forget_chunk(&self, key: &str) -> Result<bool, MetaError>;

    /// Up to `limit` committed ranges of a partition from offset `from`
    /// on, in offset order, each with its object's size and live bytes.
    async fn ranges_to_weigh(
        &self,
        topic: &TopicKey,
        partition: u32,
        from: u64,
        limit: u32,
    ) -> Result<Vec<CompactedFrom>, MetaError>;

    /// Applies a checked [`RangeSwitch`] (see [`MetaStore::switch_ranges`](super::MetaStore::switch_ranges),
    /// which checks it first).
    async fn apply_switch(
        &self,
        agent: &str,
        epoch: u64,
        switch: &RangeSwitch,
    ) -> Result<bool, MetaError>;

    /// Keys of the registered objects compaction wrote (a whole scan of
    /// the chunk rows: for the sweep, once per sweep).
    async fn compacted_keys(&self) -> Result<Vec<String>, MetaError>;

    /// Registers an object no row names (one a compaction wrote and never
    /// switched to) as a chunk without ranges, so the sweep deletes it
    /// after its grace; `false` when a row names it already.
    async fn claim_orphan(&self, key: &str, size: u64) -> Result<bool, MetaError>;

    /// The version of the users and tokens (grows with every change).
    async fn security_version(&self) -> Result<i64, MetaError>;

    /// Every user and every token of an existing user, at one version.
    async fn security(&self) -> Result<SecurityRows, MetaError>;

    /// Applies `change` in one transaction; a refused change (its outcome
    /// says why) changes nothing.
    async fn change_security(&self, change: &SecurityChange) -> Result<ChangeOutcome, MetaError>;
}
