//! One shard's counters and the families they make on `/metrics`. Each
//! shard writes only its own [`ShardMetrics`] (relaxed atomics on memory
//! no other core writes: no cross-core lock on the hot path); a scrape
//! reads every shard's and writes one family per metric with a `shard`
//! label (sum over shards is PromQL's job). Owns these metrics' names,
//! help texts and units; touches nothing of the shard itself.

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use streamhouse_storage::stats::{Buckets, LogStats};

use super::encode::{per_shard, per_shard_histogram, Value};
use crate::grpc_status::Code;
use crate::runtime::clock::now_ms;

/// Request latency buckets, µs (shown in seconds).
const REQUEST_BUCKETS_US: [u64; 14] = [
    250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 512_000,
    1_000_000, 5_000_000,
];
/// Records-per-batch buckets.
const BATCH_BUCKETS: [u64; 8] = [1, 10, 100, 500, 1_000, 5_000, 10_000, 100_000];

/// gRPC status codes in order (index = code number).
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// One shard's counters.
pub struct ShardMetrics {
    pub produce_requests: AtomicU64,
    pub produce_records: AtomicU64,
    pub produce_bytes: AtomicU64,
    pub fetch_requests: AtomicU64,
    /// Failed requests by gRPC status code.
    pub errors: [AtomicU64; 17],
    /// Latency of every request, µs.
    pub request_us: Buckets<14>,
    /// Records per produced batch.
    pub batch_records: Buckets<8>,
    pub connections_open: AtomicU64,
    /// Connections refused at the shard's connection limit.
    pub connections_refused: AtomicU64,
    /// Restarts of the shard's executor after a panic.
    pub restarts: AtomicU64,
    /// Bytes of sealed segments waiting for upload.
    pub upload_backlog_bytes: AtomicU64,
    /// Seal time (ms since the epoch) of the oldest segment waiting for
    /// upload; 0 when none waits.
    pub oldest_unshipped_ms: AtomicI64,
    /// Set once the shard's log is open.
    pub log: Mutex<Option<Arc<LogStats>>>,
}

impl Default for ShardMetrics {
    fn default() -> Self {
        ShardMetrics {
            produce_requests: AtomicU64::new(0),
            produce_records: AtomicU64::new(0),
            produce_bytes: AtomicU64::new(0),
            fetch_requests: AtomicU64::new(0),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
            request_us: Buckets::new(REQUEST_BUCKETS_US),
            batch_records: Buckets::new(BATCH_BUCKETS),
            connections_open: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            upload_backlog_bytes: AtomicU64::new(0),
            oldest_unshipped_ms: AtomicI64::new(0),
            log: Mutex::new(None),
        }
    }
}

impl ShardMetrics {
    pub fn error(&self, code: Code) {
        if let Some(c) = self.errors.get(code as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Age at `now_ms` (wall clock) of the oldest sealed segment not yet
    /// in object storage, ms; 0 when none waits.
    pub fn upload_lag_ms(&self, now_ms: i64) -> i64 {
        match self.oldest_unshipped_ms.load(Ordering::Relaxed) {
            0 => 0,
            sealed => (now_ms - sealed).max(0),
        }
    }

    /// A counter of the shard's log; 0 before the log is open.
    fn log_counter(&self, f: impl Fn(&LogStats) -> &AtomicU64) -> Value {
        Value::Counter(self.log_value(f))
    }

    /// A gauge of the shard's log; 0 before the log is open.
    fn log_gauge(&self, f: impl Fn(&LogStats) -> &AtomicU64) -> Value {
        Value::IntGauge(self.log_value(f))
    }

    fn log_value(&self, f: impl Fn(&LogStats) -> &AtomicU64) -> u64 {
        self.log
            .lock()
            .as_ref()
            .map_or(0, |l| f(l).load(Ordering::Relaxed))
    }
}

fn counter(a: &AtomicU64) -> Value {
    Value::Counter(a.load(Ordering::Relaxed))
}

fn gauge(a: &AtomicU64) -> Value {
    Value::IntGauge(a.load(Ordering::Relaxed))
}

/// Every shard's families, for the exposition registry.
pub(super) struct ShardsCollector {
    pub shards: Vec<Arc<ShardMetrics>>,
    /// Wall clock, ms since the epoch (upload lag compares seal times).
    pub now_ms: fn() -> i64,
}

impl ShardsCollector {
    pub fn new(shards: Vec<Arc<ShardMetrics>>) -> Self {
        ShardsCollector { shards, now_ms }
    }
}

impl fmt::Debug for ShardsCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShardsCollector({} shards)", self.shards.len())
    }
}

