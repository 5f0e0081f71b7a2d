//! [`MetaBackend`] on SQLite: every call runs on tokio's blocking pool
//! (a SQLite call blocks, and must not stall the control thread's async
//! loop), taking owned copies of its arguments there; the calls
//! themselves are the store's synchronous methods. Cancelling a call
//! does not stop it: it completes on the pool, unanswered.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::super::compaction::{CompactedFrom, RangeSwitch};
use super::super::groups::{OffsetCommit, StoredGroup, StoredOffset};
use super::super::security::{ChangeOutcome, SecurityChange, SecurityRows};
use super::super::{
    AgentRow, ChunkCommit, LeaseGrant, LeaseRow, MetaBackend, MetaError, RangeLocation,
    RememberedBatch, Stored, Takeover, TimeQuery, TopicChange, TopicRow,
};

use super::SqliteStore;
use crate::cluster::leader_epochs::EpochStart;
use crate::ids::{PartitionId, TopicKey};

#[async_trait::async_trait]
impl MetaBackend for SqliteStore {
    async fn schema_version(&self) -> Result<i64, MetaError> {
        self.blocking(move |s| s.schema_version()).await
    }

    async fn topics(&self) -> Result<Vec<TopicRow>, MetaError> {
        self.blocking(move |s| s.topics()).await
    }

    async fn create_topic_with(
        &self,
        name: &str,
        partitions: u32,
        config: &BTreeMap<String, String>,
    ) -> Result<TopicRow, MetaError> {
        let name = name.to_owned();
        let config = config.clone();
        self.blocking(move |s| s.create_topic(&name, partitions, &config))
            .await
    }

    async fn update_topic(
        &self,
        name: &str,
        change: Arc<TopicChange>,
    ) -> Result<TopicRow, MetaError> {
        let name = name.to_owned();
        self.blocking(move |s| s.update_topic(&name, &*change))
            .await
    }

    async fn delete_topic(&self, name: &str) -> Result<TopicRow, MetaError> {
        let name = name.to_owned();
        self.blocking(move |s| s.delete_topic(&name)).await
    }

    async fn next_producer_id(&self) -> Result<i64, MetaError> {
        self.blocking(move |s| s.next_producer_id()).await
    }

    async fn bump_producer_epoch(&self, producer_id: i64, claimed: i32) -> Result<i32, MetaError> {
        self.blocking(move |s| s.bump_producer_epoch(producer_id, claimed))
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
        let topic = topic.clone();
        let agent = agent.to_owned();
        let take = take.cloned();
        self.blocking(move |s| s.acquire_lease(&topic, partition, &agent, times, take.as_ref()))
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
        let topic = topic.clone();
        let agent = agent.to_owned();
        self.blocking(move |s| s.renew_lease(&topic, partition, &agent, epoch, now_ms, ttl_ms))
            .await
    }

