//! The control thread's counters (uploads, commits, leases) and the
//! families they make on `/metrics`. Written by the control thread only;
//! owns these metrics' names, help texts and units.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use streamhouse_storage::stats::Buckets;

use super::encode::{histogram, single, Value};

/// Upload (PUT) latency buckets, µs (shown in seconds).
const UPLOAD_BUCKETS_US: [u64; 10] = [
    1_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 10_000_000,
];

/// The control thread's counters.
pub struct ControlMetrics {
    pub chunks_uploaded: AtomicU64,
    pub chunks_committed: AtomicU64,
    pub upload_bytes: AtomicU64,
    /// Latency of each chunk PUT, µs.
    pub upload_us: Buckets<10>,
    pub upload_failures: AtomicU64,
    /// Ranges that can never be committed (written under a lease another
    /// agent took over); their bytes stay in the stored chunk object.
    pub ranges_abandoned: AtomicU64,
    /// Ranges of topics deleted before they were committed (expected:
    /// nothing is lost).
    pub ranges_of_deleted_topics: AtomicU64,
    pub leases_acquired: AtomicU64,
    pub leases_lost: AtomicU64,
    pub leases_released: AtomicU64,
    pub leases_held: AtomicU64,
    /// Times retention or DeleteRecords moved a partition's log start.
    pub log_start_moves: AtomicU64,
    /// Chunk objects the sweep deleted (no range referenced them).
    pub objects_deleted: AtomicU64,
    /// Objects compaction wrote and switched the chunk index to.
    pub compactions: AtomicU64,
    /// Bytes of those objects.
    pub compacted_bytes: AtomicU64,
    /// Committed ranges moved into them.
    pub compacted_ranges: AtomicU64,
    /// Partition compactions that failed (tried again next pass).
    pub compaction_failures: AtomicU64,
    /// Own bytes of the ranges the last compaction pass left for later
    /// (its budget ran out): compaction's lag.
    pub compaction_pending_bytes: AtomicU64,
    /// Records key compaction removed (superseded by a later record of
    /// their key, or expired tombstones).
    pub records_compacted_away: AtomicU64,
    /// Objects no row named (compactions never switched to) that the sweep
    /// claimed for deletion.
    pub orphans_claimed: AtomicU64,
    /// Objects no range references, waiting out their grace before the
    /// sweep deletes them, as of the last sweep of this agent.
    pub sweep_pending_objects: AtomicU64,
}

impl Default for ControlMetrics {
    fn default() -> Self {
        ControlMetrics {
            chunks_uploaded: AtomicU64::new(0),
            chunks_committed: AtomicU64::new(0),
            upload_bytes: AtomicU64::new(0),
            upload_us: Buckets::new(UPLOAD_BUCKETS_US),
            upload_failures: AtomicU64::new(0),
            ranges_abandoned: AtomicU64::new(0),
            ranges_of_deleted_topics: AtomicU64::new(0),
            leases_acquired: AtomicU64::new(0),
            leases_lost: AtomicU64::new(0),
            leases_released: AtomicU64::new(0),
            leases_held: AtomicU64::new(0),
            log_start_moves: AtomicU64::new(0),
            objects_deleted: AtomicU64::new(0),
            compactions: AtomicU64::new(0),
            compacted_bytes: AtomicU64::new(0),
            compacted_ranges: AtomicU64::new(0),
            compaction_failures: AtomicU64::new(0),
            compaction_pending_bytes: AtomicU64::new(0),
            orphans_claimed: AtomicU64::new(0),
            records_compacted_away: AtomicU64::new(0),
            sweep_pending_objects: AtomicU64::new(0),
        }
    }
}

/// The control thread's families, for the exposition registry.
pub(super) struct ControlCollector(pub Arc<ControlMetrics>);

impl fmt::Debug for ControlCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ControlCollector")
    }
}

