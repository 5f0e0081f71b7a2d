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

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;
use streamhouse_proto as pb;
use streamhouse_proto::admin_service_client::AdminServiceClient;
use streamhouse_proto::producer_service_client::ProducerServiceClient;
use streamhouse_shard::batch::{BatchBuilder, Codec, ProducerInfo};
use tokio::sync::{oneshot, Notify, Semaphore};
use tokio::time::Instant;

use crate::accumulator::{record_size, BatchLimits, ClosedBatch, PartitionAccumulator};
use crate::backoff::{thread_rng, Backoff, BackoffConfig, Rng};
use crate::breaker::BreakerState;
use crate::error::{Error, Result};
use crate::metadata::Metadata;
use crate::partitioner::partition_for_key;
use crate::pool::{bounded, ConnectionPool, PoolConfig};
use crate::record::{BatchMetadata, BatchRecord, ProducerRecord, RecordMetadata};
use crate::retry::{classify, RetryAction};

mod admission;
mod intake;

use admission::Waiting;
pub use admission::{AckFuture, Admission, BatchSendFuture, SendFuture};
pub use intake::{ENTRY_BYTES, MAX_WITHDRAWN};

/// Most requests in flight per partition: an agent remembers this many
/// batches per producer, so a retry of the oldest is still recognised.
pub const MAX_IN_FLIGHT_PER_PARTITION: usize = streamhouse_shard::batch::REMEMBERED_BATCHES;

/// Durability a record needs before its future resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// fsynced in the agent's write-ahead log (default).
    #[default]
    Durable,
    /// In object storage and committed.
    Object,
}

/// Producer settings. Defaults favour throughput at `durable` acks on a
/// disk whose fsync takes a few milliseconds: a batch closes at 1 MiB or
/// 10,000 records, which is about what one group commit can absorb, and a
/// 5 ms linger is about one fsync, so a lone record waits little more than
/// the sync it needs anyway. The seed's defaults (100 records, 100 ms) are
/// one builder call away.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// host:port of any agent shard(s).
    pub bootstrap: Vec<String>,
    /// Default `Durable`.
    pub acks: Acks,
    /// Records per batch; default 10,000.
    pub batch_max_records: usize,
    /// Record bytes per batch; default 1 MiB.
    pub batch_max_bytes: usize,
    /// How long a batch waits for more records; default 5 ms.
    pub linger: Duration,
    /// Bytes of records buffered or in flight; default 32 MiB.
    pub buffer_memory: usize,
    /// How long `send` waits for buffer room before failing; default 10 s.
    pub max_block: Duration,
    /// Retries per batch; default 3 (seed).
    pub retries: u32,
    /// Retry delays; default 100 ms base, 5 s max, ±25% jitter (seed).
    pub backoff: BackoffConfig,
    /// Upper bound on the time from a batch's dispatch to its final outcome,
    /// retries included; default 120 s.
    pub delivery_timeout: Duration,
    /// Deadline of one request; default 30 s.
    pub request_timeout: Duration,
    /// Idempotent producer; default on.
    pub idempotence: bool,
    /// Requests in flight per partition; default 5, at most 16 (what an
    /// agent remembers per producer for deduplication; more helps when few
    /// partitions carry the load). Order is kept (see
    /// the module docs); without idempotence one request is in flight.
    pub max_in_flight_per_partition: usize,
    /// Batch compression; default none.
    pub compression: Codec,
    /// Largest record (key + value + headers, bytes) `send` accepts; default
    /// 8 MiB, the agent's `--max-record-bytes` default. A larger record fails
    /// at once with `RecordTooLarge`, alone; set it to the agent's limit if
    /// that is lower, or the agent refuses the whole batch the record is in.
    pub max_record_bytes: usize,
    /// Connection pool settings.
    pub pool: PoolConfig,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            bootstrap: Vec::new(),
            acks: Acks::Durable,
            batch_max_records: 10_000,
            batch_max_bytes: 1 << 20,
            linger: Duration::from_millis(5),
            buffer_memory: 32 << 20,
            max_block: Duration::from_secs(10),
            retries: 3,
            backoff: BackoffConfig::default(),
            delivery_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(30),
            idempotence: true,
            max_in_flight_per_partition: 5,
            compression: Codec::None,
            max_record_bytes: 8 << 20,
            pool: PoolConfig::default(),
        }
    }
}

