//! Idempotent-producer table of one partition: the last batches' sequence
//! ranges per producer id, so a re-sent batch is answered with its original
//! offsets and a gap or a stale epoch is refused. Pure bookkeeping: no I/O.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::batch::ProducerInfo;

pub use crate::batch::REMEMBERED_BATCHES;

/// A remembered batch as it travels outside the table: into the metadata
/// store with each committed range, and back into a new owner's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RememberedBatch {
    pub producer: ProducerInfo,
    pub record_count: u32,
    pub base_offset: u64,
}

impl From<&crate::batch::BatchHeader> for RememberedBatch {
    fn from(h: &crate::batch::BatchHeader) -> Self {
        RememberedBatch {
            producer: h.producer,
            record_count: h.record_count,
            base_offset: h.base_offset,
        }
    }
}

/// A batch remembered for deduplication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqEntry {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: u64,
    /// Log position (bytes appended to the shard's WAL) at the end of the batch.
    pub lsn: u64,
}

#[derive(Debug, Default)]
struct ProducerState {
    epoch: i16,
    batches: VecDeque<SeqEntry>,
    /// When the producer last appended, on its shard's [`ProducerLru`] clock.
    tick: u64,
}

/// What to do with an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqCheck {
    /// New batch: append it.
    Append,
    /// Already appended: answer with the original entry.
    Duplicate(SeqEntry),
}

/// Why a batch is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SeqError {
    #[error("producer {producer_id} epoch {got} is fenced by epoch {current}")]
    Fenced {
        producer_id: i64,
        current: i16,
        got: i16,
    },
    #[error("out-of-order sequence for producer {producer_id}: expected {expected}, got {got}")]
    OutOfOrder {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
}

impl SeqError {
    /// An out-of-order batch whose predecessors may still arrive (its
    /// sequence is past the expected one): worth waiting for briefly.
    pub fn is_ahead(&self) -> bool {
        match *self {
            SeqError::OutOfOrder { expected, got, .. } => got.wrapping_sub(expected) > 0,
            SeqError::Fenced { .. } => false,
        }
    }
}

/// Per-partition producer state.
#[derive(Debug, Default)]
pub struct ProducerTable {
    producers: HashMap<i64, ProducerState>,
}

impl ProducerTable {
    /// Decides whether a batch of `count` records from `info` is new, a
    /// duplicate, or refused.
    ///
    /// A producer id not seen before (or a new epoch) may start at any
    /// sequence, except that a producer with several batches in flight says
    /// which of them is the oldest (`oldest`: the lowest sequence it has no
    /// answer for): only that one may start, so requests that overtook it
    /// on the way cannot be appended before it.
    pub fn check(
        &self,
        info: ProducerInfo,
        count: u32,
        oldest: Option<i32>,
    ) -> Result<SeqCheck, SeqError> {
        if info.producer_id == 0 {
            return Ok(SeqCheck::Append);
        }
        let start = || match oldest {
            Some(o) if o != info.base_sequence => Err(SeqError::OutOfOrder {
                producer_id: info.producer_id,
                expected: o,
                got: info.base_sequence,
            }),
            _ => Ok(SeqCheck::Append),
        };
        let Some(state) = self.producers.get(&info.producer_id) else {
            return start();
        };
        if info.producer_epoch < state.epoch {
            return Err(SeqError::Fenced {
                producer_id: info.producer_id,
                current: state.epoch,
                got: info.producer_epoch,
            });
        }
        if info.producer_epoch > state.epoch {
            return start();
        }
        let last_seq = last_seq(info.base_sequence, count);
        if let Some(e) = state
            .batches
            .iter()
            .find(|e| e.first_seq == info.base_sequence && e.last_seq == last_seq)
        {
            return Ok(SeqCheck::Duplicate(*e));
        }
        let expected = state
            .batches
            .back()
            .map_or(info.base_sequence, |e| e.last_seq.wrapping_add(1));
        if info.base_sequence != expected {
            // The producer vouches that every batch before this one was
            // answered (it is its oldest unanswered batch), yet this table
            // never saw them: they were acknowledged by a leader whose
            // unshipped writes were then lost (an agent away past its
            // lease TTL, the documented limit of ack `durable`). They can
            // never arrive; refusing would stall the partition until the
            // batch's delivery timeout.
            if info.base_sequence.wrapping_sub(expected) > 0 && oldest == Some(info.base_sequence) {
                tracing::warn!(
                    producer_id = info.producer_id,
                    expected,
                    got = info.base_sequence,
                    "a producer continues past batches this partition never received (acknowledged by an earlier leader and lost with its lease)"
                );
                return Ok(SeqCheck::Append);
            }
            return Err(SeqError::OutOfOrder {
                producer_id: info.producer_id,
                expected,
                got: info.base_sequence,
            });
        }
        Ok(SeqCheck::Append)
    }

