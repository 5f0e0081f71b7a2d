//! The metadata store: topics, producer ids, partition leases (holder,
//! epoch, expiry), the chunk index and agents, kept in SQLite (embedded
//! default) or PostgreSQL. Owns the schema, its versioned migrations and the
//! fencing rules; callers pass the current time in, so lease expiry is
//! deterministic in tests. Must not be called from a shard's executor: it
//! needs tokio; the control thread uses it.
//!
//! Layout: [`MetaStore`] (here) holds one [`MetaBackend`] (`backend`, the
//! operations as a trait) and adds the rules common to both; `sqlite/` and
//! `postgres/` implement the trait (SQLite's blocking calls run on tokio's
//! blocking pool, off the control thread's loop); `sql/` keeps the
//! statements both run, once; `schema` the migrations; `text` the
//! encodings of columns; `groups`, `retention` and `compaction` their row
//! types.
//!
//! Lease rules:
//! - `acquire` succeeds when the lease is free, expired, or already ours;
//!   a different holder gets `epoch + 1`, the same holder keeps its epoch.
//! - `renew` extends the expiry of a lease we hold, never changing the epoch.
//! - `commit_chunk` succeeds only if every partition it covers is still held
//!   by the committing agent at the epoch the chunk carries, and each range
//!   starts exactly at its partition's committed end (a range wholly below
//!   it was committed before and is skipped): a partition's committed
//!   ranges are contiguous from offset 0, so a read never skips a gap.

mod backend;
pub mod compaction;
pub mod groups;
mod postgres;
mod retention;
mod schema;
pub mod security;
mod sql;
mod sqlite;
pub mod text;

pub use crate::messages::ChunkRange;
pub use backend::MetaBackend;
pub use postgres::{redact as redact_url, PostgresStore};
pub use retention::Stored;
pub use sqlite::SqliteStore;
pub use streamhouse_storage::producers::RememberedBatch;
pub use text::{
    decode_config, decode_shards, encode_config, encode_producers, encode_shards, split_addresses,
};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::leader_epochs::EpochHistory;
use crate::ids::TopicKey;
pub(crate) use schema::{BUMP_LEASE_BEATS, MIGRATIONS};

/// How long a producer's state is kept after its last committed batch,
/// in milliseconds: 1 day (Kafka's `producer.id.expiration.ms`). A producer
/// silent for longer starts afresh on a new owner.
pub const PRODUCER_STATE_TTL_MS: i64 = 24 * 3600 * 1000;

/// Most producers whose state is stored per partition: 10,000. Past it a
/// commit drops the producers whose last committed range is oldest (ties,
/// such as more new producers in one range than the cap, by the lower
/// id), so ids that appear once cannot grow the metadata store without
/// bound within the TTL either: the cap holds exactly.
pub const MAX_STORED_PRODUCERS: i64 = 10_000;

/// What `alter_topic_config` makes of a stored configuration: the keys
/// to store, or why not (the change is then refused).
pub type ConfigChange =
    dyn Fn(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, String> + Send + Sync;

/// What a change of a topic makes of its stored row (partitions and
/// configuration are written back), or why not (nothing is written).
pub type TopicChange = dyn Fn(TopicRow) -> Result<TopicRow, MetaError> + Send + Sync;

/// A topic row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRow {
    pub name: String,
    /// Incarnation id: a topic created again after a delete gets a new one.
    pub id: u64,
    pub partitions: u32,
    /// The configuration keys the topic set, as given (checked before they
    /// were stored; see `topic_config`).
    pub config: BTreeMap<String, String>,
}

impl TopicRow {
    /// The topic's key in logs, leases and the chunk index.
    pub fn key(&self) -> TopicKey {
        TopicKey::new(&self.name, self.id)
    }
}

/// A lease held by this agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseGrant {
    pub epoch: u64,
    /// Milliseconds since the Unix epoch.
    pub expires_ms: i64,
}

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub holder: String,
    pub epoch: u64,
    pub expires_ms: i64,
}

/// A chunk to commit: one object and the partition ranges it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkCommit {
    /// Object key.
    pub key: String,
    /// Object size in bytes.
    pub size: u64,
    pub ranges: Vec<ChunkRange>,
}

