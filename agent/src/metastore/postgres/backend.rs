//! [`MetaBackend`] on PostgreSQL: every call is the store's own async
//! method, bounded by its call timeout (see [`PostgresStore::bounded`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::super::compaction::{CompactedFrom, RangeSwitch};
use super::super::groups::{OffsetCommit, StoredGroup, StoredOffset};
use super::super::security::{ChangeOutcome, SecurityChange, SecurityRows};
use super::super::{
    AgentRow, ChunkCommit, LeaseGrant, LeaseRow, MetaBackend, MetaError, RangeLocation,
    RememberedBatch, Stored, Takeover, TimeQuery, TopicChange, TopicRow,
};

use super::PostgresStore;
use crate::cluster::leader_epochs::EpochStart;
use crate::ids::{PartitionId, TopicKey};

#[async_trait::async_trait]
impl MetaBackend for PostgresStore {
    async fn schema_version(&self) -> Result<i64, MetaError> {
        self.bounded(PostgresStore::schema_version(self)).await
    }

    async fn topics(&self) -> Result<Vec<TopicRow>, MetaError> {
        self.bounded(PostgresStore::topics(self)).await
    }

    async fn create_topic_with(
        &self,
        name: &str,
        partitions: u32,
        config: &BTreeMap<String, String>,
    ) -> Result<TopicRow, MetaError> {
        self.bounded(PostgresStore::create_topic(self, name, partitions, config))
            .await
    }

    async fn update_topic(
        &self,
        name: &str,
        change: Arc<TopicChange>,
    ) -> Result<TopicRow, MetaError> {
        self.bounded(PostgresStore::update_topic(self, name, &*change))
            .await
    }

    async fn delete_topic(&self, name: &str) -> Result<TopicRow, MetaError> {
        self.bounded(PostgresStore::delete_topic(self, name)).await
    }

    async fn next_producer_id(&self) -> Result<i64, MetaError> {
        self.bounded(PostgresStore::next_producer_id(self)).await
    }

    async fn bump_producer_epoch(&self, producer_id: i64, claimed: i32) -> Result<i32, MetaError> {
        self.bounded(PostgresStore::bump_producer_epoch(
            self,
            producer_id,
            claimed,
        ))
        .await
    }

    async fn acquire_lease(
        &self,
        topic: &TopicKey,
        partition: u32,
        agent: &str,
        times: (i64, i64),
        take: Option<&Takeover>,
    ) -> Result<LeaseGrant, MetaError> {
        self.bounded(PostgresStore::acquire_lease(
            self, topic, partition, agent, times, take,
        ))
        .await
    }

