//! Appending: checking a batch and its producer's sequence, assigning its
//! offsets and queueing its frame for the writer (`writer`), waiting for a
//! producer's turn, and barriers on what was queued. Touches no file: the
//! writer owns the writes.

use std::time::Instant;

use futures::channel::oneshot;

use super::error::LogError;
use super::partition::unknown;
use super::state::State;
use super::{wait, Appended, ShardLog, SEQUENCE_WAIT};
use crate::batch::{self, CheckedBatch};
use crate::producers::SeqCheck;

impl ShardLog {
    /// Appends one encoded batch (see [`crate::batch`]) to a partition and
    /// resolves once it is fsynced. The batch's header and CRC are
    /// verified ([`CheckedBatch::validated`]); its base offset is assigned
    /// here. Same as [`ShardLog::append_in_flight`] for a producer with one
    /// batch in flight. Cancelling it after the batch was queued does not
    /// unqueue it.
    pub async fn append(
        &self,
        topic: &str,
        partition: u32,
        batch: Vec<u8>,
    ) -> Result<Appended, LogError> {
        let batch = CheckedBatch::validated(batch.into())?;
        self.append_in_flight(topic, partition, batch, None).await
    }

    /// Waits, up to [`SEQUENCE_WAIT`], until a batch of `count` records from
    /// `producer` is no longer ahead of its producer's sequence in this
    /// partition (requests sent in order may arrive out of order; see
    /// [`ProducerTable::check`](crate::producers::ProducerTable::check) for `oldest`). Returns whether it waited.
    /// Call right before [`ShardLog::append_in_flight`]: anything the
    /// caller checks (a lease) must be checked again after a wait.
    pub async fn wait_for_turn(
        &self,
        topic: &str,
        partition: u32,
        producer: batch::ProducerInfo,
        count: u32,
        oldest: Option<i32>,
    ) -> bool {
        let give_up = Instant::now() + SEQUENCE_WAIT;
        let mut waited = false;
        loop {
            let (turn, left) = {
                let mut st = self.inner.state.borrow_mut();
                let Some(p) = st.partitions.find_mut(topic, partition) else {
                    return waited;
                };
                let ahead = matches!(
                    p.producers.check(producer, count, oldest),
                    Err(e) if e.is_ahead()
                );
                let left = give_up.saturating_duration_since(Instant::now());
                if !ahead || left.is_zero() {
                    return waited;
                }
                let (tx, rx) = oneshot::channel();
                p.seq_waiters.push(tx);
                (rx, left)
            };
            waited = true;
            futures_lite::future::or(
                async {
                    let _ = turn.await;
                },
                glommio::timer::sleep(left),
            )
            .await;
        }
    }

    /// [`ShardLog::append`] for a producer with several batches in flight:
    /// `oldest` is the lowest sequence its producer has in flight for this
    /// partition (see [`ProducerTable::check`](crate::producers::ProducerTable::check)). A batch ahead of its
    /// producer's sequence fails at once with [`SeqError::OutOfOrder`](crate::producers::SeqError::OutOfOrder); see
    /// [`ShardLog::wait_for_turn`].
    ///
    /// The batch was checked by whoever made the [`CheckedBatch`]; the log
    /// copies it once, into its pending buffer behind the frame header,
    /// and sets its base offset there (the CRC moved from the change, not
    /// recomputed). Cancelling it after the batch was queued does not
    /// unqueue it: the batch is written, only the answer is lost.
    pub async fn append_in_flight(
        &self,
        topic: &str,
        partition: u32,
        batch: CheckedBatch,
        oldest: Option<i32>,
    ) -> Result<Appended, LogError> {
        let header = *batch.header();
        let count = header.record_count;
        let (rx, base_offset, duplicate) = {
            let mut guard = self.inner.state.borrow_mut();
            let st = &mut *guard;
            if let Some(why) = &st.poisoned {
                return Err(LogError::Poisoned(why.clone()));
            }
            if st.closed {
                return Err(LogError::Poisoned("the log is closed".into()));
            }
            let (p, lru) = st
                .partitions
                .find_mut_with_lru(topic, partition)
                .ok_or_else(|| unknown(topic, partition))?;
            let out = match p.producers.check(header.producer, count, oldest)? {
                // A retry of a batch already appended: answer with its
                // offsets once the original is durable.
                SeqCheck::Duplicate(e) => match st.commit.wait_for(e.lsn) {
                    Some(rx) => (Ok(rx), e.base_offset, true),
                    None => (Err(p.index.segment_of(e.base_offset)), e.base_offset, true),
                },
                SeqCheck::Append => {
                    let base_offset = p.next_offset;
                    p.next_offset += u64::from(count);
                    p.wake_sequence_waiters();
                    let (lsn, was_empty) =
                        st.commit.push_batch(topic, partition, &batch, base_offset);
                    if was_empty {
                        let _ = self.inner.wake.borrow().unbounded_send(());
                    }
                    p.remember(
                        lru,
                        (topic, partition),
                        header.producer,
                        count,
                        base_offset,
                        lsn,
                    );
                    // Just queued: it is not durable yet.
                    (st.commit.wait_for(lsn).ok_or(None), base_offset, false)
                }
            };
            st.partitions.evict_excess();
            self.publish_producers(st);
            out
        };
        let segment = match rx {
            Ok(rx) => Some(wait(rx).await?),
            Err(seg) => seg,
        };
        Ok(Appended {
            base_offset,
            record_count: count,
            duplicate,
            segment,
        })
    }

    /// Queues a restart frame for `topic/partition` at `offset` (see
    /// `segment`), ahead of every batch appended after it, so recovery
    /// forgets the frames written before it. Nobody waits for it; it is
    /// durable with the next group commit, before any later batch is
    /// acknowledged. A failed or closed log writes nothing.
    pub(super) fn queue_restart(&self, st: &mut State, topic: &str, partition: u32, offset: u64) {
        if st.poisoned.is_some() || st.closed {
            return;
        }
        if st.commit.push_restart(topic, partition, offset) {
            let _ = self.inner.wake.borrow().unbounded_send(());
        }
    }

    /// Resolves once everything appended before the call is durable (and
    /// so indexed in a known segment). Errors if the log failed.
    pub async fn durable_barrier(&self) -> Result<(), LogError> {
        let rx = {
            let mut st = self.inner.state.borrow_mut();
            if let Some(why) = &st.poisoned {
                return Err(LogError::Poisoned(why.clone()));
            }
            match st.commit.barrier() {
                Some(rx) => rx,
                None => return Ok(()),
            }
        };
        wait(rx).await.map(|_| ())
    }
}
