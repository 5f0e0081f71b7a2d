//! The Consumer: reads assigned partitions from their owning agent shards
//! through the Fetch RPC, tracking a position per partition and following
//! leadership moves. Owns positions and the records fetched but not yet
//! handed out; does not commit offsets anywhere. `builder` holds its
//! settings, `fetch` is one partition's RPC, `list_offsets` the
//! leaders' offset lookups (by time), `offset` the start positions.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;

use streamhouse_proto::TopicPartition;

use crate::error::{Error, Result};
use crate::net::metadata::Metadata;
use crate::net::pool::{ConnectionPool, PoolConfig};

mod builder;
mod epochs;
mod fetch;
mod list_offsets;
mod offset;

pub use builder::ConsumerBuilder;
use epochs::Epochs;
pub use epochs::Truncations;
pub use fetch::{accept_response, Diverged, Fetched, ReadLevel};
pub use list_offsets::OffsetAndTimestamp;
pub use offset::{parse_time_ms, AutoOffsetReset, Offset};

/// A record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Topic the record was read from.
    pub topic: String,
    /// Partition the record was read from.
    pub partition: u32,
    /// The record's offset in its partition.
    pub offset: u64,
    /// Key, if the record has one.
    pub key: Option<Bytes>,
    /// Value bytes.
    pub value: Bytes,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// Headers, in order.
    pub headers: Vec<(String, Bytes)>,
    /// Leader epoch (the lease epoch of the partition's leader) the record
    /// was written under; `None` when the agent did not know it.
    pub leader_epoch: Option<u64>,
}

/// Reads records by offset.
///
/// ```no_run
/// # async fn example() -> streamhouse_client::Result<()> {
/// use std::time::Duration;
/// use streamhouse_client::{Consumer, Offset};
/// let mut consumer = Consumer::builder(["127.0.0.1:9092"]).build().await?;
/// consumer.assign([("orders", 0)]).await?;
/// consumer.seek_to("orders", 0, Offset::Beginning).await?;
/// for r in consumer.poll(Duration::from_millis(500)).await? {
///     println!("{} {:?}", r.offset, r.value);
/// }
/// # Ok(()) }
/// ```
///
/// Or as a stream of records, following the partitions for ever:
///
/// ```no_run
/// # async fn example(mut consumer: streamhouse_client::Consumer) {
/// use futures::StreamExt;
/// let mut records = std::pin::pin!(consumer.stream());
/// while let Some(r) = records.next().await {
///     match r {
///         Ok(r) => println!("{}/{} {}", r.topic, r.partition, r.offset),
///         Err(e) => eprintln!("{e}"),
///     }
/// }
/// # }
/// ```
pub struct Consumer {
    metadata: Metadata,
    pool: ConnectionPool,
    /// Next offset to fetch per assigned partition.
    positions: BTreeMap<(String, u32), u64>,
    /// Leader epochs of the fetch and handed-out positions, truncations.
    epochs: Epochs,
    /// Last (log start, high watermark) a fetch saw per partition.
    watermarks: BTreeMap<(String, u32), (u64, u64)>,
    /// Fetched and not yet handed out (by [`Consumer::next_record`]).
    fetched: VecDeque<ConsumerRecord>,
    /// An error one partition answered during a poll that also returned
    /// records of others; the next poll returns it (see [`Consumer::poll`]).
    pending_error: Option<((String, u32), Error)>,
    /// Where an out-of-range position starts again.
    out_of_range: AutoOffsetReset,
    read_level: ReadLevel,
    /// Bytes asked per partition per fetch; default 1 MiB.
    max_bytes_per_partition: u32,
    /// How long one fetch of `next_record`/`stream` waits; default 500 ms.
    stream_wait: Duration,
    /// What the builder was asked to hold (an in-process agent); declared
    /// last so the connections close before it goes.
    _held: Option<std::sync::Arc<dyn std::any::Any + Send + Sync>>,
}

