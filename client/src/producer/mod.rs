//! The Producer: partitions records, batches them per partition, sends each
//! closed batch to the agent shard that owns the partition, retries with
//! backoff, and resolves each record's future when it is acknowledged.
//!
//! Tasks: `send` appends synchronously when it can (metadata cached, buffer
//! room free); otherwise the record waits, in order, in the intake queue that
//! the intake task serves. The sender task dispatches closed batches, up to
//! `max_in_flight_per_partition` requests in flight per partition (one
//! without idempotence), any number of partitions per connection up to the
//! pool's `max_in_flight`. A shard without free capacity is skipped, so it
//! never stalls the others.
//!
//! Order with several batches of a partition in flight: each request names
//! the oldest unanswered sequence of its partition, so the agent appends
//! batches strictly in sequence order even when requests overtake each
//! other; a batch refused as out of order (`ABORTED`) is retried only once
//! every earlier batch of its partition is answered, and fails if one of
//! them failed. After a batch fails for good, its partition sends nothing
//! new until its other batches are answered.
//!
//! Retries back off exponentially, but a batch whose route failed retries as
//! soon as the metadata (asked every 100 ms meanwhile) names another leader
//! for its partition.
//!
//! Idempotence (on by default): the producer holds a producer id from the
//! agent; each partition's batches carry consecutive sequence numbers, so a
//! retried batch that was already appended is answered with its original
//! offsets instead of being written twice. After a batch fails for good the
//! producer takes a new producer id, so the failed batch's sequence numbers
//! are never reused.
//!
//! Files: this module is the public API; `config` (settings), `builder`,
//! `state` (what the tasks share), `append` (a record into its partition's
//! batch), `accumulator`, `intake` and `admission` (waiting for buffer
//! room), `sequencer` (idempotence and order), `producer_id`, `sender` (dispatch),
//! `request` (one batch's request with retries), `delivery` (outcomes to
//! callers), `metrics`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use streamhouse_proto::batch::{BatchBuilder, ProducerInfo};
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::record::{BatchRecord, ProducerRecord, RecordMetadata};

pub mod accumulator;
mod admission;
mod append;
mod builder;
mod config;
mod delivery;
mod intake;
mod metrics;
mod producer_id;
mod request;
mod sender;
mod sequencer;
mod state;

use accumulator::record_size;
use admission::Waiting;
pub use admission::{AckFuture, Admission, BatchSendFuture, SendFuture};
pub use builder::ProducerBuilder;
pub use config::{Acks, ProducerConfig, MAX_IN_FLIGHT_PER_PARTITION};
use delivery::Outcome;
pub use intake::{ENTRY_BYTES, MAX_WITHDRAWN};
pub use metrics::ProducerMetrics;
use state::{Inner, Item};

/// Sends records to StreamHouse. Cheap to clone; clones share batches,
/// connections and the producer id.
///
/// ```no_run
/// # async fn example() -> streamhouse_client::Result<()> {
/// use streamhouse_client::{Producer, ProducerRecord};
/// let producer = Producer::builder(["127.0.0.1:9092"]).build().await?;
/// let meta = producer
///     .send(ProducerRecord::new("orders", "hello").key("user-1"))
///     .await?;
/// println!("stored at {}/{} offset {}", meta.topic, meta.partition, meta.offset);
/// producer.close().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
    _guard: Arc<DropGuard>,
}

