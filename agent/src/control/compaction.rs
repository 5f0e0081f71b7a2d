//! Object compaction on the control thread: after each retention pass,
//! each partition this agent holds has its ranges in small or mostly dead
//! chunk objects (see `compaction::plan`) rewritten into objects of its
//! own: the ranges' frames read with ranged GETs and checked, the new
//! object PUT under `compacted/`, then the chunk index switched to it in
//! one transaction under the partition's lease (only if every source range
//! is still as read). The old objects, once no range references them, are
//! the sweep's to delete after its grace, so reads already under way
//! finish; an object written but never switched to (a crash, a store
//! error) is claimed by the sweep as an orphan. At most
//! `--compaction-bytes-per-pass` bytes are read per pass.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::compaction::{own_frames, plan, CompactionPolicy, Rewrite, COMPACTED_PREFIX};
use crate::ids::{PartitionId, TopicKey};
use crate::messages::ControlError;
use crate::metastore::compaction::{CompactedFrom, RangeSwitch};
use crate::metastore::MetaError;
use crate::runtime::clock::now_ms;

use super::state::Shared;

/// Ranges of one partition weighed per pass: 2,000 (the next pass goes on
/// from the last one).
pub(super) const WEIGH_LIMIT: u32 = 2_000;

/// Where each held partition's next compaction pass starts weighing its
/// ranges (offset), where each partition of a compacted topic was cleaned
/// up to (`key_compaction`), and a sequence for new objects' keys.
#[derive(Debug, Default)]
pub(super) struct Compactor {
    cursors: HashMap<PartitionId, u64>,
    pub(super) cleaned: HashMap<PartitionId, u64>,
    pub(super) seq: u64,
}

impl Shared {
    /// One compaction pass over the partitions held here, reading at most
    /// `budget` bytes of source ranges. A partition whose compaction fails
    /// is tried again next pass; nothing it read is lost either way.
    pub(super) async fn compaction_pass(
        &self,
        c: &mut Compactor,
        policy: &CompactionPolicy,
        budget: u64,
    ) {
        let held = self.leases.all();
        c.cursors
            .retain(|id, _| held.iter().any(|(held, _)| held == id));
        c.cleaned
            .retain(|id, _| held.iter().any(|(held, _)| held == id));
        let mut left = budget;
        let mut pending = 0u64;
        for (id, _) in held {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            let config = self
                .catalog
                .get(id.topic.name())
                .filter(|t| Some(t.id) == id.topic.incarnation())
                .map(|t| t.config.clone());
            let Some(config) = config else { continue };
            let cleaned = if config.cleanup().compact {
                let retention = config.delete_retention_ms();
                self.clean_partition(c, &id, policy, retention, &mut left, &mut pending)
                    .await
            } else {
                Ok(false)
            };
            // A partition too large to clean still has its small objects
            // gathered.
            let done = if !matches!(cleaned, Ok(false)) {
                cleaned.map(|_| ())
            } else {
                let from = c.cursors.get(&id).copied().unwrap_or(0);
                self.compact_partition(c, &id, policy, from, (budget, &mut left), &mut pending)
                    .await
                    .map(|next| {
                        c.cursors.insert(id.clone(), next);
                    })
            };
            match done {
                Ok(()) => {}
                Err(e) => {
                    self.metrics
                        .control
                        .compaction_failures
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(topic = id.topic.name(), partition = id.partition, error = %e,
                        "compaction failed for the partition; trying again next pass");
                }
            }
        }
        self.metrics
            .control
            .compaction_pending_bytes
            .store(pending, Ordering::Relaxed);
    }

    /// Compacts the groups of one partition's ranges from offset `from`
    /// that what is `left` of the pass's `budget` allows; returns where its
    /// next pass starts. Bytes of the groups left for later are added to
    /// `pending`.
    async fn compact_partition(
        &self,
        c: &mut Compactor,
        id: &PartitionId,
        policy: &CompactionPolicy,
        from: u64,
        (budget, left): (u64, &mut u64),
        pending: &mut u64,
    ) -> Result<u64, ControlError> {
        let (key, partition) = (&id.topic, id.partition);
        let ranges = self
            .meta
            .ranges_to_weigh(key, partition, from, WEIGH_LIMIT)
            .await?;
        // Past the last range weighed (whose group may go on), or back to
        // the start once the partition's end is reached.
        let next = match ranges.last() {
            Some(r) if ranges.len() == WEIGH_LIMIT as usize => r.base_offset,
            _ => 0,
        };
        let groups = plan(&ranges, policy);
        for (i, group) in groups.iter().enumerate() {
            let read: u64 = group.iter().map(|r| r.len).sum();
            // The first group of a pass goes whatever its size, so that no
            // group waits for ever.
            if read > *left && *left < budget {
                *pending += groups[i..].iter().flatten().map(|r| r.bytes).sum::<u64>();
                return Ok(group[0].base_offset);
            }
            *left = left.saturating_sub(read);
            let mut read_group = Vec::with_capacity(group.len());
            for src in group {
                read_group.push((
                    src.clone(),
                    self.read_own_frames(key, partition, src).await?,
                ));
            }
            self.write_group(c, id, read_group).await?;
        }
        Ok(next)
    }