/// Where a committed range lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeLocation {
    pub chunk_key: String,
    pub base_offset: u64,
    pub end_offset: u64,
    pub pos: u64,
    pub len: u64,
}

/// A search of the chunk index by time ([`MetaBackend::time_ranges`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeQuery {
    /// Ms since the Unix epoch.
    pub timestamp_ms: i64,
    /// Only ranges ending after this offset.
    pub from: u64,
    /// Only ranges starting before this offset.
    pub below: u64,
    /// At most this many ranges.
    pub limit: u32,
}

/// A registered agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    pub agent_id: String,
    /// host:port of each shard, index = shard number.
    pub shard_addresses: Vec<String>,
    /// Milliseconds since the Unix epoch, by the agent's own clock: for
    /// people reading the table; no decision compares it with another
    /// clock.
    pub heartbeat_ms: i64,
    /// Shards whose WAL failed (or whose executor ended): other agents lead
    /// the partitions that hash to them until they recover.
    pub failed_shards: Vec<usize>,
    /// Heartbeats written so far (read back; a heartbeat adds one).
    pub beats: u64,
    /// Lease grants and renewals so far (read back; each adds one).
    pub lease_beats: u64,
}

/// What an agent saw of another agent's lease before taking it over: the
/// store grants it only while the row and the holder's `lease_beats` are
/// still these (nobody renewed or took it since).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Takeover {
    pub holder: String,
    pub epoch: u64,
    /// The holder's `lease_beats` when this agent last saw them change.
    /// 0: the holder never counted them (an agent of an older version),
    /// and the lease's own wall-clock expiry decides instead.
    pub lease_beats: u64,
}

/// Metadata store errors.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MetaError {
    #[error("topic {0} already exists")]
    Exists(String),
    #[error("unknown topic {0}")]
    Unknown(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("lease on {topic}/{partition} is held by {holder} until {expires_ms} ms")]
    LeaseHeld {
        topic: String,
        partition: u32,
        holder: String,
        expires_ms: i64,
    },
    #[error("fenced on {topic}/{partition}: {detail}")]
    Fenced {
        topic: String,
        partition: u32,
        detail: String,
    },
    #[error(
        "range {base_offset}..{end_offset} of {topic}/{partition} does not continue its \
         committed end {committed_end}"
    )]
    NotContiguous {
        topic: String,
        partition: u32,
        committed_end: u64,
        base_offset: u64,
        end_offset: u64,
    },
    #[error(
        "offset {offset} of {topic}/{partition} is missing from the chunk index: the next \
         committed range starts at {next}"
    )]
    Gap {
        topic: String,
        partition: u32,
        offset: u64,
        next: u64,
    },
    #[error("producer id {0} was never handed out")]
    UnknownProducer(i64),
    #[error("producer {producer_id} at epoch {claimed} is fenced: another instance holds epoch {current}")]
    ProducerFenced {
        producer_id: i64,
        claimed: i32,
        current: i64,
    },
    #[error("producer {0} has used every epoch; ask for a new producer id")]
    EpochExhausted(i64),
    #[error("invalid metadata URL {0}")]
    BadUrl(String),
    #[error("metadata store: {0}")]
    Backend(String),
    /// The store is there but busy for now: SQLite's lock held by another
    /// process beyond the busy timeout (or a journal-mode change racing
    /// another opener), PostgreSQL starting up, a lock or serialization
    /// conflict. Worth trying again.
    #[error("metadata store busy: {0}")]
    Busy(String),
    /// A change the store refused before running it: it would break the
    /// chunk index (a compaction not covering its sources' offsets).
    #[error("refused: {0}")]
    Refused(String),
}

impl MetaError {
    pub(crate) fn backend(e: impl std::fmt::Display) -> MetaError {
        MetaError::Backend(e.to_string())
    }

    /// Whether trying the same call again later may succeed.
    pub fn is_busy(&self) -> bool {
        matches!(self, MetaError::Busy(_))
    }
}

