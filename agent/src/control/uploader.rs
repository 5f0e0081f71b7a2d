//! The uploader: ships sealed WAL segments to the object store as chunk
//! objects, then commits their per-partition ranges to the metadata store
//! under each partition's lease epoch, then tells the owning shard it may
//! delete the segment. Up to [`UPLOAD_CONCURRENCY`] objects are stored at
//! once, each call bounded by the object store's timeout; commits run one
//! at a time, each shard's in its seal order (so its segments are deleted
//! in order), no shard waiting for another's. Retries with capped exponential backoff until
//! it succeeds or the agent stops; a fenced partition is dropped from the
//! chunk and its shard stops serving it. Never touches shard state directly.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::{HashMap, VecDeque};

use futures::stream::{FuturesUnordered, StreamExt};
use tracing::Instrument;

use super::state::Shared;
use crate::ids::TopicKey;
use crate::messages::{ToShard, UploadJob};
use crate::metastore::{ChunkCommit, ChunkRange, MetaError};

/// First retry delay; doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// Delay before retry `attempt` (1-based): 100 ms doubling, capped at 5 s.
pub fn retry_delay(attempt: u32) -> Duration {
    FIRST_RETRY
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(MAX_RETRY)
}

/// Chunk objects stored at once (each in flight holds at most one sealed
/// segment in memory for S3).
pub const UPLOAD_CONCURRENCY: usize = 4;

pub(crate) async fn run(
    shared: Arc<Shared>,
    mut jobs: tokio::sync::mpsc::UnboundedReceiver<UploadJob>,
) {
    // Objects are stored up to UPLOAD_CONCURRENCY at a time, in any order;
    // each shard's commits (and so its deletions) follow its seal order,
    // independently of other shards: one shard's stuck segment holds up
    // only that shard's later ones.
    let mut stores = FuturesUnordered::new();
    let mut order = CommitOrder::default();
    let mut open = true;
    // Commits run in their own task, in the order they are queued: were
    // they awaited here, the stores in flight would not be polled
    // meanwhile, and one of them suspended inside a metadata call (holding
    // the store's connection) would wait for ever for a commit that waits
    // for that connection.
    let (commits, mut to_commit) = tokio::sync::mpsc::unbounded_channel::<Stored>();
    let committer = shared.clone();
    shared.tasks.spawn("uploader commits", async move {
        while let Some(next) = to_commit.recv().await {
            let (shard, segment) = (next.shard, next.segment);
            let span = tracing::debug_span!("chunk_commit", shard, segment);
            let Some(ends) = commit(&committer, next).instrument(span).await else {
                return;
            };
            committer.tell(shard, ToShard::Committed { segment, ends });
        }
    });
    loop {
        tokio::select! {
            biased;
            stored = stores.next(), if !stores.is_empty() => {
                let Some(Some(stored)): Option<Option<Stored>> = stored else { return };
                order.stored(stored.shard, stored.segment, stored);
                while let Some(next) = order.next_ready() {
                    if commits.send(next).is_err() {
                        return;
                    }
                }
            }
            job = jobs.recv(), if open && stores.len() < UPLOAD_CONCURRENCY => {
                match job {
                    Some(job) => {
                        order.queued(job.shard, job.segment);
                        // With RUST_LOG at debug, a chunk's store and its
                        // commit are spans named for its shard and segment.
                        let span = tracing::debug_span!(
                            "chunk_upload",
                            shard = job.shard,
                            segment = job.segment,
                            key = %job.key,
                        );
                        stores.push(store(shared.clone(), job).instrument(span));
                    }
                    None => open = false,
                }
            }
            else => return,
        }
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
    }
}

/// Per shard, the order its segments must be committed in, and those whose
/// objects are stored and wait for an earlier one of their shard.
struct CommitOrder<T> {
    queued: HashMap<usize, VecDeque<u64>>,
    stored: HashMap<(usize, u64), T>,
}

impl<T> Default for CommitOrder<T> {
    fn default() -> Self {
        CommitOrder {
            queued: HashMap::new(),
            stored: HashMap::new(),
        }
    }
}

