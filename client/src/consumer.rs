//! The Consumer: reads assigned partitions from their owning agent shards
//! through the Fetch RPC, tracking a position per partition and following
//! leadership moves. Owns positions; does not commit offsets anywhere.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use streamhouse_proto as pb;
use streamhouse_proto::fetch_service_client::FetchServiceClient;

use crate::error::{Error, Result};
use crate::metadata::Metadata;
use crate::pool::{bounded, ConnectionPool, PoolConfig};
use crate::retry::{classify, RetryAction};

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
    pub timestamp: u64,
    /// Headers, in order.
    pub headers: Vec<(String, Bytes)>,
}

/// Reads records by offset.
///
/// ```no_run
/// # async fn example() -> streamhouse_client::Result<()> {
/// use std::time::Duration;
/// use streamhouse_client::Consumer;
/// let mut consumer = Consumer::connect(["127.0.0.1:9092"]).await?;
/// consumer.assign([("orders", 0)]).await?;
/// consumer.seek("orders", 0, 0);
/// for r in consumer.poll(Duration::from_millis(500)).await? {
///     println!("{} {:?}", r.offset, r.value);
/// }
/// # Ok(()) }
/// ```
pub struct Consumer {
    metadata: Metadata,
    pool: ConnectionPool,
    positions: BTreeMap<(String, u32), u64>,
    /// An error one partition answered during a poll that also returned
    /// records of others; the next poll returns it (see [`Consumer::poll`]).
    pending_error: Option<((String, u32), Error)>,
    /// Bytes asked per partition per fetch; default 1 MiB.
    pub max_bytes_per_partition: u32,
    _direct: Option<std::sync::Arc<dyn std::any::Any + Send + Sync>>,
}

