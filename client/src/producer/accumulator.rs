//! Per-partition record accumulator: records are encoded straight into the
//! partition's open batch, which closes at `max_records`, `max_bytes` or
//! `linger`, whichever comes first. Pure logic: time is passed in, nothing
//! here sleeps, sends or locks.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use streamhouse_proto::batch::{BatchBuilder, Codec, ProducerInfo};
use tokio::time::Instant;

/// When a batch closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Records per batch.
    pub max_records: usize,
    /// Encoded record bytes per batch (before compression).
    pub max_bytes: usize,
    /// How long the first record of a batch may wait for more.
    pub linger: Duration,
    /// Compression of closed batches.
    pub codec: Codec,
}

/// A closed batch with the completions of its records, in order.
pub struct ClosedBatch<T> {
    /// The encoded records.
    pub builder: BatchBuilder,
    /// One completion per record, in offset order.
    pub completions: Vec<T>,
    /// Bytes reserved from the producer's buffer for this batch.
    pub reserved: usize,
    /// When the first record was appended.
    pub created: Instant,
}

struct OpenBatch<T> {
    builder: BatchBuilder,
    completions: Vec<T>,
    reserved: usize,
    created: Instant,
}

/// The accumulator of one partition.
pub struct PartitionAccumulator<T> {
    limits: BatchLimits,
    open: Option<OpenBatch<T>>,
    closed: VecDeque<ClosedBatch<T>>,
}

/// Size a record is accounted at: its bytes plus per-record framing.
pub fn record_size(key: Option<&[u8]>, value: &[u8], headers: &[(String, Bytes)]) -> usize {
    key.map_or(0, <[u8]>::len)
        + value.len()
        + headers
            .iter()
            .map(|(k, v)| k.len() + v.len() + 4)
            .sum::<usize>()
        + 16
}

impl<T> PartitionAccumulator<T> {
    /// An empty accumulator closing batches at `limits`.
    pub fn new(limits: BatchLimits) -> Self {
        PartitionAccumulator {
            limits,
            open: None,
            closed: VecDeque::new(),
        }
    }

    /// Appends a record; `now` is read only when the record opens a new
    /// batch. Returns true when this closed a batch.
    #[allow(clippy::too_many_arguments)]
    pub fn append(
        &mut self,
        key: Option<&[u8]>,
        value: &[u8],
        timestamp: i64,
        headers: &[(String, Bytes)],
        size: usize,
        completion: T,
        now: impl FnOnce() -> Instant,
    ) -> bool {
        let mut closed = false;
        if let Some(open) = &self.open {
            if open.reserved + size > self.limits.max_bytes {
                self.close();
                closed = true;
            }
        }
        let limits = self.limits;
        let open = self.open.get_or_insert_with(|| OpenBatch {
            // Room for a full batch up front: no reallocation while filling.
            builder: BatchBuilder::with_capacity(
                limits.codec,
                ProducerInfo::default(),
                limits.max_bytes.min(8 << 20),
            ),
            completions: Vec::with_capacity(limits.max_records.min(1 << 16)),
            reserved: 0,
            created: now(),
        });
        open.builder.push(key, value, timestamp, headers);
        open.completions.push(completion);
        open.reserved += size;
        if open.completions.len() >= self.limits.max_records
            || open.reserved >= self.limits.max_bytes
        {
            self.close();
            closed = true;
        }
        closed
    }

    /// Closes the open batch if its linger has passed at `now`.
    pub fn expire(&mut self, now: Instant) -> bool {
        match &self.open {
            Some(o) if now.duration_since(o.created) >= self.limits.linger => {
                self.close();
                true
            }
            _ => false,
        }
    }

    /// Closes the open batch now (flush).
    pub fn close(&mut self) {
        if let Some(o) = self.open.take() {
            self.closed.push_back(ClosedBatch {
                builder: o.builder,
                completions: o.completions,
                reserved: o.reserved,
                created: o.created,
            });
        }
    }

    /// When the open batch's linger runs out, if there is one.
    pub fn deadline(&self) -> Option<Instant> {
        self.open.as_ref().map(|o| o.created + self.limits.linger)
    }