impl<T> CommitOrder<T> {
    /// Segment `segment` of `shard` was handed over (in seal order).
    fn queued(&mut self, shard: usize, segment: u64) {
        self.queued.entry(shard).or_default().push_back(segment);
    }

    /// Its object is stored.
    fn stored(&mut self, shard: usize, segment: u64, item: T) {
        self.stored.insert((shard, segment), item);
    }

    /// A stored segment that is the oldest outstanding one of its shard.
    fn next_ready(&mut self) -> Option<T> {
        for (shard, queue) in self.queued.iter_mut() {
            let Some(front) = queue.front() else { continue };
            if let Some(item) = self.stored.remove(&(*shard, *front)) {
                queue.pop_front();
                return Some(item);
            }
        }
        None
    }
}

/// A chunk object in place, ready for its metadata commit.
struct Stored {
    shard: usize,
    segment: u64,
    /// `None` when nothing is to be committed (no ranges, or committed
    /// before a restart).
    chunk: Option<ChunkCommit>,
    /// Ranges to resolve against the metadata store before the commit
    /// (see [`UploadJob::unleased`]).
    unleased: Vec<ChunkRange>,
    /// Ranges committed before a restart (the chunk was found committed).
    committed_before: Vec<ChunkRange>,
    started: Instant,
    put: Duration,
}

/// Waits before retry `attempt`; false if the agent is stopping.
async fn pause(shared: &Shared, attempt: u32) -> bool {
    tokio::time::sleep(retry_delay(attempt)).await;
    !shared.stop.load(Ordering::Acquire)
}

/// Stores one segment as a chunk object, retrying until it succeeds.
/// `None` only when the agent stops first.
async fn store(shared: Arc<Shared>, job: UploadJob) -> Option<Stored> {
    let shared = &*shared;
    let started = Instant::now();
    let done = |chunk: Option<ChunkCommit>, committed_before: Vec<ChunkRange>| Stored {
        shard: job.shard,
        segment: job.segment,
        committed_before,
        unleased: if chunk.is_some() {
            job.unleased.clone()
        } else {
            Vec::new()
        },
        chunk,
        started,
        put: started.elapsed(),
    };
    let mut chunk = ChunkCommit {
        key: job.key.clone(),
        size: 0,
        ranges: job.ranges.clone(),
    };
    if chunk.ranges.is_empty() && job.unleased.is_empty() {
        return Some(done(None, Vec::new()));
    }
    // Already committed before a restart: never upload or commit twice.
    let mut attempt = 0;
    loop {
        match shared.meta.chunk_committed(&chunk.key).await {
            Ok(true) => {
                tracing::info!(key = %chunk.key, "chunk was committed before; dropping the local segment");
                return Some(done(None, job.ranges.clone()));
            }
            Ok(false) => break,
            Err(e) => {
                attempt += 1;
                tracing::warn!(key = %chunk.key, error = %e, attempt, "metadata store unreachable");
                if !pause(shared, attempt).await {
                    return None;
                }
            }
        }
    }
    // A segment that cannot be stored is retried, never reported shipped:
    // the shard would delete the only copy.
    let mut attempt = 0;
    loop {
        let t = Instant::now();
        match shared.store.put_file(&chunk.key, &job.path).await {
            Ok(size) => {
                chunk.size = size;
                let m = &shared.metrics.control;
                m.upload_us.observe(t.elapsed().as_micros() as u64);
                m.chunks_uploaded.fetch_add(1, Ordering::Relaxed);
                m.upload_bytes.fetch_add(size, Ordering::Relaxed);
                tracing::debug!(
                    bytes = size,
                    put_ms = t.elapsed().as_millis() as u64,
                    attempts = attempt + 1,
                    "chunk stored"
                );
                break;
            }
            Err(e) => {
                shared
                    .metrics
                    .control
                    .upload_failures
                    .fetch_add(1, Ordering::Relaxed);
                attempt += 1;
                tracing::warn!(key = %chunk.key, error = %e, attempt, "chunk upload failed; retrying");
                if !pause(shared, attempt).await {
                    return None;
                }
            }
        }
    }
    Some(done(Some(chunk), Vec::new()))
}

