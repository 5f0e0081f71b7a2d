//! When the active segment is sealed and the next one started: by size, by
//! age (shortened while someone waits for the seal, `hurry_seal`), at
//! once before a drain (`seal_now`), and retried after a failed roll.

use std::time::Instant;

use super::{SealedSegment, ShardLog};
use crate::segment;

impl ShardLog {
    /// Seals the active segment and starts the next one. When the next one
    /// cannot be created, nothing changes (appends go on to the active
    /// segment, which grows past its size) and the roll is tried again
    /// after [`ROLL_RETRY`](super::segment_set::ROLL_RETRY): a transient shortage of descriptors or space
    /// must not fail the log for good.
    pub(super) async fn roll(&self) {
        let id = self.inner.state.borrow().segments.active();
        let next = match self.open_segment(id + 1).await {
            Ok(seg) => seg,
            Err(e) => {
                tracing::warn!(error = %e, segment = id, "cannot start the next WAL segment; \
                    appends stay on the active one and the roll is retried");
                self.inner
                    .state
                    .borrow_mut()
                    .segments
                    .roll_failed(Instant::now());
                let s = &self.inner.stats;
                s.roll_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                s.set_trouble(Some(format!("cannot start a new WAL segment: {e}")));
                return;
            }
        };
        let (path, len) = {
            let mut st = self.inner.state.borrow_mut();
            let len = st.segments.active_len();
            // A sealed segment is only read from now on.
            let path = st
                .segments
                .stop_writing(id)
                .unwrap_or_else(|| segment::segment_path(&self.config().dir, id));
            (path, len)
        };
        tracing::debug!(segment = id, bytes = len, "sealing WAL segment");
        // The sealed segment keeps its data only: the blocks allocated
        // after it are given back, and it is shipped without them.
        self.finish_extending().await;
        let old = self
            .inner
            .state
            .borrow()
            .segments
            .file(id)
            .map(|s| s.file.clone());
        if let Some(file) = old {
            if let Err(e) = file.truncate(len).await {
                tracing::warn!(segment = id, error = %e, "cannot give back the sealed WAL segment's unused blocks");
            }
        }
        self.activate(id + 1, next);
        if self.inner.state.borrow().poisoned.is_none() {
            self.inner.stats.set_trouble(None);
        }
        let sealed = SealedSegment { id, path, len };
        self.inner
            .stats
            .segments_sealed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.state.borrow_mut().segments.sealed(sealed);
    }

    /// Whether the active segment is to be sealed before a write of
    /// `incoming` bytes (see [`SegmentSet::roll_due`](super::segment_set::SegmentSet::roll_due)).
    pub(super) fn roll_due(&self, incoming: usize) -> bool {
        let st = self.inner.state.borrow();
        st.segments
            .roll_due(self.config(), incoming, Instant::now())
    }

    /// True when the active segment holds no data and none is queued for it.
    pub fn active_is_empty(&self) -> bool {
        let st = self.inner.state.borrow();
        st.segments.active_len() == 0 && st.commit.is_empty()
    }

    /// Seals the active segment (if it holds data) as soon as the writer is
    /// idle, e.g. before shutdown so everything can be shipped.
    pub fn seal_now(&self) {
        self.inner.state.borrow_mut().segments.seal_now();
        let _ = self.inner.wake.borrow().unbounded_send(());
    }

    /// Id of the segment appends go to now.
    pub fn active_segment(&self) -> u64 {
        self.inner.state.borrow().segments.active()
    }

    /// Asks for the active segment to be sealed once its data is
    /// `hurried_age` old (instead of `segment_age`): someone is waiting for
    /// the seal. Returns the active segment's id.
    pub fn hurry_seal(&self) -> u64 {
        let mut st = self.inner.state.borrow_mut();
        if st.segments.hurry() {
            let _ = self.inner.wake.borrow().unbounded_send(());
        }
        st.segments.active()
    }
}
