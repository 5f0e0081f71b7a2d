//! Agent metrics in the Prometheus text format, served on `/metrics` of the
//! admin port. Each shard writes only its own counters (relaxed atomics on
//! memory no other core writes: no cross-core locks on the hot path); the
//! control thread writes its own; a scrape reads them all and prints each
//! family per shard and summed over the agent. Owns names and rendering.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use streamhouse_shard::stats::{Buckets, LogStats};

use crate::clock::now_ms;
use crate::grpc_status::Code;

/// Request latency buckets, µs.
const REQUEST_BUCKETS_US: [u64; 14] = [
    250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 512_000,
    1_000_000, 5_000_000,
];
/// Records-per-batch buckets.
const BATCH_BUCKETS: [u64; 8] = [1, 10, 100, 500, 1_000, 5_000, 10_000, 100_000];
/// Upload (PUT) latency buckets, µs.
const UPLOAD_BUCKETS_US: [u64; 10] = [
    1_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 10_000_000,
];

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
}

/// The control thread's counters.
pub struct ControlMetrics {
    pub chunks_uploaded: AtomicU64,
    pub chunks_committed: AtomicU64,
    pub upload_bytes: AtomicU64,
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
        }
    }
}

/// Every metric of one agent.
pub struct Registry {
    pub shards: Vec<Arc<ShardMetrics>>,
    pub control: ControlMetrics,
    /// Groups this agent coordinates.
    pub groups: crate::group_metrics::GroupMetrics,
}