/// Where each committed range of a chunk ends.
fn ends_of(ranges: &[ChunkRange]) -> Vec<(TopicKey, u32, u64)> {
    ranges
        .iter()
        .map(|r| (r.topic.clone(), r.partition, r.end_offset))
        .collect()
}

/// A pause tests put before each chunk commit (fail point
/// `uploader-commit`, action `return(MS)`); never in other builds.
fn injected_commit_delay() -> Option<Duration> {
    fail::fail_point!("uploader-commit", |ms| ms
        .and_then(|m| m.parse().ok())
        .map(Duration::from_millis));
    None
}

/// Commits a stored chunk's ranges under their epochs; returns where the
/// committed ranges end. `None` only when the agent stops first.
async fn commit(shared: &Shared, stored: Stored) -> Option<Vec<(TopicKey, u32, u64)>> {
    let Stored {
        chunk,
        unleased,
        committed_before,
        started,
        put,
        ..
    } = stored;
    let Some(mut chunk) = chunk else {
        return Some(ends_of(&committed_before));
    };
    if let Some(d) = injected_commit_delay() {
        tokio::time::sleep(d).await;
    }
    let agent = shared.config.agent_id.clone();
    for r in unleased {
        let resolved = resolve(shared, &chunk.key, r).await?;
        chunk.ranges.extend(resolved);
    }
    let mut attempt = 0;
    loop {
        match shared
            .meta
            .commit_chunk(&agent, &chunk, crate::runtime::clock::now_ms())
            .await
        {
            Ok(_) => {
                shared
                    .metrics
                    .control
                    .chunks_committed
                    .fetch_add(1, Ordering::Relaxed);
                break;
            }
            Err(MetaError::Fenced {
                topic,
                partition,
                detail,
            }) => {
                let written = chunk
                    .ranges
                    .iter()
                    .find(|r| r.topic.as_str() == topic && r.partition == partition)
                    .map(|r| r.epoch);
                let held = shared.held_epoch(&topic, partition);
                if written.is_some() && held == written {
                    // The lease we are serving under is gone.
                    shared.lose(&topic, partition, format!("fenced: {detail}"));
                }
                // Written under a lease another agent took since: it
                // continued at the committed end, so this range can never
                // be committed; its bytes stay in the stored object. Or
                // the topic was deleted meanwhile: nothing is lost.
                let gone = deleted(shared, &topic).await;
                for r in chunk
                    .ranges
                    .iter()
                    .filter(|r| r.topic.as_str() == topic && r.partition == partition)
                {
                    if gone {
                        drop_deleted(shared, &chunk.key, r);
                    } else {
                        abandon(shared, &chunk.key, r, &detail);
                    }
                }
                chunk
                    .ranges
                    .retain(|r| !(r.topic.as_str() == topic && r.partition == partition));
                if chunk.ranges.is_empty() {
                    return Some(Vec::new());
                }
            }
            Err(e @ MetaError::NotContiguous { .. }) => {
                // Never committed past a hole: the segment stays local and
                // the commit is retried (an operator must look).
                attempt += 1;
                tracing::error!(key = %chunk.key, error = %e, attempt, "chunk commit refused: it would leave a hole in a partition; keeping the segment");
                if !pause(shared, attempt).await {
                    return None;
                }
            }
            Err(e) => {
                attempt += 1;
                tracing::warn!(key = %chunk.key, error = %e, attempt, "chunk commit failed; retrying");
                if !pause(shared, attempt).await {
                    return None;
                }
            }
        }
    }
    tracing::debug!(
        key = %chunk.key,
        bytes = chunk.size,
        ranges = chunk.ranges.len(),
        put_ms = put.as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        "chunk committed"
    );
    Some(ends_of(&chunk.ranges))
}

