//! PostgreSQL backend of the metadata store, for agents on several hosts.
//! Writes that must be atomic run in one transaction with the lease rows
//! locked (`SELECT ... FOR UPDATE`); migrations hold an advisory lock so
//! agents starting together apply each one once. Reconnects when the server
//! dropped the connection.

use tokio::sync::Mutex;
use tokio_postgres::{Client, GenericClient, NoTls};

use super::sqlite::fenced;
use super::{
    continues, decode_shards, encode_shards, next_producer_epoch, split_addresses, to_i64, to_u64,
    AgentRow, ChunkCommit, LeaseGrant, LeaseRow, MetaError, RangeLocation, TopicRow, MIGRATIONS,
};
use super::{
    decode_producers, encode_producers, RememberedBatch, MAX_STORED_PRODUCERS,
    PRODUCER_STATE_TTL_MS,
};

/// Advisory lock id taken while migrating ("SHMIGRAT").
const MIGRATION_LOCK: i64 = 0x5348_4d49_4752_4154;

/// Longest any one metadata call may take, waiting for the connection
/// included: 10 s. A call that takes longer fails, and its connection is
/// replaced by a new one at the next call: a connection that stopped
/// answering (or a row lock held by another session for ever) must not
/// hold up every later call of the agent.
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a session of the agent may sit inside a transaction without
/// sending anything before the server ends it (PostgreSQL's
/// `idle_in_transaction_session_timeout`): 3 s.
pub const IDLE_IN_TRANSACTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// The PostgreSQL metadata store.
pub struct PostgresStore {
    url: String,
    client: Mutex<Client>,
    /// Set when a call timed out: the next call connects again.
    broken: std::sync::atomic::AtomicBool,
}

/// The error with the server's message and detail when there is one
/// (`Display` of a server error says only "db error").
fn db(e: tokio_postgres::Error) -> MetaError {
    match e.as_db_error() {
        Some(d) => MetaError::backend(format!(
            "postgres: {}: {}{}",
            d.code().code(),
            d.message(),
            d.detail().map(|x| format!(" ({x})")).unwrap_or_default()
        )),
        None => MetaError::backend(format!("postgres: {e}")),
    }
}

async fn connect(url: &str) -> Result<Client, MetaError> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| MetaError::backend(format!("cannot connect to {}: {e}", redact(url))))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "metadata store connection ended");
        }
    });
    // A transaction of this agent never waits on anything but the agent:
    // if the agent stops mid-transaction (SIGSTOP, a frozen VM), the server
    // ends the session and frees its row locks instead of holding up the
    // agents that take its partitions over.
    client
        .batch_execute(&format!(
            "SET idle_in_transaction_session_timeout = {}",
            IDLE_IN_TRANSACTION_TIMEOUT.as_millis()
        ))
        .await
        .map_err(db)?;
    Ok(client)
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

async fn lease_row(
    c: &impl GenericClient,
    topic: &str,
    partition: u32,
    lock: bool,
) -> Result<Option<LeaseRow>, MetaError> {
    let sql = if lock {
        "SELECT holder, epoch, expires_ms FROM leases WHERE topic = $1 AND part = $2 FOR UPDATE"
    } else {
        "SELECT holder, epoch, expires_ms FROM leases WHERE topic = $1 AND part = $2"
    };
    let row = c
        .query_opt(sql, &[&topic, &i64::from(partition)])
        .await
        .map_err(db)?;
    Ok(row.map(|r| LeaseRow {
        holder: r.get(0),
        epoch: to_u64(r.get(1)),
        expires_ms: r.get(2),
    }))
}

impl PostgresStore {
    /// Connects and migrates.
    pub async fn connect(url: &str) -> Result<PostgresStore, MetaError> {
        let client = connect(url).await?;
        let store = PostgresStore {
            url: url.to_owned(),
            client: Mutex::new(client),
            broken: std::sync::atomic::AtomicBool::new(false),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The client, reconnecting first if the connection was lost.
    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Client>, MetaError> {
        let mut guard = self.client.lock().await;
        let broken = self.broken.swap(false, std::sync::atomic::Ordering::AcqRel);
        if guard.is_closed() || broken {
            *guard = connect(&self.url).await?;
        }
        Ok(guard)
    }

    /// Runs one call within [`CALL_TIMEOUT`]; past it the call is dropped
    /// (releasing the connection), fails, and the connection is replaced.
    pub async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, MetaError>>,
    ) -> Result<T, MetaError> {
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(r) => r,
            Err(_) => {
                self.broken
                    .store(true, std::sync::atomic::Ordering::Release);
                tracing::warn!(
                    timeout_ms = CALL_TIMEOUT.as_millis() as u64,
                    "a metadata store call timed out; its connection is replaced"
                );
                Err(MetaError::backend(format!(
                    "postgres: no answer within {} ms (the connection is replaced)",
                    CALL_TIMEOUT.as_millis()
                )))
            }
        }
    }