impl Registry {
    pub fn new(shards: usize) -> Registry {
        Registry {
            shards: (0..shards).map(|_| Arc::default()).collect(),
            control: ControlMetrics::default(),
            groups: Default::default(),
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut counter = |name: &str, help: &str, f: &dyn Fn(&ShardMetrics) -> u64, kind: &str| {
            let _ = writeln!(
                out,
                "# HELP streamhouse_{name} {help}\n# TYPE streamhouse_{name} {kind}"
            );
            let mut total = 0;
            for (i, s) in self.shards.iter().enumerate() {
                let v = f(s);
                total += v;
                let _ = writeln!(out, "streamhouse_{name}{{shard=\"{i}\"}} {v}");
            }
            let _ = writeln!(
                out,
                "# TYPE streamhouse_agent_{name} {kind}\nstreamhouse_agent_{name} {total}"
            );
        };
        counter(
            "produce_requests_total",
            "Produce requests answered OK.",
            &|s| get(&s.produce_requests),
            "counter",
        );
        counter(
            "produce_records_total",
            "Records appended.",
            &|s| get(&s.produce_records),
            "counter",
        );
        counter(
            "produce_bytes_total",
            "Batch bytes appended.",
            &|s| get(&s.produce_bytes),
            "counter",
        );
        counter(
            "fetch_requests_total",
            "Fetch requests answered OK.",
            &|s| get(&s.fetch_requests),
            "counter",
        );
        counter(
            "connections_open",
            "Client connections open.",
            &|s| get(&s.connections_open),
            "gauge",
        );
        counter(
            "connections_refused_total",
            "Connections refused at the per-shard connection limit.",
            &|s| get(&s.connections_refused),
            "counter",
        );
        counter(
            "shard_restarts_total",
            "Restarts of the shard's executor after it panicked.",
            &|s| get(&s.restarts),
            "counter",
        );
        counter(
            "upload_backlog_bytes",
            "Sealed bytes not yet in object storage.",
            &|s| get(&s.upload_backlog_bytes),
            "gauge",
        );
        counter(
            "wal_bytes_total",
            "Bytes written to the WAL.",
            &|s| log_stat(s, |l| get(&l.wal_bytes)),
            "counter",
        );
        counter(
            "producers_remembered",
            "Idempotent producers remembered (bounded by --max-producers-per-shard).",
            &|s| log_stat(s, |l| get(&l.producers)),
            "gauge",
        );
        counter(
            "fetch_waiters",
            "Fetches waiting for new data.",
            &|s| log_stat(s, |l| get(&l.fetch_waiters)),
            "gauge",
        );
        counter(
            "segment_roll_failures_total",
            "Segment rolls that could not create the next segment (retried).",
            &|s| log_stat(s, |l| get(&l.roll_failures)),
            "counter",
        );
        counter(
            "wal_allocation_failures_total",
            "Allocations of WAL blocks ahead of writes that failed (the disk refused them).",
            &|s| log_stat(s, |l| get(&l.allocation_failures)),
            "counter",
        );
        counter(
            "segments_sealed_total",
            "WAL segments sealed (chunks).",
            &|s| log_stat(s, |l| get(&l.segments_sealed)),
            "counter",
        );
        let now = now_ms();
        let lag = |s: &ShardMetrics| {
            let t = s.oldest_unshipped_ms.load(Ordering::Relaxed);
            if t == 0 {
                0
            } else {
                u64::try_from(now - t).unwrap_or(0)
            }
        };
        counter(
            "upload_lag_ms",
            "Age of the oldest sealed segment not yet in object storage, ms.",
            &lag,
            "gauge",
        );

        let _ = writeln!(out, "# HELP streamhouse_request_errors_total Failed requests by gRPC status.\n# TYPE streamhouse_request_errors_total counter");
        for (i, s) in self.shards.iter().enumerate() {
            for (c, name) in CODES.iter().enumerate() {
                let v = get(&s.errors[c]);
                if v > 0 {
                    let _ = writeln!(
                        out,
                        "streamhouse_request_errors_total{{shard=\"{i}\",code=\"{name}\"}} {v}"
                    );
                }
            }
        }
        for (i, s) in self.shards.iter().enumerate() {
            let label = format!("shard=\"{i}\"");
            histogram(&mut out, "request_duration_us", &label, &s.request_us);
            histogram(&mut out, "batch_records", &label, &s.batch_records);
            if let Some(l) = s.log.lock().as_ref() {
                histogram(&mut out, "fsync_duration_us", &label, &l.fsync_us);
                histogram(&mut out, "group_commit_batches", &label, &l.commit_batches);
            }
        }
        let c = &self.control;
        for (name, v, kind) in [
            ("chunks_uploaded_total", get(&c.chunks_uploaded), "counter"),
            (
                "chunks_committed_total",
                get(&c.chunks_committed),
                "counter",
            ),
            ("upload_bytes_total", get(&c.upload_bytes), "counter"),
            ("upload_failures_total", get(&c.upload_failures), "counter"),
            (
                "ranges_abandoned_total",
                get(&c.ranges_abandoned),
                "counter",
            ),
            (
                "ranges_of_deleted_topics_total",
                get(&c.ranges_of_deleted_topics),
                "counter",
            ),
            ("leases_acquired_total", get(&c.leases_acquired), "counter"),
            ("leases_lost_total", get(&c.leases_lost), "counter"),
            ("leases_released_total", get(&c.leases_released), "counter"),
            ("leases_held", get(&c.leases_held), "gauge"),
        ] {
            let _ = writeln!(
                out,
                "# TYPE streamhouse_{name} {kind}\nstreamhouse_{name} {v}"
            );
        }
        histogram(&mut out, "upload_duration_us", "", &c.upload_us);
        self.groups.render(&mut out);
        out
    }
}

fn log_stat(s: &ShardMetrics, f: impl Fn(&LogStats) -> u64) -> u64 {
    s.log.lock().as_ref().map_or(0, |l| f(l))
}

fn histogram<const N: usize>(out: &mut String, name: &str, label: &str, b: &Buckets<N>) {
    let sep = if label.is_empty() { "" } else { "," };
    let _ = writeln!(out, "# TYPE streamhouse_{name} histogram");
    for (le, n) in b.cumulative() {
        let le = le.map_or("+Inf".to_string(), |v| v.to_string());
        let _ = writeln!(
            out,
            "streamhouse_{name}_bucket{{{label}{sep}le=\"{le}\"}} {n}"
        );
    }
    let braces = if label.is_empty() {
        String::new()
    } else {
        format!("{{{label}}}")
    };
    let _ = writeln!(
        out,
        "streamhouse_{name}_sum{braces} {}",
        b.sum.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "streamhouse_{name}_count{braces} {}",
        b.count.load(Ordering::Relaxed)
    );
}
