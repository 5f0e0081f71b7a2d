//! The partition set: each partition's offsets (next, high watermark, log
//! start), batch index, producer table and waiters, and the shard-wide
//! least-recently-used order of producers that bounds how many are
//! remembered. Data and its rules only; the API acting on it is
//! `partition`, and it knows nothing of files or the commit queue.

use std::collections::HashMap;

use futures::channel::oneshot;

use crate::batch::ProducerInfo;
use crate::index::OffsetIndex;
use crate::producers::{ProducerLru, ProducerTable};

/// One partition of the log.
#[derive(Default)]
pub(super) struct PartitionLog {
    pub(super) next_offset: u64,
    pub(super) high_watermark: u64,
    pub(super) log_start: u64,
    pub(super) index: OffsetIndex,
    pub(super) producers: ProducerTable,
    pub(super) data_waiters: Vec<oneshot::Sender<()>>,
    /// Appends that arrived ahead of their producer's sequence, woken by
    /// every append to the partition.
    pub(super) seq_waiters: Vec<oneshot::Sender<()>>,
}

impl PartitionLog {
    /// Forgets every local batch and producer entry: the partition
    /// continues at `offset`, everything before it lives elsewhere.
    pub(super) fn restart_at(&mut self, offset: u64) {
        self.index = OffsetIndex::default();
        self.producers = ProducerTable::default();
        self.next_offset = offset;
        self.high_watermark = offset;
        self.log_start = offset;
    }

    /// Remembers that `producer` appended `count` records at `base_offset`
    /// (durable at `lsn`; 0 for batches restored from elsewhere) to this
    /// partition (`at`: its topic and number), as its most recent use in
    /// `lru`. Call [`PartitionSet::evict_excess`] after.
    pub(super) fn remember(
        &mut self,
        lru: &mut ProducerLru,
        at: (&str, u32),
        producer: ProducerInfo,
        count: u32,
        base_offset: u64,
        lsn: u64,
    ) {
        let tick = lru.next_tick();
        if let Some(previous) = self
            .producers
            .record(producer, count, base_offset, lsn, tick)
        {
            lru.touched(at.0, at.1, producer.producer_id, previous, tick);
        }
    }

    /// Wakes the appends waiting for their producer's turn.
    pub(super) fn wake_sequence_waiters(&mut self) {
        for w in self.seq_waiters.drain(..) {
            let _ = w.send(());
        }
    }

    /// Wakes the fetches waiting for data; returns how many there were.
    pub(super) fn wake_data_waiters(&mut self) -> usize {
        let n = self.data_waiters.len();
        for d in self.data_waiters.drain(..) {
            let _ = d.send(());
        }
        n
    }
}

/// Partitions by topic, then partition number.
pub(super) type Partitions = HashMap<String, HashMap<u32, PartitionLog>>;

/// The partitions of one shard log and their producers' recency.
pub(super) struct PartitionSet {
    map: Partitions,
    lru: ProducerLru,
}

impl PartitionSet {
    /// The partitions and producer order recovery rebuilt.
    pub(super) fn new(map: Partitions, lru: ProducerLru) -> PartitionSet {
        PartitionSet { map, lru }
    }

    pub(super) fn find(&self, topic: &str, partition: u32) -> Option<&PartitionLog> {
        self.map.get(topic).and_then(|ps| ps.get(&partition))
    }

    pub(super) fn find_mut(&mut self, topic: &str, partition: u32) -> Option<&mut PartitionLog> {
        self.map
            .get_mut(topic)
            .and_then(|ps| ps.get_mut(&partition))
    }

    /// Makes a partition known (idempotent); returns it with the shard's
    /// producer recency, to update both.
    pub(super) fn add(
        &mut self,
        topic: &str,
        partition: u32,
    ) -> (&mut PartitionLog, &mut ProducerLru) {
        let p = self
            .map
            .entry(topic.to_owned())
            .or_default()
            .entry(partition)
            .or_default();
        (p, &mut self.lru)
    }