impl Consumer {
    /// A builder connecting to `bootstrap` (host:port of any agent shard).
    /// `bootstrap`: one `host:port` or a list ([`Bootstrap`](crate::Bootstrap)),
    /// as [`Admin::connect`](crate::Admin::connect) takes.
    pub fn builder(bootstrap: impl crate::Bootstrap) -> ConsumerBuilder {
        ConsumerBuilder {
            bootstrap: bootstrap.addresses(),
            max_bytes_per_partition: 1 << 20,
            stream_wait: Duration::from_millis(500),
            pool: PoolConfig::default(),
            out_of_range: AutoOffsetReset::Error,
            read_level: ReadLevel::Durable,
            held: None,
        }
    }

    /// Connects to any agent shard(s) in `bootstrap` with default settings
    /// (`Consumer::builder(bootstrap).build()`).
    ///
    /// # Errors
    /// As [`ConsumerBuilder::build`].
    ///
    /// # Cancellation
    /// Dropping the future leaves nothing behind.
    pub async fn connect(bootstrap: impl crate::Bootstrap) -> Result<Consumer> {
        Consumer::builder(bootstrap).build().await
    }

    /// How long one fetch of [`next_record`](Self::next_record) and
    /// [`stream`](Self::stream) waits for records (the builder's
    /// `stream_wait`, default 500 ms).
    pub fn stream_wait(&self) -> Duration {
        self.stream_wait
    }

    /// Reads these partitions (replacing any earlier assignment): each a
    /// [`TopicPartition`] or a `(topic, partition)` pair. New partitions
    /// start at offset 0; kept ones keep their position.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`] or [`Error::UnknownPartition`] when a partition
    /// does not exist (the assignment is left as it was); [`Error::Transport`]
    /// when no agent answers.
    ///
    /// # Cancellation
    /// Dropping the future leaves the earlier assignment as it was.
    pub async fn assign<I, T>(&mut self, partitions: I) -> Result<()>
    where
        I: IntoIterator<Item = T>,
        T: Into<TopicPartition>,
    {
        let mut next = BTreeMap::new();
        for tp in partitions {
            let TopicPartition {
                topic: t,
                partition: p,
            } = tp.into();
            let n = self.partition_count(&t).await?;
            if p >= n {
                return Err(Error::UnknownPartition {
                    topic: t,
                    partition: p,
                    partitions: n,
                });
            }
            let pos = self.positions.get(&(t.clone(), p)).copied().unwrap_or(0);
            next.insert((t, p), pos);
        }
        self.positions = next;
        let positions = &self.positions;
        self.epochs.retain(|k| positions.contains_key(k));
        self.fetched
            .retain(|r| positions.contains_key(&(r.topic.clone(), r.partition)));
        if let Some((key, _)) = &self.pending_error {
            if !self.positions.contains_key(key) {
                self.pending_error = None;
            }
        }
        Ok(())
    }

    /// How many partitions `topic` has, fetching metadata if needed.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`] when the topic does not exist;
    /// [`Error::Transport`] when no agent answers.
    ///
    /// # Cancellation
    /// Read-only: dropping the future has no effect.
    pub async fn partition_count(&self, topic: &str) -> Result<u32> {
        let routes = self.metadata.get_or_fetch(&self.pool, topic).await?;
        Ok(routes.partitions.len() as u32)
    }

    /// Sets the next offset to read from a partition (assigning it if
    /// needed); forgets records of it fetched and not handed out yet, and
    /// an error of it not yet returned.
    pub fn seek(&mut self, topic: &str, partition: u32, offset: u64) {
        self.seek_with_epoch(topic, partition, offset, None);
    }

    /// As [`seek`](Self::seek), knowing the leader epoch of the record
    /// before `offset` (as stored with a committed offset): the first fetch
    /// checks that the log still holds that epoch's records up to `offset`
    /// and moves back to where a new leader continued if not.
    pub fn seek_with_epoch(
        &mut self,
        topic: &str,
        partition: u32,
        offset: u64,
        epoch: Option<u64>,
    ) {
        let key = (topic.to_owned(), partition);
        self.epochs.set_position(&key, epoch);
        if self.pending_error.as_ref().is_some_and(|(k, _)| *k == key) {
            self.pending_error = None;
        }
        self.fetched
            .retain(|r| !(r.partition == partition && r.topic == topic));
        self.positions.insert(key, offset);
    }

