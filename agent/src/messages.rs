//! The plain data that crosses the boundary between a shard's executor and
//! the control thread: [`ToShard`] (leases, commits, hand-overs), what a
//! shard ships ([`UploadJob`], [`ChunkRange`]), the answers
//! ([`ControlError`], [`ClusterView`]) and [`ShardHealth`]. The requests
//! to the control thread and their channel are the control thread's own
//! (`control::inbox`). This module imports no other module of the crate
//! but the leaves `ids` and `leader_epochs`.

use std::path::PathBuf;

use futures::channel::oneshot;
use streamhouse_storage::producers::RememberedBatch;

use crate::cluster::leader_epochs::EpochHistory;
use crate::ids::TopicKey;

/// One partition's batches inside a chunk object (a sealed segment as its
/// shard describes it, and as the metadata store commits it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRange {
    pub topic: TopicKey,
    pub partition: u32,
    /// First offset in the range.
    pub base_offset: u64,
    /// Offset after the last record in the range.
    pub end_offset: u64,
    /// Byte position of the first frame of the range in the object.
    pub pos: u64,
    /// Bytes from `pos` to the end of the range's last frame.
    pub len: u64,
    /// Bytes of the range's own frames: `len` less the frames of other
    /// partitions of the same shard interleaved with them. What retention
    /// by size and the stored-bytes metrics count.
    pub bytes: u64,
    /// Lease epoch the data was written under.
    pub epoch: u64,
    /// Largest record timestamp in the range (ms since the Unix epoch, as
    /// its batch headers say): the chunk index's time index.
    pub max_timestamp: i64,
    /// The last batches (up to `REMEMBERED_BATCHES` each) of the idempotent
    /// producers that wrote in this range, ending at or before `end_offset`:
    /// stored so a new owner of the partition still recognises a retry of
    /// any of them.
    pub producers: Vec<RememberedBatch>,
}

/// What the control thread tells a shard.
#[derive(Debug)]
pub enum ToShard {
    /// The lease on a partition is ours at `epoch`; data up to
    /// `committed_end` is in object storage.
    Lease {
        topic: TopicKey,
        partition: u32,
        epoch: u64,
        /// Served until then (monotonic clock; see `Shared::valid_until`).
        valid_until: std::time::Instant,
        committed_end: u64,
        /// The lease changed hands (or is new): local data past
        /// `committed_end` was written under an older lease.
        fresh: bool,
        /// Producer batches committed for the partition (metadata store,
        /// else the last committed range), to rebuild idempotent producer
        /// state when the local log lacks them.
        producers: Vec<RememberedBatch>,
        /// Where each epoch began writing, `epoch` included: reads answer
        /// records' epochs and find where a consumer's epoch ended.
        epochs: EpochHistory,
        /// The partition's first readable offset (retention).
        log_start: u64,
    },
    /// Retention moved a partition's log start.
    LogStart {
        topic: TopicKey,
        partition: u32,
        start: u64,
    },
    /// Stop taking writes on a partition, get everything written so far
    /// committed, then answer: its lease is about to be released.
    Handoff {
        topic: TopicKey,
        partition: u32,
        done: oneshot::Sender<()>,
    },
    /// A held lease was extended.
    Renewed {
        topic: TopicKey,
        partition: u32,
        epoch: u64,
        /// Served until then (monotonic clock).
        valid_until: std::time::Instant,
    },
    /// The lease is gone (fenced or expired): stop serving the partition.
    LeaseLost {
        topic: TopicKey,
        partition: u32,
        reason: String,
    },
    /// The lease was handed to another agent: the partition is not served
    /// here any more (`NOT_FOUND`, so clients look up the new leader).
    Released { topic: TopicKey, partition: u32 },
    /// Sealed segment `segment` is uploaded and committed (or needed no
    /// upload); the shard may delete it.
    /// `segment` is committed; `ends` has, per partition whose range in it
    /// is committed, the offset after that range.
    Committed {
        segment: u64,
        ends: Vec<(TopicKey, u32, u64)>,
    },
    /// Answered once every message before it was applied.
    Barrier(oneshot::Sender<()>),
}

/// A sealed segment to ship: one object, committed with its ranges.
#[derive(Debug, Clone)]
pub struct UploadJob {
    pub shard: usize,
    pub segment: u64,
    pub path: PathBuf,
    /// Object key (unique per segment of a log incarnation).
    pub key: String,
    /// Ranges of partitions the shard holds lease state for, stamped with
    /// the epoch they were written under.
    pub ranges: Vec<ChunkRange>,
    /// Ranges of partitions the shard has no lease state for (handed over,
    /// or a lease not taken back yet after a restart); their `epoch` is 0
    /// and the uploader resolves them against the metadata store.
    pub unleased: Vec<ChunkRange>,
}

/// Errors of control requests, each mapping to one gRPC status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ControlError {
    #[error("{0}")]
    Invalid(String),
    #[error("topic {0} already exists")]
    Exists(String),
    #[error("unknown topic {0}")]
    Unknown(String),
    #[error("{0}")]
    OutOfRange(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Corrupt(String),
    #[error("{0}")]
    Internal(String),
    /// A retry cannot help: another instance took over (a fenced producer,
    /// a consumer-group member of an older generation).
    #[error("{0}")]
    Fenced(String),
    /// Something other than a topic does not exist (a consumer group).
    #[error("{0}")]
    Missing(String),
    /// A limit is reached (members of a group).
    #[error("{0}")]
    Exhausted(String),
    /// Another process took this one's place for good (a static group
    /// member whose instance id a newer process joined with): fatal, a
    /// retry or rejoin cannot help.
    #[error("{0}")]
    Superseded(String),
    /// Something other than a topic exists already (a user).
    #[error("{0}")]
    AlreadyExists(String),
    /// The caller may not do this (`PERMISSION_DENIED`).
    #[error("{0}")]
    Denied(String),
}

/// How a shard is doing, as the control thread tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardHealth {
    Healthy,
    Failed,
    Dead,
}

/// Who leads one partition: (agent id, shard address, lease epoch); empty
/// strings when no live agent holds the lease.
pub type Leader = (String, String, u64);

/// Live agents and partition leaders, from the metadata store.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// (agent id, shard addresses).
    pub agents: Vec<(String, Vec<String>)>,
    /// Per topic, the leader of each partition.
    pub topics: Vec<(String, Vec<Leader>)>,
}