/// How long an agent starting waits for a busy metadata store (see
/// [`MetaError::Busy`]) before it gives up: 60 s.
pub const OPEN_WAIT: Duration = Duration::from_secs(60);

/// Whether range `r` is to be inserted after its partition's committed end
/// `end`: `true` when it starts there, `false` when it lies wholly below it
/// (committed before), `NotContiguous` when it would leave a gap or
/// overlap the committed data.
pub(crate) fn continues(r: &ChunkRange, end: u64) -> Result<bool, MetaError> {
    if r.end_offset <= end && r.base_offset < r.end_offset {
        return Ok(false);
    }
    if r.base_offset == end {
        return Ok(true);
    }
    Err(MetaError::NotContiguous {
        topic: r.topic.to_string(),
        partition: r.partition,
        committed_end: end,
        base_offset: r.base_offset,
        end_offset: r.end_offset,
    })
}

/// The metadata store: one backend ([`MetaBackend`], whose calls it
/// offers through `Deref`) and the rules the same for every backend.
pub struct MetaStore {
    backend: Box<dyn MetaBackend>,
}

impl std::ops::Deref for MetaStore {
    type Target = dyn MetaBackend;
    fn deref(&self) -> &(dyn MetaBackend + 'static) {
        &*self.backend
    }
}

/// Highest schema version this build knows.
pub const SCHEMA_VERSION: i64 = 14;

impl MetaStore {
    /// Opens `sqlite:///PATH` or `postgres://...` and applies pending
    /// migrations. Must be called on a tokio runtime.
    pub async fn open(url: &str) -> Result<MetaStore, MetaError> {
        let backend: Box<dyn MetaBackend> = if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(MetaError::BadUrl(format!(
                    "{url}: expected sqlite:///absolute/path or sqlite://relative/path"
                )));
            }
            let path = path.to_owned();
            let opened = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
                .await
                .map_err(|e| MetaError::backend(format!("sqlite: opening stopped: {e}")))?;
            Box::new(opened?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Box::new(PostgresStore::connect(url).await?)
        } else {
            return Err(MetaError::BadUrl(format!(
                "{url}: use sqlite:///PATH or postgres://USER@HOST:PORT/DB"
            )));
        };
        Ok(MetaStore { backend })
    }

    /// [`MetaStore::open`], tried again while the store is busy (agents
    /// started together on a new SQLite file race to switch its journal
    /// mode; PostgreSQL may still be starting) until `wait` has passed,
    /// backing off from 20 ms to 1 s. Any other error is returned at once.
    /// Cancelling it abandons the attempt in progress.
    pub async fn open_at_start(url: &str, wait: Duration) -> Result<MetaStore, MetaError> {
        let start = std::time::Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            match MetaStore::open(url).await {
                Err(e) if e.is_busy() && start.elapsed() + pause < wait => {
                    tracing::warn!(error = %e, retry_ms = pause.as_millis() as u64, "metadata store busy at start; trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                r => return r,
            }
        }
    }

    /// Creates a topic with a fresh incarnation id and no configuration
    /// key set.
    pub async fn create_topic(&self, name: &str, partitions: u32) -> Result<TopicRow, MetaError> {
        self.create_topic_with(name, partitions, &BTreeMap::new())
            .await
    }

    /// Raises a topic's partition count to `count`; `InvalidConfig` when it
    /// has that many or more already. Returns the row.
    pub async fn add_partitions(&self, name: &str, count: u32) -> Result<TopicRow, MetaError> {
        let topic = name.to_owned();
        let grow = move |t: TopicRow| {
            if t.partitions >= count {
                return Err(MetaError::InvalidConfig(format!(
                    "topic {topic} has {} partitions already; partitions can only be added",
                    t.partitions
                )));
            }
            Ok(TopicRow {
                partitions: count,
                ..t
            })
        };
        self.update_topic(name, Arc::new(grow)).await
    }

    /// Replaces a topic's configuration with what `alter` makes of the
    /// stored one, in one transaction (concurrent changes of other keys are
    /// not lost); `alter`'s error leaves it unchanged. Returns the row.
    pub async fn alter_topic_config(
        &self,
        name: &str,
        alter: Arc<ConfigChange>,
    ) -> Result<TopicRow, MetaError> {
        let change = move |t: TopicRow| {
            let config = alter(&t.config).map_err(MetaError::InvalidConfig)?;
            Ok(TopicRow { config, ..t })
        };
        self.update_topic(name, Arc::new(change)).await
    }

    /// The committed range holding `offset`; `None` when `offset` is at or
    /// past the committed end. A range that starts after `offset` (a hole
    /// in the index, which commits never make) is reported as corrupt,
    /// never read in its place.
    pub async fn find_range(
        &self,
        topic: &TopicKey,
        partition: u32,
        offset: u64,
    ) -> Result<Option<RangeLocation>, MetaError> {
        match self.range_at(topic, partition, offset).await? {
            Some(loc) if loc.base_offset > offset => Err(MetaError::Gap {
                topic: topic.to_string(),
                partition,
                offset,
                next: loc.base_offset,
            }),
            other => Ok(other),
        }
    }

    /// The partition's leader-epoch history: where each lease epoch began
    /// writing (the newest
    /// [`crate::cluster::leader_epochs::MAX_EPOCHS_KEPT`] epochs). Every epoch granted
    /// since schema 6 is there, recorded in the transaction that granted it.
    pub async fn leader_epochs(
        &self,
        topic: &TopicKey,
        partition: u32,
    ) -> Result<EpochHistory, MetaError> {
        Ok(EpochHistory::new(
            self.epoch_starts(topic, partition).await?,
        ))
    }

    /// Switches a partition's ranges to a rewritten object, as `agent`
    /// holding its lease at `epoch` (`Fenced` otherwise), registering the
    /// object. `false`, with nothing changed, when a source range changed
    /// since it was read (retention, DeleteRecords) or the object's key is
    /// registered already (the sweep claimed it as an orphan): the new
    /// object is then the sweep's to delete. `Refused` when the rewritten
    /// ranges do not cover exactly the offsets of their sources.
    pub async fn switch_ranges(
        &self,
        agent: &str,
        epoch: u64,
        switch: &compaction::RangeSwitch,
    ) -> Result<bool, MetaError> {
        if !compaction::covers_the_same(switch) {
            return Err(MetaError::Refused(format!(
                "a compaction of {}/{} does not cover the offsets of its sources",
                switch.topic.name(),
                switch.partition
            )));
        }
        self.apply_switch(agent, epoch, switch).await
    }
}

