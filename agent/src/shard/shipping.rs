//! Sealed segments → the uploader, and what is still unshipped: the
//! backlog (bytes and age, as metrics), the segments committed so far,
//! waiting for a segment's commit (ack `object`, hand-over), and shipping
//! everything before a drain or a failed shard's release.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::control::inbox::ToControl;
use crate::ids::TopicKey;
use crate::messages::UploadJob;
use crate::metastore::ChunkRange;
use crate::runtime::clock::now_ms;

use super::context::ShardContext;
use super::grpc::{Code, Status};

impl ShardContext {
    /// Hands a sealed segment to the uploader, with each partition's range
    /// stamped with the lease epoch it was written under (also when that
    /// lease was lost since: the metadata store commits it only if nobody
    /// took the lease meanwhile). Ranges of partitions this shard holds no
    /// lease state for go along unstamped, for the uploader to resolve: the
    /// segment is deleted only once every range in it is committed (or was
    /// before).
    pub fn ship(&self, segment: u64, path: std::path::PathBuf, len: u64) {
        let (mut ranges, mut unleased) = (Vec::new(), Vec::new());
        for r in self.log.segment_ranges(segment) {
            let epoch = self.leases.data_epoch(&r.topic, r.partition);
            let producers =
                self.log
                    .producer_snapshot(&r.topic, r.partition, r.base_offset, r.end_offset);
            let range = ChunkRange {
                topic: TopicKey::from_stored(&r.topic),
                partition: r.partition,
                base_offset: r.base_offset,
                end_offset: r.end_offset,
                pos: r.pos,
                len: r.len,
                bytes: r.bytes,
                epoch: epoch.unwrap_or(0),
                max_timestamp: r.max_timestamp,
                producers,
            };
            match epoch {
                Some(_) => ranges.push(range),
                None => unleased.push(range),
            }
        }
        self.uploads.sealed(segment, len, now_ms());
        self.publish_backlog();
        let job = UploadJob {
            shard: self.shard,
            segment,
            path,
            key: format!("chunks/{}/{segment:020}.wal", self.log_id),
            ranges,
            unleased,
        };
        if !self.control.send(ToControl::Upload(job)) {
            tracing::warn!(
                shard = self.shard,
                segment,
                "control thread gone; segment stays local"
            );
        }
    }

    /// Seals the active segment and waits until every sealed segment is
    /// committed and dropped, or `deadline`. True when everything is shipped.
    /// A failed log is reopened first, so that what recovery can read back
    /// is sealed and shipped too.
    pub async fn ship_everything(&self, deadline: std::time::Instant) -> bool {
        if self.log.failure().is_some() {
            let _ = self.log.reopen().await;
        }
        self.log.seal_now();
        loop {
            let sealed_left = !self.log.sealed_segments().is_empty();
            if self.log.active_is_empty() && !sealed_left {
                return true;
            }
            if self.log.failure().is_some() && !sealed_left {
                // The failed active segment cannot be sealed.
                return false;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            glommio::timer::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Publishes the upload backlog (bytes, oldest seal time) as metrics.
    pub(super) fn publish_backlog(&self) {
        let s = &self.uploads;
        self.metrics
            .upload_backlog_bytes
            .store(s.backlog_bytes(), Ordering::Relaxed);
        self.metrics
            .oldest_unshipped_ms
            .store(s.oldest_unshipped_ms(), Ordering::Relaxed);
    }

    /// Bytes of sealed segments not yet in object storage.
    pub fn upload_backlog(&self) -> u64 {
        self.uploads.backlog_bytes()
    }

    /// Waits until segment `segment` is committed to object storage.
    /// Cancelling it only drops the wait.
    pub(super) async fn wait_committed(&self, segment: u64) -> Result<(), Status> {
        self.uploads
            .wait_committed(segment)
            .await
            .map_err(|_| Status::new(Code::Unavailable, "agent is shutting down"))
    }
}
