//! Retention on the control thread: every `--retention-check-ms`, each
//! partition this agent holds moves its log start past the committed
//! ranges its topic's `retention.ms` and `retention.bytes` let go (in the
//! metadata store, under the lease epoch, deleting those ranges), and its
//! shard is told; DeleteRecords moves it by hand through the same call.
//! Deleting the chunk objects no range references any more is the sweep's
//! work, not this module's.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::now_ms;
use crate::ids::{PartitionId, TopicKey};
use crate::messages::{ControlError, ToShard};

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
    /// only). A partition whose store call fails is tried again next pass.
    pub(super) async fn retention_pass(&self) {
        let defaults = self.config.topic_defaults();
        for (
            PartitionId {
                topic: key,
                partition,
            },
            _,
        ) in self.leases.all()
        {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            let Some(entry) = self
                .catalog
                .get(key.name())
                .filter(|t| Some(t.id) == key.incarnation())
            else {
                continue;
            };
            let cutoff = entry
                .config
                .retention_ms(&defaults)
                .map(|ms| now_ms().saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX)));
            let max_bytes = entry.config.retention_bytes(&defaults);
            if cutoff.is_none() && max_bytes.is_none() {
                continue;
            }
            let moved = async {
                let Some(to) = self
                    .meta
                    .retention_point(&key, partition, cutoff, max_bytes)
                    .await?
                else {
                    return Ok(());
                };
                if to > self.meta.log_start(&key, partition).await? {
                    self.advance_log_start(&key, partition, to).await?;
                }
                Ok::<(), ControlError>(())
            };
            if let Err(e) = moved.await {
                tracing::warn!(topic = key.name(), partition, error = %e, "retention pass failed for the partition; trying again next pass");
            }
        }
    }
}

/// Until the agent stops: a retention pass every `every` (the first one
/// `every` after the start).
///
/// # Cancellation
/// Stopping it between passes loses nothing; within one, a log start the
/// store moved is told to its shard at the next lease acquisition.
pub(super) async fn run_retention(shared: Arc<Shared>, every: Duration) {
    while !shared.stop.load(Ordering::Acquire) {
        tokio::time::sleep(every).await;
        shared.retention_pass().await;
    }
}