    /// The oldest closed batch.
    pub fn pop_closed(&mut self) -> Option<ClosedBatch<T>> {
        self.closed.pop_front()
    }

    /// Queues a batch built elsewhere behind everything appended so far
    /// (the open batch closes first, so order is kept).
    pub fn push_closed(&mut self, b: ClosedBatch<T>) {
        self.close();
        self.closed.push_back(b);
    }

    /// Puts a batch back at the front (it could not be sent yet).
    pub fn push_front(&mut self, b: ClosedBatch<T>) {
        self.closed.push_front(b);
    }

    /// Whether a closed batch waits to be sent.
    pub fn has_closed(&self) -> bool {
        !self.closed.is_empty()
    }

    /// No open and no closed batch.
    pub fn is_empty(&self) -> bool {
        self.open.is_none() && self.closed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(records: usize, bytes: usize, linger_ms: u64) -> BatchLimits {
        BatchLimits {
            max_records: records,
            max_bytes: bytes,
            linger: Duration::from_millis(linger_ms),
            codec: Codec::None,
        }
    }

    fn add(acc: &mut PartitionAccumulator<u32>, v: &[u8], id: u32, now: Instant) -> bool {
        acc.append(None, v, 0, &[], record_size(None, v, &[]), id, || now)
    }

    #[test]
    fn closes_at_max_records() {
        let t = Instant::now();
        let mut acc = PartitionAccumulator::new(limits(3, 1 << 20, 1000));
        assert!(!add(&mut acc, b"a", 1, t));
        assert!(!add(&mut acc, b"b", 2, t));
        assert!(add(&mut acc, b"c", 3, t));
        let b = acc.pop_closed().unwrap();
        assert_eq!(b.completions, vec![1, 2, 3]);
        assert_eq!(b.builder.len(), 3);
        assert!(acc.is_empty());
    }

    #[test]
    fn closes_before_exceeding_max_bytes() {
        let t = Instant::now();
        let size = record_size(None, &[0; 100], &[]);
        let mut acc = PartitionAccumulator::new(limits(1000, size * 2 + 10, 1000));
        assert!(!add(&mut acc, &[0; 100], 1, t));
        assert!(!add(&mut acc, &[0; 100], 2, t));
        // The third would exceed the byte limit: the first two close first.
        assert!(add(&mut acc, &[0; 100], 3, t));
        assert_eq!(acc.pop_closed().unwrap().completions, vec![1, 2]);
        assert!(acc.pop_closed().is_none());
        assert_eq!(acc.deadline(), Some(t + Duration::from_millis(1000)));
    }

    #[test]
    fn a_batch_built_elsewhere_queues_behind_the_open_batch() {
        let t = Instant::now();
        let mut acc = PartitionAccumulator::new(limits(1000, 1 << 20, 1000));
        add(&mut acc, b"a", 1, t);
        acc.push_closed(ClosedBatch {
            builder: BatchBuilder::new(Codec::None, ProducerInfo::default()),
            completions: vec![2],
            reserved: 0,
            created: t,
        });
        add(&mut acc, b"c", 3, t);
        assert_eq!(acc.pop_closed().unwrap().completions, vec![1]);
        assert_eq!(acc.pop_closed().unwrap().completions, vec![2]);
        assert!(acc.pop_closed().is_none(), "the later record stays open");
        acc.close();
        assert_eq!(acc.pop_closed().unwrap().completions, vec![3]);
    }

    #[tokio::test(start_paused = true)]
    async fn closes_at_linger_with_a_paused_clock() {
        let mut acc = PartitionAccumulator::new(limits(1000, 1 << 20, 100));
        let t0 = Instant::now();
        add(&mut acc, b"x", 1, t0);
        tokio::time::advance(Duration::from_millis(99)).await;
        assert!(!acc.expire(Instant::now()));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(acc.expire(Instant::now()));
        assert_eq!(acc.pop_closed().unwrap().created, t0);
        assert_eq!(acc.deadline(), None);
    }
}
