//! Partitions of the log: making them known and forgetting them, their
//! offsets and log start (moved past what object storage holds, or reset
//! after a lease changed hands), and their idempotent-producer state.
//! Queues restart frames through `append`; must not write files.

use super::error::LogError;
use super::state::State;
use super::ShardLog;
use crate::producers::RememberedBatch;

pub(super) fn unknown(topic: &str, partition: u32) -> LogError {
    LogError::UnknownPartition {
        topic: topic.to_owned(),
        partition,
    }
}

impl ShardLog {
    /// Makes a partition known to the log (idempotent). Appends to unknown
    /// partitions are refused.
    pub fn add_partition(&self, topic: &str, partition: u32) {
        self.inner
            .state
            .borrow_mut()
            .partitions
            .add(topic, partition);
    }

    /// Forgets every partition of `topic`. Its data stays in the WAL until the
    /// segments are removed; callers use a new topic key when re-creating it.
    pub fn remove_topic(&self, topic: &str) {
        let mut st = self.inner.state.borrow_mut();
        if let Some(parts) = st.partitions.remove_topic(topic) {
            for (_, mut p) in parts {
                let woken = p.wake_data_waiters();
                self.waiters_changed(-(woken as i64));
            }
        }
    }

    /// Partitions the log holds, with their high watermarks.
    pub fn partitions(&self) -> Vec<(String, u32, u64)> {
        let st = self.inner.state.borrow();
        let mut v: Vec<_> = st
            .partitions
            .topics()
            .flat_map(|(t, ps)| {
                ps.iter()
                    .map(move |(p, l)| (t.clone(), *p, l.high_watermark))
            })
            .collect();
        v.sort();
        v
    }

    /// High watermark of a partition (next offset to become durable), if known.
    pub fn high_watermark(&self, topic: &str, partition: u32) -> Option<u64> {
        let st = self.inner.state.borrow();
        st.partitions
            .find(topic, partition)
            .map(|p| p.high_watermark)
    }

    /// First offset of a partition still in the local log.
    pub fn log_start(&self, topic: &str, partition: u32) -> Option<u64> {
        let st = self.inner.state.borrow();
        st.partitions.find(topic, partition).map(|p| p.log_start)
    }

    /// The segment holding a partition's last durable local batch, if any.
    pub fn last_segment_of(&self, topic: &str, partition: u32) -> Option<u64> {
        let st = self.inner.state.borrow();
        let p = st.partitions.find(topic, partition)?;
        p.index.last().map(|e| e.segment)
    }

    /// Makes a partition continue at `offset` when its data up to there lives
    /// elsewhere (object storage). If the local log ends before `offset`,
    /// its local batches are stale and forgotten. Returns whether anything
    /// changed.
    pub fn advance_start(&self, topic: &str, partition: u32, offset: u64) -> bool {
        let mut st = self.inner.state.borrow_mut();
        let Some(p) = st.partitions.find_mut(topic, partition) else {
            return false;
        };
        if p.next_offset >= offset {
            return false;
        }
        if !p.index.is_empty() {
            tracing::warn!(
                topic,
                partition,
                local_end = p.next_offset,
                committed_end = offset,
                "local log is behind object storage; forgetting its stale batches"
            );
        }
        drop(st);
        self.restart(topic, partition, offset);
        true
    }

    /// Makes a partition continue at exactly `offset` (the end of what
    /// object storage holds) after a lease changed hands: every local batch
    /// was written under an older lease and is forgotten — also when the
    /// local log happens to end at `offset` too, since another leader may
    /// have committed different batches at the same offsets — and reads
    /// below `offset` go to object storage. Returns whether the partition
    /// is known here.
    pub fn reset_to(&self, topic: &str, partition: u32, offset: u64) -> bool {
        let mut st = self.inner.state.borrow_mut();
        let Some(p) = st.partitions.find_mut(topic, partition) else {
            return false;
        };
        if p.next_offset > offset {
            tracing::warn!(
                topic,
                partition,
                local_end = p.next_offset,
                committed_end = offset,
                "dropping local batches written under an older lease"
            );
        }
        drop(st);
        self.restart(topic, partition, offset);
        true
    }

    /// Makes a known partition continue at `offset`, forgetting its local
    /// batches and producers; queues a restart frame when recovery could
    /// otherwise replay frames of it still on disk.
    fn restart(&self, topic: &str, partition: u32, offset: u64) {
        let mut st = self.inner.state.borrow_mut();
        let Some(p) = st.partitions.find_mut(topic, partition) else {
            return;
        };
        // Only frames still on disk (indexed, or appended and not yet
        // durable) could be replayed by recovery; a partition without any
        // needs no restart frame (and no sync for one).
        let on_disk = !p.index.is_empty() || p.next_offset != p.high_watermark;
        p.restart_at(offset);
        if on_disk {
            self.queue_restart(&mut st, topic, partition, offset);
        }
    }

    /// Replays producer state kept elsewhere (the metadata store, object
    /// storage), so retries of batches committed before a restart or a
    /// move stay idempotent. Batches are applied in offset order, each once.
    pub fn restore_producers(&self, topic: &str, partition: u32, batches: &[RememberedBatch]) {
        let mut batches = batches.to_vec();
        batches.sort_by_key(|b| (b.base_offset, b.producer.producer_id));
        batches.dedup_by_key(|b| (b.base_offset, b.producer.producer_id));
        let mut st = self.inner.state.borrow_mut();
        for b in batches {
            st.partitions.remember(
                topic,
                partition,
                b.producer,
                b.record_count,
                b.base_offset,
                0,
            );
        }
        st.partitions.evict_excess();
        self.publish_producers(&st);
    }

    pub(super) fn publish_producers(&self, st: &State) {
        self.inner.stats.producers.store(
            st.partitions.producer_count() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// The remembered batches, ending at or before `end_offset`, of the
    /// producers that appended in `from..end_offset` (stored with the range
    /// committed there).
    pub fn producer_snapshot(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        end_offset: u64,
    ) -> Vec<RememberedBatch> {
        let st = self.inner.state.borrow();
        st.partitions
            .find(topic, partition)
            .map(|p| p.producers.snapshot(from, end_offset))
            .unwrap_or_default()
    }
}