    async fn renew_leases(
        &self,
        leases: &[(PartitionId, u64)],
        agent: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Vec<Result<LeaseGrant, MetaError>>, MetaError> {
        let leases = leases.to_vec();
        let agent = agent.to_owned();
        self.blocking(move |s| s.renew_leases(&leases, &agent, now_ms, ttl_ms))
            .await
    }

    async fn release_lease(
        &self,
        topic: &TopicKey,
        partition: u32,
        agent: &str,
        epoch: u64,
    ) -> Result<(), MetaError> {
        let topic = topic.clone();
        let agent = agent.to_owned();
        self.blocking(move |s| s.release_lease(&topic, partition, &agent, epoch))
            .await
    }

    async fn lease(&self, topic: &TopicKey, partition: u32) -> Result<Option<LeaseRow>, MetaError> {
        let topic = topic.clone();
        self.blocking(move |s| s.lease(&topic, partition)).await
    }

    async fn topic_leases(&self, topic: &TopicKey) -> Result<Vec<(u32, LeaseRow)>, MetaError> {
        let topic = topic.clone();
        self.blocking(move |s| s.topic_leases(&topic)).await
    }

    async fn commit_chunk(
        &self,
        agent: &str,
        chunk: &ChunkCommit,
        now_ms: i64,
    ) -> Result<bool, MetaError> {
        let agent = agent.to_owned();
        let chunk = chunk.clone();
        self.blocking(move |s| s.commit_chunk(&agent, &chunk, now_ms))
            .await
    }

    async fn producer_state(
        &self,
        topic: &TopicKey,
        partition: u32,
    ) -> Result<Vec<RememberedBatch>, MetaError> {
        let topic = topic.clone();
        self.blocking(move |s| s.producer_state(&topic, partition))
            .await
    }

    async fn chunk_committed(&self, key: &str) -> Result<bool, MetaError> {
        let key = key.to_owned();
        self.blocking(move |s| s.chunk_committed(&key)).await
    }

    async fn range_at(
        &self,
        topic: &TopicKey,
        partition: u32,
        offset: u64,
    ) -> Result<Option<RangeLocation>, MetaError> {
        let topic = topic.clone();
        self.blocking(move |s| s.find_range(&topic, partition, offset))
            .await
    }

    async fn epoch_starts(
        &self,
        topic: &TopicKey,
        partition: u32,
    ) -> Result<Vec<EpochStart>, MetaError> {
        let topic = topic.clone();
        self.blocking(move |s| s.leader_epochs(&topic, partition))
            .await
    }

    async fn time_ranges(
        &self,
        topic: &TopicKey,
        partition: u32,
        q: &TimeQuery,
    ) -> Result<Vec<RangeLocation>, MetaError> {
        let topic = topic.clone();
        let q = *q;
        self.blocking(move |s| s.time_ranges(&topic, partition, &q))
            .await
    }

    async fn committed_end(&self, topic: &TopicKey, partition: u32) -> Result<u64, MetaError> {
        let topic = topic.clone();
        self.blocking(move |s| s.committed_end(&topic, partition))
            .await
    }

    async fn heartbeat(&self, agent: &AgentRow) -> Result<(), MetaError> {
        let agent = agent.clone();
        self.blocking(move |s| s.heartbeat(&agent)).await
    }

    async fn agents(&self) -> Result<Vec<AgentRow>, MetaError> {
        self.blocking(move |s| s.agents()).await
    }

    async fn load_group(&self, group: &str) -> Result<Option<StoredGroup>, MetaError> {
        let group = group.to_owned();
        self.blocking(move |s| s.load_group(&group)).await
    }

    async fn group_version(&self, group: &str) -> Result<Option<i64>, MetaError> {
        let group = group.to_owned();
        self.blocking(move |s| s.group_version(&group)).await
    }

    async fn list_groups(&self) -> Result<Vec<StoredGroup>, MetaError> {
        self.blocking(move |s| s.list_groups()).await
    }

    async fn save_group(
        &self,
        group: &str,
        state: &str,
        expected: Option<i64>,
        now_ms: i64,
    ) -> Result<Option<i64>, MetaError> {
        let group = group.to_owned();
        let state = state.to_owned();
        self.blocking(move |s| s.save_group(&group, &state, expected, now_ms))
            .await
    }

    async fn delete_group(&self, group: &str, expected: i64) -> Result<bool, MetaError> {
        let group = group.to_owned();
        self.blocking(move |s| s.delete_group(&group, expected))
            .await
    }

    async fn commit_offsets(
        &self,
        group: &str,
        expected: i64,
        offsets: &[OffsetCommit],
        now_ms: i64,
    ) -> Result<bool, MetaError> {
        let group = group.to_owned();
        let offsets = offsets.to_vec();
        self.blocking(move |s| s.commit_offsets(&group, expected, &offsets, now_ms))
            .await
    }

    async fn count_groups(&self) -> Result<u64, MetaError> {
        self.blocking(move |s| s.count_groups()).await
    }

    async fn groups_unchanged_since(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<String>, MetaError> {
        self.blocking(move |s| {
            s.groups_unchanged_since(before_ms, i64::try_from(limit).unwrap_or(i64::MAX))
        })
        .await
    }

    async fn group_offsets(&self, group: &str) -> Result<Vec<StoredOffset>, MetaError> {
        let group = group.to_owned();
        self.blocking(move |s| s.group_offsets(&group)).await
    }

    async fn log_start(&self, topic: &TopicKey, partition: u32) -> Result<u64, MetaError> {
        let topic = topic.clone();
        self.blocking(move |s| s.log_start(&topic, partition)).await
    }

    async fn retention_point(
        &self,
        topic: &TopicKey,
        partition: u32,
        cutoff_ms: Option<i64>,
        max_bytes: Option<u64>,
    ) -> Result<Option<u64>, MetaError> {
        let topic = topic.clone();
        self.blocking(move |s| s.retention_point(&topic, partition, cutoff_ms, max_bytes))
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
        let agent = agent.to_owned();
        let topic = topic.clone();
        self.blocking(move |s| s.advance_log_start(&agent, &topic, partition, epoch, to))
            .await
    }

    async fn stored(&self, topic: &TopicKey, partition: u32) -> Result<Stored, MetaError> {
        let topic = topic.clone();
        self.blocking(move |s| s.stored(&topic, partition)).await
    }

    async fn dead_chunks(&self, limit: u32) -> Result<Vec<String>, MetaError> {
        self.blocking(move |s| s.dead_chunks(limit)).await
    }

    async fn forget_chunk(&self, key: &str) -> Result<bool, MetaError> {
        let key = key.to_owned();
        self.blocking(move |s| s.forget_chunk(&key)).await
    }

    async fn ranges_to_weigh(
        &self,
        topic: &TopicKey,
        partition: u32,
        from: u64,
        limit: u32,
    ) -> Result<Vec<CompactedFrom>, MetaError> {
        let topic = topic.clone();
        self.blocking(move |s| s.ranges_to_weigh(&topic, partition, from, limit))
            .await
    }

    async fn apply_switch(
        &self,
        agent: &str,
        epoch: u64,
        switch: &RangeSwitch,
    ) -> Result<bool, MetaError> {
        let agent = agent.to_owned();
        let switch = switch.clone();
        self.blocking(move |s| s.switch_ranges(&agent, epoch, &switch))
            .await
    }

    async fn compacted_keys(&self) -> Result<Vec<String>, MetaError> {
        self.blocking(move |s| s.compacted_keys()).await
    }

    async fn claim_orphan(&self, key: &str, size: u64) -> Result<bool, MetaError> {
        let key = key.to_owned();
        self.blocking(move |s| s.claim_orphan(&key, size)).await
    }

    async fn security_version(&self) -> Result<i64, MetaError> {
        self.blocking(move |s| s.security_version()).await
    }

    async fn security(&self) -> Result<SecurityRows, MetaError> {
        self.blocking(move |s| s.security()).await
    }

    async fn change_security(&self, change: &SecurityChange) -> Result<ChangeOutcome, MetaError> {
        let plan = change.plan();
        self.blocking(move |s| s.run_plan(&plan)).await
    }
}
