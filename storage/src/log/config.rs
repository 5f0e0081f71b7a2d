//! The shard log's settings ([`LogConfig`]) and their defaults. Data only.

use std::path::PathBuf;
use std::time::Duration;

/// Settings of one shard log.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Directory holding this shard's segment files.
    pub dir: PathBuf,
    /// A segment is sealed once it holds this many bytes; default 64 MiB.
    pub segment_bytes: u64,
    /// A segment is sealed once its first data is this old; default 10 s.
    pub segment_age: Duration,
    /// ... or this old once someone waits for the seal ([`ShardLog::hurry_seal`](super::ShardLog::hurry_seal),
    /// used by ack `object`); default 100 ms.
    pub hurried_age: Duration,
    /// Most bytes one group-commit write carries; default 8 MiB. A single
    /// frame larger than this is written alone.
    pub max_flush_bytes: usize,
    /// Write the WAL with O_DIRECT (block-aligned DMA writes, bypassing the
    /// page cache) instead of buffered writes; default false. Either way an
    /// append is answered only after `fdatasync` covered it. Buffered is the
    /// default because on ext4 an O_DIRECT write that extends a file
    /// allocates unwritten extents that every `fdatasync` must convert and
    /// journal, which made synced appends markedly slower (docs/BENCHMARKS.md).
    pub direct_io: bool,
    /// Most idempotent producers remembered over all partitions of the
    /// shard; past it the least recently used is forgotten (see
    /// [`ProducerLru`](crate::producers::ProducerLru)); default [`DEFAULT_MAX_PRODUCERS`].
    pub max_producers: usize,
    /// Most bytes of the active segment allocated (zero-filled, synced and
    /// checked to be written extents) ahead of its last write; default 0:
    /// off. When on, batches are only ever written to allocated blocks, so
    /// writes go on while the disk cannot allocate, until the headroom is
    /// used up; a new segment starts with 1 MiB, the headroom grows with
    /// the segment up to this. It writes every byte of the WAL twice.
    /// Either way every write's blocks are checked after its sync and
    /// before its acknowledgement (see `alloc`).
    pub preallocate_bytes: u64,
}

/// Default of [`LogConfig::max_producers`]: 100,000 producers (about
/// 0.5 KiB each with 16 remembered batches, so ~50 MB per shard at most).
pub const DEFAULT_MAX_PRODUCERS: usize = 100_000;

impl LogConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LogConfig {
            dir: dir.into(),
            segment_bytes: 64 << 20,
            segment_age: Duration::from_secs(10),
            hurried_age: Duration::from_millis(100),
            max_flush_bytes: 8 << 20,
            direct_io: false,
            max_producers: DEFAULT_MAX_PRODUCERS,
            preallocate_bytes: 0,
        }
    }
}
