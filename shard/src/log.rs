//! The shard log: one write-ahead log per shard shared by all of the shard's
//! partitions, with group commit, recovery on open, per-partition offsets,
//! indexes and idempotence, and reads. Owns the WAL files under its directory;
//! must not be shared across executors (it is `!Send` on purpose).
//!
//! Group commit: `append` assigns offsets at once and queues the frame; one
//! writer task takes everything queued (up to `max_flush_bytes`), writes it
//! with one io_uring write (buffered, or DMA with `direct_io`), runs one
//! `fdatasync`, and only then answers the appends it covered and makes their
//! records visible to reads. The next write is issued while that sync runs;
//! appends that arrive meanwhile go into it.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::channel::{mpsc, oneshot};
use futures::StreamExt;
use glommio::io::{BufferedFile, DmaFile, OpenOptions};

use crate::batch::{self, BatchError, DecodedRecord};
use crate::index::{IndexEntry, OffsetIndex};
use crate::producers::{ProducerLru, ProducerTable, RememberedBatch, SeqCheck, SeqError};
use crate::segment::{self, Corruption};

mod alloc;
mod recovery;
use recovery::Recovered;

/// How long an append that arrived ahead of its producer's sequence waits
/// for the batches before it: long enough for requests that overtook each
/// other on the wire or a quick retry, short of a client's request timeout.
pub const SEQUENCE_WAIT: Duration = Duration::from_millis(1000);

/// After a failed segment roll, how long appends stay on the active
/// segment before the roll is tried again.
const ROLL_RETRY: Duration = Duration::from_secs(1);

/// Settings of one shard log.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Directory holding this shard's segment files.
    pub dir: PathBuf,
    /// A segment is sealed once it holds this many bytes; default 64 MiB.
    pub segment_bytes: u64,
    /// A segment is sealed once its first data is this old; default 10 s.
    pub segment_age: Duration,
    /// ... or this old once someone waits for the seal ([`ShardLog::hurry_seal`],
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
    /// [`ProducerLru`]); default [`DEFAULT_MAX_PRODUCERS`].
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

/// Errors of the shard log.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    #[error("unknown partition {topic}/{partition}")]
    UnknownPartition { topic: String, partition: u32 },
    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] BatchError),
    #[error(transparent)]
    Sequence(#[from] SeqError),
    #[error("offset {offset} is out of range: the log starts at {log_start}")]
    OffsetOutOfRange { offset: u64, log_start: u64 },
    #[error(transparent)]
    Corrupt(#[from] Corruption),
    /// A batch whose CRC holds but whose records do not decode (accepted by
    /// an agent that checked only the header): readers get this for the
    /// batch and can read on from `next_offset`.
    #[error(
        "batch of {topic}/{partition} at offsets {offset}..{next_offset} cannot be decoded \
         ({reason}); it was stored without its records being checked; \
         read on from offset {next_offset}"
    )]
    Undecodable {
        topic: String,
        partition: u32,
        offset: u64,
        next_offset: u64,
        reason: String,
    },
    #[error("I/O error {context}: {message}")]
    Io { context: String, message: String },
    #[error(
        "the shard's WAL failed ({0}); it refuses writes until it is recovered (retried every \
         second)"
    )]
    Poisoned(String),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(glommio::GlommioError<()>) -> LogError {
    let context = context.into();
    move |e| LogError::Io {
        context,
        message: e.to_string(),
    }
}

/// Result of a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: u64,
    pub record_count: u32,
    /// The batch had been appended before (idempotent retry).
    pub duplicate: bool,
    /// Segment holding the batch; `None` for a retry whose original is in a
    /// segment already dropped (shipped to object storage).
    pub segment: Option<u64>,
}

/// Records read from a partition.
#[derive(Debug, Clone, Default)]
pub struct ReadResult {
    pub records: Vec<DecodedRecord>,
    /// Offset the next record will get once durable.
    pub high_watermark: u64,
    pub log_start: u64,
}

/// A sealed segment: complete, synced, never written again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSegment {
    pub id: u64,
    pub path: PathBuf,
    pub len: u64,
}

/// One partition's batches inside a segment: offsets and the byte range from
/// its first frame's start to its last frame's end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRange {
    pub topic: String,
    pub partition: u32,
    pub base_offset: u64,
    /// Offset after the range's last record.
    pub end_offset: u64,
    pub pos: u64,
    pub len: u64,
}

#[derive(Default)]
struct PartitionLog {
    next_offset: u64,
    high_watermark: u64,
    log_start: u64,
    index: OffsetIndex,
    producers: ProducerTable,
    data_waiters: Vec<oneshot::Sender<()>>,
    /// Appends that arrived ahead of their producer's sequence, woken by
    /// every append to the partition.
    seq_waiters: Vec<oneshot::Sender<()>>,
}

struct PendingEntry {
    topic: String,
    partition: u32,
    start: usize,
    len: usize,
    batch_offset: usize,
    base_offset: u64,
    record_count: u32,
}

struct SegmentFile {
    /// Reads (and, with `direct_io`, writes).
    file: Rc<DmaFile>,
    /// Buffered writes of the active segment (without `direct_io`).
    writer: Option<Rc<BufferedFile>>,
    path: PathBuf,
}

impl PartitionLog {
    /// Forgets every local batch and producer entry: the partition
    /// continues at `offset`, everything before it lives elsewhere.
    fn restart_at(&mut self, offset: u64) {
        self.index = OffsetIndex::default();
        self.producers = ProducerTable::default();
        self.next_offset = offset;
        self.high_watermark = offset;
        self.log_start = offset;
    }
}

/// Partitions by topic, then partition number.
type Partitions = HashMap<String, HashMap<u32, PartitionLog>>;

fn find<'a>(parts: &'a Partitions, topic: &str, partition: u32) -> Option<&'a PartitionLog> {
    parts.get(topic).and_then(|ps| ps.get(&partition))
}

fn find_mut<'a>(
    parts: &'a mut Partitions,
    topic: &str,
    partition: u32,
) -> Option<&'a mut PartitionLog> {
    parts.get_mut(topic).and_then(|ps| ps.get_mut(&partition))
}

/// Forgets the least recently used producers while the shard remembers
/// more than its bound.
fn evict_excess(partitions: &mut Partitions, lru: &mut ProducerLru) {
    while let Some((topic, partition, id, tick)) = lru.pop_excess() {
        if let Some(p) = find_mut(partitions, &topic, partition) {
            p.producers.evict(id, tick);
        }
    }
}

/// Bytes an unprivileged writer may still use on the filesystem of `dir`,
/// if the kernel says.
// The statvfs field types differ between platforms.
#[allow(clippy::useless_conversion)]
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is a
    // valid NUL-terminated string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    (rc == 0).then(|| u64::from(st.f_bavail).saturating_mul(u64::from(st.f_frsize)))
}

fn unknown(topic: &str, partition: u32) -> LogError {
    LogError::UnknownPartition {
        topic: topic.to_owned(),
        partition,
    }
}