impl Collector for ControlCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let c = &self.0;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let counters: [(&str, &str, Option<&Unit>, u64); 17] = [
            (
                "streamhouse_chunks_uploaded",
                "Chunk objects written to object storage.",
                None,
                get(&c.chunks_uploaded),
            ),
            (
                "streamhouse_chunks_committed",
                "Chunks committed to the metadata store.",
                None,
                get(&c.chunks_committed),
            ),
            (
                "streamhouse_upload",
                "Bytes of chunk objects written to object storage.",
                Some(&Unit::Bytes),
                get(&c.upload_bytes),
            ),
            (
                "streamhouse_upload_failures",
                "Chunk uploads or commits that failed (retried).",
                None,
                get(&c.upload_failures),
            ),
            (
                "streamhouse_ranges_abandoned",
                "Ranges written under a lease another agent took over; never committed.",
                None,
                get(&c.ranges_abandoned),
            ),
            (
                "streamhouse_ranges_of_deleted_topics",
                "Ranges of topics deleted before their commit (expected; nothing lost).",
                None,
                get(&c.ranges_of_deleted_topics),
            ),
            (
                "streamhouse_leases_acquired",
                "Partition leases this agent acquired.",
                None,
                get(&c.leases_acquired),
            ),
            (
                "streamhouse_leases_lost",
                "Partition leases this agent lost (fenced or expired).",
                None,
                get(&c.leases_lost),
            ),
            (
                "streamhouse_leases_released",
                "Partition leases this agent released (handoff, shutdown, deletion).",
                None,
                get(&c.leases_released),
            ),
            (
                "streamhouse_log_start_moves",
                "Times retention or DeleteRecords moved a partition's log start.",
                None,
                get(&c.log_start_moves),
            ),
            (
                "streamhouse_objects_deleted",
                "Chunk objects deleted from object storage because no range referenced them.",
                None,
                get(&c.objects_deleted),
            ),
            (
                "streamhouse_compactions",
                "Objects compaction wrote and switched the chunk index to.",
                None,
                get(&c.compactions),
            ),
            (
                "streamhouse_compacted",
                "Bytes of the objects compaction wrote and switched to.",
                Some(&Unit::Bytes),
                get(&c.compacted_bytes),
            ),
            (
                "streamhouse_compacted_ranges",
                "Committed ranges compaction moved into objects of their partition's own.",
                None,
                get(&c.compacted_ranges),
            ),
            (
                "streamhouse_compaction_failures",
                "Partition compactions that failed (tried again next pass; nothing lost).",
                None,
                get(&c.compaction_failures),
            ),
            (
                "streamhouse_records_compacted_away",
                "Records key compaction removed: superseded by a later record of their key, or \
                 tombstones past delete.retention.ms.",
                None,
                get(&c.records_compacted_away),
            ),
            (
                "streamhouse_orphans_claimed",
                "Compacted objects no chunk row named that the sweep claimed for deletion.",
                None,
                get(&c.orphans_claimed),
            ),
        ];
        for (name, help, unit, v) in counters {
            single(&mut enc, name, help, unit, Value::Counter(v))?;
        }
        single(
            &mut enc,
            "streamhouse_leases_held",
            "Partition leases this agent holds.",
            None,
            Value::IntGauge(get(&c.leases_held)),
        )?;
        single(
            &mut enc,
            "streamhouse_compaction_pending",
            "Own bytes of the ranges the last compaction pass left for later (its budget ran out).",
            Some(&Unit::Bytes),
            Value::IntGauge(get(&c.compaction_pending_bytes)),
        )?;
        single(
            &mut enc,
            "streamhouse_sweep_pending_objects",
            "Objects no range references, waiting out their grace before the sweep deletes them.",
            None,
            Value::IntGauge(get(&c.sweep_pending_objects)),
        )?;
        let mut e = enc.encode_descriptor(
            "streamhouse_upload_duration",
            "Time of each chunk PUT to object storage.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        histogram(&mut e, &c.upload_us, 1e6)
    }
}
