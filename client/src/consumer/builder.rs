//! The consumer's builder: its settings and defaults, and connecting.
//! Owns nothing after `build`.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::epochs::Epochs;
use super::{AutoOffsetReset, Consumer, ReadLevel};
use crate::error::{Error, Result};
use crate::net::metadata::Metadata;
use crate::net::pool::{ConnectionPool, PoolConfig};

/// Builds a [`Consumer`].
#[derive(Debug, Clone)]
pub struct ConsumerBuilder {
    pub(crate) bootstrap: Vec<String>,
    pub(super) max_bytes_per_partition: u32,
    pub(super) stream_wait: Duration,
    pub(crate) pool: PoolConfig,
    pub(super) out_of_range: AutoOffsetReset,
    pub(super) read_level: ReadLevel,
    pub(super) held: Option<std::sync::Arc<dyn std::any::Any + Send + Sync>>,
}

impl ConsumerBuilder {
    /// Keeps `handle` alive as long as the consumer, dropped after its
    /// connections close: an in-process agent it reads from (the
    /// `streamhouse-direct` crate), or anything else it depends on.
    pub fn hold(mut self, handle: std::sync::Arc<dyn std::any::Any + Send + Sync>) -> Self {
        self.held = Some(handle);
        self
    }

    /// Bytes asked per partition per fetch; default 1 MiB (a fetch returns
    /// at least one whole batch however small this is).
    pub fn max_bytes_per_partition(mut self, n: u32) -> Self {
        self.max_bytes_per_partition = n;
        self
    }
    /// How long one fetch of [`Consumer::next_record`] and
    /// [`Consumer::stream`] waits for data; default 500 ms.
    pub fn stream_wait(mut self, d: Duration) -> Self {
        self.stream_wait = d;
        self
    }
    /// Connection pool settings (timeouts, connections per shard).
    pub fn pool(mut self, p: PoolConfig) -> Self {
        self.pool = p;
        self
    }
    /// What a partition whose position is out of range (below the log
    /// start, or past the high watermark: e.g. an offset stored before
    /// the log lost its unshipped tail) does: start again at the first
    /// readable offset, at the end, or fail the poll with `OUT_OF_RANGE`.
    /// Default [`AutoOffsetReset::Error`] (a group member's default is
    /// `Latest`, as its builder says). Each reset is logged.
    pub fn auto_offset_reset(mut self, r: AutoOffsetReset) -> Self {
        self.out_of_range = r;
        self
    }
    /// Which records to read: all durable ones (default) or only those
    /// committed to object storage ([`ReadLevel`]).
    pub fn read_level(mut self, l: ReadLevel) -> Self {
        self.read_level = l;
        self
    }

    /// Connects: fetches metadata from a bootstrap agent.
    ///
    /// # Errors
    /// [`Error::Config`] for an empty bootstrap; [`Error::Transport`] when no
    /// address of it answers, or one is not `host:port` (the message says
    /// what to change).
    ///
    /// # Cancellation
    /// Dropping the future leaves nothing behind.
    pub async fn build(self) -> Result<Consumer> {
        if self.bootstrap.is_empty() {
            return Err(Error::Config(
                "bootstrap needs at least one host:port".into(),
            ));
        }
        let metadata = Metadata::new(self.bootstrap);
        let pool = ConnectionPool::new(self.pool);
        metadata.refresh(&pool, &[]).await?;
        Ok(Consumer {
            metadata,
            pool,
            positions: BTreeMap::new(),
            epochs: Epochs::default(),
            watermarks: BTreeMap::new(),
            fetched: VecDeque::new(),
            pending_error: None,
            out_of_range: self.out_of_range,
            read_level: self.read_level,
            max_bytes_per_partition: self.max_bytes_per_partition,
            stream_wait: self.stream_wait,
            _held: self.held,
        })
    }
}
