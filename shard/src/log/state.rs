//! The shard log's state: what one `ShardLog` holds behind its `RefCell`
//! (partitions, the pending group-commit buffer, segments, failure) and the
//! per-partition record of offsets, index, producers and waiters. Data
//! only; the behaviour acting on it is in the sibling modules.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use futures::channel::{mpsc, oneshot};
use glommio::io::{BufferedFile, DmaFile};

use super::config::LogConfig;
use super::error::LogError;
use super::SealedSegment;
use crate::index::OffsetIndex;
use crate::producers::{ProducerLru, ProducerTable};

#[derive(Default)]
pub(super) struct PartitionLog {
    pub(super) next_offset: u64,
    pub(super) high_watermark: u64,
    pub(super) log_start: u64,
    pub(super) index: OffsetIndex,
    pub(super) producers: ProducerTable,
    pub(super) data_waiters: Vec<oneshot::Sender<()>>,
    /// Appends that arrived ahead of their producer's sequence, woken by
    /// every append to the partition.
    pub(super) seq_waiters: Vec<oneshot::Sender<()>>,
}

impl PartitionLog {
    /// Forgets every local batch and producer entry: the partition
    /// continues at `offset`, everything before it lives elsewhere.
    pub(super) fn restart_at(&mut self, offset: u64) {
        self.index = OffsetIndex::default();
        self.producers = ProducerTable::default();
        self.next_offset = offset;
        self.high_watermark = offset;
        self.log_start = offset;
    }
}

/// Partitions by topic, then partition number.
pub(super) type Partitions = HashMap<String, HashMap<u32, PartitionLog>>;

pub(super) struct PendingEntry {
    pub(super) topic: String,
    pub(super) partition: u32,
    pub(super) start: usize,
    pub(super) len: usize,
    pub(super) batch_offset: usize,
    pub(super) base_offset: u64,
    pub(super) record_count: u32,
    /// The batch header's largest record timestamp (ms; 0 for a restart frame).
    pub(super) max_timestamp: i64,
}

pub(super) struct SegmentFile {
    /// Reads (and, with `direct_io`, writes).
    pub(super) file: Rc<DmaFile>,
    /// Buffered writes of the active segment (without `direct_io`).
    pub(super) writer: Option<Rc<BufferedFile>>,
    pub(super) path: PathBuf,
}

pub(super) struct State {
    pub(super) partitions: Partitions,
    pub(super) pending: Vec<u8>,
    pub(super) pending_entries: VecDeque<PendingEntry>,
    pub(super) appended_lsn: u64,
    pub(super) durable_lsn: u64,
    pub(super) waiters: VecDeque<(u64, oneshot::Sender<Result<u64, LogError>>)>,
    pub(super) seal_subscriber: Option<mpsc::UnboundedSender<SealedSegment>>,
    pub(super) segments: BTreeMap<u64, SegmentFile>,
    pub(super) sealed: Vec<SealedSegment>,
    pub(super) active: u64,
    pub(super) active_len: u64,
    pub(super) active_since: Option<Instant>,
    /// Someone waits for the active segment to be sealed.
    pub(super) hurry: bool,
    /// Seal the active segment as soon as the writer is idle.
    pub(super) seal_now: bool,
    pub(super) tail: Vec<u8>,
    pub(super) gen: u64,
    pub(super) poisoned: Option<String>,
    pub(super) closed: bool,
    /// After a failed roll (the next segment could not be created, e.g. no
    /// file descriptor or no space): appends stay on the active segment and
    /// no roll is tried again before this instant.
    pub(super) roll_retry_at: Option<Instant>,
    /// Which producers appended least recently, over all partitions.
    pub(super) producer_lru: ProducerLru,
    /// Bytes of the active segment, from its start, that are allocated
    /// (see [`alloc`]); writes never go past it.
    pub(super) allocated: u64,
    /// Allocation of the active segment beyond `allocated` in progress; it
    /// answers the new allocated length.
    pub(super) extending: Option<glommio::task::JoinHandle<Result<u64, String>>>,
}

pub(super) struct Inner {
    pub(super) config: LogConfig,
    pub(super) stats: std::sync::Arc<crate::stats::LogStats>,
    pub(super) state: RefCell<State>,
    /// Wakes the writer task; replaced when a failed log is reopened.
    pub(super) wake: RefCell<mpsc::UnboundedSender<()>>,
    /// Whether a writer task runs (it stops when the log fails or closes).
    pub(super) writer_running: std::cell::Cell<bool>,
}
