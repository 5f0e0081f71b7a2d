//! The commit queue: frames appended but not yet written (one contiguous
//! buffer and an entry per frame), the log sequence numbers (bytes ever
//! appended, bytes made durable) and the appends waiting for theirs to be
//! durable. Pure data with its rules: it touches no file and knows no
//! partition state; `append` fills it, `writer` takes from it and reports
//! what a sync made durable.

use std::collections::VecDeque;

use futures::channel::oneshot;

use super::error::LogError;
use crate::batch::CheckedBatch;
use crate::segment;

/// What a durable append is answered with: the segment its frame went to.
pub(super) type Durable = oneshot::Receiver<Result<u64, LogError>>;

/// One queued frame: where it sits in the queue's buffer and what the
/// writer records for it once it is durable.
#[derive(Debug)]
pub(super) struct PendingEntry {
    pub(super) topic: String,
    pub(super) partition: u32,
    /// Offset of the frame in the buffer it was taken with.
    pub(super) start: usize,
    /// Bytes of the whole frame (header and batch).
    pub(super) len: usize,
    /// Offset of the batch inside the frame (the frame header's length).
    pub(super) batch_offset: usize,
    pub(super) base_offset: u64,
    /// Records of the batch; 0 for a restart frame.
    pub(super) record_count: u32,
    /// The batch header's largest record timestamp (ms; 0 for a restart frame).
    pub(super) max_timestamp: i64,
}

/// Frames waiting for the writer and appends waiting for durability.
#[derive(Default)]
pub(super) struct CommitQueue {
    pending: Vec<u8>,
    entries: VecDeque<PendingEntry>,
    /// Bytes ever queued (the last frame's end).
    appended_lsn: u64,
    /// Bytes ever made durable; never past `appended_lsn`.
    durable_lsn: u64,
    /// Oldest first, by the sequence number each waits for.
    waiters: VecDeque<(u64, oneshot::Sender<Result<u64, LogError>>)>,
}

impl CommitQueue {
    /// Queues the frame of `batch` at `base_offset` (its header, then the
    /// batch copied once with its base offset set). Returns the sequence
    /// number the frame is durable at and whether the queue was empty
    /// (the writer must be woken).
    pub(super) fn push_batch(
        &mut self,
        topic: &str,
        partition: u32,
        batch: &CheckedBatch,
        base_offset: u64,
    ) -> (u64, bool) {
        let header = batch.header();
        let start = self.pending.len();
        segment::put_frame_header(&mut self.pending, topic, partition, batch.len());
        let batch_offset = self.pending.len() - start;
        batch.append_rebased(&mut self.pending, base_offset);
        let entry = PendingEntry {
            topic: topic.to_owned(),
            partition,
            start,
            len: self.pending.len() - start,
            batch_offset,
            base_offset,
            record_count: header.record_count,
            max_timestamp: header.max_timestamp,
        };
        self.push(entry)
    }

    /// Queues a restart frame of `topic/partition` at `offset` (see
    /// `segment::restart_frame`). Returns whether the queue was empty.
    pub(super) fn push_restart(&mut self, topic: &str, partition: u32, offset: u64) -> bool {
        let frame = segment::restart_frame(topic, partition, offset);
        let start = self.pending.len();
        self.pending.extend_from_slice(&frame);
        let entry = PendingEntry {
            topic: topic.to_owned(),
            partition,
            start,
            len: frame.len(),
            batch_offset: frame.len(),
            base_offset: offset,
            record_count: 0,
            max_timestamp: 0,
        };
        self.push(entry).1
    }

    fn push(&mut self, entry: PendingEntry) -> (u64, bool) {
        self.appended_lsn += entry.len as u64;
        let was_empty = self.entries.is_empty();
        self.entries.push_back(entry);
        (self.appended_lsn, was_empty)
    }

