//! Key compaction on the control thread (`cleanup.policy=compact`): in the
//! compaction pass, a held partition of a compacted topic is cleaned when
//! new ranges were committed since its last cleaning (or a tombstone
//! waits for its `delete.retention.ms`): every committed range is read
//! and checked, the latest record of each key found, and the ranges that
//! lose records (or sit in small or mostly dead objects) are rewritten
//! into objects of the partition's own, switched to in the chunk index
//! as object compaction does (`control/compaction.rs`), offsets unchanged.
//! A partition whose committed ranges span more than
//! `--compaction-bytes-per-pass` is not cleaned (its bytes are counted as
//! pending); the records of the local log (not committed yet) are cleaned
//! once committed.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::compaction::keys::{clean_frame, frames, Cleaned, Latest};
use crate::compaction::plan::worth_moving;
use crate::compaction::CompactionPolicy;
use crate::ids::PartitionId;
use crate::messages::ControlError;
use crate::metastore::compaction::CompactedFrom;
use crate::runtime::clock::now_ms;

use super::compaction::{Compactor, WEIGH_LIMIT};
use super::state::Shared;

impl Shared {
    /// Cleans one held partition of a compacted topic whose tombstones
    /// stay `delete_retention_ms`, reading at most what is `left` of the
    /// pass's budget. `Ok(false)` when the partition is too large to clean
    /// (its bytes are added to `pending`): object compaction then gathers
    /// its small objects as for any topic.
    pub(super) async fn clean_partition(
        &self,
        c: &mut Compactor,
        id: &PartitionId,
        policy: &CompactionPolicy,
        delete_retention_ms: u64,
        left: &mut u64,
        pending: &mut u64,
    ) -> Result<bool, ControlError> {
        let (key, partition) = (&id.topic, id.partition);
        let ranges = self
            .meta
            .ranges_to_weigh(key, partition, 0, WEIGH_LIMIT)
            .await?;
        let Some(end) = ranges.last().map(|r| r.end_offset) else {
            return Ok(true);
        };
        if c.cleaned.get(id) == Some(&end) {
            return Ok(true);
        }
        let read: u64 = ranges.iter().map(|r| r.len).sum();
        if read > *left || ranges.len() == WEIGH_LIMIT as usize {
            *pending += ranges.iter().map(|r| r.bytes).sum::<u64>();
            tracing::debug!(
                topic = key.name(),
                partition,
                bytes = read,
                "the partition is larger than what this compaction pass may read; not cleaned"
            );
            return Ok(false);
        }
        *left -= read;
        let mut own = Vec::with_capacity(ranges.len());
        let mut latest = Latest::default();
        for src in &ranges {
            let frames_of_range = Bytes::from(self.read_own_frames(key, partition, src).await?);
            for (frame, at) in frames(&frames_of_range) {
                latest
                    .note(&frames_of_range.slice_ref(&frame[at..]))
                    .map_err(ControlError::Corrupt)?;
            }
            own.push(frames_of_range);
        }
        let cutoff =
            now_ms().saturating_sub(i64::try_from(delete_retention_ms).unwrap_or(i64::MAX));
        // Each range cleaned: its new bytes when they differ or its object
        // is worth leaving; consecutive ones go into one object.
        let mut group: Vec<(CompactedFrom, Vec<u8>)> = Vec::new();
        let mut group_bytes = 0u64;
        let mut removed = 0u64;
        let mut all_switched = true;
        for (src, bytes) in ranges.into_iter().zip(own) {
            let mut out = Vec::with_capacity(bytes.len());
            let mut dropped = 0u32;
            for (frame, at) in frames(&bytes) {
                match clean_frame(
                    &bytes.slice_ref(frame),
                    at,
                    key.as_str(),
                    partition,
                    &latest,
                    cutoff,
                )
                .map_err(ControlError::Corrupt)?
                {
                    Cleaned::Whole => out.extend_from_slice(frame),
                    Cleaned::Rewritten { frame, dropped: d } => {
                        out.extend_from_slice(&frame);
                        dropped += d;
                    }
                }
            }
            let rewrite = dropped > 0 || worth_moving(&src, policy);
            let full = group_bytes + out.len() as u64 > policy.target_bytes;
            if !rewrite || (full && !group.is_empty()) {
                all_switched &= self.write_group(c, id, std::mem::take(&mut group)).await?;
                group_bytes = 0;
            }
            if rewrite {
                removed += u64::from(dropped);
                group_bytes += out.len() as u64;
                group.push((src, out));
            }
        }
        all_switched &= self.write_group(c, id, group).await?;
        self.metrics
            .control
            .records_compacted_away
            .fetch_add(removed, Ordering::Relaxed);
        // Cleaned up to `end` unless a switch gave up, or tombstones wait
        // for their time.
        if all_switched && !latest.has_tombstones() {
            c.cleaned.insert(id.clone(), end);
        }
        Ok(true)
    }
}