impl Consumer {
    /// Connects to any agent shard(s) in `bootstrap`.
    ///
    /// # Cancellation
    /// Dropping the future leaves nothing behind.
    pub async fn connect<I, S>(bootstrap: I) -> Result<Consumer>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let metadata = Metadata::new(bootstrap.into_iter().map(Into::into).collect());
        let pool = ConnectionPool::new(PoolConfig::default());
        metadata.refresh(&pool, &[]).await?;
        Ok(Consumer {
            metadata,
            pool,
            positions: BTreeMap::new(),
            pending_error: None,
            max_bytes_per_partition: 1 << 20,
            _direct: None,
        })
    }

    /// Reads through the in-process agent on `data_dir` (`direct` transport).
    ///
    /// # Cancellation
    /// As [`crate::direct::open_async`].
    #[cfg(feature = "direct")]
    pub async fn connect_direct(data_dir: impl Into<std::path::PathBuf>) -> Result<Consumer> {
        let (bootstrap, handle) = crate::direct::open_async(data_dir.into()).await?;
        let mut c = Consumer::connect([bootstrap]).await?;
        c._direct = Some(handle);
        Ok(c)
    }

    /// Reads these partitions (replacing any earlier assignment). New
    /// partitions start at offset 0; kept ones keep their position.
    ///
    /// # Cancellation
    /// Dropping the future leaves the earlier assignment as it was.
    pub async fn assign<I, S>(&mut self, partitions: I) -> Result<()>
    where
        I: IntoIterator<Item = (S, u32)>,
        S: Into<String>,
    {
        let mut next = BTreeMap::new();
        for (t, p) in partitions {
            let t: String = t.into();
            let routes = self.metadata.get_or_fetch(&self.pool, &t).await?;
            if p as usize >= routes.partitions.len() {
                return Err(Error::UnknownPartition {
                    topic: t,
                    partition: p,
                    partitions: routes.partitions.len() as u32,
                });
            }
            let pos = self.positions.get(&(t.clone(), p)).copied().unwrap_or(0);
            next.insert((t, p), pos);
        }
        self.positions = next;
        if let Some((key, _)) = &self.pending_error {
            if !self.positions.contains_key(key) {
                self.pending_error = None;
            }
        }
        Ok(())
    }

    /// Sets the next offset to read from a partition (assigning it if
    /// needed); forgets an error of that partition not yet returned.
    pub fn seek(&mut self, topic: &str, partition: u32, offset: u64) {
        let key = (topic.to_owned(), partition);
        if self.pending_error.as_ref().is_some_and(|(k, _)| *k == key) {
            self.pending_error = None;
        }
        self.positions.insert(key, offset);
    }

    /// The next offset to be read from a partition, if assigned.
    pub fn position(&self, topic: &str, partition: u32) -> Option<u64> {
        self.positions.get(&(topic.to_owned(), partition)).copied()
    }

    /// Fetches from every assigned partition at once, waiting up to
    /// `max_wait` for data, and advances positions past what it returns.
    ///
    /// A partition whose fetch fails for good (see [`crate::retry`]: e.g.
    /// `OUT_OF_RANGE`, `DATA_LOSS`, an unknown topic) keeps its position.
    /// Its error is returned at once when no other partition returned
    /// records; otherwise the records are returned and the error is kept
    /// for the next `poll`, which returns it before fetching again (a
    /// [`seek`](Self::seek) of that partition forgets it). Nothing fetched
    /// is ever dropped.
    ///
    /// # Cancellation
    /// Dropping the future before it completes changes no position: what
    /// its fetches returned meanwhile is read again by the next poll.
    pub async fn poll(&mut self, max_wait: Duration) -> Result<Vec<ConsumerRecord>> {
        if let Some((_, e)) = self.pending_error.take() {
            return Err(e);
        }
        let wait_ms = max_wait.as_millis().min(u128::from(u32::MAX)) as u32;
        let mut futs = Vec::new();
        for ((t, p), off) in &self.positions {
            let key = (t.clone(), *p);
            let fetch = self.fetch_one(t.clone(), *p, *off, wait_ms);
            futs.push(async move { (key, fetch.await) });
        }
        let results = futures::future::join_all(futs).await;
        let mut out = Vec::new();
        let mut first_error = None;
        for (key, r) in results {
            match r {
                Ok(recs) => {
                    if let Some(last) = recs.last() {
                        self.positions.insert(key, last.offset + 1);
                    }
                    out.extend(recs);
                }
                Err(e) => {
                    first_error.get_or_insert((key, e));
                }
            }
        }
        match first_error {
            Some((_, e)) if out.is_empty() => Err(e),
            pending => {
                self.pending_error = pending;
                Ok(out)
            }
        }
    }

    /// One partition's fetch. A failure the retry table calls retriable
    /// ([`crate::retry::classify`]: the leader cannot be reached, moved, lost
    /// its lease, or asked for a pause) is retried with backoff, after a
    /// fresh metadata lookup where the table says so, until `wait_ms` (at
    /// least 200 ms) is over; then the partition simply has no records this
    /// time, as during a failover. Other errors are returned.
    async fn fetch_one(
        &self,
        topic: String,
        partition: u32,
        offset: u64,
        wait_ms: u32,
    ) -> Result<Vec<ConsumerRecord>> {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(u64::from(wait_ms).max(200));
        let mut tries: u32 = 0;
        loop {
            tries += 1;
            let err = match self
                .fetch_from_leader(&topic, partition, offset, wait_ms)
                .await
            {
                Ok(records) => return Ok(records),
                Err(e) => e,
            };
            let action = classify(&err);
            if action == RetryAction::Fail {
                return Err(err);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                tracing::debug!(%topic, partition, error = %err, "fetch: no answer yet");
                return Ok(Vec::new());
            }
            if matches!(
                action,
                RetryAction::FreshRoute | RetryAction::RefreshMetadata
            ) {
                let _ = self
                    .metadata
                    .refresh(&self.pool, std::slice::from_ref(&topic))
                    .await;
            }
            let mut backoff = Duration::from_millis(50 * u64::from(tries.min(10)));
            if let Error::Status {
                retry_after: Some(pause),
                ..
            } = &err
            {
                backoff = backoff.max(*pause);
            }
            tokio::time::sleep_until((now + backoff).min(deadline)).await;
        }
    }

    async fn fetch_from_leader(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        wait_ms: u32,
    ) -> Result<Vec<ConsumerRecord>> {
        let leader = self.metadata.leader(&self.pool, topic, partition).await?;
        let lease = self.pool.get(&leader).await?;
        let mut client =
            FetchServiceClient::new(lease.channel()).max_decoding_message_size(256 << 20);
        // The agent answers within `wait_ms`; one that is paused or cut off
        // answers nothing, so the client bounds the call itself.
        let limit = Duration::from_millis(u64::from(wait_ms)) + self.pool.config().call_timeout;
        let call = client.fetch(pb::FetchRequest {
            topic: topic.to_owned(),
            partition,
            offset,
            max_bytes: self.max_bytes_per_partition,
            max_wait_ms: wait_ms,
        });
        let res = bounded(limit, &format!("fetch from {leader}"), call).await;
        match res {
            Ok(r) => Ok(r
                .into_inner()
                .records
                .into_iter()
                .map(|r| ConsumerRecord {
                    topic: topic.to_owned(),
                    partition,
                    offset: r.offset,
                    key: r.key,
                    value: r.value,
                    timestamp: r.timestamp,
                    headers: r.headers.into_iter().map(|h| (h.key, h.value)).collect(),
                })
                .collect()),
            Err(s) => {
                let e = Error::from(s);
                if classify(&e) == RetryAction::FreshRoute {
                    self.pool.invalidate(&leader, lease.id());
                }
                Err(e)
            }
        }
    }
}
