//! Producer settings ([`ProducerConfig`], [`Acks`]) and their defaults.
//! Data only: checking them and starting a producer is `builder`'s.

use std::time::Duration;

use streamhouse_proto::batch::Codec;

use crate::backoff::BackoffConfig;
use crate::net::pool::PoolConfig;

/// Most requests in flight per partition: an agent remembers this many
/// batches per producer, so a retry of the oldest is still recognised.
pub const MAX_IN_FLIGHT_PER_PARTITION: usize = streamhouse_proto::batch::REMEMBERED_BATCHES;

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