struct State {
    partitions: Partitions,
    pending: Vec<u8>,
    pending_entries: VecDeque<PendingEntry>,
    appended_lsn: u64,
    durable_lsn: u64,
    waiters: VecDeque<(u64, oneshot::Sender<Result<u64, LogError>>)>,
    seal_subscriber: Option<mpsc::UnboundedSender<SealedSegment>>,
    segments: BTreeMap<u64, SegmentFile>,
    sealed: Vec<SealedSegment>,
    active: u64,
    active_len: u64,
    active_since: Option<Instant>,
    /// Someone waits for the active segment to be sealed.
    hurry: bool,
    /// Seal the active segment as soon as the writer is idle.
    seal_now: bool,
    tail: Vec<u8>,
    gen: u64,
    poisoned: Option<String>,
    closed: bool,
    /// After a failed roll (the next segment could not be created, e.g. no
    /// file descriptor or no space): appends stay on the active segment and
    /// no roll is tried again before this instant.
    roll_retry_at: Option<Instant>,
    /// Which producers appended least recently, over all partitions.
    producer_lru: ProducerLru,
    /// Bytes of the active segment, from its start, that are allocated
    /// (see [`alloc`]); writes never go past it.
    allocated: u64,
    /// Allocation of the active segment beyond `allocated` in progress; it
    /// answers the new allocated length.
    extending: Option<glommio::task::JoinHandle<Result<u64, String>>>,
}

struct Inner {
    config: LogConfig,
    stats: std::sync::Arc<crate::stats::LogStats>,
    state: RefCell<State>,
    /// Wakes the writer task; replaced when a failed log is reopened.
    wake: RefCell<mpsc::UnboundedSender<()>>,
    /// Whether a writer task runs (it stops when the log fails or closes).
    writer_running: std::cell::Cell<bool>,
}

/// Handle to a shard's log. Cheap to clone; all clones share one log.
#[derive(Clone)]
pub struct ShardLog {
    inner: Rc<Inner>,
}

/// Why [`ShardLog::reopen`] did not bring a failed log back.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReopenError {
    /// The segments could not be read back; nothing changed.
    #[error("cannot read the WAL back: {0}")]
    Unreadable(LogError),
    /// Every segment was read back and is sealed now (so it can be
    /// shipped), but no new active segment could be created.
    #[error("cannot start a new WAL segment: {0}")]
    NoActive(LogError),
}

/// What recovery found, for logging.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    pub segments: usize,
    pub batches: usize,
    pub partitions: usize,
    pub torn_bytes: u64,
}

impl ShardLog {
    /// Opens (creating if needed) the log in `config.dir`: replays every
    /// segment, verifies every batch, truncates a torn tail, rebuilds offsets,
    /// indexes and producer state, then starts a fresh active segment and the
    /// writer task on the current executor.
    pub async fn open(config: LogConfig) -> Result<(ShardLog, RecoveryReport), LogError> {
        let Recovered {
            partitions,
            lru,
            segments,
            sealed,
            gen,
            active,
            report,
        } = recovery::recover(&config).await?;
        let (wake, rx) = mpsc::unbounded();
        let log = ShardLog {
            inner: Rc::new(Inner {
                config,
                stats: Default::default(),
                writer_running: std::cell::Cell::new(false),
                state: RefCell::new(State {
                    partitions,
                    pending: Vec::new(),
                    pending_entries: VecDeque::new(),
                    appended_lsn: 0,
                    durable_lsn: 0,
                    waiters: VecDeque::new(),
                    seal_subscriber: None,
                    segments,
                    sealed,
                    active,
                    active_len: 0,
                    active_since: None,
                    hurry: false,
                    seal_now: false,
                    tail: Vec::new(),
                    gen,
                    poisoned: None,
                    closed: false,
                    roll_retry_at: None,
                    producer_lru: lru,
                    allocated: 0,
                    extending: None,
                }),
                wake: RefCell::new(wake),
            }),
        };
        log.create_segment(active).await?;
        log.publish_producers(&log.inner.state.borrow());
        log.start_writer(rx);
        Ok((log, report))
    }

    fn start_writer(&self, rx: mpsc::UnboundedReceiver<()>) {
        self.inner.writer_running.set(true);
        let log = self.clone();
        glommio::spawn_local(async move {
            log.clone().writer(rx).await;
            log.inner.writer_running.set(false);
        })
        .detach();
    }

    /// Why the log failed (a write, sync or segment creation error), while
    /// it refuses appends; `None` while it works.
    pub fn failure(&self) -> Option<String> {
        self.inner.state.borrow().poisoned.clone()
    }

