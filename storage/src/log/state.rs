//! The shard log's state: what one `ShardLog` holds behind its `RefCell`,
//! as owned parts — the partitions (`partition_set`), the commit queue
//! (`commit_queue`), the segments (`segment_set`) — and whether the log
//! failed or closed. Data only; the behaviour acting on it is in the
//! sibling modules.

use std::cell::RefCell;

use futures::channel::mpsc;

use super::commit_queue::CommitQueue;
use super::config::LogConfig;
use super::partition_set::PartitionSet;
use super::segment_set::SegmentSet;

pub(super) struct State {
    pub(super) partitions: PartitionSet,
    pub(super) commit: CommitQueue,
    pub(super) segments: SegmentSet,
    /// Why the log failed, while it refuses appends.
    pub(super) poisoned: Option<String>,
    pub(super) closed: bool,
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