impl Collector for ShardsCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let s = self.shards.as_slice();
        let e = &mut enc;
        let bytes = Some(&Unit::Bytes);
        let seconds = Some(&Unit::Seconds);
        type Shard = Arc<ShardMetrics>;
        per_shard(
            e,
            "streamhouse_produce_requests",
            "Produce requests answered OK.",
            None,
            s,
            |m: &Shard| counter(&m.produce_requests),
        )?;
        per_shard(
            e,
            "streamhouse_produce_records",
            "Records appended by produce requests.",
            None,
            s,
            |m: &Shard| counter(&m.produce_records),
        )?;
        per_shard(
            e,
            "streamhouse_produce",
            "Record batch bytes appended by produce requests.",
            bytes,
            s,
            |m: &Shard| counter(&m.produce_bytes),
        )?;
        per_shard(
            e,
            "streamhouse_fetch_requests",
            "Fetch requests answered OK.",
            None,
            s,
            |m: &Shard| counter(&m.fetch_requests),
        )?;
        per_shard(
            e,
            "streamhouse_connections_open",
            "Client connections open.",
            None,
            s,
            |m: &Shard| gauge(&m.connections_open),
        )?;
        per_shard(
            e,
            "streamhouse_connections_refused",
            "Connections refused at the per-shard connection limit (--max-connections-per-shard).",
            None,
            s,
            |m: &Shard| counter(&m.connections_refused),
        )?;
        per_shard(
            e,
            "streamhouse_shard_restarts",
            "Restarts of the shard's executor after it panicked.",
            None,
            s,
            |m: &Shard| counter(&m.restarts),
        )?;
        per_shard(
            e,
            "streamhouse_upload_backlog",
            "Sealed WAL bytes not yet in object storage.",
            bytes,
            s,
            |m: &Shard| gauge(&m.upload_backlog_bytes),
        )?;
        let now = (self.now_ms)();
        per_shard(
            e,
            "streamhouse_upload_lag",
            "Age of the oldest sealed segment not yet in object storage (0 when none waits).",
            seconds,
            s,
            |m: &Shard| Value::Gauge(m.upload_lag_ms(now) as f64 / 1000.0),
        )?;
        per_shard(
            e,
            "streamhouse_wal",
            "Bytes written to the write-ahead log.",
            bytes,
            s,
            |m: &Shard| m.log_counter(|l| &l.wal_bytes),
        )?;
        per_shard(
            e,
            "streamhouse_producers_remembered",
            "Idempotent producers remembered (bounded by --max-producers-per-shard).",
            None,
            s,
            |m: &Shard| m.log_gauge(|l| &l.producers),
        )?;
        per_shard(
            e,
            "streamhouse_fetch_waiters",
            "Fetches waiting for new data.",
            None,
            s,
            |m: &Shard| m.log_gauge(|l| &l.fetch_waiters),
        )?;
        per_shard(
            e,
            "streamhouse_segment_roll_failures",
            "Segment rolls that could not create the next segment (retried).",
            None,
            s,
            |m: &Shard| m.log_counter(|l| &l.roll_failures),
        )?;
        per_shard(
            e,
            "streamhouse_wal_allocation_failures",
            "Allocations of WAL blocks ahead of writes that the disk refused.",
            None,
            s,
            |m: &Shard| m.log_counter(|l| &l.allocation_failures),
        )?;
        per_shard(
            e,
            "streamhouse_segments_sealed",
            "WAL segments sealed into chunks for upload.",
            None,
            s,
            |m: &Shard| m.log_counter(|l| &l.segments_sealed),
        )?;

        let mut family = enc.encode_descriptor(
            "streamhouse_request_errors",
            "Failed requests by shard and gRPC status code.",
            None,
            MetricType::Counter,
        )?;
        for (i, m) in s.iter().enumerate() {
            let shard = i.to_string();
            for (code, name) in CODES.iter().enumerate() {
                let v = m.errors[code].load(Ordering::Relaxed);
                if v > 0 {
                    let labels = [("shard", shard.as_str()), ("code", name)];
                    Value::Counter(v).write(&mut family.encode_family(&labels)?)?;
                }
            }
        }
        self.histograms(&mut enc)
    }
}

impl ShardsCollector {
    fn histograms(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let shards: Vec<(String, &ShardMetrics)> = self
            .shards
            .iter()
            .enumerate()
            .map(|(i, m)| (i.to_string(), m.as_ref()))
            .collect();
        let seconds = Some(&Unit::Seconds);
        per_shard_histogram(
            enc,
            "streamhouse_request_duration",
            "Time from a request's arrival to its answer.",
            seconds,
            &shards,
            |m| &m.request_us,
            1e6,
        )?;
        per_shard_histogram(
            enc,
            "streamhouse_batch_records",
            "Records per produced batch.",
            None,
            &shards,
            |m| &m.batch_records,
            1.0,
        )?;
        let logs: Vec<(String, Arc<LogStats>)> = self
            .shards
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.log.lock().clone().map(|l| (i.to_string(), l)))
            .collect();
        per_shard_histogram(
            enc,
            "streamhouse_fsync_duration",
            "Time of each WAL fsync (one per group commit).",
            seconds,
            &logs,
            |l| &l.fsync_us,
            1e6,
        )?;
        per_shard_histogram(
            enc,
            "streamhouse_group_commit_batches",
            "Batches made durable by one fsync (group commit size).",
            None,
            &logs,
            |l| &l.commit_batches,
            1.0,
        )
    }
}
