//! Retention on the control thread: every `--retention-check-ms`, each
//! partition this agent holds moves its log start past the committed
//! ranges its topic's `retention.ms` and `retention.bytes` let go (in the
//! metadata store, under the lease epoch, deleting those ranges), and its
//! shard is told; DeleteRecords moves it by hand through the same call.
//! Deleting the chunk objects no range references any more is the sweep's
//! work, not this module's.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::ids::{PartitionId, TopicKey};
use crate::messages::{ControlError, ToShard};
use crate::runtime::clock::now_ms;
use crate::topics::catalog::TopicEntry;
use crate::topics::topic_config::ConfigDefaults;

use super::compaction::Compactor;
use super::state::Shared;

impl Shared {
    /// Moves a partition this agent holds to start at `to` (never back),
    /// deleting its committed ranges below it, and tells its shard;
    /// answers the log start now. `Unavailable` when the lease is not held
    /// here or the store refuses it (fenced) or cannot be reached.
    pub(super) async fn advance_log_start(
        &self,
        key: &TopicKey,
        partition: u32,
        to: u64,
    ) -> Result<u64, ControlError> {
        let epoch = self.held_epoch(key, partition).ok_or_else(|| {
            ControlError::Unavailable(format!(
                "the lease of {}/{partition} is not held here any more",
                key.name()
            ))
        })?;
        let start = self
            .meta
            .advance_log_start(&self.config.agent_id, key, partition, epoch, to)
            .await?;
        self.metrics
            .control
            .log_start_moves
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(topic = key.name(), partition, start, "log start moved");
        self.tell(
            self.shard_of(key, partition),
            ToShard::LogStart {
                topic: key.clone(),
                partition,
                start,
            },
        );
        Ok(start)
    }

    /// One pass over the partitions held here: each moves its log start to
    /// where its topic's retention settings let it (whole committed ranges
    /// only), and publishes its log start and stored bytes for `/metrics`
    /// (partitions led elsewhere publish 0). A partition whose store call
    /// fails is tried again next pass.
    pub(super) async fn retention_pass(&self) {
        let defaults = self.config.topic_defaults();
        let held = self.leases.all();
        let here: HashSet<&PartitionId> = held.iter().map(|(id, _)| id).collect();
        for (name, entry) in self.catalog.list() {
            let key = entry.key(&name);
            for (p, t) in entry.traffic.iter().enumerate() {
                if !here.contains(&PartitionId::new(key.clone(), p as u32)) {
                    t.stored_bytes.store(0, Ordering::Relaxed);
                    t.stored_objects.store(0, Ordering::Relaxed);
                    t.log_start.store(0, Ordering::Relaxed);
                }
            }
        }
        drop(here);
        for (id, _) in held {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            let PartitionId {
                topic: key,
                partition,
            } = id;
            let Some(entry) = self
                .catalog
                .get(key.name())
                .filter(|t| Some(t.id) == key.incarnation())
            else {
                continue;
            };
            let start = match self.meta.log_start(&key, partition).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(topic = key.name(), partition, error = %e, "retention pass failed for the partition; trying again next pass");
                    continue;
                }
            };
            let start = self
                .apply_retention(&key, partition, &entry, &defaults, start)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(topic = key.name(), partition, error = %e, "retention pass failed for the partition; trying again next pass");
                    start
                });
            if let Err(e) = self.publish_storage(&key, partition, &entry, start).await {
                tracing::debug!(topic = key.name(), partition, error = %e, "cannot read what the partition stores");
            }
        }
    }

    /// Moves one held partition's log start, now `start`, where its
    /// topic's settings let it; returns where it starts then.
    async fn apply_retention(
        &self,
        key: &TopicKey,
        partition: u32,
        entry: &TopicEntry,
        defaults: &ConfigDefaults,
        start: u64,
    ) -> Result<u64, ControlError> {
        let cutoff = entry
            .config
            .retention_ms(defaults)
            .map(|ms| now_ms().saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX)));
        let max_bytes = entry.config.retention_bytes(defaults);
        // cleanup.policy=compact alone: key compaction, not retention,
        // removes records.
        if !entry.config.cleanup().delete || (cutoff.is_none() && max_bytes.is_none()) {
            return Ok(start);
        }
        match self
            .meta
            .retention_point(key, partition, cutoff, max_bytes)
            .await?
        {
            Some(to) if to > start => self.advance_log_start(key, partition, to).await,
            _ => Ok(start),
        }
    }

    /// Publishes a partition's log start (`start`) and stored bytes in its
    /// catalog entry.
    async fn publish_storage(
        &self,
        key: &TopicKey,
        partition: u32,
        entry: &TopicEntry,
        start: u64,
    ) -> Result<(), ControlError> {
        let stored = self.meta.stored(key, partition).await?;
        if let Some(t) = entry.traffic.get(partition as usize) {
            t.log_start.store(start, Ordering::Relaxed);
            t.stored_bytes.store(stored.bytes, Ordering::Relaxed);
            t.stored_objects.store(stored.objects, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Until the agent stops: a retention pass every `every` (the first one
/// `every` after the start), each followed by a compaction pass when
/// compaction is on (`--compaction-target-bytes`).
///
/// # Cancellation
/// Stopping it between passes loses nothing; within one, a log start the
/// store moved is told to its shard at the next lease acquisition, and a
/// compacted object written but not switched to is claimed by the sweep.
pub(super) async fn run_retention(shared: Arc<Shared>, every: Duration) {
    let policy = shared.config.retention.compaction();
    let budget = shared.config.retention.compaction_bytes_per_pass;
    let mut compactor = Compactor::default();
    while !shared.stop.load(Ordering::Acquire) {
        tokio::time::sleep(every).await;
        shared.retention_pass().await;
        if let Some(policy) = &policy {
            shared.compaction_pass(&mut compactor, policy, budget).await;
        }
    }
}