/// Counters of a producer (see [`Producer::metrics`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProducerMetrics {
    /// Records passed to `send`.
    pub records_sent: u64,
    /// Records acknowledged.
    pub records_acked: u64,
    /// Records that failed.
    pub records_failed: u64,
    /// Records withdrawn: their future was dropped while they waited for
    /// buffer room (never sent).
    pub records_withdrawn: u64,
    /// Batches dispatched.
    pub batches: u64,
    /// Produce requests made (retries included).
    pub requests: u64,
    /// Retried requests.
    pub retries: u64,
    /// Bytes of records buffered or in flight now.
    pub buffer_bytes_in_use: u64,
    /// Total time `send` callers waited for buffer room, ns.
    pub blocked_ns: u64,
    /// Sum over batches of the time from the first record to dispatch, ns.
    pub queue_ns_total: u64,
    /// Sum over requests of request latency, ns.
    pub request_ns_total: u64,
    /// Connections opened.
    pub connections_opened: u64,
}

#[derive(Default)]
struct Counters {
    records_sent: AtomicU64,
    records_acked: AtomicU64,
    records_failed: AtomicU64,
    records_withdrawn: AtomicU64,
    batches: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
    blocked_ns: AtomicU64,
    queue_ns_total: AtomicU64,
    request_ns_total: AtomicU64,
}

/// How an outcome reaches the caller: per record, or once for the
/// `count` records of a `send_batch` call.
enum Outcome {
    Future(oneshot::Sender<Result<RecordMetadata>>),
    Callback(Box<dyn FnOnce(Result<RecordMetadata>) + Send>),
    Batch {
        tx: oneshot::Sender<Result<BatchMetadata>>,
        count: u32,
    },
}

impl Outcome {
    /// `r` names the first record this outcome covers.
    fn complete(self, r: Result<RecordMetadata>) {
        match self {
            Outcome::Future(tx) => {
                let _ = tx.send(r);
            }
            Outcome::Callback(f) => f(r),
            Outcome::Batch { tx, count } => {
                let _ = tx.send(r.map(|m| BatchMetadata {
                    topic: m.topic,
                    partition: m.partition,
                    base_offset: m.offset,
                    record_count: count,
                    timestamp: m.timestamp,
                }));
            }
        }
    }

    /// How many records this outcome covers.
    fn records(&self) -> u32 {
        match self {
            Outcome::Batch { count, .. } => *count,
            _ => 1,
        }
    }
}

/// A record's notification and its timestamp.
type Completion = (Outcome, i64);

struct PartitionState {
    acc: PartitionAccumulator<Completion>,
    /// Batches sent and not yet answered, in dispatch order: (producer id,
    /// base sequence); (0, 0) without idempotence.
    in_flight: VecDeque<(i64, i32)>,
    next_seq: i32,
    pid: i64,
    /// A producer id under which a batch of this partition failed for
    /// good: later batches under it can never follow the gap. 0 = none.
    broken_pid: i64,
    /// Batches in flight that failed at least once and are being retried.
    /// Nothing new is sent meanwhile: batches sent after a retried one
    /// could otherwise push it out of the agent's deduplication window
    /// before its retry arrives.
    retrying: usize,
}

impl PartitionState {
    /// Whether the batch (`pid`, `seq`) is the oldest unanswered one of
    /// its producer id here.
    fn is_oldest(&self, pid: i64, seq: i32) -> bool {
        self.oldest(pid).is_none_or(|s| s == seq)
    }

    /// The oldest unanswered sequence under `pid`.
    fn oldest(&self, pid: i64) -> Option<i32> {
        self.in_flight
            .iter()
            .find(|(p, _)| *p == pid)
            .map(|&(_, s)| s)
    }
}

/// What one `send` or `send_batch` call hands the producer.
enum Item {
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
    fn topic(&self) -> &str {
        match self {
            Item::Record(r) => &r.topic,
            Item::Batch { topic, .. } => topic,
        }
    }
}

/// What the producer keeps per topic: its routes (re-read from the
/// metadata cache only when that changes) and its partitions' batches.
struct TopicState {
    partition_count: u32,
    metadata_version: u64,
    /// Partition keyless records go to until their batch closes.
    sticky: Option<u32>,
    partitions: Vec<Option<PartitionState>>,
}

#[derive(Default)]
struct State {
    topics: HashMap<String, TopicState, rustc_hash::FxBuildHasher>,
    intake: VecDeque<intake::Deferred>,
    /// Withdrawn entries still in `intake`.
    withdrawn: usize,
    /// The id of the last record queued in `intake`.
    next_intake_id: u64,
    outstanding: usize,
    flushing: usize,
    shutdown: bool,
}

