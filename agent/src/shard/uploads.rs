//! The shard's upload bookkeeping ([`Uploads`]): sealed segments not yet
//! committed, the last segment committed, each partition's committed end,
//! and the requests waiting for a commit. Plain state of one executor, time
//! passed in; `shipping` drives it.

use crate::ids::{PartitionId, TopicKey};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};

use futures::channel::oneshot;

/// The shard's upload bookkeeping: sealed segments not yet committed (with
/// their sizes and seal times), the last segment committed, what each
/// partition has committed, and the requests waiting for a commit. Plain
/// state of one executor; time is passed in.
#[derive(Default)]
pub struct Uploads {
    /// Sealed segments not yet committed → (bytes, sealed at ms).
    unshipped: RefCell<BTreeMap<u64, (u64, i64)>>,
    /// Sum of the unshipped segments' bytes.
    backlog: Cell<u64>,
    /// Highest segment committed so far (the uploader commits a shard's
    /// segments in seal order).
    committed_through: Cell<Option<u64>>,
    /// Requests waiting for a segment's commit.
    waiters: RefCell<Vec<(u64, oneshot::Sender<()>)>>,
    /// Per partition (topic key, partition), the end of its committed
    /// ranges this shard saw.
    committed_ends: RefCell<HashMap<PartitionId, u64>>,
}

impl Uploads {
    /// Segment `segment` of `len` bytes was sealed at `now_ms` and handed
    /// to the uploader.
    pub fn sealed(&self, segment: u64, len: u64, now_ms: i64) {
        let old = self.unshipped.borrow_mut().insert(segment, (len, now_ms));
        let before = self.backlog.get() - old.map_or(0, |(l, _)| l);
        self.backlog.set(before + len);
    }

    /// Segment `segment` is committed, with `ends` (topic key, partition,
    /// offset after its range): forgets it, records the ends and wakes
    /// every waiter for it or an earlier segment.
    pub fn committed(&self, segment: u64, ends: Vec<(TopicKey, u32, u64)>) {
        {
            let mut committed = self.committed_ends.borrow_mut();
            for (topic, partition, end) in ends {
                let e = committed
                    .entry(PartitionId::new(topic, partition))
                    .or_insert(0);
                *e = (*e).max(end);
            }
        }
        if let Some((len, _)) = self.unshipped.borrow_mut().remove(&segment) {
            self.backlog.set(self.backlog.get() - len);
        }
        self.committed_through.set(Some(segment));
        let done: Vec<_> = {
            let mut waiters = self.waiters.borrow_mut();
            let (done, keep) = waiters.drain(..).partition(|(seg, _)| *seg <= segment);
            *waiters = keep;
            done
        };
        for (_, tx) in done {
            let _ = tx.send(());
        }
    }

    /// Bytes of sealed segments not yet committed.
    pub fn backlog_bytes(&self) -> u64 {
        self.backlog.get()
    }

    /// When the oldest unshipped segment was sealed (ms), 0 when none is.
    pub fn oldest_unshipped_ms(&self) -> i64 {
        self.unshipped
            .borrow()
            .values()
            .next()
            .map_or(0, |(_, at)| *at)
    }

    /// A partition's committed end as its lease was granted (the metadata
    /// store's): known from then on, it only grows.
    pub fn note_committed_end(&self, topic: &TopicKey, partition: u32, end: u64) {
        let mut committed = self.committed_ends.borrow_mut();
        let e = committed
            .entry(PartitionId::new(topic.clone(), partition))
            .or_insert(0);
        *e = (*e).max(end);
    }

    /// The end of `key/partition`'s ranges committed to object storage, as
    /// far as this shard knows (its lease grant and its own commits).
    pub fn committed_end(&self, key: &str, partition: u32) -> Option<u64> {
        self.committed_ends
            .borrow()
            .get(&PartitionId::of(key, partition))
            .copied()
    }

    /// Waits up to `wait` for this shard's next commit. Cancelling it only
    /// drops the wait.
    pub async fn wait_next_commit(&self, wait: std::time::Duration) {
        let next = self.committed_through.get().map_or(0, |c| c + 1);
        // Waits that timed out leave their senders behind until a commit
        // comes: drop them here, so idle partitions polled for ever keep
        // only the waits in progress.
        self.waiters
            .borrow_mut()
            .retain(|(_, tx)| !tx.is_canceled());
        futures_lite::future::or(
            async {
                let _ = self.wait_committed(next).await;
            },
            glommio::timer::sleep(wait),
        )
        .await;
    }

    /// Whether `key/partition`'s committed ranges reach `end`.
    pub fn covers(&self, key: &str, partition: u32, end: u64) -> bool {
        self.committed_ends
            .borrow()
            .get(&PartitionId::of(key, partition))
            .is_some_and(|c| *c >= end)
    }

    /// Waits until segment `segment` is committed. Cancelling it only
    /// drops the wait. `Err` when the shard stops first.
    pub async fn wait_committed(&self, segment: u64) -> Result<(), oneshot::Canceled> {
        if self.committed_through.get().is_some_and(|c| c >= segment) {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.borrow_mut().push((segment, tx));
        rx.await
    }
}

#[cfg(test)]
mod tests {
    use super::Uploads;
    use futures::FutureExt;

    #[test]
    fn backlog_counts_sealed_segments_until_each_is_committed() {
        let s = Uploads::default();
        s.sealed(1, 100, 10);
        s.sealed(2, 50, 20);
        assert_eq!((s.backlog_bytes(), s.oldest_unshipped_ms()), (150, 10));
        s.committed(1, vec![("t#1".into(), 0, 7)]);
        assert_eq!((s.backlog_bytes(), s.oldest_unshipped_ms()), (50, 20));
        s.committed(2, vec![]);
        assert_eq!((s.backlog_bytes(), s.oldest_unshipped_ms()), (0, 0));
    }

    #[test]
    fn a_commit_wakes_the_waiters_of_its_segment_and_earlier_ones_only() {
        let s = Uploads::default();
        let mut w1 = Box::pin(s.wait_committed(1));
        let mut w3 = Box::pin(s.wait_committed(3));
        assert!(w1.as_mut().now_or_never().is_none());
        assert!(w3.as_mut().now_or_never().is_none());
        s.committed(2, vec![]);
        assert_eq!(w1.as_mut().now_or_never(), Some(Ok(())));
        assert!(w3.as_mut().now_or_never().is_none());
        // Already committed: answered at once.
        assert_eq!(s.wait_committed(2).now_or_never(), Some(Ok(())));
    }

    #[test]
    fn committed_ends_only_grow() {
        let s = Uploads::default();
        s.committed(1, vec![("t#1".into(), 0, 10)]);
        s.committed(2, vec![("t#1".into(), 0, 4)]);
        assert!(s.covers("t#1", 0, 10));
        assert!(!s.covers("t#1", 0, 11));
        assert!(!s.covers("t#1", 1, 1));
    }
}
