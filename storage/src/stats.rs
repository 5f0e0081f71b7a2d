//! Counters of one shard log, written only by the log's own executor and
//! read by whoever renders metrics: plain atomics (relaxed), no locks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Upper bounds of the fsync latency buckets, in microseconds.
pub const FSYNC_BUCKETS_US: [u64; 12] = [
    100, 250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 512_000,
];
/// Upper bounds of the group-commit size buckets, in batches per sync.
pub const COMMIT_BUCKETS: [u64; 8] = [1, 2, 4, 8, 16, 32, 64, 256];

/// A fixed-bucket histogram of integer observations.
#[derive(Debug)]
pub struct Buckets<const N: usize> {
    pub bounds: [u64; N],
    /// Observations ≤ bounds[i] (not cumulative).
    pub counts: [AtomicU64; N],
    /// Observations above the last bound.
    pub over: AtomicU64,
    pub sum: AtomicU64,
    pub count: AtomicU64,
}

impl<const N: usize> Buckets<N> {
    pub fn new(bounds: [u64; N]) -> Self {
        Buckets {
            bounds,
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            over: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: u64) {
        match self.bounds.iter().position(|b| v <= *b) {
            Some(i) => self.counts[i].fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
        self.sum.fetch_add(v, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Cumulative counts per bound (Prometheus `le` buckets), then +Inf.
    pub fn cumulative(&self) -> Vec<(Option<u64>, u64)> {
        let mut acc = 0;
        let mut out = Vec::with_capacity(N + 1);
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            acc += c.load(Ordering::Relaxed);
            out.push((Some(*b), acc));
        }
        acc += self.over.load(Ordering::Relaxed);
        out.push((None, acc));
        out
    }
}

/// What a shard log has done since it opened.
#[derive(Debug)]
pub struct LogStats {
    /// Bytes written to the WAL (frames, without padding).
    pub wal_bytes: AtomicU64,
    /// fdatasync latency, µs.
    pub fsync_us: Buckets<12>,
    /// Batches covered by each group commit.
    pub commit_batches: Buckets<8>,
    /// Segments sealed.
    pub segments_sealed: AtomicU64,
    /// Rolls that could not create the next segment (then retried).
    pub roll_failures: AtomicU64,
    /// Allocations of WAL blocks ahead of writes that failed (the disk
    /// refused them, or they were not written extents after syncing).
    pub allocation_failures: AtomicU64,
    /// Idempotent producers remembered now (bounded by
    /// `LogConfig::max_producers`).
    pub producers: AtomicU64,
    /// Fetches registered as waiting for data right now.
    pub fetch_waiters: AtomicU64,
    /// Why the log cannot write now, if it cannot: failed for good, or its
    /// last roll failed and is being retried. Written on the log's
    /// executor, read by `/ready` (a lock taken only on those rare events
    /// and by readiness probes, never on the write path).
    pub trouble: Mutex<Option<String>>,
}

impl LogStats {
    /// Why the log cannot write now, if it cannot.
    pub fn trouble(&self) -> Option<String> {
        self.trouble.lock().map(|t| t.clone()).unwrap_or(None)
    }

    pub(crate) fn set_trouble(&self, why: Option<String>) {
        if let Ok(mut t) = self.trouble.lock() {
            *t = why;
        }
    }
}

impl Default for LogStats {
    fn default() -> Self {
        LogStats {
            wal_bytes: AtomicU64::new(0),
            fsync_us: Buckets::new(FSYNC_BUCKETS_US),
            commit_batches: Buckets::new(COMMIT_BUCKETS),
            segments_sealed: AtomicU64::new(0),
            roll_failures: AtomicU64::new(0),
            allocation_failures: AtomicU64::new(0),
            producers: AtomicU64::new(0),
            fetch_waiters: AtomicU64::new(0),
            trouble: Mutex::new(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_with_an_overflow() {
        let b = Buckets::new([10, 100]);
        for v in [1, 10, 11, 100, 1000] {
            b.observe(v);
        }
        assert_eq!(
            b.cumulative(),
            vec![(Some(10), 2), (Some(100), 4), (None, 5)]
        );
        assert_eq!(b.sum.load(Ordering::Relaxed), 1122);
        assert_eq!(b.count.load(Ordering::Relaxed), 5);
    }
}
