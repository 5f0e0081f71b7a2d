//! Idempotence and order per partition: the producer id and sequence a
//! batch is sent under, the batches in flight, and when a partition must
//! hold its next batch. Data and rules only: waiting for earlier batches
//! before a retry is `request`'s, taking a producer id `producer_id`'s.

use std::collections::VecDeque;

use streamhouse_proto::batch::{BatchBuilder, ProducerInfo};

use super::accumulator::{BatchLimits, PartitionAccumulator};
use super::delivery::Completion;

pub(super) struct PartitionState {
    pub(super) acc: PartitionAccumulator<Completion>,
    /// Batches sent and not yet answered, in dispatch order: (producer id,
    /// base sequence); (0, 0) without idempotence.
    pub(super) in_flight: VecDeque<(i64, i32)>,
    pub(super) next_seq: i32,
    pub(super) pid: i64,
    /// A producer id under which a batch of this partition failed for
    /// good: later batches under it can never follow the gap. 0 = none.
    pub(super) broken_pid: i64,
    /// Batches in flight that failed at least once and are being retried.
    /// Nothing new is sent meanwhile: batches sent after a retried one
    /// could otherwise push it out of the agent's deduplication window
    /// before its retry arrives.
    pub(super) retrying: usize,
}

impl PartitionState {
    /// A partition with nothing sent yet, batching within `limits`.
    pub(super) fn new(limits: BatchLimits) -> PartitionState {
        PartitionState {
            acc: PartitionAccumulator::new(limits),
            in_flight: VecDeque::new(),
            next_seq: 0,
            pid: 0,
            broken_pid: 0,
            retrying: 0,
        }
    }

    /// Stamps `batch` with producer id `pid` (id, epoch) and this
    /// partition's next sequence, and returns the (id, base sequence) it is
    /// sent under. A new producer id starts the partition's sequence at 0.
    pub(super) fn next_sequence(
        &mut self,
        pid: (i64, i16),
        batch: &mut BatchBuilder,
    ) -> (i64, i32) {
        if self.pid != pid.0 {
            self.pid = pid.0;
            self.next_seq = 0;
        }
        let seq = (pid.0, self.next_seq);
        batch.set_producer(ProducerInfo {
            producer_id: pid.0,
            producer_epoch: pid.1,
            base_sequence: self.next_seq,
        });
        self.next_seq = self.next_seq.wrapping_add(batch.len() as i32);
        seq
    }

    /// Whether the batch (`pid`, `seq`) is the oldest unanswered one of
    /// its producer id here.
    pub(super) fn is_oldest(&self, pid: i64, seq: i32) -> bool {
        self.oldest(pid).is_none_or(|s| s == seq)
    }

    /// The oldest unanswered sequence under `pid`.
    pub(super) fn oldest(&self, pid: i64) -> Option<i32> {
        self.in_flight
            .iter()
            .find(|(p, _)| *p == pid)
            .map(|&(_, s)| s)
    }
}

/// Whether a partition must hold its next batch although a request slot is
/// free: a batch in flight is being retried, batches of an old producer id
/// are still unanswered (a new id's first batch could be appended before
/// them), or a batch failed for good under the current id while a new id is
/// being fetched.
pub(super) fn must_wait(ps: &PartitionState, pid: i64, idempotent: bool, renewing: bool) -> bool {
    if !idempotent {
        return false;
    }
    ps.retrying > 0
        || (ps.pid != pid && !ps.in_flight.is_empty())
        || (renewing && ps.broken_pid == pid)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use streamhouse_proto::batch::{self, Codec};

    use super::*;

    fn partition() -> PartitionState {
        PartitionState::new(BatchLimits {
            max_records: 10,
            max_bytes: 1 << 10,
            linger: Duration::from_millis(5),
            codec: Codec::None,
        })
    }

    fn batch_of(records: usize) -> BatchBuilder {
        let mut b = BatchBuilder::new(Codec::None, ProducerInfo::default());
        for i in 0..records {
            b.push(None, format!("r{i}").as_bytes(), 0, &[]);
        }
        b
    }

    #[test]
    fn sequences_advance_by_records_and_restart_with_a_new_producer_id() {
        let mut ps = partition();
        let mut first = batch_of(3);
        assert_eq!(ps.next_sequence((7, 1), &mut first), (7, 0));
        let header = batch::validate(&first.finish()).map(|h| h.producer);
        assert_eq!(
            header.ok(),
            Some(ProducerInfo {
                producer_id: 7,
                producer_epoch: 1,
                base_sequence: 0
            })
        );
        assert_eq!(ps.next_sequence((7, 1), &mut batch_of(2)), (7, 3));
        assert_eq!(ps.next_sequence((7, 1), &mut batch_of(1)), (7, 5));
        // A new producer id (after a batch failed for good) starts at 0.
        assert_eq!(ps.next_sequence((8, 0), &mut batch_of(4)), (8, 0));
        assert_eq!(ps.next_sequence((8, 0), &mut batch_of(1)), (8, 4));
    }

    #[test]
    fn a_partition_holds_its_next_batch_only_when_order_needs_it() {
        let mut ps = partition();
        assert!(!must_wait(&ps, 7, true, false));
        ps.pid = 7;
        ps.in_flight.push_back((7, 0));
        assert!(!must_wait(&ps, 7, true, false));
        // Batches of the old id are unanswered: a new id waits for them.
        assert!(must_wait(&ps, 8, true, false));
        // A batch in flight is being retried.
        ps.retrying = 1;
        assert!(must_wait(&ps, 7, true, false));
        ps.retrying = 0;
        // A batch failed for good under the current id, a new one is coming.
        ps.broken_pid = 7;
        assert!(must_wait(&ps, 7, true, true));
        assert!(!must_wait(&ps, 7, true, false));
        // Without idempotence nothing is held (one request in flight).
        ps.retrying = 1;
        assert!(!must_wait(&ps, 8, false, true));
        assert!(ps.is_oldest(7, 0));
        ps.in_flight.push_back((7, 3));
        assert!(!ps.is_oldest(7, 3));
        assert_eq!(ps.oldest(7), Some(0));
        assert_eq!(ps.oldest(9), None);
    }
}