    /// Brings a failed log back: once its writer has stopped, closes its
    /// files and recovers it from disk as [`open`](Self::open) does (every
    /// frame verified, a torn tail truncated), so only what the disk holds
    /// is served — an append that failed was never acknowledged, and may
    /// or may not be found again. Every segment found is sealed (segments
    /// not sealed before are announced to the seal subscriber, so they are
    /// shipped) and a new active segment is created. Partitions without
    /// frames on disk keep their offsets and producer state. Returns the
    /// recovery report once the log takes appends again; on an error (the
    /// disk still fails) the log stays failed, with whatever recovery could
    /// seal kept sealed, and may be reopened again later. A no-op returning
    /// `Ok` for a log that has not failed or was closed.
    ///
    /// Cancelling it while it recovers leaves the log failed (its state as
    /// before, or as recovered without an active segment); reopening again
    /// is safe.
    pub async fn reopen(&self) -> Result<RecoveryReport, ReopenError> {
        if self.failure().is_none() || self.inner.state.borrow().closed {
            return Ok(RecoveryReport::default());
        }
        while self.inner.writer_running.get() {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        let rec = recovery::recover(self.config())
            .await
            .map_err(ReopenError::Unreadable)?;
        let active = {
            let mut st = self.inner.state.borrow_mut();
            let known: std::collections::HashSet<u64> = st.sealed.iter().map(|s| s.id).collect();
            let mut partitions = rec.partitions;
            for (topic, parts) in std::mem::take(&mut st.partitions) {
                for (partition, mut old) in parts {
                    for d in old.data_waiters.drain(..).chain(old.seq_waiters.drain(..)) {
                        let _ = d.send(());
                    }
                    let slot = partitions.entry(topic.clone()).or_default();
                    if let Some(found) = slot.get(&partition) {
                        if found.next_offset < old.high_watermark {
                            tracing::error!(
                                topic,
                                partition,
                                durable = old.high_watermark,
                                on_disk = found.next_offset,
                                "the reopened WAL holds less than was made durable"
                            );
                        }
                        continue;
                    }
                    // Nothing of it on disk: its durable data is in object
                    // storage; appends that failed are forgotten.
                    old.index = OffsetIndex::default();
                    old.next_offset = old.high_watermark;
                    old.log_start = old.log_start.max(old.high_watermark);
                    slot.insert(partition, old);
                }
            }
            st.partitions = partitions;
            st.producer_lru = rec.lru;
            st.segments = rec.segments;
            st.sealed = rec.sealed;
            // Generations continue from what the disk holds (a failed write
            // left none), so they stay contiguous for recovery's checks.
            st.gen = rec.gen;
            st.pending.clear();
            st.pending_entries.clear();
            st.tail.clear();
            st.appended_lsn = st.durable_lsn;
            st.active = rec.active;
            st.active_len = 0;
            st.active_since = None;
            if let Some(tx) = &st.seal_subscriber {
                for s in st.sealed.iter().filter(|s| !known.contains(&s.id)) {
                    let _ = tx.unbounded_send(s.clone());
                }
            }
            rec.active
        };
        // A disk that just ran full must have room for two whole segments
        // and their allocation headroom again, or the log would fail again
        // at its next writes (the space its own shipped segments give back
        // alone would make it flap between failed and working).
        if let Some(free) = free_bytes(&self.config().dir) {
            let needed = 2 * self.config().segment_bytes + self.config().preallocate_bytes;
            if free < needed {
                let e = LogError::Io {
                    context: format!("reopening {}", self.config().dir.display()),
                    message: format!(
                        "{free} bytes free on the WAL's filesystem; it takes writes again \
                         with {needed} (two segments and the allocation headroom)"
                    ),
                };
                let why = format!("cannot start a new WAL segment after recovery: {e}");
                self.inner.stats.set_trouble(Some(why.clone()));
                self.inner.state.borrow_mut().poisoned = Some(why);
                return Err(ReopenError::NoActive(e));
            }
        }
        // Every fetch waiter was woken above (it reads again).
        self.inner
            .stats
            .fetch_waiters
            .store(0, std::sync::atomic::Ordering::Relaxed);
        let seg = match self.open_segment(active).await {
            Ok(seg) => seg,
            Err(e) => {
                let why = format!("cannot start a new WAL segment after recovery: {e}");
                self.inner.stats.set_trouble(Some(why.clone()));
                self.inner.state.borrow_mut().poisoned = Some(why);
                return Err(ReopenError::NoActive(e));
            }
        };
        self.activate(active, seg);
        let (wake, rx) = mpsc::unbounded();
        *self.inner.wake.borrow_mut() = wake;
        self.inner.state.borrow_mut().poisoned = None;
        self.inner.stats.set_trouble(None);
        self.publish_producers(&self.inner.state.borrow());
        self.start_writer(rx);
        tracing::info!(dir = %self.config().dir.display(), segments = rec.report.segments, "WAL reopened after a failure");
        Ok(rec.report)
    }

    fn config(&self) -> &LogConfig {
        &self.inner.config
    }

    /// The log's counters (shared, read by metrics).
    pub fn stats(&self) -> std::sync::Arc<crate::stats::LogStats> {
        self.inner.stats.clone()
    }

    /// Makes a partition known to the log (idempotent). Appends to unknown
    /// partitions are refused.
    pub fn add_partition(&self, topic: &str, partition: u32) {
        let mut st = self.inner.state.borrow_mut();
        st.partitions
            .entry(topic.to_owned())
            .or_default()
            .entry(partition)
            .or_default();
    }

    /// Forgets every partition of `topic`. Its data stays in the WAL until the
    /// segments are removed; callers use a new topic key when re-creating it.
    pub fn remove_topic(&self, topic: &str) {
        let mut st = self.inner.state.borrow_mut();
        if let Some(parts) = st.partitions.remove(topic) {
            for (_, mut p) in parts {
                self.waiters_changed(-(p.data_waiters.len() as i64));
                for w in p.data_waiters.drain(..) {
                    let _ = w.send(());
                }
            }
        }
    }

    /// Partitions the log holds, with their high watermarks.
    pub fn partitions(&self) -> Vec<(String, u32, u64)> {
        let st = self.inner.state.borrow();
        let mut v: Vec<_> = st
            .partitions
            .iter()
            .flat_map(|(t, ps)| {
                ps.iter()
                    .map(move |(p, l)| (t.clone(), *p, l.high_watermark))
            })
            .collect();
        v.sort();
        v
    }

    /// High watermark of a partition (next offset to become durable), if known.
    pub fn high_watermark(&self, topic: &str, partition: u32) -> Option<u64> {
        let st = self.inner.state.borrow();
        find(&st.partitions, topic, partition).map(|p| p.high_watermark)
    }

    /// Segments sealed so far, oldest first.
    pub fn sealed_segments(&self) -> Vec<SealedSegment> {
        self.inner.state.borrow().sealed.clone()
    }

    /// Sealed segments from now on, starting with those sealed already (and
    /// not yet dropped). One subscriber at a time; a new call replaces it.
    pub fn subscribe_sealed(&self) -> mpsc::UnboundedReceiver<SealedSegment> {
        let (tx, rx) = mpsc::unbounded();
        let mut st = self.inner.state.borrow_mut();
        for s in &st.sealed {
            let _ = tx.unbounded_send(s.clone());
        }
        st.seal_subscriber = Some(tx);
        rx
    }

    /// Each partition's range inside segment `id` (from the in-memory
    /// index), ordered by topic and partition.
    pub fn segment_ranges(&self, id: u64) -> Vec<SegmentRange> {
        let st = self.inner.state.borrow();
        let mut out = Vec::new();
        for (topic, parts) in &st.partitions {
            let frame_head = (segment::FRAME_FIXED + topic.len()) as u64;
            for (partition, p) in parts {
                let mut it = p.index.in_segment(id);
                let Some(first) = it.next() else { continue };
                let last = it.last().unwrap_or(first);
                let pos = first.pos - frame_head;
                out.push(SegmentRange {
                    topic: topic.clone(),
                    partition: *partition,
                    base_offset: first.base_offset,
                    end_offset: last.next_offset,
                    pos,
                    len: last.pos + u64::from(last.len) - pos,
                });
            }
        }
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        out
    }

    /// Removes sealed segment `id` (its data now lives elsewhere): forgets
    /// its batches, moves each partition's local start past them and deletes
    /// the file. Reads below the local start get `OffsetOutOfRange`.
    pub fn drop_segment(&self, id: u64) -> Result<(), LogError> {
        let path = {
            let mut st = self.inner.state.borrow_mut();
            if id >= st.active {
                return Err(LogError::Io {
                    context: format!("dropping segment {id}"),
                    message: "the segment is not sealed".into(),
                });
            }
            for parts in st.partitions.values_mut() {
                for p in parts.values_mut() {
                    p.index.drop_through_segment(id);
                    // With nothing durable left here, the local log starts
                    // at the high watermark: batches past it are appended
                    // but not yet durable (not indexed yet) and will be
                    // read from here, not from object storage.
                    p.log_start = p.index.first_offset().unwrap_or(p.high_watermark);
                }
            }
            st.sealed.retain(|s| s.id != id);
            let last = !st.segments.keys().any(|k| *k > id);
            st.segments.remove(&id).map(|s| (s.path, last))
        };
        if let Some((path, last)) = path {
            if last {
                // No active segment file exists (it could not be created):
                // the file stays, emptied, so the next segment id is never
                // used again (a new segment would be taken for the chunk
                // this one became). Emptying needs no free space.
                return std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(0))
                    .map_err(|e| LogError::Io {
                        context: format!("emptying {}", path.display()),
                        message: e.to_string(),
                    });
            }
            std::fs::remove_file(&path).map_err(|e| LogError::Io {
                context: format!("removing {}", path.display()),
                message: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// First offset of a partition still in the local log.
    pub fn log_start(&self, topic: &str, partition: u32) -> Option<u64> {
        let st = self.inner.state.borrow();
        find(&st.partitions, topic, partition).map(|p| p.log_start)
    }

    /// Makes a partition continue at `offset` when its data up to there lives
    /// elsewhere (object storage). If the local log ends before `offset`,
    /// its local batches are stale and forgotten. Returns whether anything
    /// changed.
    pub fn advance_start(&self, topic: &str, partition: u32, offset: u64) -> bool {
        let mut st = self.inner.state.borrow_mut();
        let Some(p) = find_mut(&mut st.partitions, topic, partition) else {
            return false;
        };
        if p.next_offset >= offset {
            return false;
        }
        if !p.index.is_empty() {
            tracing::warn!(
                topic,
                partition,
                local_end = p.next_offset,
                committed_end = offset,
                "local log is behind object storage; forgetting its stale batches"
            );
        }
        // Only frames still on disk (indexed, or appended and not yet
        // durable) could be replayed by recovery; a partition without any
        // needs no restart frame (and no sync for one).
        let on_disk = !p.index.is_empty() || p.next_offset != p.high_watermark;
        p.restart_at(offset);
        if on_disk {
            self.queue_restart(&mut st, topic, partition, offset);
        }
        true
    }

    /// Makes a partition continue at exactly `offset` (the end of what
    /// object storage holds) after a lease changed hands: every local batch
    /// was written under an older lease and is forgotten — also when the
    /// local log happens to end at `offset` too, since another leader may
    /// have committed different batches at the same offsets — and reads
    /// below `offset` go to object storage. Returns whether the partition
    /// is known here.
    pub fn reset_to(&self, topic: &str, partition: u32, offset: u64) -> bool {
        let mut st = self.inner.state.borrow_mut();
        let Some(p) = find_mut(&mut st.partitions, topic, partition) else {
            return false;
        };
        if p.next_offset > offset {
            tracing::warn!(
                topic,
                partition,
                local_end = p.next_offset,
                committed_end = offset,
                "dropping local batches written under an older lease"
            );
        }
        // Only frames still on disk (indexed, or appended and not yet
        // durable) could be replayed by recovery; a partition without any
        // needs no restart frame (and no sync for one).
        let on_disk = !p.index.is_empty() || p.next_offset != p.high_watermark;
        p.restart_at(offset);
        if on_disk {
            self.queue_restart(&mut st, topic, partition, offset);
        }
        true
    }

    /// Queues a restart frame for `topic/partition` at `offset` (see
    /// `segment`), ahead of every batch appended after it, so recovery
    /// forgets the frames written before it. Nobody waits for it; it is
    /// durable with the next group commit, before any later batch is
    /// acknowledged. A failed or closed log writes nothing.
    fn queue_restart(&self, st: &mut State, topic: &str, partition: u32, offset: u64) {
        if st.poisoned.is_some() || st.closed {
            return;
        }
        let frame = segment::restart_frame(topic, partition, offset);
        let start = st.pending.len();
        st.pending.extend_from_slice(&frame);
        st.appended_lsn += frame.len() as u64;
        let was_empty = st.pending_entries.is_empty();
        st.pending_entries.push_back(PendingEntry {
            topic: topic.to_owned(),
            partition,
            start,
            len: frame.len(),
            batch_offset: frame.len(),
            base_offset: offset,
            record_count: 0,
        });
        if was_empty {
            let _ = self.inner.wake.borrow().unbounded_send(());
        }
    }

    /// Replays producer state kept elsewhere (the metadata store, object
    /// storage), so retries of batches committed before a restart or a
    /// move stay idempotent. Batches are applied in offset order, each once.
    pub fn restore_producers(&self, topic: &str, partition: u32, batches: &[RememberedBatch]) {
        let mut batches = batches.to_vec();
        batches.sort_by_key(|b| (b.base_offset, b.producer.producer_id));
        batches.dedup_by_key(|b| (b.base_offset, b.producer.producer_id));
        let mut guard = self.inner.state.borrow_mut();
        let st = &mut *guard;
        if let Some(p) = find_mut(&mut st.partitions, topic, partition) {
            for b in batches {
                let tick = st.producer_lru.next_tick();
                if let Some(previous) =
                    p.producers
                        .record(b.producer, b.record_count, b.base_offset, 0, tick)
                {
                    st.producer_lru.touched(
                        topic,
                        partition,
                        b.producer.producer_id,
                        previous,
                        tick,
                    );
                }
            }
        }
        evict_excess(&mut st.partitions, &mut st.producer_lru);
        self.publish_producers(st);
    }

    fn publish_producers(&self, st: &State) {
        self.inner.stats.producers.store(
            st.producer_lru.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// The remembered batches, ending at or before `end_offset`, of the
    /// producers that appended in `from..end_offset` (stored with the range
    /// committed there).
    pub fn producer_snapshot(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        end_offset: u64,
    ) -> Vec<RememberedBatch> {
        let st = self.inner.state.borrow();
        find(&st.partitions, topic, partition)
            .map(|p| p.producers.snapshot(from, end_offset))
            .unwrap_or_default()
    }

    /// Appends one encoded batch (see [`crate::batch`]) to a partition and
    /// resolves once it is fsynced. The batch's CRC is verified; its base
    /// offset is assigned here. Same as [`ShardLog::append_in_flight`] for a
    /// producer with one batch in flight.
    pub async fn append(
        &self,
        topic: &str,
        partition: u32,
        batch: Vec<u8>,
    ) -> Result<Appended, LogError> {
        self.append_in_flight(topic, partition, batch, None).await
    }

    /// Waits, up to [`SEQUENCE_WAIT`], until a batch of `count` records from
    /// `producer` is no longer ahead of its producer's sequence in this
    /// partition (requests sent in order may arrive out of order; see
    /// [`ProducerTable::check`] for `oldest`). Returns whether it waited.
    /// Call right before [`ShardLog::append_in_flight`]: anything the
    /// caller checks (a lease) must be checked again after a wait.
    pub async fn wait_for_turn(
        &self,
        topic: &str,
        partition: u32,
        producer: batch::ProducerInfo,
        count: u32,
        oldest: Option<i32>,
    ) -> bool {
        let give_up = Instant::now() + SEQUENCE_WAIT;
        let mut waited = false;
        loop {
            let (turn, left) = {
                let mut st = self.inner.state.borrow_mut();
                let Some(p) = find_mut(&mut st.partitions, topic, partition) else {
                    return waited;
                };
                let ahead = matches!(
                    p.producers.check(producer, count, oldest),
                    Err(e) if e.is_ahead()
                );
                let left = give_up.saturating_duration_since(Instant::now());
                if !ahead || left.is_zero() {
                    return waited;
                }
                let (tx, rx) = oneshot::channel();
                p.seq_waiters.push(tx);
                (rx, left)
            };
            waited = true;
            futures_lite::future::or(
                async {
                    let _ = turn.await;
                },
                glommio::timer::sleep(left),
            )
            .await;
        }
    }

    /// [`ShardLog::append`] for a producer with several batches in flight:
    /// `oldest` is the lowest sequence its producer has in flight for this
    /// partition (see [`ProducerTable::check`]). A batch ahead of its
    /// producer's sequence fails at once with [`SeqError::OutOfOrder`]; see
    /// [`ShardLog::wait_for_turn`].
    pub async fn append_in_flight(
        &self,
        topic: &str,
        partition: u32,
        mut batch: Vec<u8>,
        oldest: Option<i32>,
    ) -> Result<Appended, LogError> {
        let header = batch::validate(&batch)?;
        let count = header.record_count;
        let (rx, base_offset, duplicate) = {
            let mut guard = self.inner.state.borrow_mut();
            let st = &mut *guard;
            if let Some(why) = &st.poisoned {
                return Err(LogError::Poisoned(why.clone()));
            }
            if st.closed {
                return Err(LogError::Poisoned("the log is closed".into()));
            }
            let p = find_mut(&mut st.partitions, topic, partition)
                .ok_or_else(|| unknown(topic, partition))?;
            let out = match p.producers.check(header.producer, count, oldest)? {
                // A retry of a batch already appended: answer with its
                // offsets once the original is durable.
                SeqCheck::Duplicate(e) => {
                    if e.lsn <= st.durable_lsn {
                        let seg = p.index.segment_of(e.base_offset);
                        (Err(seg), e.base_offset, true)
                    } else {
                        let (tx, rx) = oneshot::channel();
                        st.waiters.push_back((e.lsn, tx));
                        (Ok(rx), e.base_offset, true)
                    }
                }
                SeqCheck::Append => {
                    let base_offset = p.next_offset;
                    p.next_offset += u64::from(count);
                    batch::set_base_offset(&mut batch, base_offset);
                    let head = segment::frame_header(topic, partition, batch.len());
                    let start = st.pending.len();
                    st.pending.extend_from_slice(&head);
                    st.pending.extend_from_slice(&batch);
                    let len = head.len() + batch.len();
                    st.appended_lsn += len as u64;
                    let lsn = st.appended_lsn;
                    let tick = st.producer_lru.next_tick();
                    if let Some(previous) =
                        p.producers
                            .record(header.producer, count, base_offset, lsn, tick)
                    {
                        st.producer_lru.touched(
                            topic,
                            partition,
                            header.producer.producer_id,
                            previous,
                            tick,
                        );
                    }
                    let was_empty = st.pending_entries.is_empty();
                    st.pending_entries.push_back(PendingEntry {
                        topic: topic.to_owned(),
                        partition,
                        start,
                        len,
                        batch_offset: head.len(),
                        base_offset,
                        record_count: count,
                    });
                    let (tx, rx) = oneshot::channel();
                    st.waiters.push_back((lsn, tx));
                    if was_empty {
                        let _ = self.inner.wake.borrow().unbounded_send(());
                    }
                    for w in p.seq_waiters.drain(..) {
                        let _ = w.send(());
                    }
                    (Ok(rx), base_offset, false)
                }
            };
            evict_excess(&mut st.partitions, &mut st.producer_lru);
            self.publish_producers(st);
            out
        };
        let segment = match rx {
            Ok(rx) => Some(wait(rx).await?),
            Err(seg) => seg,
        };
        Ok(Appended {
            base_offset,
            record_count: count,
            duplicate,
            segment,
        })
    }

    /// Reads records of a partition starting at `offset`, up to about
    /// `max_bytes` of batch data (at least one batch when any is available).
    /// Only durable records are returned. An offset at or past the high
    /// watermark gives an empty result; one before the log start is
    /// `OffsetOutOfRange`.
    pub async fn read(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: usize,
    ) -> Result<ReadResult, LogError> {
        let (runs, hw, log_start) = {
            let st = self.inner.state.borrow();
            let p =
                find(&st.partitions, topic, partition).ok_or_else(|| unknown(topic, partition))?;
            if offset < p.log_start {
                return Err(LogError::OffsetOutOfRange {
                    offset,
                    log_start: p.log_start,
                });
            }
            let entries = p.index.from_offset(offset, max_bytes);
            let mut runs: Vec<(Rc<DmaFile>, PathBuf, Vec<IndexEntry>)> = Vec::new();
            for e in entries {
                let extend = runs.last().is_some_and(|(_, _, r)| {
                    let last = r[r.len() - 1];
                    last.segment == e.segment
                        && e.pos >= last.pos
                        && e.pos - (last.pos + u64::from(last.len)) <= 64 << 10
                });
                if extend {
                    if let Some(r) = runs.last_mut() {
                        r.2.push(e);
                    }
                } else {
                    let Some(seg) = st.segments.get(&e.segment) else {
                        return Err(LogError::Io {
                            context: format!("reading {topic}/{partition}"),
                            message: format!("segment {} is gone", e.segment),
                        });
                    };
                    runs.push((seg.file.clone(), seg.path.clone(), vec![e]));
                }
            }
            (runs, p.high_watermark, p.log_start)
        };
        let mut records = Vec::new();
        // Bytes of records decoded so far: `max_bytes` bounds the response
        // after decompression, not only the stored (compressed) bytes.
        let mut inflated = 0usize;
        'runs: for (file, path, entries) in runs {
            let first = entries[0].pos;
            let last = entries[entries.len() - 1];
            let span = (last.pos + u64::from(last.len) - first) as usize;
            let data = file
                .read_at(first, span)
                .await
                .map_err(io_err(format!("reading {}", path.display())))?;
            let data = Bytes::copy_from_slice(&data);
            for e in entries {
                let at = (e.pos - first) as usize;
                let end = at + e.len as usize;
                let corrupt = |reason: String| {
                    LogError::Corrupt(Corruption {
                        file: path.clone(),
                        position: e.pos,
                        reason,
                    })
                };
                let checked = if end > data.len() {
                    Err(corrupt(format!(
                        "batch of {topic}/{partition} at offset {} is cut short",
                        e.base_offset
                    )))
                } else {
                    let b = data.slice(at..end);
                    match batch::validate(&b) {
                        Err(err) => Err(corrupt(format!(
                            "batch of {topic}/{partition} at offset {}: {err}",
                            e.base_offset
                        ))),
                        Ok(h) if h.base_offset != e.base_offset => Err(corrupt(format!(
                            "batch base offset {} where the index says {}",
                            h.base_offset, e.base_offset
                        ))),
                        Ok(h) => Ok((b, h)),
                    }
                };
                // A bad batch ends the read: what came before it is
                // answered, and the next read starting at it gets the error.
                let (b, h) = match checked {
                    Ok(v) => v,
                    Err(_) if !records.is_empty() => break 'runs,
                    Err(err) => return Err(err),
                };
                if !records.is_empty() && inflated + h.records_len as usize > max_bytes {
                    break 'runs;
                }
                let recs = match batch::decode(&b) {
                    Ok((_, recs)) => recs,
                    Err(_) if !records.is_empty() => break 'runs,
                    Err(err) => {
                        return Err(LogError::Undecodable {
                            topic: topic.to_owned(),
                            partition,
                            offset: e.base_offset,
                            next_offset: e.next_offset,
                            reason: err.to_string(),
                        })
                    }
                };
                inflated += h.records_len as usize;
                records.extend(
                    recs.into_iter()
                        .filter(|r| r.offset >= offset && r.offset < hw),
                );
            }
        }
        Ok(ReadResult {
            records,
            high_watermark: hw,
            log_start,
        })
    }

    /// Waits until the partition's high watermark passes `offset`, or
    /// `timeout` elapses, or the partition is removed.
    pub async fn wait_for_data(&self, topic: &str, partition: u32, offset: u64, timeout: Duration) {
        let rx = {
            let mut st = self.inner.state.borrow_mut();
            let Some(p) = find_mut(&mut st.partitions, topic, partition) else {
                return;
            };
            if p.high_watermark > offset {
                return;
            }
            let (tx, rx) = oneshot::channel();
            p.data_waiters.push(tx);
            self.waiters_changed(1);
            rx
        };
        // However the wait ends (data, timeout, or the caller dropping this
        // future), the guard removes its entry if no append took it.
        let _forget = ForgetWaiter {
            log: self,
            topic,
            partition,
        };
        futures_lite::future::or(
            async {
                let _ = rx.await;
            },
            glommio::timer::sleep(timeout),
        )
        .await;
    }

    /// Adjusts the gauge of registered data waiters.
    fn waiters_changed(&self, delta: i64) {
        use std::sync::atomic::Ordering::Relaxed;
        let g = &self.inner.stats.fetch_waiters;
        if delta >= 0 {
            g.fetch_add(delta as u64, Relaxed);
        } else {
            g.fetch_sub(delta.unsigned_abs(), Relaxed);
        }
    }

    /// Resolves once everything appended before the call is durable (and
    /// so indexed in a known segment). Errors if the log failed.
    pub async fn durable_barrier(&self) -> Result<(), LogError> {
        let rx = {
            let mut st = self.inner.state.borrow_mut();
            if let Some(why) = &st.poisoned {
                return Err(LogError::Poisoned(why.clone()));
            }
            let lsn = st.appended_lsn;
            if lsn <= st.durable_lsn {
                return Ok(());
            }
            let (tx, rx) = oneshot::channel();
            st.waiters.push_back((lsn, tx));
            rx
        };
        wait(rx).await.map(|_| ())
    }

    /// The segment holding a partition's last durable local batch, if any.
    pub fn last_segment_of(&self, topic: &str, partition: u32) -> Option<u64> {
        let st = self.inner.state.borrow();
        let p = find(&st.partitions, topic, partition)?;
        p.index.last().map(|e| e.segment)
    }

    /// Stops the writer after everything queued is durable; at once when
    /// the log failed (what was queued will never be).
    pub async fn close(&self) {
        let rx = {
            let mut st = self.inner.state.borrow_mut();
            st.closed = true;
            st.seal_subscriber = None;
            let (tx, rx) = oneshot::channel();
            let lsn = st.appended_lsn;
            if lsn <= st.durable_lsn || st.poisoned.is_some() {
                None
            } else {
                st.waiters.push_back((lsn, tx));
                Some(rx)
            }
        };
        if let Some(rx) = rx {
            let _ = wait(rx).await;
        }
        let _ = self.inner.wake.borrow().unbounded_send(());
    }

    /// Creates segment `id` and makes it the active one.
    async fn create_segment(&self, id: u64) -> Result<(), LogError> {
        let seg = self.open_segment(id).await?;
        self.activate(id, seg);
        Ok(())
    }

    /// Creates the file of segment `id` with its handles, changing nothing
    /// else: on an error the file is removed again, so a later attempt can
    /// create it afresh.
    async fn open_segment(&self, id: u64) -> Result<SegmentFile, LogError> {
        let path = segment::segment_path(&self.config().dir, id);
        // Start the file with one zeroed block (a clean end of data to
        // recovery): glommio probes polled-I/O support by reading the first
        // block, and on an empty file that probe cannot tell, which would send
        // later reads to a poll ring this disk does not support.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &[0u8; 4096]))
            .map_err(|e| {
                let _ = std::fs::remove_file(&path);
                LogError::Io {
                    context: format!("creating {}", path.display()),
                    message: e.to_string(),
                }
            })?;
        let opened = match self.open_handles(&path).await {
            Ok(seg) => seg,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        };
        let first = if self.config().preallocate_bytes > 0 {
            alloc::allocate(&opened.file, 0, alloc::STEP).await
        } else {
            Ok(())
        };
        if let Err(e) = first {
            self.count_allocation_failure();
            close_segment(opened).await;
            let _ = std::fs::remove_file(&path);
            return Err(LogError::Io {
                context: format!("allocating {}", path.display()),
                message: e,
            });
        }
        Ok(opened)
    }

    fn count_allocation_failure(&self) {
        self.inner
            .stats
            .allocation_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Makes sure `[0, end)` of the active segment is allocated before a
    /// write reaches `end`: waits for the allocation in progress, and
    /// allocates what is still missing itself. Then starts allocating the
    /// headroom after `end` in the background if little is left.
    async fn allocate_to(&self, file: &Rc<DmaFile>, end: u64) -> Result<(), LogError> {
        let ahead = self.config().preallocate_bytes;
        if ahead == 0 {
            return Ok(());
        }
        if end > self.inner.state.borrow().allocated {
            self.finish_extending().await;
            let from = self.inner.state.borrow().allocated;
            if end > from {
                let to = alloc::target(end, ahead);
                if let Err(e) = alloc::allocate(file, from, to).await {
                    self.count_allocation_failure();
                    return Err(LogError::Io {
                        context: "allocating WAL blocks before a write".into(),
                        message: e,
                    });
                }
                self.inner.state.borrow_mut().allocated = to;
            }
        }
        let mut st = self.inner.state.borrow_mut();
        if st.extending.is_none() && alloc::low(st.allocated, end, ahead) {
            let (file, from, to) = (file.clone(), st.allocated, alloc::target(end, ahead));
            st.extending = Some(
                glommio::spawn_local(
                    async move { alloc::allocate(&file, from, to).await.map(|()| to) },
                )
                .detach(),
            );
        }
        Ok(())
    }

    /// Waits for the background allocation of the active segment, if any,
    /// and records how far it got (before a write that needs it, and before
    /// the segment is sealed and truncated).
    async fn finish_extending(&self) {
        let pending = self.inner.state.borrow_mut().extending.take();
        let Some(h) = pending else { return };
        match h.await {
            Some(Ok(to)) => {
                let mut st = self.inner.state.borrow_mut();
                st.allocated = st.allocated.max(to);
            }
            Some(Err(e)) => {
                self.count_allocation_failure();
                tracing::warn!(error = %e, "allocating WAL blocks ahead failed");
            }
            None => {}
        }
    }

    async fn open_handles(&self, path: &Path) -> Result<SegmentFile, LogError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(path)
            .await
            .map_err(io_err(format!("creating {}", path.display())))?;
        let writer = if self.config().direct_io {
            None
        } else {
            let w = OpenOptions::new()
                .write(true)
                .buffered_open(path)
                .await
                .map_err(io_err(format!("opening {} for writing", path.display())));
            match w {
                Ok(w) => Some(Rc::new(w)),
                Err(e) => {
                    let _ = file.close().await;
                    return Err(e);
                }
            }
        };
        let seg = SegmentFile {
            file: Rc::new(file),
            writer,
            path: path.to_path_buf(),
        };
        if let Err(e) = sync_dir(&self.config().dir).await {
            close_segment(seg).await;
            return Err(e);
        }
        Ok(seg)
    }

    fn activate(&self, id: u64, seg: SegmentFile) {
        let mut st = self.inner.state.borrow_mut();
        st.segments.insert(id, seg);
        st.active = id;
        st.active_len = 0;
        st.active_since = None;
        st.hurry = false;
        st.seal_now = false;
        st.tail.clear();
        st.roll_retry_at = None;
        st.allocated = alloc::STEP;
        st.extending = None;
    }

    /// Seals the active segment and starts the next one. When the next one
    /// cannot be created, nothing changes (appends go on to the active
    /// segment, which grows past its size) and the roll is tried again
    /// after [`ROLL_RETRY`]: a transient shortage of descriptors or space
    /// must not fail the log for good.
    async fn roll(&self) {
        let id = self.inner.state.borrow().active;
        let next = match self.open_segment(id + 1).await {
            Ok(seg) => seg,
            Err(e) => {
                tracing::warn!(error = %e, segment = id, "cannot start the next WAL segment; \
                    appends stay on the active one and the roll is retried");
                self.inner.state.borrow_mut().roll_retry_at = Some(Instant::now() + ROLL_RETRY);
                let s = &self.inner.stats;
                s.roll_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                s.set_trouble(Some(format!("cannot start a new WAL segment: {e}")));
                return;
            }
        };
        let (path, len) = {
            let mut st = self.inner.state.borrow_mut();
            let len = st.active_len;
            // A sealed segment is only read from now on.
            let path = match st.segments.get_mut(&id) {
                Some(seg) => {
                    seg.writer = None;
                    seg.path.clone()
                }
                None => segment::segment_path(&self.config().dir, id),
            };
            (path, len)
        };
        tracing::debug!(segment = id, bytes = len, "sealing WAL segment");
        // The sealed segment keeps its data only: the blocks allocated
        // after it are given back, and it is shipped without them.
        self.finish_extending().await;
        let old = self
            .inner
            .state
            .borrow()
            .segments
            .get(&id)
            .map(|s| s.file.clone());
        if let Some(file) = old {
            if let Err(e) = file.truncate(len).await {
                tracing::warn!(segment = id, error = %e, "cannot give back the sealed WAL segment's unused blocks");
            }
        }
        self.activate(id + 1, next);
        if self.inner.state.borrow().poisoned.is_none() {
            self.inner.stats.set_trouble(None);
        }
        let sealed = SealedSegment { id, path, len };
        self.inner
            .stats
            .segments_sealed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut st = self.inner.state.borrow_mut();
        if let Some(tx) = &st.seal_subscriber {
            let _ = tx.unbounded_send(sealed.clone());
        }
        st.sealed.push(sealed);
    }

    /// Age at which the active segment is sealed now.
    fn seal_age(&self, st: &State) -> Duration {
        if st.seal_now {
            Duration::ZERO
        } else if st.hurry {
            self.config().hurried_age.min(self.config().segment_age)
        } else {
            self.config().segment_age
        }
    }

    /// True when the active segment holds no data and none is queued for it.
    pub fn active_is_empty(&self) -> bool {
        let st = self.inner.state.borrow();
        st.active_len == 0 && st.pending_entries.is_empty()
    }

    /// Seals the active segment (if it holds data) as soon as the writer is
    /// idle, e.g. before shutdown so everything can be shipped.
    pub fn seal_now(&self) {
        let mut st = self.inner.state.borrow_mut();
        st.seal_now = true;
        let _ = self.inner.wake.borrow().unbounded_send(());
    }

    /// Id of the segment appends go to now.
    pub fn active_segment(&self) -> u64 {
        self.inner.state.borrow().active
    }

    /// Asks for the active segment to be sealed once its data is
    /// `hurried_age` old (instead of `segment_age`): someone is waiting for
    /// the seal. Returns the active segment's id.
    pub fn hurry_seal(&self) -> u64 {
        let mut st = self.inner.state.borrow_mut();
        if !st.hurry {
            st.hurry = true;
            let _ = self.inner.wake.borrow().unbounded_send(());
        }
        st.active
    }

    fn roll_due(&self, incoming: usize) -> bool {
        let st = self.inner.state.borrow();
        if st.roll_retry_at.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        st.active_len > 0
            && (st.active_len + incoming as u64 > self.config().segment_bytes
                || st
                    .active_since
                    .is_some_and(|t| t.elapsed() >= self.seal_age(&st)))
    }

    /// The group-commit loop. Write N+1 is issued while the sync of write N
    /// is still running (the sync only covers writes completed before it
    /// was issued, and N+1 is synced by the next one), so the disk is not
    /// idle between a sync and the next write. Syncs, and so
    /// acknowledgements, stay in write order, and a segment is sealed only
    /// once its last sync finished.
    async fn writer(self, mut rx: mpsc::UnboundedReceiver<()>) {
        let mut syncing: Option<glommio::task::JoinHandle<Result<(), LogError>>> = None;
        loop {
            let (idle, closed, age_left) = {
                let st = self.inner.state.borrow();
                let age_left = st.active_since.map(|t| {
                    let left = self.seal_age(&st).saturating_sub(t.elapsed());
                    // A failed roll is not retried before its time.
                    let retry = st.roll_retry_at.map_or(Duration::ZERO, |r| {
                        r.saturating_duration_since(Instant::now())
                    });
                    left.max(retry)
                });
                (st.pending_entries.is_empty(), st.closed, age_left)
            };
            if idle {
                // Nothing to overlap with: let the sync in flight finish.
                if let Err(e) = settle(&mut syncing).await {
                    self.poison(e);
                    return;
                }
                if closed {
                    return;
                }
                let woke = match age_left {
                    Some(left) => {
                        futures_lite::future::or(async { Some(rx.next().await.is_some()) }, async {
                            glommio::timer::sleep(left).await;
                            None
                        })
                        .await
                    }
                    None => Some(rx.next().await.is_some()),
                };
                if woke == Some(false) {
                    return;
                }
                if woke.is_none() && self.roll_due(0) {
                    self.roll().await;
                }
                continue;
            }
            let written = match self.write_once(&mut syncing).await {
                Ok(w) => w,
                Err(e) => {
                    let _ = settle(&mut syncing).await;
                    self.poison(e);
                    return;
                }
            };
            if let Err(e) = settle(&mut syncing).await {
                self.poison(e);
                return;
            }
            let log = self.clone();
            syncing =
                Some(glommio::spawn_local(async move { log.sync_once(written).await }).detach());
        }
    }

    /// Takes queued frames (up to `max_flush_bytes`) and writes them (not
    /// yet synced). Rolls the segment first when due, after `syncing`
    /// finished (a sealed segment is shipped at once, so it must be synced).
    async fn write_once(
        &self,
        syncing: &mut Option<glommio::task::JoinHandle<Result<(), LogError>>>,
    ) -> Result<Written, LogError> {
        let (mut data, entries) = {
            let mut st = self.inner.state.borrow_mut();
            let mut take = 0usize;
            let mut n = 0usize;
            for e in &st.pending_entries {
                if n > 0 && take + e.len > self.config().max_flush_bytes {
                    break;
                }
                take += e.len;
                n += 1;
            }
            let entries: Vec<PendingEntry> = st.pending_entries.drain(..n).collect();
            let rest = st.pending.split_off(take);
            let data = std::mem::replace(&mut st.pending, rest);
            for e in st.pending_entries.iter_mut() {
                e.start -= take;
            }
            (data, entries)
        };
        if self.roll_due(data.len()) {
            settle(syncing).await?;
            self.roll().await;
        }
        let (file, writer, write_pos, frame_base, gen, active) = {
            let mut st = self.inner.state.borrow_mut();
            st.gen += 1;
            let gen = st.gen;
            for e in &entries {
                segment::seal_frame_header(&mut data[e.start..e.start + e.len], gen);
            }
            let Some(seg) = st.segments.get(&st.active) else {
                return Err(LogError::Poisoned("active segment missing".into()));
            };
            let (file, writer) = (seg.file.clone(), seg.writer.clone());
            if st.active_since.is_none() {
                st.active_since = Some(Instant::now());
            }
            let write_pos = st.active_len - st.tail.len() as u64;
            (file, writer, write_pos, st.active_len, gen, st.active)
        };
        let bytes = data.len();
        // Where this write ends: O_DIRECT rewrites the previous partial
        // block and pads its own last block.
        let end = if writer.is_some() {
            write_pos + bytes as u64
        } else {
            let align = file.alignment();
            let total = (self.inner.state.borrow().tail.len() + bytes) as u64;
            write_pos + total.div_ceil(align) * align
        };
        self.allocate_to(&file, end).await?;
        match &writer {
            // Buffered: the frames as they are, right after the last write.
            Some(w) => {
                let written = w
                    .write_at(data, write_pos)
                    .await
                    .map_err(io_err("writing the WAL"))?;
                check_written(written, bytes)?;
            }
            // O_DIRECT: whole blocks. The write starts with the partial last
            // block of the previous one (the same bytes again), and its own
            // partial last block is kept as the next write's start.
            None => {
                let align = file.alignment() as usize;
                let mut combined = std::mem::take(&mut self.inner.state.borrow_mut().tail);
                combined.extend_from_slice(&data);
                let total = combined.len();
                let mut buf = file.alloc_dma_buffer(total.div_ceil(align) * align);
                let out = buf.as_bytes_mut();
                out[..total].copy_from_slice(&combined);
                out[total..].fill(0);
                let len = buf.len();
                let written = file
                    .write_at(buf, write_pos)
                    .await
                    .map_err(io_err("writing the WAL"))?;
                check_written(written, len)?;
                let keep = total % align;
                self.inner.state.borrow_mut().tail = combined.split_off(total - keep);
            }
        }
        self.inner.state.borrow_mut().active_len += bytes as u64;
        Ok(Written {
            file,
            entries,
            bytes,
            frame_base,
            segment: active,
            gen,
        })
    }

    /// Syncs one write, then publishes it: indexes its batches, moves the
    /// high watermarks and answers the appends it made durable.
    async fn sync_once(&self, w: Written) -> Result<(), LogError> {
        let synced = Instant::now();
        // `fdatasync` covers the file, whichever descriptor wrote to it.
        w.file
            .fdatasync()
            .await
            .map_err(io_err("syncing the WAL"))?;
        // A sync that reports success while the blocks the write went to
        // are not written extents (a failed unwritten-extent conversion)
        // must not acknowledge it: those bytes read back as zeros.
        if let Err(e) = alloc::check_written(&w.file, w.frame_base, w.frame_base + w.bytes as u64) {
            self.count_allocation_failure();
            return Err(LogError::Io {
                context: "checking the WAL's blocks after a sync".into(),
                message: e,
            });
        }
        {
            use std::sync::atomic::Ordering::Relaxed;
            let s = &self.inner.stats;
            s.fsync_us.observe(synced.elapsed().as_micros() as u64);
            s.commit_batches.observe(w.entries.len() as u64);
            s.wal_bytes.fetch_add(w.bytes as u64, Relaxed);
        }
        tracing::trace!(
            gen = w.gen,
            bytes = w.bytes,
            batches = w.entries.len(),
            "group commit"
        );
        let mut st = self.inner.state.borrow_mut();
        st.durable_lsn += w.bytes as u64;
        for e in &w.entries {
            if let Some(p) = find_mut(&mut st.partitions, &e.topic, e.partition) {
                if e.record_count == 0 {
                    // A restart frame: what completed before it (appends
                    // in flight when the lease changed) is forgotten.
                    p.index = OffsetIndex::default();
                    p.log_start = e.base_offset;
                    p.high_watermark = e.base_offset;
                    continue;
                }
                let next = e.base_offset + u64::from(e.record_count);
                p.index.push(IndexEntry {
                    base_offset: e.base_offset,
                    next_offset: next,
                    segment: w.segment,
                    pos: w.frame_base + (e.start + e.batch_offset) as u64,
                    len: (e.len - e.batch_offset) as u32,
                });
                p.high_watermark = next;
                self.waiters_changed(-(p.data_waiters.len() as i64));
                for d in p.data_waiters.drain(..) {
                    let _ = d.send(());
                }
            }
        }
        let durable = st.durable_lsn;
        while st.waiters.front().is_some_and(|(lsn, _)| *lsn <= durable) {
            if let Some((_, tx)) = st.waiters.pop_front() {
                let _ = tx.send(Ok(w.segment));
            }
        }
        Ok(())
    }

    fn poison(&self, e: LogError) {
        tracing::error!(error = %e, dir = %self.config().dir.display(), "WAL failed; refusing further appends");
        self.inner
            .stats
            .set_trouble(Some(format!("the WAL failed: {e}")));
        let mut st = self.inner.state.borrow_mut();
        st.poisoned = Some(e.to_string());
        for (_, tx) in st.waiters.drain(..) {
            let _ = tx.send(Err(e.clone()));
        }
        st.pending.clear();
        st.pending_entries.clear();
    }
}

/// Removes the entries of data waiters that ended without an append
/// waking them (timed out, or their fetch was dropped).
struct ForgetWaiter<'a> {
    log: &'a ShardLog,
    topic: &'a str,
    partition: u32,
}

impl Drop for ForgetWaiter<'_> {
    fn drop(&mut self) {
        let Ok(mut st) = self.log.inner.state.try_borrow_mut() else {
            return;
        };
        if let Some(p) = find_mut(&mut st.partitions, self.topic, self.partition) {
            let before = p.data_waiters.len();
            p.data_waiters.retain(|w| !w.is_canceled());
            let removed = before - p.data_waiters.len();
            drop(st);
            self.log.waiters_changed(-(removed as i64));
        }
    }
}

/// A write issued but not yet synced.
struct Written {
    file: Rc<DmaFile>,
    entries: Vec<PendingEntry>,
    bytes: usize,
    /// Position of the write's first frame in its segment.
    frame_base: u64,
    segment: u64,
    gen: u64,
}

fn check_written(written: usize, len: usize) -> Result<(), LogError> {
    if written == len {
        Ok(())
    } else {
        Err(LogError::Io {
            context: "writing the WAL".into(),
            message: format!("short write: {written} of {len} bytes"),
        })
    }
}

/// Closes a segment's handles (after its creation failed).
async fn close_segment(seg: SegmentFile) {
    if let Some(w) = seg.writer {
        if let Ok(w) = Rc::try_unwrap(w) {
            let _ = w.close().await;
        }
    }
    let _ = seg.file.close_rc().await;
}

/// Waits for the sync in flight, if any.
async fn settle(
    syncing: &mut Option<glommio::task::JoinHandle<Result<(), LogError>>>,
) -> Result<(), LogError> {
    match syncing.take() {
        Some(h) => h
            .await
            .unwrap_or_else(|| Err(LogError::Poisoned("the WAL sync task stopped".into()))),
        None => Ok(()),
    }
}

async fn wait(rx: oneshot::Receiver<Result<u64, LogError>>) -> Result<u64, LogError> {
    match rx.await {
        Ok(r) => r,
        Err(_) => Err(LogError::Poisoned("the WAL writer stopped".into())),
    }
}

async fn sync_dir(dir: &Path) -> Result<(), LogError> {
    let d = glommio::io::Directory::open(dir)
        .await
        .map_err(io_err(format!("opening {}", dir.display())))?;
    d.sync()
        .await
        .map_err(io_err(format!("syncing {}", dir.display())))?;
    let _ = d.close().await;
    Ok(())
}