/// Decides what to commit for a range its shard held no lease state for:
/// nothing when it was committed before (the partition was handed over
/// with every byte in object storage); the range under this agent's epoch
/// when this agent still holds the partition's lease row and the range
/// continues its committed end (a lease not taken back yet after a
/// restart, or a WAL written with another shard count); otherwise it is
/// abandoned, loudly. `None` only when the agent stops first.
async fn resolve(shared: &Shared, key: &str, mut r: ChunkRange) -> Option<Option<ChunkRange>> {
    let mut attempt = 0;
    let (lease, end) = loop {
        let found = async {
            let lease = shared.meta.lease(&r.topic, r.partition).await?;
            let end = shared.meta.committed_end(&r.topic, r.partition).await?;
            Ok::<_, MetaError>((lease, end))
        }
        .await;
        match found {
            Ok(v) => break v,
            Err(e) => {
                attempt += 1;
                tracing::warn!(%key, error = %e, attempt, "metadata store unreachable");
                if !pause(shared, attempt).await {
                    return None;
                }
            }
        }
    };
    if r.end_offset <= end {
        return Some(None);
    }
    match lease {
        Some(l) if l.holder == shared.config.agent_id && r.base_offset == end => {
            r.epoch = l.epoch;
            Some(Some(r))
        }
        other => {
            let why = match other {
                Some(l) => format!(
                    "the lease is held by {} at epoch {} and the committed end is {end}",
                    l.holder, l.epoch
                ),
                None if deleted(shared, r.topic.as_str()).await => {
                    drop_deleted(shared, key, &r);
                    return Some(None);
                }
                None => "the partition has no lease".to_owned(),
            };
            abandon(shared, key, &r, &why);
            Some(None)
        }
    }
}

/// Whether `topic` (a key: name and incarnation) is gone from the
/// metadata store, deleted; `false` when the store cannot tell.
async fn deleted(shared: &Shared, topic: &str) -> bool {
    match shared.meta.topics().await {
        Ok(rows) => !rows.iter().any(|t| t.key().as_str() == topic),
        Err(_) => false,
    }
}

/// Counts and notes a range of a deleted topic, never to be committed:
/// nothing was lost, its bytes stay in the chunk object.
fn drop_deleted(shared: &Shared, key: &str, r: &ChunkRange) {
    shared
        .metrics
        .control
        .ranges_of_deleted_topics
        .fetch_add(1, Ordering::Relaxed);
    tracing::info!(
        topic = %r.topic,
        partition = r.partition,
        base_offset = r.base_offset,
        end_offset = r.end_offset,
        object = %key,
        "range of a topic deleted before it was committed; dropped"
    );
}

/// Reports a range that will never be committed, with where its bytes are.
fn abandon(shared: &Shared, key: &str, r: &ChunkRange, why: &str) {
    shared
        .metrics
        .control
        .ranges_abandoned
        .fetch_add(1, Ordering::Relaxed);
    tracing::error!(
        topic = %r.topic,
        partition = r.partition,
        base_offset = r.base_offset,
        end_offset = r.end_offset,
        object = %key,
        pos = r.pos,
        len = r.len,
        reason = %why,
        "records written under a lease another agent took over cannot be committed; \
         their bytes stay in the chunk object named here"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 14 item 7: commits were in seal order across all shards, so
    /// one shard's stuck upload held every other shard's up.
    #[test]
    fn a_shards_commits_wait_only_for_its_own_earlier_segments() {
        let mut o = CommitOrder::default();
        o.queued(0, 10);
        o.queued(1, 20);
        o.queued(0, 11);
        o.queued(1, 21);
        o.stored(1, 21, "1/21");
        assert_eq!(o.next_ready(), None, "21 waits for 20");
        o.stored(1, 20, "1/20");
        o.stored(0, 11, "0/11");
        // Shard 0's 10 is stuck: shard 1 goes on, shard 0's 11 waits.
        assert_eq!(o.next_ready(), Some("1/20"));
        assert_eq!(o.next_ready(), Some("1/21"));
        assert_eq!(o.next_ready(), None);
        o.stored(0, 10, "0/10");
        assert_eq!(o.next_ready(), Some("0/10"));
        assert_eq!(o.next_ready(), Some("0/11"));
        assert_eq!(o.next_ready(), None);
    }

    #[test]
    fn retry_delays_double_and_cap() {
        let ms: Vec<u128> = (1..=8).map(|a| retry_delay(a).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(retry_delay(1000), MAX_RETRY);
    }
}