/// A record's bytes as the agent counts them against its
/// `--max-record-bytes`: key + value + header keys and values.
fn payload_bytes(key: Option<&[u8]>, value: &[u8], headers: &[(String, Bytes)]) -> usize {
    key.map_or(0, <[u8]>::len)
        + value.len()
        + headers
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Producer {
    /// A builder connecting to `bootstrap` (host:port of any agent shard).
    /// `bootstrap`: one `host:port` or a list ([`Bootstrap`](crate::Bootstrap)),
    /// as [`Admin::connect`](crate::Admin::connect) takes.
    pub fn builder(bootstrap: impl crate::Bootstrap) -> ProducerBuilder {
        ProducerBuilder {
            config: ProducerConfig {
                bootstrap: bootstrap.addresses(),
                ..Default::default()
            },
            rng: None,
            held: None,
        }
    }

    /// Queues a record and returns a future that resolves once it is
    /// acknowledged at the configured ack level. The record is queued when
    /// `send` is called, not when the future is first polled, so records of
    /// one partition are stored in `send` order.
    ///
    /// While the buffer is full (`buffer_memory` of records taken and not
    /// yet acknowledged: the agent is slower than the sender) the record
    /// waits, in order, owned by the returned future, up to `max_block`;
    /// then the future resolves with `BufferFull`.
    ///
    /// # Cancellation
    /// See [`AckFuture`]: dropping the future withdraws the record only
    /// while it still waits for buffer room.
    pub fn send(&self, record: ProducerRecord) -> SendFuture {
        let (tx, rx) = oneshot::channel();
        let size = record_size(record.key.as_deref(), &record.value, &record.headers);
        let largest = payload_bytes(record.key.as_deref(), &record.value, &record.headers);
        let waiting = self
            .inner
            .enqueue(
                Item::Record(record),
                size,
                largest,
                Outcome::Future(tx),
                false,
            )
            .map(|(id, _)| Waiting::new(&self.inner, id));
        AckFuture { rx, waiting }
    }

    /// Like [`send`](Self::send), but calls `callback` with the outcome
    /// instead of returning a future per record (the callback runs on the
    /// producer's task, so keep it short; it may call `send`). The returned
    /// [`Admission`] resolves at once while the buffer has room; while it
    /// is full it resolves once the record was taken (or failed after
    /// `max_block`: the callback then gets `BufferFull`), which is the
    /// back-pressure a sending loop needs:
    ///
    /// ```no_run
    /// # async fn run(p: &streamhouse_client::Producer) {
    /// use streamhouse_client::ProducerRecord;
    /// for i in 0..1_000_000 {
    ///     p.send_with_callback(ProducerRecord::new("events", format!("{i}")), |r| {
    ///         if let Err(e) = r {
    ///             eprintln!("failed: {e}");
    ///         }
    ///     })
    ///     .await;
    /// }
    /// # }
    /// ```
    ///
    /// # Cancellation
    /// See [`Admission`]: dropping it before it resolved withdraws the
    /// record, and the callback is never called.
    pub fn send_with_callback<F>(&self, record: ProducerRecord, callback: F) -> Admission
    where
        F: FnOnce(Result<RecordMetadata>) + Send + 'static,
    {
        let size = record_size(record.key.as_deref(), &record.value, &record.headers);
        let largest = payload_bytes(record.key.as_deref(), &record.value, &record.headers);
        match self.inner.enqueue(
            Item::Record(record),
            size,
            largest,
            Outcome::Callback(Box::new(callback)),
            true,
        ) {
            Some((id, taken)) => Admission {
                taken,
                waiting: Some(Waiting::new(&self.inner, id)),
            },
            None => Admission {
                taken: None,
                waiting: None,
            },
        }
    }

    /// Sends `records` to `partition` of `topic` as one batch, in the order
    /// given, and returns a future resolving once all of them are
    /// acknowledged (or failed) together. The batch is encoded here, in the
    /// caller's task, and goes out as one request, bypassing the
    /// accumulator's record, byte and linger limits; it is queued behind
    /// whatever `send` queued for the partition before, so ordering between
    /// `send` and `send_batch` calls is kept. Retries and idempotence are
    /// those of `send`. At most `buffer_memory` (and 32 MiB) per call.
    /// Waits for buffer room and is withdrawn by dropping the future as
    /// [`send`](Self::send) is.
    ///
    /// ```no_run
    /// # async fn run(p: &streamhouse_client::Producer) -> streamhouse_client::Result<()> {
    /// let values = (0..1000).map(|i| format!("event {i}"));
    /// let m = p.send_batch("events", 0, values).await?;
    /// println!("offsets {}..{}", m.base_offset, m.base_offset + u64::from(m.record_count));
    /// # Ok(()) }
    /// ```
    pub fn send_batch<I>(&self, topic: &str, partition: u32, records: I) -> BatchSendFuture
    where
        I: IntoIterator,
        I::Item: Into<BatchRecord>,
    {
        let (tx, rx) = oneshot::channel();
        let records = records.into_iter();
        let now = now_ms();
        let mut builder = BatchBuilder::with_capacity(
            self.inner.limits.codec,
            ProducerInfo::default(),
            records.size_hint().0 * 64,
        );
        let mut size = 0;
        let mut largest = 0;
        let mut timestamp = None;
        for r in records {
            let r: BatchRecord = r.into();
            let ts = r.timestamp.unwrap_or(now);
            timestamp.get_or_insert(ts);
            size += record_size(r.key.as_deref(), &r.value, &r.headers);
            largest = largest.max(payload_bytes(r.key.as_deref(), &r.value, &r.headers));
            builder.push(r.key.as_deref(), &r.value, ts, &r.headers);
        }
        let count = builder.len();
        if count == 0 {
            let _ = tx.send(Err(Error::Config(
                "send_batch needs at least one record".into(),
            )));
            return AckFuture { rx, waiting: None };
        }
        let item = Item::Batch {
            topic: topic.to_owned(),
            partition,
            builder,
            timestamp: timestamp.unwrap_or(now),
        };
        let waiting = self
            .inner
            .enqueue(item, size, largest, Outcome::Batch { tx, count }, false)
            .map(|(id, _)| Waiting::new(&self.inner, id));
        AckFuture { rx, waiting }
    }

    /// Waits until every record sent so far is acknowledged or failed
    /// (records other tasks send meanwhile are waited for too).
    ///
    /// # Errors
    /// The first error of a record sent before the call, after its retries (its
    /// own future says it too).
    ///
    /// # Cancellation
    /// Dropping the future stops the waiting only: the records are sent
    /// and acknowledged as if it had not been called (batches it closed
    /// early stay closed; later batches linger again).
    pub async fn flush(&self) -> Result<()> {
        let _flushing = Flushing::start(&self.inner);
        loop {
            let idle = self.inner.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.inner.state.lock().outstanding == 0 {
                break;
            }
            idle.await;
        }
        Ok(())
    }

    /// Flushes, then stops the producer's tasks and closes its connections.
    /// Later `send`s fail with `Closed`.
    ///
    /// # Errors
    /// As [`flush`](Self::flush); records sent after the close began fail with
    /// [`Error::Closed`].
    ///
    /// # Cancellation
    /// Dropping the future mid-way leaves the producer closed to new sends;
    /// what was sent before is still delivered while the runtime runs, and
    /// the producer's tasks end once it is (as when a producer is dropped
    /// without `close`).
    pub async fn close(&self) -> Result<()> {
        self.inner.closed.store(true, Ordering::Release);
        self.flush().await?;
        self.inner.shut_down();
        self.inner.pool.close_all();
        Ok(())
    }

    /// A snapshot of the producer's counters.
    pub fn metrics(&self) -> ProducerMetrics {
        let inner = &self.inner;
        let in_use = inner.config.buffer_memory - inner.memory.available_permits();
        inner
            .counters
            .snapshot(in_use as u64, inner.pool.opened.load(Ordering::Relaxed))
    }

    /// Open connections to one agent shard address.
    pub fn connection_count(&self, address: &str) -> usize {
        self.inner.pool.connection_count(address)
    }

    /// The current idempotent producer id and epoch (0 when disabled).
    pub fn producer_id(&self) -> (i64, i16) {
        *self.inner.pid.lock()
    }

    /// Partition count of a topic, fetching metadata if needed.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`] when the topic does not exist;
    /// [`Error::Transport`] when no agent answers.
    ///
    /// # Cancellation
    /// Read-only: dropping the future has no effect.
    pub async fn partitions(&self, topic: &str) -> Result<u32> {
        Ok(self
            .inner
            .metadata
            .get_or_fetch(&self.inner.pool, topic)
            .await?
            .partitions
            .len() as u32)
    }
}

/// A flush in progress: while any exists, open batches close at once
/// instead of lingering. Ends when dropped, however the flush ends.
struct Flushing<'a>(&'a Inner);

impl<'a> Flushing<'a> {
    fn start(inner: &'a Inner) -> Flushing<'a> {
        inner.state.lock().flushing += 1;
        inner.wake_sender.notify_one();
        Flushing(inner)
    }
}

impl Drop for Flushing<'_> {
    fn drop(&mut self) {
        self.0.state.lock().flushing -= 1;
    }
}

struct DropGuard {
    inner: Arc<Inner>,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        let outstanding = self.inner.state.lock().outstanding;
        if outstanding > 0 {
            tracing::warn!(
                records = outstanding,
                "Producer dropped before close() finished: {outstanding} records are not \
                 acknowledged yet; they are still sent while the runtime runs, and lost if it \
                 stops first"
            );
        }
        self.inner.shut_down();
    }
}