struct Inner {
    config: ProducerConfig,
    limits: BatchLimits,
    metadata: Metadata,
    pool: ConnectionPool,
    state: Mutex<State>,
    memory: Semaphore,
    wake_sender: Notify,
    wake_intake: Notify,
    idle: Notify,
    /// Woken whenever a batch is answered (see [`wait_for_earlier`]).
    answered: Notify,
    pid: Mutex<(i64, i16)>,
    /// New producer ids being fetched after a failure.
    renewing_pid: AtomicUsize,
    closed: AtomicBool,
    counters: Counters,
    backoff: Mutex<Backoff>,
    /// The in-process agent of the `direct` transport; declared last so the
    /// connections above close before it stops.
    _direct: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

/// Builds a [`Producer`].
pub struct ProducerBuilder {
    config: ProducerConfig,
    rng: Option<Rng>,
    #[cfg(feature = "direct")]
    direct: Option<std::path::PathBuf>,
}

impl ProducerBuilder {
    /// Ack level; default `Durable`.
    pub fn acks(mut self, acks: Acks) -> Self {
        self.config.acks = acks;
        self
    }
    /// Records per batch; default 10,000.
    pub fn batch_max_records(mut self, n: usize) -> Self {
        self.config.batch_max_records = n;
        self
    }
    /// Record bytes per batch; default 1 MiB.
    pub fn batch_max_bytes(mut self, n: usize) -> Self {
        self.config.batch_max_bytes = n;
        self
    }
    /// How long a batch waits for more records; default 5 ms.
    pub fn linger(mut self, d: Duration) -> Self {
        self.config.linger = d;
        self
    }
    /// Bytes buffered or in flight; default 32 MiB.
    pub fn buffer_memory(mut self, n: usize) -> Self {
        self.config.buffer_memory = n;
        self
    }
    /// How long `send` waits for buffer room; default 10 s.
    pub fn max_block(mut self, d: Duration) -> Self {
        self.config.max_block = d;
        self
    }
    /// Retries per batch; default 3.
    pub fn retries(mut self, n: u32) -> Self {
        self.config.retries = n;
        self
    }
    /// Retry delays; default 100 ms base, 5 s max, ±25% jitter.
    pub fn backoff(mut self, b: BackoffConfig) -> Self {
        self.config.backoff = b;
        self
    }
    /// Randomness for backoff jitter (tests inject a fixed sequence).
    pub fn jitter_rng(mut self, rng: Rng) -> Self {
        self.rng = Some(rng);
        self
    }
    /// Bound on a batch from dispatch to outcome; default 120 s.
    pub fn delivery_timeout(mut self, d: Duration) -> Self {
        self.config.delivery_timeout = d;
        self
    }
    /// Deadline of one request; default 30 s.
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.config.request_timeout = d;
        self
    }
    /// Idempotent producer; default on.
    pub fn idempotence(mut self, on: bool) -> Self {
        self.config.idempotence = on;
        self
    }
    /// Batch compression; default none.
    pub fn compression(mut self, c: Codec) -> Self {
        self.config.compression = c;
        self
    }
    /// Largest record (key + value + headers) accepted; default 8 MiB.
    pub fn max_record_bytes(mut self, n: usize) -> Self {
        self.config.max_record_bytes = n;
        self
    }
    /// Connections per agent shard; default 5.
    pub fn max_connections_per_agent(mut self, n: usize) -> Self {
        self.config.pool.max_connections_per_agent = n;
        self
    }
    /// Requests in flight per partition; default 5, at most 16.
    pub fn max_in_flight_per_partition(mut self, n: usize) -> Self {
        self.config.max_in_flight_per_partition = n;
        self
    }
    /// Requests in flight per connection; default 32.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.config.pool.max_in_flight = n;
        self
    }
    /// All pool settings at once.
    pub fn pool(mut self, p: PoolConfig) -> Self {
        self.config.pool = p;
        self
    }
    /// All settings at once (bootstrap included).
    pub fn config(mut self, c: ProducerConfig) -> Self {
        self.config = c;
        self
    }

    /// Connects: fetches metadata from a bootstrap agent and, with
    /// idempotence, a producer id. Must run inside a tokio runtime.
    ///
    /// # Cancellation
    /// Dropping the future leaves nothing behind: the producer's tasks
    /// start only when it returns, and its connections close with it.
    #[cfg_attr(not(feature = "direct"), allow(unused_mut))]
    pub async fn build(mut self) -> Result<Producer> {
        #[cfg(feature = "direct")]
        let direct = match self.direct.take() {
            Some(dir) => {
                let (bootstrap, handle) = crate::direct::open_async(dir).await?;
                self.config.bootstrap = vec![bootstrap];
                Some(handle)
            }
            None => None,
        };
        #[cfg(not(feature = "direct"))]
        let direct = None;
        let c = &self.config;
        if c.bootstrap.is_empty() {
            return Err(Error::Config(
                "bootstrap needs at least one host:port".into(),
            ));
        }
        if c.batch_max_records == 0 || c.batch_max_bytes == 0 {
            return Err(Error::Config(
                "batch_max_records and batch_max_bytes must be positive".into(),
            ));
        }
        if c.buffer_memory < c.batch_max_bytes || c.buffer_memory > u32::MAX as usize {
            return Err(Error::Config(format!(
                "buffer_memory ({}) must be at least batch_max_bytes ({}) and below 4 GiB",
                c.buffer_memory, c.batch_max_bytes
            )));
        }
        if !(1..=MAX_IN_FLIGHT_PER_PARTITION).contains(&c.max_in_flight_per_partition) {
            return Err(Error::Config(format!(
                "max_in_flight_per_partition must be 1 to {MAX_IN_FLIGHT_PER_PARTITION}, not {}",
                c.max_in_flight_per_partition
            )));
        }
        if c.pool.max_connections_per_agent == 0 || c.pool.max_in_flight == 0 {
            return Err(Error::Config(
                "max_connections_per_agent and max_in_flight must be positive".into(),
            ));
        }
        let metadata = Metadata::new(c.bootstrap.clone());
        let pool = ConnectionPool::new(c.pool.clone());
        metadata.refresh(&pool, &[]).await?;
        let inner = Arc::new(Inner {
            limits: BatchLimits {
                max_records: c.batch_max_records,
                max_bytes: c.batch_max_bytes,
                linger: c.linger,
                codec: c.compression,
            },
            metadata,
            pool,
            state: Mutex::new(State::default()),
            memory: Semaphore::new(c.buffer_memory),
            wake_sender: Notify::new(),
            wake_intake: Notify::new(),
            idle: Notify::new(),
            answered: Notify::new(),
            pid: Mutex::new((0, 0)),
            renewing_pid: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            counters: Counters::default(),
            backoff: Mutex::new(Backoff::new(c.backoff, self.rng.unwrap_or_else(thread_rng))),
            config: self.config,
            _direct: direct,
        });
        if inner.config.idempotence {
            inner.new_producer_id().await?;
        }
        tokio::spawn(sender_loop(inner.clone()));
        tokio::spawn(intake::intake_loop(inner.clone()));
        Ok(Producer {
            _guard: Arc::new(DropGuard {
                inner: inner.clone(),
            }),
            inner,
        })
    }
}

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
    pub fn builder<I, S>(bootstrap: I) -> ProducerBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ProducerBuilder {
            config: ProducerConfig {
                bootstrap: bootstrap.into_iter().map(Into::into).collect(),
                ..Default::default()
            },
            rng: None,
            #[cfg(feature = "direct")]
            direct: None,
        }
    }

    /// A builder for the `direct` transport: an agent inside this process
    /// on `data_dir` (started if no client of this process runs one there),
    /// with the same semantics as a remote agent.
    #[cfg(feature = "direct")]
    pub fn direct(data_dir: impl Into<std::path::PathBuf>) -> ProducerBuilder {
        let mut b = Producer::builder(Vec::<String>::new());
        b.direct = Some(data_dir.into());
        b
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
        let c = &self.inner.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ProducerMetrics {
            records_sent: l(&c.records_sent),
            records_acked: l(&c.records_acked),
            records_failed: l(&c.records_failed),
            records_withdrawn: l(&c.records_withdrawn),
            batches: l(&c.batches),
            requests: l(&c.requests),
            retries: l(&c.retries),
            buffer_bytes_in_use: (self.inner.config.buffer_memory
                - self.inner.memory.available_permits()) as u64,
            blocked_ns: l(&c.blocked_ns),
            queue_ns_total: l(&c.queue_ns_total),
            request_ns_total: l(&c.request_ns_total),
            connections_opened: self.inner.pool.opened.load(Ordering::Relaxed),
        }
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

impl Inner {
    /// Lets the producer's tasks end once everything buffered is answered
    /// (batches close at once from here on). Idempotent.
    fn shut_down(&self) {
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

    /// Appends a record to its partition's batch (or queues a `send_batch`
    /// batch behind it) if metadata is known and (unless `reserved`) buffer
    /// room is free right now; otherwise hands the item back (`Err`).
    ///
    /// A record that fails here (an unknown partition) is counted and
    /// moved to `failed`; the caller completes it once it let go of the
    /// state lock ([`intake::complete_failed`]).
    fn try_append(
        &self,
        st: &mut State,
        item: Item,
        tx: Outcome,
        size: usize,
        reserved: bool,
        failed: &mut intake::Failed,
    ) -> Append {
        let version = self.metadata.version();
        let topic = item.topic();
        let stale = st
            .topics
            .get(topic)
            .is_none_or(|t| t.metadata_version != version);
        if stale {
            let Some(routes) = self.metadata.topic(topic) else {
                return Append::NotNow(item, tx);
            };
            let t = st
                .topics
                .entry(topic.to_owned())
                .or_insert_with(|| TopicState {
                    partition_count: 0,
                    metadata_version: 0,
                    sticky: None,
                    partitions: Vec::new(),
                });
            t.partition_count = routes.partitions.len() as u32;
            t.metadata_version = version;
        }
        let Some(t) = st.topics.get_mut(topic) else {
            return Append::NotNow(item, tx); // unreachable: inserted just above
        };
        let n = t.partition_count;
        let chosen = match &item {
            Item::Record(r) => (r.partition, r.key.as_ref()),
            Item::Batch { partition, .. } => (Some(*partition), None),
        };
        let partition = match chosen {
            (Some(p), _) if p >= n => {
                let err = Error::UnknownPartition {
                    topic: topic.to_owned(),
                    partition: p,
                    partitions: n,
                };
                if reserved {
                    self.memory.add_permits(size);
                }
                self.fail_one(st, tx, err, failed);
                return Append::Done;
            }
            (Some(p), _) => p,
            (None, Some(k)) => partition_for_key(k, n),
            (None, None) => match t.sticky {
                Some(p) if p < n => p,
                _ => {
                    let p = rand::random::<u32>() % n.max(1);
                    t.sticky = Some(p);
                    p
                }
            },
        };
        if !reserved && !self.take_room(size) {
            return Append::NotNow(item, tx);
        }
        let limits = self.limits;
        if t.partitions.len() <= partition as usize {
            t.partitions.resize_with(partition as usize + 1, || None);
        }
        let ps = t.partitions[partition as usize].get_or_insert_with(|| PartitionState {
            acc: PartitionAccumulator::new(limits),
            in_flight: VecDeque::new(),
            next_seq: 0,
            pid: 0,
            broken_pid: 0,
            retrying: 0,
        });
        let record = match item {
            Item::Record(r) => r,
            Item::Batch {
                builder, timestamp, ..
            } => {
                ps.acc.push_closed(ClosedBatch {
                    builder,
                    completions: vec![(tx, timestamp)],
                    reserved: size,
                    created: Instant::now(),
                });
                self.wake_sender.notify_one();
                return Append::Done;
            }
        };
        let was_idle = ps.acc.deadline().is_none();
        let ts = record.timestamp.unwrap_or_else(now_ms);
        let closed = ps.acc.append(
            record.key.as_deref(),
            &record.value,
            ts,
            &record.headers,
            size,
            (tx, ts),
            Instant::now,
        );
        if closed && record.partition.is_none() && record.key.is_none() && n > 1 {
            // Keyless records move to another partition once their batch closes.
            t.sticky = Some((partition + 1 + rand::random::<u32>() % (n - 1)) % n);
        }
        if closed || was_idle {
            self.wake_sender.notify_one();
        }
        Append::Done
    }

    async fn new_producer_id(&self) -> Result<()> {
        let mut last = Error::Config("no agent address known".into());
        let mut addrs = self.config.bootstrap.clone();
        if let Some(a) = self.metadata.any_address(&self.pool) {
            addrs.push(a);
        }
        for addr in addrs {
            let lease = match self.pool.get(&addr).await {
                Ok(l) => l,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            let mut admin = AdminServiceClient::new(lease.channel());
            let call = admin.init_producer_id(pb::InitProducerIdRequest::default());
            match bounded(self.pool.config().call_timeout, "producer id", call).await {
                Ok(r) => {
                    let r = r.into_inner();
                    let epoch = i16::try_from(r.producer_epoch).unwrap_or(0);
                    *self.pid.lock() = (r.producer_id, epoch);
                    return Ok(());
                }
                Err(s) => last = s.into(),
            }
        }
        Err(last)
    }
}

/// What [`Inner::try_append`] did with an item.
enum Append {
    /// Appended, or failed (set aside for completion).
    Done,
    /// Not now (no metadata or no room): the item, handed back.
    NotNow(Item, Outcome),
}

/// A batch ready to go.
struct Dispatch {
    topic: String,
    partition: u32,
    /// (producer id, base sequence); (0, 0) without idempotence.
    seq: (i64, i32),
    batch: ClosedBatch<Completion>,
}

/// Dispatches closed (or lingered) batches, up to the in-flight limit per
/// partition.
async fn sender_loop(inner: Arc<Inner>) {
    let max_in_flight = if inner.config.idempotence {
        inner.config.max_in_flight_per_partition
    } else {
        1
    };
    loop {
        let notified = inner.wake_sender.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (dispatch, deadline, done) = {
            let mut guard = inner.state.lock();
            let st = &mut *guard;
            let now = Instant::now();
            let flushing = st.flushing > 0 || st.shutdown;
            let mut out = Vec::new();
            let mut deadline: Option<Instant> = None;
            let pid = *inner.pid.lock();
            let idempotent = inner.config.idempotence;
            let renewing = inner.renewing_pid.load(Ordering::Acquire) > 0;
            let all = st
                .topics
                .iter_mut()
                .flat_map(|(t, v)| {
                    v.partitions
                        .iter_mut()
                        .enumerate()
                        .map(move |(p, s)| (t, p as u32, s))
                })
                .filter_map(|(t, p, s)| s.as_mut().map(|s| (t, p, s)));
            for (topic, partition, ps) in all {
                let can_send = |ps: &PartitionState| {
                    ps.in_flight.len() < max_in_flight
                        && !must_wait(ps, pid.0, idempotent, renewing)
                };
                if flushing {
                    ps.acc.close();
                } else if can_send(ps) {
                    // While every request slot is taken the open batch keeps
                    // filling (up to its size limits) instead of closing at
                    // linger: the next request then carries everything that
                    // arrived meanwhile, which keeps slow acks (ack `object`,
                    // a slow disk) from turning into many tiny requests.
                    ps.acc.expire(now);
                }
                // The leader's connections are all busy: an answer frees one.
                let mut no_capacity = false;
                while can_send(ps) {
                    let Some(mut batch) = ps.acc.pop_closed() else {
                        break;
                    };
                    let leader = inner.metadata.cached_leader(topic, partition);
                    if !leader.as_deref().is_none_or(|l| inner.pool.has_capacity(l)) {
                        ps.acc.push_front(batch);
                        no_capacity = true;
                        break;
                    }
                    let mut seq = (0, 0);
                    if idempotent {
                        if ps.pid != pid.0 {
                            ps.pid = pid.0;
                            ps.next_seq = 0;
                        }
                        seq = (pid.0, ps.next_seq);
                        batch.builder.set_producer(ProducerInfo {
                            producer_id: pid.0,
                            producer_epoch: pid.1,
                            base_sequence: ps.next_seq,
                        });
                        ps.next_seq = ps.next_seq.wrapping_add(batch.builder.len() as i32);
                    }
                    ps.in_flight.push_back(seq);
                    out.push(Dispatch {
                        topic: topic.clone(),
                        partition,
                        seq,
                        batch,
                    });
                }
                // A partition that may not send (all its slots taken, or
                // holding its batches: see `must_wait`) is woken by the
                // answer that frees it, not by its linger: an expired
                // linger would otherwise spin this loop.
                if let Some(d) = ps.acc.deadline().filter(|_| can_send(ps) && !no_capacity) {
                    deadline = Some(deadline.map_or(d, |x: Instant| x.min(d)));
                }
            }
            let done = st.shutdown && st.outstanding == 0;
            (out, deadline, done)
        };
        if done {
            return;
        }
        for d in dispatch {
            tokio::spawn(send_batch(inner.clone(), d));
        }
        match deadline {
            Some(at) => {
                tokio::select! {
                    _ = &mut notified => {}
                    _ = tokio::time::sleep_until(at) => {}
                }
            }
            None => notified.await,
        }
    }
}

/// Whether a partition must hold its next batch although a request slot is
/// free: a batch in flight is being retried, batches of an old producer id
/// are still unanswered (a new id's first batch could be appended before
/// them), or a batch failed for good under the current id while a new id is
/// being fetched.
fn must_wait(ps: &PartitionState, pid: i64, idempotent: bool, renewing: bool) -> bool {
    if !idempotent {
        return false;
    }
    ps.retrying > 0
        || (ps.pid != pid && !ps.in_flight.is_empty())
        || (renewing && ps.broken_pid == pid)
}

/// Sends one batch with retries, then resolves its records' futures.
async fn send_batch(inner: Arc<Inner>, d: Dispatch) {
    let Dispatch {
        topic,
        partition,
        seq,
        batch,
    } = d;
    let ClosedBatch {
        builder,
        completions,
        reserved,
        created,
    } = batch;
    let count = builder.len();
    let started = Instant::now();
    inner.counters.queue_ns_total.fetch_add(
        started.duration_since(created).as_nanos() as u64,
        Ordering::Relaxed,
    );
    inner.counters.batches.fetch_add(1, Ordering::Relaxed);
    let req = pb::ProduceRequest {
        topic: topic.clone(),
        partition,
        records: Vec::new(),
        ack: match inner.config.acks {
            Acks::Durable => pb::AckLevel::AckDurable,
            Acks::Object => pb::AckLevel::AckObject,
        } as i32,
        producer_id: 0,
        producer_epoch: 0,
        base_sequence: 0,
        batch: Bytes::from(builder.finish()),
        oldest_sequence: None,
    };
    let mut retried = false;
    let result = deliver(&inner, &topic, partition, seq, req, started, &mut retried).await;
    let failed = result.is_err();
    match result {
        Ok(resp) => {
            inner
                .counters
                .records_acked
                .fetch_add(u64::from(count), Ordering::Relaxed);
            let mut offset = resp.base_offset;
            let shared_topic: Arc<str> = Arc::from(topic.as_str());
            for (tx, ts) in completions {
                let n = tx.records();
                tx.complete(Ok(RecordMetadata {
                    topic: shared_topic.clone(),
                    partition,
                    offset,
                    timestamp: ts,
                }));
                offset += u64::from(n);
            }
        }
        Err(e) => {
            tracing::warn!(%topic, partition, records = count, error = %e, "batch failed");
            inner
                .counters
                .records_failed
                .fetch_add(u64::from(count), Ordering::Relaxed);
            for (tx, _) in completions {
                tx.complete(Err(e.clone()));
            }
        }
    }
    inner.memory.add_permits(reserved);
    {
        let mut st = inner.state.lock();
        if let Some(ps) = partition_state(&mut st, &topic, partition) {
            if let Some(i) = ps.in_flight.iter().position(|&x| x == seq) {
                ps.in_flight.remove(i);
            }
            if retried {
                ps.retrying = ps.retrying.saturating_sub(1);
            }
            if failed {
                ps.broken_pid = seq.0;
            }
        }
        st.outstanding -= count as usize;
        if st.outstanding == 0 {
            inner.idle.notify_waiters();
        }
    }
    inner.answered.notify_waiters();
    if failed && inner.config.idempotence {
        // The failed batch may or may not be stored; never reuse its
        // sequence numbers: take a new producer id for what follows. The
        // partition holds its next batch meanwhile.
        inner.renewing_pid.fetch_add(1, Ordering::AcqRel);
        if let Err(e) = inner.new_producer_id().await {
            tracing::warn!(error = %e, "could not obtain a new producer id");
        }
        inner.renewing_pid.fetch_sub(1, Ordering::AcqRel);
    }
    inner.wake_sender.notify_one();
}

fn partition_state<'a>(
    st: &'a mut State,
    topic: &str,
    partition: u32,
) -> Option<&'a mut PartitionState> {
    st.topics
        .get_mut(topic)
        .and_then(|v| v.partitions.get_mut(partition as usize))
        .and_then(Option::as_mut)
}

/// What [`wait_for_earlier`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Earlier {
    /// The batch was already its partition's oldest unanswered one.
    NoneUnanswered,
    /// Earlier batches were unanswered; now all are answered.
    Answered,
    /// An earlier batch failed for good: this one can never follow it.
    OneFailed,
}