    /// Seeks a partition to a start position ([`Offset`]: beginning, end,
    /// an offset, N before the end, a time) and returns the offset it
    /// names. An offset past the high watermark is `OUT_OF_RANGE`.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`] or [`Error::UnknownPartition`];
    /// [`Error::Config`] for a time before the epoch; the leader's
    /// [`Error::Status`] or [`Error::Transport`] when it cannot say the offset.
    ///
    /// # Cancellation
    /// Dropping the future before it completes leaves the position as it
    /// was.
    pub async fn seek_to(&mut self, topic: &str, partition: u32, at: Offset) -> Result<u64> {
        let offset = offset::resolve(&self.metadata, &self.pool, topic, partition, at).await?;
        self.seek(topic, partition, offset);
        Ok(offset)
    }

    /// The partition's first readable offset and its high watermark (the
    /// offset the next produced record gets), asked of its leader now.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`] or [`Error::UnknownPartition`]; the leader's
    /// [`Error::Status`] or [`Error::Transport`].
    ///
    /// # Cancellation
    /// Read-only: dropping the future has no effect.
    pub async fn watermarks(&self, topic: &str, partition: u32) -> Result<(u64, u64)> {
        offset::watermarks(&self.metadata, &self.pool, topic, partition).await
    }

    /// For each (partition, time in ms since the Unix epoch) of `topic`, the
    /// first offset whose record is at or after that time, asked of the
    /// partitions' leaders (one request per leader); the high watermark
    /// when no record is that recent. Positions do not move.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`] or [`Error::UnknownPartition`]; the leader's
    /// [`Error::Status`] or [`Error::Transport`].
    ///
    /// # Cancellation
    /// Read-only: dropping the future has no effect.
    pub async fn offsets_for_times(
        &self,
        topic: &str,
        times: &[(u32, i64)],
    ) -> Result<BTreeMap<u32, OffsetAndTimestamp>> {
        if let Some((p, t)) = times.iter().find(|(_, t)| *t < 0) {
            return Err(Error::Config(format!(
                "time {t} of {topic}/{p} is before the Unix epoch"
            )));
        }
        let found = list_offsets::list_offsets(&self.metadata, &self.pool, topic, times).await?;
        Ok(found.into_iter().collect())
    }

    /// The high watermark the last fetch of a partition saw, if any.
    pub fn high_watermark(&self, topic: &str, partition: u32) -> Option<u64> {
        self.watermarks
            .get(&(topic.to_owned(), partition))
            .map(|w| w.1)
    }

    /// The next offset to be handed out from a partition, if assigned.
    pub fn position(&self, topic: &str, partition: u32) -> Option<u64> {
        self.fetched
            .iter()
            .find(|r| r.partition == partition && r.topic == topic)
            .map(|r| r.offset)
            .or_else(|| self.positions.get(&(topic.to_owned(), partition)).copied())
    }

    /// The leader epoch of the record before [`position`](Self::position)
    /// (the last one handed out), when known: commit it with the position.
    pub fn position_epoch(&self, topic: &str, partition: u32) -> Option<u64> {
        self.epochs.handed(&(topic.to_owned(), partition))
    }

    /// Records read and then found gone after a leader change, so far.
    pub fn truncations(&self) -> Truncations {
        self.epochs.truncations()
    }

    /// Whether every assigned partition has been read up to the high
    /// watermark its last fetch saw (false before a partition was fetched).
    pub fn at_end(&self) -> bool {
        self.fetched.is_empty()
            && self.positions.iter().all(|(k, pos)| {
                self.watermarks
                    .get(k)
                    .is_some_and(|&(_, high)| *pos >= high)
            })
    }