    /// A new object's key: `compacted/{topic id}/{partition}/{first
    /// offset}-{agent}-{ms}-{seq}.wal`, unique per agent and attempt.
    fn compacted_key(&self, key: &TopicKey, partition: u32, base_offset: u64, seq: u64) -> String {
        let agent: String = self
            .config
            .agent_id
            .chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' {
                    ch
                } else {
                    '_'
                }
            })
            .collect();
        format!(
            "{COMPACTED_PREFIX}{}/{partition}/{base_offset:020}-{agent}-{}-{seq}.wal",
            key.incarnation().unwrap_or(0),
            now_ms()
        )
    }

    /// A committed range's own frames, read with one ranged GET and
    /// checked (`compaction::own_frames`).
    pub(super) async fn read_own_frames(
        &self,
        key: &TopicKey,
        partition: u32,
        src: &CompactedFrom,
    ) -> Result<Vec<u8>, ControlError> {
        let data = self
            .store
            .get_range(&src.chunk_key, src.pos, src.len)
            .await
            .map_err(|e| ControlError::Unavailable(format!("reading {}: {e}", src.chunk_key)))?;
        own_frames(key.as_str(), partition, src, &data).map_err(ControlError::Corrupt)
    }

    /// Writes a group of ranges, each with the frames it is to hold, into
    /// one new object and switches the index to it; `true` when the group
    /// is empty or it switched, `false` when a source changed meanwhile
    /// (or the lease moved): the object was deleted again and nothing
    /// changed.
    pub(super) async fn write_group(
        &self,
        c: &mut Compactor,
        id: &PartitionId,
        group: Vec<(CompactedFrom, Vec<u8>)>,
    ) -> Result<bool, ControlError> {
        let Some(base_offset) = group.first().map(|(r, _)| r.base_offset) else {
            return Ok(true);
        };
        let mut w = Rewrite::default();
        let mut sources = Vec::with_capacity(group.len());
        for (src, frames) in group {
            w.push(&src, &frames);
            sources.push(src);
        }
        c.seq += 1;
        let object = self.compacted_key(&id.topic, id.partition, base_offset, c.seq);
        self.switch_rewrite(&id.topic, id.partition, &sources, w, object)
            .await
    }

    /// PUTs a rewritten group as `object` and switches the index of the
    /// `group`'s ranges to it. `Ok(false)`: a source changed meanwhile (or
    /// the lease moved), so the object was deleted again and nothing
    /// changed.
    async fn switch_rewrite(
        &self,
        key: &TopicKey,
        partition: u32,
        group: &[CompactedFrom],
        w: Rewrite,
        object: String,
    ) -> Result<bool, ControlError> {
        let epoch = self.held_epoch(key, partition).ok_or_else(|| {
            ControlError::Unavailable(format!(
                "the lease of {}/{partition} is not held here any more",
                key.name()
            ))
        })?;
        let size = w.data.len() as u64;
        self.store
            .put(&object, Bytes::from(w.data))
            .await
            .map_err(|e| ControlError::Unavailable(format!("writing {object}: {e}")))?;
        // Tests stop the agent here (fail point `compaction-switch`): the
        // object is written, the index does not name it.
        fail::fail_point!("compaction-switch");
        let switch = RangeSwitch {
            topic: key.clone(),
            partition,
            key: object,
            size,
            from: group.to_vec(),
            to: w.rows,
        };
        let switched = match self
            .meta
            .switch_ranges(&self.config.agent_id, epoch, &switch)
            .await
        {
            Ok(s) => s,
            Err(e @ MetaError::Fenced { .. }) => {
                self.drop_unswitched(&switch.key).await;
                return Err(e.into());
            }
            // Unknown whether it committed: the object stays; if no row
            // names it, the sweep claims it.
            Err(e) => return Err(e.into()),
        };
        if !switched {
            self.drop_unswitched(&switch.key).await;
            return Ok(false);
        }
        let m = &self.metrics.control;
        m.compactions.fetch_add(1, Ordering::Relaxed);
        m.compacted_bytes.fetch_add(size, Ordering::Relaxed);
        m.compacted_ranges
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        tracing::debug!(topic = key.name(), partition, object = %switch.key, ranges = group.len(),
            bytes = size, "ranges compacted into one object");
        Ok(true)
    }

    /// Deletes an object the index never named (best effort: the sweep
    /// claims what is left).
    async fn drop_unswitched(&self, object: &str) {
        if let Err(e) = self.store.delete(object).await {
            tracing::debug!(%object, error = %e, "cannot delete an unused compacted object; the sweep will");
        }
    }
}