/// Before a retry: waits until every earlier batch of the partition under
/// the same producer id is answered.
async fn wait_for_earlier(inner: &Inner, topic: &str, partition: u32, seq: (i64, i32)) -> Earlier {
    let mut waited = false;
    loop {
        let answered = inner.answered.notified();
        tokio::pin!(answered);
        answered.as_mut().enable();
        {
            let mut st = inner.state.lock();
            let Some(ps) = partition_state(&mut st, topic, partition) else {
                return Earlier::OneFailed;
            };
            if ps.is_oldest(seq.0, seq.1) {
                return if ps.broken_pid == seq.0 {
                    Earlier::OneFailed
                } else if waited {
                    Earlier::Answered
                } else {
                    Earlier::NoneUnanswered
                };
            }
        }
        answered.await;
        waited = true;
    }
}

async fn deliver(
    inner: &Inner,
    topic: &str,
    partition: u32,
    seq: (i64, i32),
    mut req: pb::ProduceRequest,
    started: Instant,
    retried: &mut bool,
) -> Result<pb::ProduceResponse> {
    let deadline = started + inner.config.delivery_timeout;
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        if seq.0 != 0 {
            let mut st = inner.state.lock();
            req.oldest_sequence =
                partition_state(&mut st, topic, partition).and_then(|ps| ps.oldest(seq.0));
        }
        // The route this attempt takes ("" while the partition has none).
        let mut tried = String::new();
        let err = match attempt_once(inner, topic, partition, &req, deadline, &mut tried).await {
            Ok(resp) => return Ok(resp),
            Err(e) => e,
        };
        let mut action = classify(&err);
        // A retry goes only once every earlier batch of the partition is
        // answered: during a failure they recover one after another, in
        // order, as with one request in flight; a batch after one that
        // failed for good fails too.
        let mut waited = false;
        if action != RetryAction::Fail && !*retried {
            *retried = true;
            let mut st = inner.state.lock();
            if let Some(ps) = partition_state(&mut st, topic, partition) {
                ps.retrying += 1;
            }
        }
        if action != RetryAction::Fail && seq.0 != 0 {
            match tokio::time::timeout_at(deadline, wait_for_earlier(inner, topic, partition, seq))
                .await
            {
                Ok(Earlier::NoneUnanswered) => {}
                Ok(Earlier::Answered) => waited = true,
                Ok(Earlier::OneFailed) | Err(_) => action = RetryAction::Fail,
            }
        }
        let now = Instant::now();
        if action == RetryAction::Fail || attempt > inner.config.retries || now >= deadline {
            return Err(if attempt > 1 {
                Error::DeliveryFailed {
                    attempts: attempt,
                    last: Box::new(err),
                }
            } else {
                err
            });
        }
        inner.counters.retries.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%topic, partition, attempt, error = %err, ?action, "retrying batch");
        if action == RetryAction::AfterEarlierBatches || waited {
            continue;
        }
        // Back off, but retry as soon as the metadata names another leader
        // for the partition: after a failover the new leader is known the
        // moment its lease is taken, while the backoff may have grown to
        // seconds. After a timeout the same leader is used again unless the
        // metadata names a new one.
        let mut delay = inner.backoff.lock().delay(attempt);
        if let Error::Status {
            retry_after: Some(pushback),
            ..
        } = &err
        {
            delay = delay.max(*pushback);
        }
        wait_for_route(
            inner,
            topic,
            partition,
            &tried,
            (Instant::now() + delay).min(deadline),
        )
        .await;
    }
}