    /// Fetches from every assigned partition at once, waiting up to
    /// `max_wait` for data, and advances positions past what it returns
    /// (records fetched by [`next_record`](Self::next_record) and not yet
    /// handed out come first, without a fetch).
    ///
    /// A partition whose fetch fails for good (see [`crate::retry`]: e.g.
    /// `OUT_OF_RANGE`, `DATA_LOSS`, an unknown topic) keeps its position.
    /// Its error is returned at once when no other partition returned
    /// records; otherwise the records are returned and the error is kept
    /// for the next `poll`, which returns it before fetching again (a
    /// [`seek`](Self::seek) of that partition forgets it). Nothing fetched
    /// is ever dropped.
    ///
    /// # Errors
    /// An error one partition answered (e.g.
    /// [`Code::OutOfRange`](crate::Code::OutOfRange) under
    /// [`AutoOffsetReset::Error`], [`Error::Protocol`]); records other
    /// partitions returned in the same fetch come first and the error with the
    /// next poll. A partition that moved or is unreachable is retried, not
    /// returned.
    ///
    /// # Cancellation
    /// Dropping the future before it completes changes no position: what
    /// its fetches returned meanwhile is read again by the next poll.
    pub async fn poll(&mut self, max_wait: Duration) -> Result<Vec<ConsumerRecord>> {
        if self.fetched.is_empty() {
            self.fetch_more(max_wait).await?;
        }
        // Everything fetched is handed out: the last handed record of each
        // partition is its last fetched one.
        self.epochs.all_handed();
        Ok(self.fetched.drain(..).collect())
    }

    /// The next record of any assigned partition, fetching (up to
    /// `stream_wait` each time) until there is one; records of a partition
    /// come in offset order. An error is returned as `poll` returns it;
    /// calling again goes on.
    ///
    /// # Errors
    /// As [`poll`](Self::poll).
    ///
    /// # Cancellation
    /// Safe to drop at any point: a record is handed out only by a
    /// completed call, and fetched records wait in the consumer.
    pub async fn next_record(&mut self) -> Result<ConsumerRecord> {
        loop {
            if let Some(r) = self.fetched.pop_front() {
                let key = (r.topic.clone(), r.partition);
                self.epochs.set_handed(&key, r.leader_epoch);
                return Ok(r);
            }
            self.fetch_more(self.stream_wait).await?;
        }
    }