    /// A known partition with the shard's producer recency, to update both
    /// with one lookup ([`PartitionLog::remember`]).
    pub(super) fn find_mut_with_lru(
        &mut self,
        topic: &str,
        partition: u32,
    ) -> Option<(&mut PartitionLog, &mut ProducerLru)> {
        let p = self
            .map
            .get_mut(topic)
            .and_then(|ps| ps.get_mut(&partition))?;
        Some((p, &mut self.lru))
    }

    /// Puts a partition in, replacing any of the same name.
    pub(super) fn insert(&mut self, topic: &str, partition: u32, log: PartitionLog) {
        self.map
            .entry(topic.to_owned())
            .or_default()
            .insert(partition, log);
    }

    /// Forgets every partition of `topic`, returning them.
    pub(super) fn remove_topic(&mut self, topic: &str) -> Option<HashMap<u32, PartitionLog>> {
        self.map.remove(topic)
    }

    /// Every partition, by topic.
    pub(super) fn topics(&self) -> impl Iterator<Item = (&String, &HashMap<u32, PartitionLog>)> {
        self.map.iter()
    }

    /// Every partition, mutably.
    pub(super) fn each_mut(&mut self) -> impl Iterator<Item = &mut PartitionLog> {
        self.map.values_mut().flat_map(HashMap::values_mut)
    }

    /// Takes the partitions out (recovery replaces them).
    pub(super) fn take(&mut self) -> Partitions {
        std::mem::take(&mut self.map)
    }

    /// [`PartitionLog::remember`] for `topic/partition`; does nothing for
    /// an unknown partition. Call [`PartitionSet::evict_excess`] after.
    pub(super) fn remember(
        &mut self,
        topic: &str,
        partition: u32,
        producer: ProducerInfo,
        count: u32,
        base_offset: u64,
        lsn: u64,
    ) {
        if let Some((p, lru)) = self.find_mut_with_lru(topic, partition) {
            p.remember(lru, (topic, partition), producer, count, base_offset, lsn);
        }
    }

    /// Forgets the least recently used producers while the shard remembers
    /// more than its bound.
    pub(super) fn evict_excess(&mut self) {
        while let Some((topic, partition, id, tick)) = self.lru.pop_excess() {
            if let Some(p) = self.find_mut(&topic, partition) {
                p.producers.evict(id, tick);
            }
        }
    }

    /// Producers remembered over all partitions.
    pub(super) fn producer_count(&self) -> usize {
        self.lru.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn producer(id: i64, seq: i32) -> ProducerInfo {
        ProducerInfo {
            producer_id: id,
            producer_epoch: 0,
            base_sequence: seq,
        }
    }

    #[test]
    fn producers_past_the_bound_are_forgotten_least_recent_first() {
        let mut s = PartitionSet::new(Partitions::default(), ProducerLru::new(2));
        s.add("t", 0);
        s.add("t", 1);
        s.remember("t", 0, producer(1, 0), 1, 0, 1);
        s.remember("t", 1, producer(2, 0), 1, 0, 2);
        s.remember("t", 0, producer(1, 1), 1, 1, 3);
        s.remember("t", 0, producer(3, 0), 1, 2, 4);
        s.evict_excess();
        assert_eq!(s.producer_count(), 2);
        let p1 = s.find("t", 1).map(|p| p.producers.len());
        assert_eq!(p1, Some(0), "producer 2 was used least recently");
        assert_eq!(s.find("t", 0).map(|p| p.producers.len()), Some(2));
    }

    #[test]
    fn unknown_partitions_remember_nothing() {
        let mut s = PartitionSet::new(Partitions::default(), ProducerLru::new(10));
        s.remember("t", 0, producer(1, 0), 1, 0, 1);
        assert_eq!(s.producer_count(), 0);
        assert!(s.find("t", 0).is_none());
        s.add("t", 0);
        s.add("t", 0);
        assert_eq!(s.topics().count(), 1);
        assert!(s.remove_topic("t").is_some());
        assert!(s.find("t", 0).is_none());
    }
}
