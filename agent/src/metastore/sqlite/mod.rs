//! SQLite backend of the metadata store: one file, WAL journal mode, so
//! several agent processes on one host can share it (writers serialise on
//! SQLite's lock, waiting up to the busy timeout). Every write is one
//! `BEGIN IMMEDIATE` transaction.
//!
//! Connection, migrations, topics, producer ids and agents here; leases in
//! `leases`, chunk commits and what they committed in `chunks`.

mod backend;
mod chunks;
mod compaction;
mod groups;
mod leases;
mod retention;
mod security;

use std::collections::BTreeMap;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{
    decode_config, decode_shards, encode_config, encode_shards, next_producer_epoch,
    split_addresses, to_u64, AgentRow, LeaseRow, MetaError, TopicChange, TopicRow, MIGRATIONS,
};
use crate::metastore::sql::{self, for_sqlite};

/// How long a writer waits for another process's transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The SQLite metadata store.
/// Cheap to clone: clones share one connection.
#[derive(Clone)]
pub struct SqliteStore {
    conn: std::sync::Arc<Mutex<Connection>>,
}

fn db(e: rusqlite::Error) -> MetaError {
    let busy = matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    );
    if busy {
        MetaError::Busy(format!("sqlite: {e}"))
    } else {
        MetaError::backend(format!("sqlite: {e}"))
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &str) -> Result<SqliteStore, MetaError> {
        if let Some(dir) = std::path::Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    MetaError::backend(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
        }
        let conn = Connection::open(path)
            .map_err(|e| MetaError::backend(format!("cannot open sqlite database {path}: {e}")))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        let store = SqliteStore {
            conn: std::sync::Arc::new(Mutex::new(conn)),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Runs `call` on tokio's blocking pool with a clone of the store.
    /// Cancelling the returned future does not stop `call`.
    async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&SqliteStore) -> Result<T, MetaError> + Send + 'static,
    ) -> Result<T, MetaError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || call(&store))
            .await
            .map_err(|e| MetaError::backend(format!("sqlite: the call stopped: {e}")))?
    }

    fn migrate(&self) -> Result<(), MetaError> {
        let mut conn = self.conn.lock();
        conn.execute_batch(&for_sqlite(sql::topics::CREATE_MIGRATIONS))
            .map_err(db)?;
        for (version, sql) in MIGRATIONS {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let done: Option<i64> = tx
                .query_row(
                    &for_sqlite(sql::topics::MIGRATION_APPLIED),
                    params![version],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db)?;
            if done.is_none() {
                tx.execute_batch(sql).map_err(db)?;
                tx.execute(&for_sqlite(sql::topics::RECORD_MIGRATION), params![version])
                    .map_err(db)?;
            }
            tx.commit().map_err(db)?;
        }
        Ok(())
    }

    pub fn schema_version(&self) -> Result<i64, MetaError> {
        self.conn
            .lock()
            .query_row(&for_sqlite(sql::topics::SCHEMA_VERSION), [], |r| r.get(0))
            .map_err(db)
    }

    pub fn topics(&self) -> Result<Vec<TopicRow>, MetaError> {
        let conn = self.conn.lock();
        let mut st = conn.prepare(&for_sqlite(sql::topics::TOPICS)).map_err(db)?;
        let rows = st
            .query_map([], |r| {
                Ok(TopicRow {
                    name: r.get(0)?,
                    id: to_u64(r.get(1)?),
                    partitions: u32::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                    config: decode_config(&r.get::<_, String>(3)?),
                })
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    pub fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        config: &BTreeMap<String, String>,
    ) -> Result<TopicRow, MetaError> {
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let exists: Option<i64> = tx
            .query_row("SELECT id FROM topics WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db)?;
        if exists.is_some() {
            return Err(MetaError::Exists(name.into()));
        }
        let id: i64 = tx
            .query_row(&for_sqlite(sql::topics::NEXT_TOPIC_ID), [], |r| r.get(0))
            .map_err(db)?;
        tx.execute(
            "INSERT INTO topics (name, id, partitions, config) VALUES (?1, ?2, ?3, ?4)",
            params![name, id, i64::from(partitions), encode_config(config)],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(TopicRow {
            name: name.into(),
            id: to_u64(id),
            partitions,
            config: config.clone(),
        })
    }

    pub fn update_topic(&self, name: &str, change: &TopicChange) -> Result<TopicRow, MetaError> {
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let row: Option<(i64, i64, String)> = tx
            .query_row(
                "SELECT id, partitions, config FROM topics WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(db)?;
        let Some((id, partitions, config)) = row else {
            return Err(MetaError::Unknown(name.into()));
        };
        let changed = change(TopicRow {
            name: name.into(),
            id: to_u64(id),
            partitions: u32::try_from(partitions).unwrap_or(0),
            config: decode_config(&config),
        })?;
        tx.execute(
            &for_sqlite(sql::topics::UPDATE_TOPIC),
            params![
                i64::from(changed.partitions),
                encode_config(&changed.config),
                name
            ],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(changed)
    }

    pub fn delete_topic(&self, name: &str) -> Result<TopicRow, MetaError> {
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let row: Option<(i64, i64)> = tx
            .query_row(
                "SELECT id, partitions FROM topics WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db)?;
        let Some((id, partitions)) = row else {
            return Err(MetaError::Unknown(name.into()));
        };
        let topic = TopicRow {
            name: name.into(),
            id: to_u64(id),
            partitions: u32::try_from(partitions).unwrap_or(0),
            config: BTreeMap::new(),
        };
        let key = topic.key().to_string();
        tx.execute("DELETE FROM topics WHERE name = ?1", [name])
            .map_err(db)?;
        tx.execute(&for_sqlite(sql::topics::DELETE_TOPIC_PRODUCERS), [&key])
            .map_err(db)?;
        tx.execute(&for_sqlite(sql::topics::DELETE_TOPIC_LEASES), [&key])
            .map_err(db)?;
        tx.execute(&for_sqlite(sql::topics::DELETE_TOPIC_EPOCHS), [&key])
            .map_err(db)?;
        tx.execute(&for_sqlite(sql::topics::DELETE_TOPIC_RANGES), [&key])
            .map_err(db)?;
        tx.execute(&for_sqlite(sql::topics::DELETE_TOPIC_OFFSETS), [&key])
            .map_err(db)?;
        tx.execute(
            &for_sqlite(super::sql::retention::DELETE_TOPIC_STARTS),
            [&key],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(topic)
    }

    pub fn next_producer_id(&self) -> Result<i64, MetaError> {
        self.conn
            .lock()
            .query_row(&for_sqlite(sql::topics::NEXT_PRODUCER_ID), [], |r| r.get(0))
            .map_err(db)
    }

    pub fn bump_producer_epoch(&self, producer_id: i64, claimed: i32) -> Result<i32, MetaError> {
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let handed_out: i64 = tx
            .query_row(
                "SELECT value FROM counters WHERE name = 'producer_id'",
                [],
                |r| r.get(0),
            )
            .map_err(db)?;
        if producer_id <= 0 || producer_id >= handed_out {
            return Err(MetaError::UnknownProducer(producer_id));
        }
        let current: i64 = tx
            .query_row(
                "SELECT epoch FROM producer_epochs WHERE producer_id = ?1",
                [producer_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?
            .unwrap_or(0);
        let next = next_producer_epoch(producer_id, current, claimed)?;
        tx.execute(
            &for_sqlite(sql::topics::SET_PRODUCER_EPOCH),
            params![producer_id, i64::from(next)],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(next)
    }

    pub fn heartbeat(&self, agent: &AgentRow) -> Result<(), MetaError> {
        self.conn
            .lock()
            .execute(
                &for_sqlite(sql::topics::HEARTBEAT),
                params![
                    agent.agent_id,
                    agent.shard_addresses.join(","),
                    agent.heartbeat_ms,
                    encode_shards(&agent.failed_shards)
                ],
            )
            .map_err(db)?;
        Ok(())
    }

    pub fn agents(&self) -> Result<Vec<AgentRow>, MetaError> {
        let conn = self.conn.lock();
        let mut st = conn.prepare(&for_sqlite(sql::topics::AGENTS)).map_err(db)?;
        let rows = st
            .query_map([], |r| {
                Ok(AgentRow {
                    agent_id: r.get(0)?,
                    shard_addresses: split_addresses(&r.get::<_, String>(1)?),
                    heartbeat_ms: r.get(2)?,
                    failed_shards: decode_shards(&r.get::<_, String>(3)?),
                    beats: to_u64(r.get(4)?),
                    lease_beats: to_u64(r.get(5)?),
                })
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }
}

pub(crate) fn fenced(
    topic: &str,
    partition: u32,
    agent: &str,
    epoch: u64,
    cur: Option<LeaseRow>,
) -> MetaError {
    let detail = match cur {
        None => format!("{agent} held epoch {epoch}, but the lease no longer exists"),
        Some(l) => format!(
            "{agent} held epoch {epoch}; the lease is now {} at epoch {}",
            l.holder, l.epoch
        ),
    };
    MetaError::Fenced {
        topic: topic.into(),
        partition,
        detail,
    }
}