    /// No frame waits for the writer.
    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A receiver answered once `lsn` is durable, or `None` when it is
    /// already.
    pub(super) fn wait_for(&mut self, lsn: u64) -> Option<Durable> {
        if lsn <= self.durable_lsn {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.push_back((lsn, tx));
        Some(rx)
    }

    /// [`CommitQueue::wait_for`] everything queued so far.
    pub(super) fn barrier(&mut self) -> Option<Durable> {
        self.wait_for(self.appended_lsn)
    }

    /// Takes the oldest frames, up to `max_bytes` (at least one frame, even
    /// a larger one): their bytes in one buffer and their entries, with
    /// `start` relative to that buffer. What stays is moved to the front.
    pub(super) fn take(&mut self, max_bytes: usize) -> (Vec<u8>, Vec<PendingEntry>) {
        let mut take = 0usize;
        let mut n = 0usize;
        for e in &self.entries {
            if n > 0 && take + e.len > max_bytes {
                break;
            }
            take += e.len;
            n += 1;
        }
        let entries: Vec<PendingEntry> = self.entries.drain(..n).collect();
        let rest = self.pending.split_off(take);
        let data = std::mem::replace(&mut self.pending, rest);
        for e in self.entries.iter_mut() {
            e.start -= take;
        }
        (data, entries)
    }

    /// Records that `bytes` more were made durable in `segment`, and
    /// answers every append durable now with that segment.
    pub(super) fn made_durable(&mut self, bytes: u64, segment: u64) {
        self.durable_lsn += bytes;
        let durable = self.durable_lsn;
        while self.waiters.front().is_some_and(|(lsn, _)| *lsn <= durable) {
            if let Some((_, tx)) = self.waiters.pop_front() {
                let _ = tx.send(Ok(segment));
            }
        }
    }

    /// The log failed: every waiting append gets `e`, and queued frames
    /// are dropped (they will never be written).
    pub(super) fn fail(&mut self, e: &LogError) {
        for (_, tx) in self.waiters.drain(..) {
            let _ = tx.send(Err(e.clone()));
        }
        self.pending.clear();
        self.entries.clear();
    }

    /// Starts afresh after a failed log was recovered: nothing queued,
    /// everything appended counts as settled.
    pub(super) fn reset(&mut self) {
        self.pending.clear();
        self.entries.clear();
        self.appended_lsn = self.durable_lsn;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, Codec, ProducerInfo};

    fn batch(records: usize) -> CheckedBatch {
        let mut b = BatchBuilder::new(Codec::None, ProducerInfo::default());
        for i in 0..records {
            b.push(None, format!("v{i}").as_bytes(), 1_000 + i as i64, &[]);
        }
        b.finish_checked().expect("a built batch is valid")
    }

    #[test]
    fn take_keeps_at_least_one_frame_and_moves_the_rest_to_the_front() {
        let mut q = CommitQueue::default();
        let (lsn1, first) = q.push_batch("t", 0, &batch(3), 0);
        let (lsn2, second) = q.push_batch("t", 1, &batch(2), 10);
        assert!(
            first && !second,
            "only the first push finds the queue empty"
        );
        let one = lsn1 as usize;
        let (data, taken) = q.take(1);
        assert_eq!(
            taken.len(),
            1,
            "a frame larger than the limit still goes alone"
        );
        assert_eq!(data.len(), one);
        assert_eq!((taken[0].start, taken[0].record_count), (0, 3));
        let (data, taken) = q.take(usize::MAX);
        assert_eq!(data.len() as u64, lsn2 - lsn1);
        assert_eq!(taken[0].start, 0, "the rest starts at the front");
        assert_eq!(taken[0].base_offset, 10);
        assert!(q.is_empty());
    }

    #[test]
    fn take_stops_before_the_frame_that_would_pass_the_limit() {
        let mut q = CommitQueue::default();
        let (a, _) = q.push_batch("t", 0, &batch(1), 0);
        let (b, _) = q.push_batch("t", 0, &batch(1), 1);
        q.push_batch("t", 0, &batch(1), 2);
        let (data, taken) = q.take(b as usize + 1);
        assert_eq!(taken.len(), 2);
        assert_eq!(data.len() as u64, b);
        assert_eq!(taken[1].start as u64, a);
        assert!(!q.is_empty());
    }

    #[test]
    fn the_batch_is_written_behind_its_frame_header_with_its_offset() {
        let mut q = CommitQueue::default();
        let b = batch(4);
        q.push_batch("topic", 7, &b, 42);
        let (data, taken) = q.take(usize::MAX);
        let e = &taken[0];
        let body = &data[e.start + e.batch_offset..e.start + e.len];
        assert_eq!(body.len(), b.len());
        let back = CheckedBatch::validated(body.to_vec().into()).expect("the CRC still holds");
        assert_eq!(back.header().base_offset, 42);
        assert_eq!(back.header().record_count, 4);
    }

    #[test]
    fn waiters_are_answered_in_order_only_once_durable() {
        let mut q = CommitQueue::default();
        let (a, _) = q.push_batch("t", 0, &batch(1), 0);
        let (b, _) = q.push_batch("t", 0, &batch(1), 1);
        let mut wa = q.wait_for(a).expect("not durable yet");
        let mut wb = q.wait_for(b).expect("not durable yet");
        q.made_durable(a, 5);
        assert_eq!(wa.try_recv().ok().flatten().map(|r| r.ok()), Some(Some(5)));
        assert!(
            wb.try_recv().ok().flatten().is_none(),
            "b is not durable yet"
        );
        q.made_durable(b - a, 6);
        assert_eq!(wb.try_recv().ok().flatten().map(|r| r.ok()), Some(Some(6)));
        assert!(q.wait_for(b).is_none(), "durable already");
        assert!(q.barrier().is_none(), "nothing queued is waiting");
    }

    #[test]
    fn a_failure_answers_every_waiter_and_drops_the_queue() {
        let mut q = CommitQueue::default();
        q.push_batch("t", 0, &batch(1), 0);
        q.push_restart("t", 0, 9);
        let mut w = q.barrier().expect("queued frames wait");
        q.fail(&LogError::Poisoned("disk gone".into()));
        let answer = w.try_recv().ok().flatten();
        assert!(matches!(answer, Some(Err(LogError::Poisoned(_)))));
        assert!(q.is_empty());
        q.reset();
        assert!(q.barrier().is_none(), "after a reset nothing is owed");
    }

    #[test]
    fn a_restart_frame_has_no_records() {
        let mut q = CommitQueue::default();
        assert!(q.push_restart("t", 3, 77));
        let (data, taken) = q.take(usize::MAX);
        let e = &taken[0];
        assert_eq!((e.record_count, e.base_offset, e.len), (0, 77, data.len()));
        assert_eq!(e.batch_offset, e.len);
    }
}
