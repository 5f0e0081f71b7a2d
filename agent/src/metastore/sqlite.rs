//! SQLite backend of the metadata store: one file, WAL journal mode, so
//! several agent processes on one host can share it (writers serialise on
//! SQLite's lock, waiting up to the busy timeout). Every write is one
//! `BEGIN IMMEDIATE` transaction.

use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{
    continues, decode_shards, encode_shards, next_producer_epoch, split_addresses, to_i64, to_u64,
    AgentRow, ChunkCommit, LeaseGrant, LeaseRow, MetaError, RangeLocation, TopicRow, MIGRATIONS,
};
use super::{
    decode_producers, encode_producers, RememberedBatch, MAX_STORED_PRODUCERS,
    PRODUCER_STATE_TTL_MS,
};

/// How long a writer waits for another process's transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The SQLite metadata store.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn db(e: rusqlite::Error) -> MetaError {
    MetaError::backend(format!("sqlite: {e}"))
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
            conn: Mutex::new(conn),
        };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<(), MetaError> {
        let mut conn = self.conn.lock();
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)",
        )
        .map_err(db)?;
        for (version, sql) in MIGRATIONS {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let done: Option<i64> = tx
                .query_row(
                    "SELECT version FROM schema_migrations WHERE version = ?1",
                    params![version],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db)?;
            if done.is_none() {
                tx.execute_batch(sql).map_err(db)?;
                tx.execute(
                    "INSERT INTO schema_migrations (version) VALUES (?1)",
                    params![version],
                )
                .map_err(db)?;
            }
            tx.commit().map_err(db)?;
        }
        Ok(())
    }

    pub fn schema_version(&self) -> Result<i64, MetaError> {
        self.conn
            .lock()
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                [],
                |r| r.get(0),
            )
            .map_err(db)
    }

    pub fn topics(&self) -> Result<Vec<TopicRow>, MetaError> {
        let conn = self.conn.lock();
        let mut st = conn
            .prepare("SELECT name, id, partitions FROM topics ORDER BY name")
            .map_err(db)?;
        let rows = st
            .query_map([], |r| {
                Ok(TopicRow {
                    name: r.get(0)?,
                    id: to_u64(r.get(1)?),
                    partitions: u32::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                })
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    pub fn create_topic(&self, name: &str, partitions: u32) -> Result<TopicRow, MetaError> {
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
            .query_row(
                "UPDATE counters SET value = value + 1 WHERE name = 'topic_id' RETURNING value - 1",
                [],
                |r| r.get(0),
            )
            .map_err(db)?;
        tx.execute(
            "INSERT INTO topics (name, id, partitions) VALUES (?1, ?2, ?3)",
            params![name, id, i64::from(partitions)],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(TopicRow {
            name: name.into(),
            id: to_u64(id),
            partitions,
        })
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
        };
        let key = topic.key();
        tx.execute("DELETE FROM topics WHERE name = ?1", [name])
            .map_err(db)?;
        tx.execute("DELETE FROM producer_state WHERE topic = ?1", [&key])
            .map_err(db)?;
        tx.execute("DELETE FROM leases WHERE topic = ?1", [&key])
            .map_err(db)?;
        tx.execute("DELETE FROM chunk_ranges WHERE topic = ?1", [&key])
            .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(topic)
    }

    pub fn next_producer_id(&self) -> Result<i64, MetaError> {
        self.conn
            .lock()
            .query_row(
                "UPDATE counters SET value = value + 1 WHERE name = 'producer_id' RETURNING value - 1",
                [],
                |r| r.get(0),
            )
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
            "INSERT INTO producer_epochs (producer_id, epoch) VALUES (?1, ?2)
             ON CONFLICT (producer_id) DO UPDATE SET epoch = excluded.epoch",
            params![producer_id, i64::from(next)],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(next)
    }

    pub fn acquire_lease(
        &self,
        topic: &str,
        partition: u32,
        agent: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<LeaseGrant, MetaError> {
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let cur = lease_row(&tx, topic, partition)?;
        let expires_ms = now_ms + ttl_ms;
        let epoch = match cur {
            None => {
                tx.execute(
                    "INSERT INTO leases (topic, part, holder, epoch, expires_ms) VALUES (?1, ?2, ?3, 1, ?4)",
                    params![topic, i64::from(partition), agent, expires_ms],
                )
                .map_err(db)?;
                1
            }
            Some(l) if l.holder == agent => l.epoch,
            Some(l) if l.expires_ms > now_ms => {
                return Err(MetaError::LeaseHeld {
                    topic: topic.into(),
                    partition,
                    holder: l.holder,
                    expires_ms: l.expires_ms,
                })
            }
            Some(l) => l.epoch + 1,
        };
        tx.execute(
            "UPDATE leases SET holder = ?3, epoch = ?4, expires_ms = ?5 WHERE topic = ?1 AND part = ?2",
            params![topic, i64::from(partition), agent, to_i64(epoch), expires_ms],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(LeaseGrant { epoch, expires_ms })
    }

    pub fn renew_lease(
        &self,
        topic: &str,
        partition: u32,
        agent: &str,
        epoch: u64,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<LeaseGrant, MetaError> {
        let expires_ms = now_ms + ttl_ms;
        let n = self
            .conn
            .lock()
            .execute(
                "UPDATE leases SET expires_ms = ?5 WHERE topic = ?1 AND part = ?2 AND holder = ?3 AND epoch = ?4",
                params![topic, i64::from(partition), agent, to_i64(epoch), expires_ms],
            )
            .map_err(db)?;
        if n == 1 {
            return Ok(LeaseGrant { epoch, expires_ms });
        }
        let cur = lease_row(&self.conn.lock(), topic, partition)?;
        Err(fenced(topic, partition, agent, epoch, cur))
    }

    pub fn renew_leases(
        &self,
        leases: &[(String, u32, u64)],
        agent: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Vec<Result<LeaseGrant, MetaError>>, MetaError> {
        let expires_ms = now_ms + ttl_ms;
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let mut out = Vec::with_capacity(leases.len());
        for (topic, partition, epoch) in leases {
            let n = tx
                .execute(
                    "UPDATE leases SET expires_ms = ?5 WHERE topic = ?1 AND part = ?2 AND holder = ?3 AND epoch = ?4",
                    params![topic, i64::from(*partition), agent, to_i64(*epoch), expires_ms],
                )
                .map_err(db)?;
            out.push(if n == 1 {
                Ok(LeaseGrant {
                    epoch: *epoch,
                    expires_ms,
                })
            } else {
                let cur = lease_row(&tx, topic, *partition)?;
                Err(fenced(topic, *partition, agent, *epoch, cur))
            });
        }
        tx.commit().map_err(db)?;
        Ok(out)
    }

    pub fn release_lease(
        &self,
        topic: &str,
        partition: u32,
        agent: &str,
        epoch: u64,
    ) -> Result<(), MetaError> {
        self.conn
            .lock()
            .execute(
                "UPDATE leases SET expires_ms = 0 WHERE topic = ?1 AND part = ?2 AND holder = ?3 AND epoch = ?4",
                params![topic, i64::from(partition), agent, to_i64(epoch)],
            )
            .map_err(db)?;
        Ok(())
    }

    pub fn lease(&self, topic: &str, partition: u32) -> Result<Option<LeaseRow>, MetaError> {
        lease_row(&self.conn.lock(), topic, partition)
    }

    pub fn topic_leases(&self, topic: &str) -> Result<Vec<(u32, LeaseRow)>, MetaError> {
        let conn = self.conn.lock();
        let mut st = conn
            .prepare(
                "SELECT part, holder, epoch, expires_ms FROM leases WHERE topic = ?1 ORDER BY part",
            )
            .map_err(db)?;
        let rows = st
            .query_map([topic], |r| {
                Ok((
                    u32::try_from(r.get::<_, i64>(0)?).unwrap_or(u32::MAX),
                    LeaseRow {
                        holder: r.get(1)?,
                        epoch: to_u64(r.get(2)?),
                        expires_ms: r.get(3)?,
                    },
                ))
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    pub fn commit_chunk(
        &self,
        agent: &str,
        chunk: &ChunkCommit,
        now_ms: i64,
    ) -> Result<bool, MetaError> {
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let done: Option<String> = tx
            .query_row("SELECT key FROM chunks WHERE key = ?1", [&chunk.key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db)?;
        if done.is_some() {
            return Ok(false);
        }
        let mut fresh = Vec::with_capacity(chunk.ranges.len());
        for r in &chunk.ranges {
            let cur = lease_row(&tx, &r.topic, r.partition)?;
            if !cur
                .as_ref()
                .is_some_and(|l| l.holder == agent && l.epoch == r.epoch)
            {
                return Err(fenced(&r.topic, r.partition, agent, r.epoch, cur));
            }
            if continues(r, committed_end_in(&tx, &r.topic, r.partition)?)? {
                fresh.push(r);
            }
        }
        tx.execute(
            "INSERT INTO chunks (key, agent, size) VALUES (?1, ?2, ?3)",
            params![chunk.key, agent, to_i64(chunk.size)],
        )
        .map_err(db)?;
        for r in fresh {
            tx.execute(
                "INSERT INTO chunk_ranges (topic, part, base_offset, end_offset, chunk_key, pos, len, epoch)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    r.topic,
                    i64::from(r.partition),
                    to_i64(r.base_offset),
                    to_i64(r.end_offset),
                    chunk.key,
                    to_i64(r.pos),
                    to_i64(r.len),
                    to_i64(r.epoch)
                ],
            )
            .map_err(db)?;
            for (producer_id, batches) in encode_producers(&r.producers) {
                tx.execute(
                    "INSERT INTO producer_state (topic, part, producer_id, batches, end_offset, updated_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (topic, part, producer_id) DO UPDATE SET
                         batches = excluded.batches, end_offset = excluded.end_offset,
                         updated_ms = excluded.updated_ms
                     WHERE producer_state.end_offset <= excluded.end_offset",
                    params![
                        r.topic,
                        i64::from(r.partition),
                        producer_id,
                        batches,
                        to_i64(r.end_offset),
                        now_ms
                    ],
                )
                .map_err(db)?;
            }
            tx.execute(
                "DELETE FROM producer_state WHERE topic = ?1 AND part = ?2 AND updated_ms < ?3",
                params![
                    r.topic,
                    i64::from(r.partition),
                    now_ms.saturating_sub(PRODUCER_STATE_TTL_MS)
                ],
            )
            .map_err(db)?;
            tx.execute(
                "DELETE FROM producer_state WHERE topic = ?1 AND part = ?2 AND end_offset < (
                     SELECT end_offset FROM producer_state WHERE topic = ?1 AND part = ?2
                     ORDER BY end_offset DESC LIMIT 1 OFFSET ?3)",
                params![r.topic, i64::from(r.partition), MAX_STORED_PRODUCERS - 1],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(true)
    }

    pub fn producer_state(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<Vec<RememberedBatch>, MetaError> {
        let conn = self.conn.lock();
        let mut stmt = conn
            .prepare(
                "SELECT producer_id, batches FROM producer_state WHERE topic = ?1 AND part = ?2",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map(params![topic, i64::from(partition)], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            let (producer_id, text) = row.map_err(db)?;
            out.extend(decode_producers(producer_id, &text)?);
        }
        Ok(out)
    }

    pub fn chunk_committed(&self, key: &str) -> Result<bool, MetaError> {
        let found: Option<String> = self
            .conn
            .lock()
            .query_row("SELECT key FROM chunks WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(db)?;
        Ok(found.is_some())
    }

    pub fn find_range(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
    ) -> Result<Option<RangeLocation>, MetaError> {
        self.conn
            .lock()
            .query_row(
                "SELECT chunk_key, base_offset, end_offset, pos, len FROM chunk_ranges
                 WHERE topic = ?1 AND part = ?2 AND end_offset > ?3
                 ORDER BY end_offset LIMIT 1",
                params![topic, i64::from(partition), to_i64(offset)],
                |r| {
                    Ok(RangeLocation {
                        chunk_key: r.get(0)?,
                        base_offset: to_u64(r.get(1)?),
                        end_offset: to_u64(r.get(2)?),
                        pos: to_u64(r.get(3)?),
                        len: to_u64(r.get(4)?),
                    })
                },
            )
            .optional()
            .map_err(db)
    }

    pub fn committed_end(&self, topic: &str, partition: u32) -> Result<u64, MetaError> {
        committed_end_in(&self.conn.lock(), topic, partition)
    }

    pub fn heartbeat(&self, agent: &AgentRow) -> Result<(), MetaError> {
        self.conn
            .lock()
            .execute(
                "INSERT INTO agents (agent_id, addresses, heartbeat_ms, failed_shards)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (agent_id) DO UPDATE SET addresses = excluded.addresses,
                 heartbeat_ms = excluded.heartbeat_ms, failed_shards = excluded.failed_shards",
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

    pub fn live_agents(&self, since_ms: i64) -> Result<Vec<AgentRow>, MetaError> {
        let conn = self.conn.lock();
        let mut st = conn
            .prepare(
                "SELECT agent_id, addresses, heartbeat_ms, failed_shards FROM agents
                 WHERE heartbeat_ms > ?1 ORDER BY agent_id",
            )
            .map_err(db)?;
        let rows = st
            .query_map([since_ms], |r| {
                Ok(AgentRow {
                    agent_id: r.get(0)?,
                    shard_addresses: split_addresses(&r.get::<_, String>(1)?),
                    heartbeat_ms: r.get(2)?,
                    failed_shards: decode_shards(&r.get::<_, String>(3)?),
                })
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }
}

fn committed_end_in(conn: &Connection, topic: &str, partition: u32) -> Result<u64, MetaError> {
    let end: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(end_offset), 0) FROM chunk_ranges WHERE topic = ?1 AND part = ?2",
            params![topic, i64::from(partition)],
            |r| r.get(0),
        )
        .map_err(db)?;
    Ok(to_u64(end))
}

fn lease_row(
    conn: &Connection,
    topic: &str,
    partition: u32,
) -> Result<Option<LeaseRow>, MetaError> {
    conn.query_row(
        "SELECT holder, epoch, expires_ms FROM leases WHERE topic = ?1 AND part = ?2",
        params![topic, i64::from(partition)],
        |r| {
            Ok(LeaseRow {
                holder: r.get(0)?,
                epoch: to_u64(r.get(1)?),
                expires_ms: r.get(2)?,
            })
        },
    )
    .optional()
    .map_err(db)
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