    async fn migrate(&self) -> Result<(), MetaError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)",
        )
        .await
        .map_err(db)?;
        for (version, sql) in MIGRATIONS {
            let done = tx
                .query_opt(
                    "SELECT version FROM schema_migrations WHERE version = $1",
                    &[version],
                )
                .await
                .map_err(db)?;
            if done.is_none() {
                tx.batch_execute(sql).await.map_err(db)?;
                tx.execute(
                    "INSERT INTO schema_migrations (version) VALUES ($1)",
                    &[version],
                )
                .await
                .map_err(db)?;
            }
        }
        tx.commit().await.map_err(db)
    }

    pub async fn schema_version(&self) -> Result<i64, MetaError> {
        let c = self.client().await?;
        let r = c
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await
            .map_err(db)?;
        Ok(r.get(0))
    }

    pub async fn topics(&self) -> Result<Vec<TopicRow>, MetaError> {
        let c = self.client().await?;
        let rows = c
            .query("SELECT name, id, partitions FROM topics ORDER BY name", &[])
            .await
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| TopicRow {
                name: r.get(0),
                id: to_u64(r.get(1)),
                partitions: u32::try_from(r.get::<_, i64>(2)).unwrap_or(0),
            })
            .collect())
    }

    pub async fn create_topic(&self, name: &str, partitions: u32) -> Result<TopicRow, MetaError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        let id: i64 = tx
            .query_one(
                "UPDATE counters SET value = value + 1 WHERE name = 'topic_id' RETURNING value - 1",
                &[],
            )
            .await
            .map_err(db)?
            .get(0);
        let n = tx
            .execute(
                "INSERT INTO topics (name, id, partitions) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
                &[&name, &id, &i64::from(partitions)],
            )
            .await
            .map_err(db)?;
        if n == 0 {
            return Err(MetaError::Exists(name.into()));
        }
        tx.commit().await.map_err(db)?;
        Ok(TopicRow {
            name: name.into(),
            id: to_u64(id),
            partitions,
        })
    }

    pub async fn delete_topic(&self, name: &str) -> Result<TopicRow, MetaError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        let Some(row) = tx
            .query_opt(
                "DELETE FROM topics WHERE name = $1 RETURNING id, partitions",
                &[&name],
            )
            .await
            .map_err(db)?
        else {
            return Err(MetaError::Unknown(name.into()));
        };
        let topic = TopicRow {
            name: name.into(),
            id: to_u64(row.get(0)),
            partitions: u32::try_from(row.get::<_, i64>(1)).unwrap_or(0),
        };
        let key = topic.key();
        tx.execute("DELETE FROM leases WHERE topic = $1", &[&key])
            .await
            .map_err(db)?;
        tx.execute("DELETE FROM producer_state WHERE topic = $1", &[&key])
            .await
            .map_err(db)?;
        tx.execute("DELETE FROM chunk_ranges WHERE topic = $1", &[&key])
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(topic)
    }

    pub async fn next_producer_id(&self) -> Result<i64, MetaError> {
        let c = self.client().await?;
        let r = c
            .query_one(
                "UPDATE counters SET value = value + 1 WHERE name = 'producer_id' RETURNING value - 1",
                &[],
            )
            .await
            .map_err(db)?;
        Ok(r.get(0))
    }

    pub async fn bump_producer_epoch(
        &self,
        producer_id: i64,
        claimed: i32,
    ) -> Result<i32, MetaError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        let handed_out: i64 = tx
            .query_one(
                "SELECT value FROM counters WHERE name = 'producer_id' FOR UPDATE",
                &[],
            )
            .await
            .map_err(db)?
            .get(0);
        if producer_id <= 0 || producer_id >= handed_out {
            return Err(MetaError::UnknownProducer(producer_id));
        }
        let current: i64 = tx
            .query_opt(
                "SELECT epoch FROM producer_epochs WHERE producer_id = $1 FOR UPDATE",
                &[&producer_id],
            )
            .await
            .map_err(db)?
            .map_or(0, |r| r.get(0));
        let next = next_producer_epoch(producer_id, current, claimed)?;
        tx.execute(
            "INSERT INTO producer_epochs (producer_id, epoch) VALUES ($1, $2)
             ON CONFLICT (producer_id) DO UPDATE SET epoch = excluded.epoch",
            &[&producer_id, &i64::from(next)],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(next)
    }

    pub async fn acquire_lease(
        &self,
        topic: &str,
        partition: u32,
        agent: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<LeaseGrant, MetaError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        let part = i64::from(partition);
        let expires_ms = now_ms + ttl_ms;
        let inserted = tx
            .execute(
                "INSERT INTO leases (topic, part, holder, epoch, expires_ms) VALUES ($1, $2, $3, 1, $4)
                 ON CONFLICT (topic, part) DO NOTHING",
                &[&topic, &part, &agent, &expires_ms],
            )
            .await
            .map_err(db)?;
        if inserted == 1 {
            tx.commit().await.map_err(db)?;
            return Ok(LeaseGrant {
                epoch: 1,
                expires_ms,
            });
        }
        let Some(cur) = lease_row(&tx, topic, partition, true).await? else {
            return Err(MetaError::backend("lease row vanished during acquire"));
        };
        let epoch = if cur.holder == agent {
            cur.epoch
        } else if cur.expires_ms > now_ms {
            return Err(MetaError::LeaseHeld {
                topic: topic.into(),
                partition,
                holder: cur.holder,
                expires_ms: cur.expires_ms,
            });
        } else {
            cur.epoch + 1
        };
        tx.execute(
            "UPDATE leases SET holder = $3, epoch = $4, expires_ms = $5 WHERE topic = $1 AND part = $2",
            &[&topic, &part, &agent, &to_i64(epoch), &expires_ms],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(LeaseGrant { epoch, expires_ms })
    }

    pub async fn renew_lease(
        &self,
        topic: &str,
        partition: u32,
        agent: &str,
        epoch: u64,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<LeaseGrant, MetaError> {
        let c = self.client().await?;
        let expires_ms = now_ms + ttl_ms;
        let n = c
            .execute(
                "UPDATE leases SET expires_ms = $5 WHERE topic = $1 AND part = $2 AND holder = $3 AND epoch = $4",
                &[&topic, &i64::from(partition), &agent, &to_i64(epoch), &expires_ms],
            )
            .await
            .map_err(db)?;
        if n == 1 {
            return Ok(LeaseGrant { epoch, expires_ms });
        }
        let cur = lease_row(&*c, topic, partition, false).await?;
        Err(fenced(topic, partition, agent, epoch, cur))
    }

    pub async fn renew_leases(
        &self,
        leases: &[(String, u32, u64)],
        agent: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Vec<Result<LeaseGrant, MetaError>>, MetaError> {
        let expires_ms = now_ms + ttl_ms;
        let c = self.client().await?;
        // One statement, no transaction open across round trips: an agent
        // stopped (SIGSTOP, a frozen VM) between two statements would keep
        // the rows locked and hold up the agents taking its partitions over.
        let topics: Vec<&str> = leases.iter().map(|(t, _, _)| t.as_str()).collect();
        let parts: Vec<i64> = leases.iter().map(|(_, p, _)| i64::from(*p)).collect();
        let epochs: Vec<i64> = leases.iter().map(|(_, _, e)| to_i64(*e)).collect();
        let renewed = c
            .query(
                // Rows are locked in (topic, part) order, as a chunk
                // commit locks them: two transactions locking the same
                // rows in other orders deadlock, and PostgreSQL then aborts
                // one of them after a second, each time.
                "WITH mine AS ( \
                     SELECT l.topic, l.part FROM leases l \
                     JOIN unnest($2::text[], $3::bigint[], $4::bigint[]) AS r(topic, part, epoch) \
                     ON l.topic = r.topic AND l.part = r.part AND l.epoch = r.epoch \
                     WHERE l.holder = $5 ORDER BY l.topic COLLATE \"C\", l.part FOR UPDATE OF l) \
                 UPDATE leases SET expires_ms = $1 FROM mine \
                 WHERE leases.topic = mine.topic AND leases.part = mine.part \
                 RETURNING leases.topic, leases.part, leases.epoch",
                &[&expires_ms, &topics, &parts, &epochs, &agent],
            )
            .await
            .map_err(db)?;
        let renewed: std::collections::HashSet<(String, i64, i64)> = renewed
            .iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    r.get::<_, i64>(1),
                    r.get::<_, i64>(2),
                )
            })
            .collect();
        let mut out = Vec::with_capacity(leases.len());
        for (topic, partition, epoch) in leases {
            out.push(
                if renewed.contains(&(topic.clone(), i64::from(*partition), to_i64(*epoch))) {
                    Ok(LeaseGrant {
                        epoch: *epoch,
                        expires_ms,
                    })
                } else {
                    let cur = lease_row(&*c, topic, *partition, false).await?;
                    Err(fenced(topic, *partition, agent, *epoch, cur))
                },
            );
        }
        Ok(out)
    }

    pub async fn release_lease(
        &self,
        topic: &str,
        partition: u32,
        agent: &str,
        epoch: u64,
    ) -> Result<(), MetaError> {
        let c = self.client().await?;
        c.execute(
            "UPDATE leases SET expires_ms = 0 WHERE topic = $1 AND part = $2 AND holder = $3 AND epoch = $4",
            &[&topic, &i64::from(partition), &agent, &to_i64(epoch)],
        )
        .await
        .map_err(db)?;
        Ok(())
    }

    pub async fn lease(&self, topic: &str, partition: u32) -> Result<Option<LeaseRow>, MetaError> {
        let c = self.client().await?;
        lease_row(&*c, topic, partition, false).await
    }

    pub async fn topic_leases(&self, topic: &str) -> Result<Vec<(u32, LeaseRow)>, MetaError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT part, holder, epoch, expires_ms FROM leases WHERE topic = $1 ORDER BY part",
                &[&topic],
            )
            .await
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    u32::try_from(r.get::<_, i64>(0)).unwrap_or(u32::MAX),
                    LeaseRow {
                        holder: r.get(1),
                        epoch: to_u64(r.get(2)),
                        expires_ms: r.get(3),
                    },
                )
            })
            .collect())
    }

    pub async fn commit_chunk(
        &self,
        agent: &str,
        chunk: &ChunkCommit,
        now_ms: i64,
    ) -> Result<bool, MetaError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        let inserted = tx
            .execute(
                "INSERT INTO chunks (key, agent, size) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
                &[&chunk.key, &agent, &to_i64(chunk.size)],
            )
            .await
            .map_err(db)?;
        if inserted == 0 {
            return Ok(false);
        }
        // Every lease row the chunk needs is locked first, in (topic, part)
        // order, as lease renewal locks them (see `renew_leases`).
        let mut rows: Vec<(&str, u32)> = chunk
            .ranges
            .iter()
            .map(|r| (r.topic.as_str(), r.partition))
            .collect();
        rows.sort_unstable();
        rows.dedup();
        for (topic, partition) in rows {
            lease_row(&tx, topic, partition, true).await?;
        }
        for r in &chunk.ranges {
            // The lease row is locked (FOR UPDATE): commits to one
            // partition are serialized, so its committed end holds still.
            let cur = lease_row(&tx, &r.topic, r.partition, true).await?;
            if !cur
                .as_ref()
                .is_some_and(|l| l.holder == agent && l.epoch == r.epoch)
            {
                return Err(fenced(&r.topic, r.partition, agent, r.epoch, cur));
            }
            let end = tx
                .query_one(
                    "SELECT COALESCE(MAX(end_offset), 0) FROM chunk_ranges WHERE topic = $1 AND part = $2",
                    &[&r.topic, &i64::from(r.partition)],
                )
                .await
                .map_err(db)?;
            if !continues(r, to_u64(end.get(0)))? {
                continue;
            }
            tx.execute(
                "INSERT INTO chunk_ranges (topic, part, base_offset, end_offset, chunk_key, pos, len, epoch)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &r.topic,
                    &i64::from(r.partition),
                    &to_i64(r.base_offset),
                    &to_i64(r.end_offset),
                    &chunk.key,
                    &to_i64(r.pos),
                    &to_i64(r.len),
                    &to_i64(r.epoch),
                ],
            )
            .await
            .map_err(db)?;
            let part = i64::from(r.partition);
            let end = to_i64(r.end_offset);
            for (producer_id, batches) in encode_producers(&r.producers) {
                tx.execute(
                    "INSERT INTO producer_state (topic, part, producer_id, batches, end_offset, updated_ms)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (topic, part, producer_id) DO UPDATE SET
                         batches = excluded.batches, end_offset = excluded.end_offset,
                         updated_ms = excluded.updated_ms
                     WHERE producer_state.end_offset <= excluded.end_offset",
                    &[&r.topic, &part, &producer_id, &batches, &end, &now_ms],
                )
                .await
                .map_err(db)?;
            }
            tx.execute(
                "DELETE FROM producer_state WHERE topic = $1 AND part = $2 AND updated_ms < $3",
                &[
                    &r.topic,
                    &part,
                    &now_ms.saturating_sub(PRODUCER_STATE_TTL_MS),
                ],
            )
            .await
            .map_err(db)?;
            tx.execute(
                "DELETE FROM producer_state WHERE topic = $1 AND part = $2 AND end_offset < (
                     SELECT end_offset FROM producer_state WHERE topic = $1 AND part = $2
                     ORDER BY end_offset DESC LIMIT 1 OFFSET $3)",
                &[&r.topic, &part, &(MAX_STORED_PRODUCERS - 1)],
            )
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    pub async fn producer_state(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<Vec<RememberedBatch>, MetaError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT producer_id, batches FROM producer_state WHERE topic = $1 AND part = $2",
                &[&topic, &i64::from(partition)],
            )
            .await
            .map_err(db)?;
        let mut out = Vec::new();
        for r in rows {
            let text: String = r.get(1);
            out.extend(decode_producers(r.get(0), &text)?);
        }
        Ok(out)
    }

    pub async fn chunk_committed(&self, key: &str) -> Result<bool, MetaError> {
        let c = self.client().await?;
        Ok(
            c.query_opt("SELECT key FROM chunks WHERE key = $1", &[&key])
                .await
                .map_err(db)?
                .is_some(),
        )
    }

    pub async fn find_range(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
    ) -> Result<Option<RangeLocation>, MetaError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT chunk_key, base_offset, end_offset, pos, len FROM chunk_ranges
                 WHERE topic = $1 AND part = $2 AND end_offset > $3
                 ORDER BY end_offset LIMIT 1",
                &[&topic, &i64::from(partition), &to_i64(offset)],
            )
            .await
            .map_err(db)?;
        Ok(row.map(|r| RangeLocation {
            chunk_key: r.get(0),
            base_offset: to_u64(r.get(1)),
            end_offset: to_u64(r.get(2)),
            pos: to_u64(r.get(3)),
            len: to_u64(r.get(4)),
        }))
    }

    pub async fn committed_end(&self, topic: &str, partition: u32) -> Result<u64, MetaError> {
        let c = self.client().await?;
        let r = c
            .query_one(
                "SELECT COALESCE(MAX(end_offset), 0) FROM chunk_ranges WHERE topic = $1 AND part = $2",
                &[&topic, &i64::from(partition)],
            )
            .await
            .map_err(db)?;
        Ok(to_u64(r.get(0)))
    }

    pub async fn heartbeat(&self, agent: &AgentRow) -> Result<(), MetaError> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO agents (agent_id, addresses, heartbeat_ms, failed_shards)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (agent_id) DO UPDATE SET addresses = EXCLUDED.addresses,
             heartbeat_ms = EXCLUDED.heartbeat_ms, failed_shards = EXCLUDED.failed_shards",
            &[
                &agent.agent_id,
                &agent.shard_addresses.join(","),
                &agent.heartbeat_ms,
                &encode_shards(&agent.failed_shards),
            ],
        )
        .await
        .map_err(db)?;
        Ok(())
    }

    pub async fn live_agents(&self, since_ms: i64) -> Result<Vec<AgentRow>, MetaError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT agent_id, addresses, heartbeat_ms, failed_shards FROM agents
                 WHERE heartbeat_ms > $1 ORDER BY agent_id",
                &[&since_ms],
            )
            .await
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| AgentRow {
                agent_id: r.get(0),
                shard_addresses: split_addresses(&r.get::<_, String>(1)),
                heartbeat_ms: r.get(2),
                failed_shards: decode_shards(&r.get::<_, String>(3)),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_the_password() {
        assert_eq!(
            super::redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
