//! What a producer's tasks share ([`Inner`]) and the state under its one
//! lock ([`State`]): topics and their partitions' batches, the intake
//! queue, outstanding records, flush and shutdown. Data and shutdown only;
//! the tasks acting on it are in the sibling modules.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;

use parking_lot::Mutex;
use streamhouse_proto::batch::BatchBuilder;
use tokio::sync::{oneshot, Notify, Semaphore};
use tokio::time::Instant;

use super::accumulator::BatchLimits;
use super::config::ProducerConfig;
use super::delivery::Outcome;
use super::metrics::Counters;
use super::sequencer::PartitionState;
use crate::backoff::RetryPolicy;
use crate::error::Error;
use crate::net::metadata::Metadata;
use crate::net::pool::ConnectionPool;
use crate::record::ProducerRecord;

/// What one `send` or `send_batch` call hands the producer.
pub(super) enum Item {
    Record(ProducerRecord),
    /// Records already encoded as one batch for one partition.
    Batch {
        topic: String,
        partition: u32,
        builder: BatchBuilder,
        timestamp: i64,
    },
}

impl Item {
    pub(super) fn topic(&self) -> &str {
        match self {
            Item::Record(r) => &r.topic,
            Item::Batch { topic, .. } => topic,
        }
    }
}

/// What the producer keeps per topic: its routes (re-read from the
/// metadata cache only when that changes) and its partitions' batches.
pub(super) struct TopicState {
    pub(super) partition_count: u32,
    pub(super) metadata_version: u64,
    /// Partition keyless records go to until their batch closes.
    pub(super) sticky: Option<u32>,
    pub(super) partitions: Vec<Option<PartitionState>>,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) topics: HashMap<String, TopicState, rustc_hash::FxBuildHasher>,
    pub(super) intake: VecDeque<Deferred>,
    /// Withdrawn entries still in `intake`.
    pub(super) withdrawn: usize,
    /// The id of the last record queued in `intake`.
    pub(super) next_intake_id: u64,
    pub(super) outstanding: usize,
    pub(super) flushing: usize,
    pub(super) shutdown: bool,
}

pub(super) struct Inner {
    pub(super) config: ProducerConfig,
    pub(super) limits: BatchLimits,
    pub(super) metadata: Metadata,
    pub(super) pool: ConnectionPool,
    pub(super) state: Mutex<State>,
    pub(super) memory: Semaphore,
    pub(super) wake_sender: Notify,
    pub(super) wake_intake: Notify,
    pub(super) idle: Notify,
    /// Woken whenever a batch is answered (see [`wait_for_earlier`]).
    pub(super) answered: Notify,
    pub(super) pid: Mutex<(i64, i16)>,
    /// New producer ids being fetched after a failure.
    pub(super) renewing_pid: AtomicUsize,
    pub(super) closed: AtomicBool,
    pub(super) counters: Counters,
    pub(super) retry: RetryPolicy,
    /// What [`ProducerBuilder::hold`](super::ProducerBuilder::hold) keeps
    /// (an in-process agent); declared last so the connections above close
    /// before it stops.
    pub(super) _held: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

/// What [`Inner::try_append`] did with an item.
pub(super) enum Append {
    /// Appended, or failed (set aside for completion).
    Done,
    /// Not now (no metadata or no room): the item, handed back.
    NotNow(Item, Outcome),
}

pub(super) fn partition_state<'a>(
    st: &'a mut State,
    topic: &str,
    partition: u32,
) -> Option<&'a mut PartitionState> {
    st.topics
        .get_mut(topic)
        .and_then(|v| v.partitions.get_mut(partition as usize))
        .and_then(Option::as_mut)
}

impl Inner {
    /// Lets the producer's tasks end once everything buffered is answered
    /// (batches close at once from here on). Idempotent.
    pub(super) fn shut_down(&self) {
        let mut st = self.state.lock();
        if st.shutdown {
            return;
        }
        st.flushing += 1;
        st.shutdown = true;
        drop(st);
        self.wake_sender.notify_one();
        self.wake_intake.notify_one();
    }
}

/// One record (or `send_batch` batch) in the intake queue.
pub(super) struct Deferred {
    /// Increasing in queue order (the queue stays sorted by it).
    pub(super) id: u64,
    /// `None` once withdrawn: its future was dropped while it waited.
    pub(super) body: Option<(Item, Outcome)>,
    pub(super) size: usize,
    /// When it entered the queue; `max_block` counts from here.
    pub(super) enqueued: Instant,
    /// Whether its buffer room is taken: the producer owns it (it waits
    /// for its topic's metadata only). Otherwise it waits for room.
    pub(super) reserved: bool,
    /// Told once the producer took it or failed it (what a
    /// `send_with_callback` caller awaits).
    pub(super) taken: Option<oneshot::Sender<()>>,
}

/// Records that failed while the state lock was held, with their errors.
pub(super) type Failed = Vec<(Outcome, Error)>;