    /// The remembered batches that end at or before `end_offset`, oldest
    /// first per producer, of the producers that appended at or after
    /// `from` (what a new owner needs once the log in `from..end_offset` is
    /// committed elsewhere; other producers' state was stored before).
    pub fn snapshot(&self, from: u64, end_offset: u64) -> Vec<RememberedBatch> {
        let mut out = Vec::new();
        for (&producer_id, state) in &self.producers {
            if !state.batches.iter().any(|b| b.base_offset >= from) {
                continue;
            }
            for b in &state.batches {
                let count = b.last_seq.wrapping_sub(b.first_seq) as u32 + 1;
                if b.base_offset + u64::from(count) <= end_offset {
                    out.push(RememberedBatch {
                        producer: ProducerInfo {
                            producer_id,
                            producer_epoch: state.epoch,
                            base_sequence: b.first_seq,
                        },
                        record_count: count,
                        base_offset: b.base_offset,
                    });
                }
            }
        }
        out
    }

    /// Remembers an appended batch, stamped `tick` (see [`ProducerLru`]).
    /// Returns the producer's previous stamp (`Some(None)` for a producer
    /// new to the table), or `None` when nothing was remembered (producer
    /// id 0: not idempotent).
    pub fn record(
        &mut self,
        info: ProducerInfo,
        count: u32,
        base_offset: u64,
        lsn: u64,
        tick: u64,
    ) -> Option<Option<u64>> {
        if info.producer_id == 0 {
            return None;
        }
        let mut previous = None;
        let state = self
            .producers
            .entry(info.producer_id)
            .and_modify(|s| previous = Some(s.tick))
            .or_default();
        state.tick = tick;
        if info.producer_epoch != state.epoch {
            state.epoch = info.producer_epoch;
            state.batches.clear();
        }
        state.batches.push_back(SeqEntry {
            first_seq: info.base_sequence,
            last_seq: last_seq(info.base_sequence, count),
            base_offset,
            lsn,
        });
        while state.batches.len() > REMEMBERED_BATCHES {
            state.batches.pop_front();
        }
        Some(previous)
    }

    /// Forgets producer `producer_id` if it has not appended since `tick`.
    pub fn evict(&mut self, producer_id: i64, tick: u64) {
        if self
            .producers
            .get(&producer_id)
            .is_some_and(|s| s.tick == tick)
        {
            self.producers.remove(&producer_id);
        }
    }

    /// Producers remembered.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

/// The order in which one shard's producers (over all its partitions) last
/// appended, so the shard can bound how many it remembers: past
/// `max` the least recently used one is forgotten. A forgotten producer's
/// next batch is taken as a new producer's (any sequence may start it,
/// subject to `oldest_sequence`), so only retries of its batches from
/// before it was forgotten lose deduplication.
#[derive(Debug)]
pub struct ProducerLru {
    max: usize,
    clock: u64,
    order: BTreeMap<u64, (String, u32, i64)>,
}

impl ProducerLru {
    /// Remembers at most `max` producers (at least 1).
    pub fn new(max: usize) -> Self {
        ProducerLru {
            max: max.max(1),
            clock: 0,
            order: BTreeMap::new(),
        }
    }

    /// The stamp for the next [`ProducerTable::record`].
    pub fn next_tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Notes that `producer_id` of `topic/partition` appended at `tick`,
    /// after `record` answered `previous`.
    pub fn touched(
        &mut self,
        topic: &str,
        partition: u32,
        producer_id: i64,
        previous: Option<u64>,
        tick: u64,
    ) {
        let key = match previous.and_then(|t| self.order.remove(&t)) {
            Some(k) => k,
            None => (topic.to_owned(), partition, producer_id),
        };
        self.order.insert(tick, key);
    }

    /// The least recently used producer to forget, while more than `max`
    /// are remembered: (topic, partition, producer id, its stamp).
    pub fn pop_excess(&mut self) -> Option<(String, u32, i64, u64)> {
        if self.order.len() <= self.max {
            return None;
        }
        let (tick, (topic, partition, id)) = self.order.pop_first()?;
        Some((topic, partition, id, tick))
    }

