//! The producer's counters: atomics bumped on the send path, and the
//! [`ProducerMetrics`] snapshot read from them. No lock.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of a producer (see [`Producer::metrics`](super::Producer::metrics)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProducerMetrics {
    /// Records passed to `send`.
    pub records_sent: u64,
    /// Records acknowledged.
    pub records_acked: u64,
    /// Records that failed.
    pub records_failed: u64,
    /// Records withdrawn: their future was dropped while they waited for
    /// buffer room (never sent).
    pub records_withdrawn: u64,
    /// Batches dispatched.
    pub batches: u64,
    /// Produce requests made (retries included).
    pub requests: u64,
    /// Retried requests.
    pub retries: u64,
    /// Bytes of records buffered or in flight now.
    pub buffer_bytes_in_use: u64,
    /// Total time `send` callers waited for buffer room, ns.
    pub blocked_ns: u64,
    /// Sum over batches of the time from the first record to dispatch, ns.
    pub queue_ns_total: u64,
    /// Sum over requests of request latency, ns.
    pub request_ns_total: u64,
    /// Connections opened.
    pub connections_opened: u64,
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) records_sent: AtomicU64,
    pub(super) records_acked: AtomicU64,
    pub(super) records_failed: AtomicU64,
    pub(super) records_withdrawn: AtomicU64,
    pub(super) batches: AtomicU64,
    pub(super) requests: AtomicU64,
    pub(super) retries: AtomicU64,
    pub(super) blocked_ns: AtomicU64,
    pub(super) queue_ns_total: AtomicU64,
    pub(super) request_ns_total: AtomicU64,
}

impl Counters {
    /// The counters now, with the two figures kept elsewhere: bytes of the
    /// buffer in use and connections the pool opened.
    pub(super) fn snapshot(
        &self,
        buffer_bytes_in_use: u64,
        connections_opened: u64,
    ) -> ProducerMetrics {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ProducerMetrics {
            records_sent: l(&self.records_sent),
            records_acked: l(&self.records_acked),
            records_failed: l(&self.records_failed),
            records_withdrawn: l(&self.records_withdrawn),
            batches: l(&self.batches),
            requests: l(&self.requests),
            retries: l(&self.retries),
            buffer_bytes_in_use,
            blocked_ns: l(&self.blocked_ns),
            queue_ns_total: l(&self.queue_ns_total),
            request_ns_total: l(&self.request_ns_total),
            connections_opened,
        }
    }
}
