//! The [`ProducerBuilder`]: settings by name, checking them, connecting
//! (metadata and, with idempotence, a producer id) and starting the
//! producer's tasks.

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use streamhouse_proto::batch::Codec;
use tokio::sync::{Notify, Semaphore};

use super::accumulator::BatchLimits;
use super::config::{Acks, ProducerConfig, MAX_IN_FLIGHT_PER_PARTITION};
use super::intake;
use super::metrics::Counters;
use super::sender::sender_loop;
use super::state::{Inner, State};
use super::{DropGuard, Producer};
use crate::backoff::{thread_rng, BackoffConfig, RetryPolicy, Rng};
use crate::error::{Error, Result};
use crate::net::metadata::Metadata;
use crate::net::pool::{ConnectionPool, PoolConfig};

/// Builds a [`Producer`].
pub struct ProducerBuilder {
    pub(super) config: ProducerConfig,
    pub(super) rng: Option<Rng>,
    pub(super) held: Option<Arc<dyn std::any::Any + Send + Sync>>,
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
    /// Keeps `handle` alive as long as the producer, dropped after its
    /// connections close: an in-process agent it talks to (the
    /// `streamhouse-direct` crate), or anything else it depends on.
    pub fn hold(mut self, handle: Arc<dyn std::any::Any + Send + Sync>) -> Self {
        self.held = Some(handle);
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
    /// # Errors
    /// [`Error::Config`] for an empty bootstrap or a bad setting (named in
    /// the message); [`Error::Transport`] when no address of the bootstrap
    /// answers, or one is not `host:port` (the message says what to
    /// change).
    ///
    /// # Cancellation
    /// Dropping the future leaves nothing behind: the producer's tasks
    /// start only when it returns, and its connections close with it.
    pub async fn build(self) -> Result<Producer> {
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
            retry: RetryPolicy::new(c.backoff, self.rng.unwrap_or_else(thread_rng)),
            config: self.config,
            _held: self.held,
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