    /// Producers remembered (entries of removed topics count until they are
    /// the oldest).
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

fn last_seq(base: i32, count: u32) -> i32 {
    base.wrapping_add(count.max(1) as i32 - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_restores_deduplication_up_to_its_end() {
        let info = |seq| ProducerInfo {
            producer_id: 7,
            producer_epoch: 2,
            base_sequence: seq,
        };
        let mut t = ProducerTable::default();
        t.record(info(0), 10, 100, 0, 0);
        t.record(info(10), 10, 110, 0, 0);
        t.record(info(20), 10, 120, 0, 0);
        // Only the batches ending at or before offset 120 are committed.
        let snap = t.snapshot(0, 120);
        assert_eq!(snap.len(), 2);
        // A producer that appended nothing since offset 130 is left out.
        assert!(t.snapshot(130, 200).is_empty());
        let mut restored = ProducerTable::default();
        for b in &snap {
            restored.record(b.producer, b.record_count, b.base_offset, 0, 0);
        }
        match restored.check(info(10), 10, None) {
            Ok(SeqCheck::Duplicate(e)) => assert_eq!(e.base_offset, 110),
            other => panic!("retry not recognised: {other:?}"),
        }
        assert_eq!(restored.check(info(20), 10, None), Ok(SeqCheck::Append));
    }

    fn p(seq: i32) -> ProducerInfo {
        ProducerInfo {
            producer_id: 9,
            producer_epoch: 1,
            base_sequence: seq,
        }
    }

    #[test]
    fn duplicates_gaps_and_fencing() {
        let mut t = ProducerTable::default();
        assert_eq!(t.check(p(0), 10, None), Ok(SeqCheck::Append));
        t.record(p(0), 10, 100, 1, 0);
        assert_eq!(t.check(p(10), 5, None), Ok(SeqCheck::Append));
        t.record(p(10), 5, 110, 2, 0);
        match t.check(p(0), 10, None) {
            Ok(SeqCheck::Duplicate(e)) => assert_eq!(e.base_offset, 100),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            t.check(p(20), 1, None),
            Err(SeqError::OutOfOrder {
                producer_id: 9,
                expected: 15,
                got: 20
            })
        );
        let old = ProducerInfo {
            producer_epoch: 0,
            ..p(15)
        };
        assert!(matches!(
            t.check(old, 1, None),
            Err(SeqError::Fenced { .. })
        ));
        // Only the last REMEMBERED_BATCHES batches are remembered.
        for i in 0..=REMEMBERED_BATCHES as i32 {
            t.record(p(15 + i), 1, 115 + i as u64, 3, 0);
        }
        assert!(t.check(p(10), 5, None).is_err());
        assert!(matches!(
            t.check(p(20), 1, None),
            Ok(SeqCheck::Duplicate(_))
        ));
    }

    #[test]
    fn only_the_oldest_batch_in_flight_may_start_a_producer() {
        let mut t = ProducerTable::default();
        // Batches 0..10 and 10..15 are in flight; the second overtook the first.
        let err = t.check(p(10), 5, Some(0)).unwrap_err();
        assert!(err.is_ahead(), "{err:?}");
        assert_eq!(t.check(p(0), 10, Some(0)), Ok(SeqCheck::Append));
        t.record(p(0), 10, 100, 1, 0);
        assert_eq!(t.check(p(10), 5, Some(0)), Ok(SeqCheck::Append));
        // Behind the expected sequence and not remembered: never appendable.
        t.record(p(10), 5, 110, 2, 0);
        let behind = t.check(p(12), 1, None).unwrap_err();
        assert!(!behind.is_ahead());
        // Ahead of the table, but the producer says every earlier batch was
        // answered (they were acknowledged by a leader whose writes were
        // lost): the gap can never fill, so it is appended at once.
        assert_eq!(t.check(p(30), 1, Some(30)), Ok(SeqCheck::Append));
        // Ahead with an earlier batch still unanswered: refused (waited for).
        assert!(t.check(p(30), 1, Some(20)).unwrap_err().is_ahead());
        assert!(t.check(p(30), 1, None).unwrap_err().is_ahead());
        // Without `oldest` (a client with one batch in flight) any start goes.
        assert_eq!(
            ProducerTable::default().check(p(7), 1, None),
            Ok(SeqCheck::Append)
        );
    }
}