/// Whether an agent that saw `take` may take over the lease `row` (held
/// by another agent, not released) whose holder's `lease_beats` are now
/// `holder_beats`: only while nothing moved since it looked. A holder that
/// never counted grants (an older agent) is judged by the row's
/// wall-clock expiry, as such agents judge each other.
pub(crate) fn takeover_allowed(
    row: &LeaseRow,
    holder_beats: u64,
    take: Option<&Takeover>,
    now_ms: i64,
) -> bool {
    let Some(t) = take else {
        return false;
    };
    t.holder == row.holder
        && t.epoch == row.epoch
        && t.lease_beats == holder_beats
        && (holder_beats != 0 || row.expires_ms <= now_ms)
}

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The epoch after `current` for a producer whose instance says it last
/// used `claimed`: fenced when another instance already moved past it.
pub(crate) fn next_producer_epoch(
    producer_id: i64,
    current: i64,
    claimed: i32,
) -> Result<i32, MetaError> {
    if i64::from(claimed) < current {
        return Err(MetaError::ProducerFenced {
            producer_id,
            claimed,
            current,
        });
    }
    let next = i64::from(claimed) + 1;
    if next > i64::from(i16::MAX) {
        return Err(MetaError::EpochExhausted(producer_id));
    }
    Ok(next as i32)
}

/// Parses one `producer_state.batches` value back ([`text::decode_producers`]);
/// a malformed entry is a backend error naming it.
pub fn decode_producers(producer_id: i64, text: &str) -> Result<Vec<RememberedBatch>, MetaError> {
    text::decode_producers(producer_id, text).map_err(|e| MetaError::Backend(e.to_string()))
}
