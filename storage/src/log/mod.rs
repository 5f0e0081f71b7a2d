//! The shard log: one write-ahead log per shard shared by all of the shard's
//! partitions, with group commit, recovery on open, per-partition offsets,
//! indexes and idempotence, and reads. Owns the WAL files under its directory;
//! must not be shared across executors (it is `!Send` on purpose).
//!
//! This module is the API (`ShardLog`: open, reopen after a failure, close)
//! and its result types; the rest is one concept per file. What the log
//! holds is three owned parts, each with its rules and unit tests:
//! `partition_set` (offsets, index, producers and their recency),
//! `commit_queue` (frames not yet written, sequence numbers, waiting
//! appends) and `segment_set` (files, the active segment, sealed segments,
//! when a roll is due), gathered in `state`. The behaviour over them:
//! `partition` (the partition API: starts, resets, producers), `append`
//! (queueing frames), `writer` (group commit alone), `read`, `time` (seek
//! by time), `segments` (creating and dropping files, allocation), `roll`
//! (sealing), `recovery` (rebuilding state from the files) and `alloc`
//! (blocks on disk); `config`, `error` and `faults` (fail points).

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use futures::channel::{mpsc, oneshot};

use crate::batch::DecodedRecord;
use crate::index::OffsetIndex;

mod alloc;
mod append;
mod commit_queue;
mod config;
mod error;
mod faults;
mod partition;
mod partition_set;
mod read;
mod recovery;
mod roll;
mod segment_set;
mod segments;
mod state;
mod time;
mod writer;

use commit_queue::CommitQueue;
pub use config::{LogConfig, DEFAULT_MAX_PRODUCERS};
pub use error::{LogError, ReopenError};
use recovery::Recovered;
use segments::free_bytes;
use state::{Inner, State};
pub use time::TimeMatch;

/// How long an append that arrived ahead of its producer's sequence waits
/// for the batches before it: long enough for requests that overtook each
/// other on the wire or a quick retry, short of a client's request timeout.
pub const SEQUENCE_WAIT: Duration = Duration::from_millis(1000);

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
    /// Nothing was read because the first batch alone decodes to this many
    /// bytes, more than the read's `max_bytes`: read again with at least
    /// this `max_bytes` to get it (after making room for it).
    pub first_batch_needs: Option<usize>,
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
    /// Bytes of the range's own frames (headers and batches): `len` less
    /// the frames of other partitions interleaved with them.
    pub bytes: u64,
    /// Largest record timestamp of the range's batches (ms since the Unix
    /// epoch, as their headers say): the range's entry in the time index.
    pub max_timestamp: i64,
}

/// Handle to a shard's log. Cheap to clone; all clones share one log.
#[derive(Clone)]
pub struct ShardLog {
    inner: Rc<Inner>,
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
            segments,
            report,
        } = recovery::recover(&config).await?;
        let active = segments.active();
        let (wake, rx) = mpsc::unbounded();
        let log = ShardLog {
            inner: Rc::new(Inner {
                config,
                stats: Default::default(),
                writer_running: std::cell::Cell::new(false),
                state: RefCell::new(State {
                    partitions,
                    commit: CommitQueue::default(),
                    segments,
                    poisoned: None,
                    closed: false,
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
            let mut partitions = rec.partitions;
            for (topic, parts) in st.partitions.take() {
                for (partition, mut old) in parts {
                    old.wake_data_waiters();
                    old.wake_sequence_waiters();
                    if let Some(found) = partitions.find(&topic, partition) {
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
                    partitions.insert(&topic, partition, old);
                }
            }
            st.partitions = partitions;
            // Generations continue from what the disk holds (a failed write
            // left none), so they stay contiguous for recovery's checks.
            st.segments.recovered(rec.segments);
            st.commit.reset();
            st.segments.active()
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

    pub(super) fn config(&self) -> &LogConfig {
        &self.inner.config
    }

    /// The log's counters (shared, read by metrics).
    pub fn stats(&self) -> std::sync::Arc<crate::stats::LogStats> {
        self.inner.stats.clone()
    }

    /// Stops the writer after everything queued is durable; at once when
    /// the log failed (what was queued will never be).
    pub async fn close(&self) {
        let rx = {
            let mut st = self.inner.state.borrow_mut();
            st.closed = true;
            st.segments.unsubscribe();
            if st.poisoned.is_some() {
                None
            } else {
                st.commit.barrier()
            }
        };
        if let Some(rx) = rx {
            let _ = wait(rx).await;
        }
        let _ = self.inner.wake.borrow().unbounded_send(());
    }
}

async fn wait(rx: oneshot::Receiver<Result<u64, LogError>>) -> Result<u64, LogError> {
    match rx.await {
        Ok(r) => r,
        Err(_) => Err(LogError::Poisoned("the WAL writer stopped".into())),
    }
}