/// How often a retry backing off asks for the partition's route again;
/// 100 ms. Only the oldest unanswered batch of a partition retries at a
/// time, so this is at most one metadata request per partition in trouble.
const ROUTE_POLL: Duration = Duration::from_millis(100);

/// Waits until `until`, or less: returns once the metadata names a leader
/// for the partition other than `failed` (the route that just failed, ""
/// if it had none) whose circuit is not open. Refreshes the metadata first
/// and then every [`ROUTE_POLL`].
async fn wait_for_route(inner: &Inner, topic: &str, partition: u32, failed: &str, until: Instant) {
    loop {
        let _ = inner
            .metadata
            .refresh(&inner.pool, &[topic.to_owned()])
            .await;
        let moved = inner
            .metadata
            .cached_leader(topic, partition)
            .is_some_and(|l| {
                !l.is_empty()
                    && l != failed
                    && inner.pool.breakers.state(&l, Instant::now()) != BreakerState::Open
            });
        let now = Instant::now();
        if moved || now >= until {
            return;
        }
        tokio::time::sleep_until((now + ROUTE_POLL).min(until)).await;
    }
}

async fn attempt_once(
    inner: &Inner,
    topic: &str,
    partition: u32,
    req: &pb::ProduceRequest,
    deadline: Instant,
    tried: &mut String,
) -> Result<pb::ProduceResponse> {
    let leader = inner.metadata.leader(&inner.pool, topic, partition).await?;
    tried.clone_from(&leader);
    let lease = inner.pool.get(&leader).await?;
    let mut client = ProducerServiceClient::new(lease.channel())
        .max_encoding_message_size(64 << 20)
        .max_decoding_message_size(64 << 20);
    let mut request = tonic::Request::new(req.clone());
    let left = deadline.saturating_duration_since(Instant::now());
    let timeout = inner
        .config
        .request_timeout
        .min(left)
        .max(Duration::from_millis(1));
    // `grpc-timeout` tells the agent; the client enforces it too, since an
    // agent that is paused or cut off answers nothing at all.
    request.set_timeout(timeout);
    let t0 = Instant::now();
    inner.counters.requests.fetch_add(1, Ordering::Relaxed);
    let result = bounded(
        timeout,
        &format!("produce to {leader}"),
        client.produce(request),
    )
    .await;
    inner
        .counters
        .request_ns_total
        .fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
    match result {
        Ok(r) => {
            inner.pool.breakers.success(&leader);
            Ok(r.into_inner())
        }
        Err(s) => {
            let e = Error::from(s);
            match classify(&e) {
                RetryAction::FreshRoute => inner.pool.invalidate(&leader, lease.id()),
                // A hung agent: count it against its circuit, so a dead
                // agent costs a few timeouts, not one per request.
                RetryAction::SameRoute if e.code() == Some(tonic::Code::DeadlineExceeded) => {
                    inner.pool.breakers.failure(&leader, Instant::now())
                }
                // The agent answered: it is alive (this also ends a
                // half-open probe, which would otherwise stay open).
                _ => inner.pool.breakers.success(&leader),
            }
            Err(e)
        }
    }
}