    async fn renew_lease(
        &self,
        topic: &TopicKey,
        partition: u32,
        agent: &str,
        epoch: u64,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<LeaseGrant, MetaError> {
        self.bounded(PostgresStore::renew_lease(
            self, topic, partition, agent, epoch, now_ms, ttl_ms,
        ))
        .await
    }

    async fn renew_leases(
        &self,
        leases: &[(PartitionId, u64)],
        agent: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Vec<Result<LeaseGrant, MetaError>>, MetaError> {
        self.bounded(PostgresStore::renew_leases(
            self, leases, agent, now_ms, ttl_ms,
        ))
        .await
    }

    async fn release_lease(
        &self,
        topic: &TopicKey,
        partition: u32,
        agent: &str,
        epoch: u64,
    ) -> Result<(), MetaError> {
        self.bounded(PostgresStore::release_lease(
            self, topic, partition, agent, epoch,
        ))
        .await
    }

    async fn lease(&self, topic: &TopicKey, partition: u32) -> Result<Option<LeaseRow>, MetaError> {
        self.bounded(PostgresStore::lease(self, topic, partition))
            .await
    }

    async fn topic_leases(&self, topic: &TopicKey) -> Result<Vec<(u32, LeaseRow)>, MetaError> {
        self.bounded(PostgresStore::topic_leases(self, topic)).await
    }

    async fn commit_chunk(
        &self,
        agent: &str,
        chunk: &ChunkCommit,
        now_ms: i64,
    ) -> Result<bool, MetaError> {
        self.bounded(PostgresStore::commit_chunk(self, agent, chunk, now_ms))
            .await
    }

    async fn producer_state(
        &self,
        topic: &TopicKey,
        partition: u32,
    ) -> Result<Vec<RememberedBatch>, MetaError> {
        self.bounded(PostgresStore::producer_state(self, topic, partition))
            .await
    }

    async fn chunk_committed(&self, key: &str) -> Result<bool, MetaError> {
        self.bounded(PostgresStore::chunk_committed(self, key))
            .await
    }

    async fn range_at(
        &self,
        topic: &TopicKey,
        partition: u32,
        offset: u64,
    ) -> Result<Option<RangeLocation>, MetaError> {
        self.bounded(PostgresStore::find_range(self, topic, partition, offset))
            .await
    }

    async fn epoch_starts(
        &self,
        topic: &TopicKey,
        partition: u32,
    ) -> Result<Vec<EpochStart>, MetaError> {
        self.bounded(PostgresStore::leader_epochs(self, topic, partition))
            .await
    }

    async fn time_ranges(
        &self,
        topic: &TopicKey,
        partition: u32,
        q: &TimeQuery,
    ) -> Result<Vec<RangeLocation>, MetaError> {
        self.bounded(PostgresStore::time_ranges(self, topic, partition, q))
            .await
    }

    async fn committed_end(&self, topic: &TopicKey, partition: u32) -> Result<u64, MetaError> {
        self.bounded(PostgresStore::committed_end(self, topic, partition))
            .await
    }

    async fn heartbeat(&self, agent: &AgentRow) -> Result<(), MetaError> {
        self.bounded(PostgresStore::heartbeat(self, agent)).await
    }

    async fn agents(&self) -> Result<Vec<AgentRow>, MetaError> {
        self.bounded(PostgresStore::agents(self)).await
    }

    async fn load_group(&self, group: &str) -> Result<Option<StoredGroup>, MetaError> {
        self.bounded(PostgresStore::load_group(self, group)).await
    }

    async fn group_version(&self, group: &str) -> Result<Option<i64>, MetaError> {
        self.bounded(PostgresStore::group_version(self, group))
            .await
    }

    async fn list_groups(&self) -> Result<Vec<StoredGroup>, MetaError> {
        self.bounded(PostgresStore::list_groups(self)).await
    }

    async fn save_group(
        &self,
        group: &str,
        state: &str,
        expected: Option<i64>,
        now_ms: i64,
    ) -> Result<Option<i64>, MetaError> {
        self.bounded(PostgresStore::save_group(
            self, group, state, expected, now_ms,
        ))
        .await
    }

    async fn delete_group(&self, group: &str, expected: i64) -> Result<bool, MetaError> {
        self.bounded(PostgresStore::delete_group(self, group, expected))
            .await
    }

    async fn commit_offsets(
        &self,
        group: &str,
        expected: i64,
        offsets: &[OffsetCommit],
        now_ms: i64,
    ) -> Result<bool, MetaError> {
        self.bounded(PostgresStore::commit_offsets(
            self, group, expected, offsets, now_ms,
        ))
        .await
    }

    async fn count_groups(&self) -> Result<u64, MetaError> {
        self.bounded(PostgresStore::count_groups(self)).await
    }

    async fn groups_unchanged_since(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<String>, MetaError> {
        self.bounded(PostgresStore::groups_unchanged_since(
            self,
            before_ms,
            i64::try_from(limit).unwrap_or(i64::MAX),
        ))
        .await
    }

    async fn group_offsets(&self, group: &str) -> Result<Vec<StoredOffset>, MetaError> {
        self.bounded(PostgresStore::group_offsets(self, group))
            .await
    }

    async fn log_start(&self, topic: &TopicKey, partition: u32) -> Result<u64, MetaError> {
        self.bounded(PostgresStore::log_start(self, topic, partition))
            .await
    }

    async fn retention_point(
        &self,
        topic: &TopicKey,
        partition: u32,
        cutoff_ms: Option<i64>,
        max_bytes: Option<u64>,
    ) -> Result<Option<u64>, MetaError> {
        self.bounded(PostgresStore::retention_point(
            self, topic, partition, cutoff_ms, max_bytes,
        ))
        .await
    }

    async fn advance_log_start(
        &self,
        agent: &str,
        topic: &TopicKey,
        partition: u32,
        epoch: u64,
        to: u64,
    ) -> Result<u64, MetaError> {
        self.bounded(PostgresStore::advance_log_start(
            self, agent, topic, partition, epoch, to,
        ))
        .await
    }

    async fn stored(&self, topic: &TopicKey, partition: u32) -> Result<Stored, MetaError> {
        self.bounded(PostgresStore::stored(self, topic, partition))
            .await
    }

    async fn dead_chunks(&self, limit: u32) -> Result<Vec<String>, MetaError> {
        self.bounded(PostgresStore::dead_chunks(self, limit)).await
    }

    async fn forget_chunk(&self, key: &str) -> Result<bool, MetaError> {
        self.bounded(PostgresStore::forget_chunk(self, key)).await
    }

    async fn ranges_to_weigh(
        &self,
        topic: &TopicKey,
        partition: u32,
        from: u64,
        limit: u32,
    ) -> Result<Vec<CompactedFrom>, MetaError> {
        self.bounded(PostgresStore::ranges_to_weigh(
            self, topic, partition, from, limit,
        ))
        .await
    }

    async fn apply_switch(
        &self,
        agent: &str,
        epoch: u64,
        switch: &RangeSwitch,
    ) -> Result<bool, MetaError> {
        self.bounded(PostgresStore::switch_ranges(self, agent, epoch, switch))
            .await
    }

    async fn compacted_keys(&self) -> Result<Vec<String>, MetaError> {
        self.bounded(PostgresStore::compacted_keys(self)).await
    }

    async fn claim_orphan(&self, key: &str, size: u64) -> Result<bool, MetaError> {
        self.bounded(PostgresStore::claim_orphan(self, key, size))
            .await
    }

    async fn security_version(&self) -> Result<i64, MetaError> {
        self.bounded(PostgresStore::security_version(self)).await
    }

    async fn security(&self) -> Result<SecurityRows, MetaError> {
        self.bounded(PostgresStore::security(self)).await
    }

    async fn change_security(&self, change: &SecurityChange) -> Result<ChangeOutcome, MetaError> {
        self.bounded(PostgresStore::run_plan(self, change.plan()))
            .await
    }
}
