//! Taking a record or a `send_batch` batch: choosing its partition (given,
//! by key, or sticky for keyless records), taking buffer room, and appending
//! it to the partition's accumulator, or handing it back to wait in the
//! intake queue. Sends nothing.

use tokio::time::Instant;

use super::accumulator::ClosedBatch;
use super::delivery::Outcome;
use super::now_ms;
use super::sequencer::PartitionState;
use super::state::{Append, Failed, Inner, Item, State, TopicState};
use crate::error::Error;
use crate::partitioner::partition_for_key;

impl Inner {
    /// Appends a record to its partition's batch (or queues a `send_batch`
    /// batch behind it) if metadata is known and (unless `reserved`) buffer
    /// room is free right now; otherwise hands the item back (`Err`).
    ///
    /// A record that fails here (an unknown partition) is counted and
    /// moved to `failed`; the caller completes it once it let go of the
    /// state lock (`intake::complete_failed`).
    pub(super) fn try_append(
        &self,
        st: &mut State,
        item: Item,
        tx: Outcome,
        size: usize,
        reserved: bool,
        failed: &mut Failed,
    ) -> Append {
        let version = self.metadata.version();
        let topic = item.topic();
        let stale = st
            .topics
            .get(topic)
            .is_none_or(|t| t.metadata_version != version);
        if stale {
            let Some(routes) = self.metadata.topic(topic) else {
                return Append::NotNow(item, tx);
            };
            let t = st
                .topics
                .entry(topic.to_owned())
                .or_insert_with(|| TopicState {
                    partition_count: 0,
                    metadata_version: 0,
                    sticky: None,
                    partitions: Vec::new(),
                });
            t.partition_count = routes.partitions.len() as u32;
            t.metadata_version = version;
        }
        let Some(t) = st.topics.get_mut(topic) else {
            return Append::NotNow(item, tx); // unreachable: inserted just above
        };
        let n = t.partition_count;
        let chosen = match &item {
            Item::Record(r) => (r.partition, r.key.as_ref()),
            Item::Batch { partition, .. } => (Some(*partition), None),
        };
        let partition = match chosen {
            (Some(p), _) if p >= n => {
                let err = Error::UnknownPartition {
                    topic: topic.to_owned(),
                    partition: p,
                    partitions: n,
                };
                if reserved {
                    self.memory.add_permits(size);
                }
                self.fail_one(st, tx, err, failed);
                return Append::Done;
            }
            (Some(p), _) => p,
            (None, Some(k)) => partition_for_key(k, n),
            (None, None) => match t.sticky {
                Some(p) if p < n => p,
                _ => {
                    let p = rand::random::<u32>() % n.max(1);
                    t.sticky = Some(p);
                    p
                }
            },
        };
        if !reserved && !self.take_room(size) {
            return Append::NotNow(item, tx);
        }
        let limits = self.limits;
        if t.partitions.len() <= partition as usize {
            t.partitions.resize_with(partition as usize + 1, || None);
        }
        let ps =
            t.partitions[partition as usize].get_or_insert_with(|| PartitionState::new(limits));
        let record = match item {
            Item::Record(r) => r,
            Item::Batch {
                builder, timestamp, ..
            } => {
                ps.acc.push_closed(ClosedBatch {
                    builder,
                    completions: vec![(tx, timestamp)],
                    reserved: size,
                    created: Instant::now(),
                });
                self.wake_sender.notify_one();
                return Append::Done;
            }
        };
        let was_idle = ps.acc.deadline().is_none();
        let ts = record.timestamp.unwrap_or_else(now_ms);
        let closed = ps.acc.append(
            record.key.as_deref(),
            &record.value,
            ts,
            &record.headers,
            size,
            (tx, ts),
            Instant::now,
        );
        if closed && record.partition.is_none() && record.key.is_none() && n > 1 {
            // Keyless records move to another partition once their batch closes.
            t.sticky = Some((partition + 1 + rand::random::<u32>() % (n - 1)) % n);
        }
        if closed || was_idle {
            self.wake_sender.notify_one();
        }
        Append::Done
    }
}