    /// The assigned partitions' records as a stream that never ends (it
    /// follows the partitions as they grow): [`next_record`](Self::next_record)
    /// called again and again. Errors are items; the stream goes on after
    /// them.
    ///
    /// # Cancellation
    /// Dropping the stream loses nothing: records fetched and not yet
    /// yielded stay in the consumer for its next call.
    pub fn stream(&mut self) -> impl Stream<Item = Result<ConsumerRecord>> + '_ {
        futures::stream::unfold(self, |c| async move {
            let r = c.next_record().await;
            Some((r, c))
        })
    }

    /// Fetches the assigned partitions into `fetched`, advancing the fetch
    /// positions past what it appends: every partition is asked at once
    /// for what it has; if none has anything, each is asked again waiting
    /// up to `max_wait`, and the poll ends soon after the first answer with
    /// records ([`first_answers`]), so a record on one partition is not
    /// held back by the waits of the others.
    async fn fetch_more(&mut self, max_wait: Duration) -> Result<()> {
        if let Some((_, e)) = self.pending_error.take() {
            return Err(e);
        }
        // What is there now, from every partition (no wait, every answer
        // kept: the fast path while records keep coming). Only when none
        // has any, a long poll that ends with the first partition's records.
        let mut results = futures::future::join_all(self.fetches(0)).await;
        let any = results
            .iter()
            .any(|(_, r)| matches!(r, Ok(f) if !f.records.is_empty()));
        let errors = results.iter().any(|(_, r)| r.is_err());
        if !any && !errors && !max_wait.is_zero() {
            let wait_ms = max_wait.as_millis().min(u128::from(u32::MAX)) as u32;
            results = first_answers(self.fetches(wait_ms)).await;
        }
        let mut first_error = None;
        let mut resets = Vec::new();
        let mut got = false;
        for (key, r) in results {
            match r {
                Ok(f) => {
                    if let (Some(low), Some(high)) = (f.log_start, f.high_watermark) {
                        self.watermarks.insert(key.clone(), (low, high));
                    }
                    if let Some(d) = f.diverged {
                        self.truncated(key, d);
                        continue;
                    }
                    if let Some(last) = f.records.last() {
                        self.epochs.set_fetched(&key, last.leader_epoch);
                        self.positions.insert(key.clone(), last.offset + 1);
                        got = true;
                    }
                    // Past records key compaction removed.
                    if let Some(next) = f.next_offset {
                        let at = self.positions.entry(key).or_insert(next);
                        *at = (*at).max(next);
                    }
                    self.fetched.extend(f.records);
                }
                Err(e) if is_out_of_range(&e) && self.out_of_range.start().is_some() => {
                    resets.push((key, e));
                }
                Err(e) => {
                    first_error.get_or_insert((key, e));
                }
            }
        }
        for (key, e) in resets {
            if let Err(e) = self.reset(&key, &e).await {
                first_error.get_or_insert((key, e));
            }
        }
        match first_error {
            Some((_, e)) if !got => Err(e),
            pending => {
                self.pending_error = pending;
                Ok(())
            }
        }
    }

    /// A partition's leader no longer holds what was read from `d.end_offset`
    /// on (no record of it is waiting in `fetched`: fetches run only when
    /// that is empty): continue there, and count the records gone.
    fn truncated(&mut self, key: (String, u32), d: Diverged) {
        let Some(pos) = self.positions.get(&key).copied() else {
            return;
        };
        let gone = pos.saturating_sub(d.end_offset);
        tracing::warn!(
            topic = key.0,
            partition = key.1,
            position = pos,
            continue_at = d.end_offset,
            gone,
            "records read from a former leader are not in the log any more (it was replaced before shipping them); reading on from where the new leader continued"
        );
        self.epochs.truncated(gone);
        self.positions.insert(key.clone(), d.end_offset);
        self.epochs.set_position(&key, d.epoch);
    }

    /// Starts `key` again where `auto_offset_reset` says, its position
    /// having been answered out of range (`why`).
    async fn reset(&mut self, key: &(String, u32), why: &Error) -> Result<()> {
        let Some(to) = self.out_of_range.start() else {
            return Ok(());
        };
        let from = self.positions.get(key).copied();
        let at = self.seek_to(&key.0, key.1, to).await?;
        tracing::warn!(
            topic = key.0,
            partition = key.1,
            position = from,
            reset_to = at,
            reason = %why,
            "position out of range; reading on from the auto offset reset position"
        );
        Ok(())
    }

    /// One fetch per assigned partition at its position, each waiting up
    /// to `wait_ms` for records.
    fn fetches(
        &self,
        wait_ms: u32,
    ) -> Vec<impl std::future::Future<Output = ((String, u32), Result<Fetched>)> + '_> {
        self.positions
            .iter()
            .map(|((t, p), off)| {
                let key = (t.clone(), *p);
                let at = fetch::FetchAt {
                    topic: t,
                    partition: *p,
                    offset: *off,
                    last_epoch: self.epochs.fetched(&key),
                    max_bytes: self.max_bytes_per_partition,
                    wait_ms,
                    read_level: self.read_level,
                };
                let f = fetch::fetch(&self.metadata, &self.pool, at);
                async move { (key, f.await) }
            })
            .collect()
    }
}

/// How long a poll waits for the other partitions' answers once one
/// brought records: 2 ms. Fetches still waiting then are dropped (they
/// change no position; those partitions are asked again by the next poll).
const GRACE_AFTER_FIRST: Duration = Duration::from_millis(2);

/// The answers of `futs`: all of them if none brings records, else those
/// in by [`GRACE_AFTER_FIRST`] after the first that did.
async fn first_answers<K, F>(futs: Vec<F>) -> Vec<(K, Result<Fetched>)>
where
    F: std::future::Future<Output = (K, Result<Fetched>)>,
{
    use futures::StreamExt;
    let mut pending: futures::stream::FuturesUnordered<F> = futs.into_iter().collect();
    let mut out = Vec::new();
    while let Some(r) = pending.next().await {
        let records = matches!(&r.1, Ok(f) if !f.records.is_empty());
        out.push(r);
        if records {
            break;
        }
    }
    let grace = tokio::time::sleep(GRACE_AFTER_FIRST);
    tokio::pin!(grace);
    loop {
        tokio::select! {
            r = pending.next() => match r {
                Some(r) => out.push(r),
                None => break,
            },
            _ = &mut grace => break,
        }
    }
    out
}

/// Whether the agent answered that the position is outside the log.
fn is_out_of_range(e: &Error) -> bool {
    matches!(e, Error::Status { code, .. } if *code == crate::Code::OutOfRange)
}
