//! PostgreSQL backend of the metadata store, for agents on several hosts.
//! Writes that must be atomic run in one transaction with the lease rows
//! locked (`SELECT ... FOR UPDATE`); migrations hold an advisory lock so
//! agents starting together apply each one once. Reconnects when the server
//! dropped the connection.
//!
//! Connection, migrations, topics, producer ids and agents here; leases in
//! `leases`, chunk commits and what they committed in `chunks`, TLS and the
//! URL's `ssl*` options in `tls`.

mod backend;
mod chunks;
mod compaction;
mod groups;
mod leases;
mod retention;
mod security;
mod tls;

use std::collections::BTreeMap;

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};

use super::{
    decode_config, decode_shards, encode_config, encode_shards, next_producer_epoch,
    split_addresses, to_u64, AgentRow, MetaError, TopicChange, TopicRow, MIGRATIONS,
};
use crate::metastore::sql;

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
    /// The URL read: where to connect and with what TLS.
    target: tls::Target,
    client: Mutex<Client>,
    /// Set when a call timed out: the next call connects again.
    broken: std::sync::atomic::AtomicBool,
}

/// The error with the server's message and detail when there is one
/// (`Display` of a server error says only "db error").
fn db(e: tokio_postgres::Error) -> MetaError {
    match e.as_db_error() {
        Some(d) => {
            let text = format!(
                "postgres: {}: {}{}",
                d.code().code(),
                d.message(),
                d.detail().map(|x| format!(" ({x})")).unwrap_or_default()
            );
            if BUSY_STATES.contains(&d.code().code()) {
                MetaError::Busy(text)
            } else {
                MetaError::backend(text)
            }
        }
        None => MetaError::backend(format!("postgres: {e}")),
    }
}

/// Server errors worth trying again: serialization failure, deadlock,
/// lock not available, server starting up, too many connections.
const BUSY_STATES: [&str; 5] = ["40001", "40P01", "55P03", "57P03", "53300"];

async fn connect(url: &str, target: &tls::Target) -> Result<Client, MetaError> {
    let failed = |e: tokio_postgres::Error| {
        // The TLS error (a certificate refused, say) is the source's.
        let why = match std::error::Error::source(&e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        };
        let text = format!("cannot connect to {}: {why}", redact(url));
        match e.code() {
            Some(c) if BUSY_STATES.contains(&c.code()) => MetaError::Busy(text),
            _ => MetaError::backend(text),
        }
    };
    let ended = |e: tokio_postgres::Error| {
        tracing::warn!(error = %e, "metadata store connection ended");
    };
    let client = match &target.tls {
        None => {
            let (client, conn) = target.config.connect(NoTls).await.map_err(failed)?;
            tokio::spawn(async move { conn.await.unwrap_or_else(ended) });
            client
        }
        Some(tls) => {
            let (client, conn) = target.config.connect(tls.clone()).await.map_err(failed)?;
            tokio::spawn(async move { conn.await.unwrap_or_else(ended) });
            client
        }
    };
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

/// The metadata URL with its password (in the user info, a `password`
/// query option, or libpq's `password=` word) shown as `***`, for logs and
/// messages.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|s| s + 3) else {
        return url
            .split_whitespace()
            .map(|w| {
                if w.starts_with("password=") {
                    "password=***"
                } else {
                    w
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
    };
    let (head, query) = url.split_once('?').unwrap_or((url, ""));
    let rest = &head[scheme_end..];
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let mut out = match authority
        .rfind('@')
        .map(|at| (at, authority[..at].find(':')))
    {
        Some((at, Some(colon))) => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &authority[..colon],
            &head[scheme_end + at..]
        ),
        _ => head.to_owned(),
    };
    if !query.is_empty() {
        let options: Vec<&str> = query
            .split('&')
            .map(|o| {
                if o.starts_with("password=") {
                    "password=***"
                } else {
                    o
                }
            })
            .collect();
        out = format!("{out}?{}", options.join("&"));
    }
    out
}

impl PostgresStore {
    /// Connects and migrates.
    pub async fn connect(url: &str) -> Result<PostgresStore, MetaError> {
        let target = tls::target(url).map_err(MetaError::backend)?;
        if target.unverified {
            tracing::warn!(
                "the metadata store's TLS certificate is not checked (sslmode prefer or \
                 require without sslrootcert); use sslmode=verify-full&sslrootcert=FILE"
            );
        }
        let client = connect(url, &target).await?;
        let store = PostgresStore {
            url: url.to_owned(),
            target,
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
            *guard = connect(&self.url, &self.target).await?;
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
        tx.batch_execute(sql::topics::CREATE_MIGRATIONS)
            .await
            .map_err(db)?;
        for (version, sql) in MIGRATIONS {
            let done = tx
                .query_opt(sql::topics::MIGRATION_APPLIED, &[version])
                .await
                .map_err(db)?;
            if done.is_none() {
                tx.batch_execute(sql).await.map_err(db)?;
                tx.execute(sql::topics::RECORD_MIGRATION, &[version])
                    .await
                    .map_err(db)?;
            }
        }
        tx.commit().await.map_err(db)
    }

    pub async fn schema_version(&self) -> Result<i64, MetaError> {
        let c = self.client().await?;
        let r = c
            .query_one(sql::topics::SCHEMA_VERSION, &[])
            .await
            .map_err(db)?;
        Ok(r.get(0))
    }

    pub async fn topics(&self) -> Result<Vec<TopicRow>, MetaError> {
        let c = self.client().await?;
        let rows = c.query(sql::topics::TOPICS, &[]).await.map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| TopicRow {
                name: r.get(0),
                id: to_u64(r.get(1)),
                partitions: u32::try_from(r.get::<_, i64>(2)).unwrap_or(0),
                config: decode_config(r.get(3)),
            })
            .collect())
    }

    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        config: &BTreeMap<String, String>,
    ) -> Result<TopicRow, MetaError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        let id: i64 = tx
            .query_one(sql::topics::NEXT_TOPIC_ID, &[])
            .await
            .map_err(db)?
            .get(0);
        let n = tx
            .execute(
                "INSERT INTO topics (name, id, partitions, config) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO NOTHING",
                &[&name, &id, &i64::from(partitions), &encode_config(config)],
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
            config: config.clone(),
        })
    }

    pub async fn update_topic(
        &self,
        name: &str,
        change: &TopicChange,
    ) -> Result<TopicRow, MetaError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        let Some(row) = tx
            .query_opt(
                "SELECT id, partitions, config FROM topics WHERE name = $1 FOR UPDATE",
                &[&name],
            )
            .await
            .map_err(db)?
        else {
            return Err(MetaError::Unknown(name.into()));
        };
        let changed = change(TopicRow {
            name: name.into(),
            id: to_u64(row.get(0)),
            partitions: u32::try_from(row.get::<_, i64>(1)).unwrap_or(0),
            config: decode_config(row.get(2)),
        })?;
        tx.execute(
            sql::topics::UPDATE_TOPIC,
            &[
                &i64::from(changed.partitions),
                &encode_config(&changed.config),
                &name,
            ],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(changed)
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
            config: BTreeMap::new(),
        };
        let key = topic.key().to_string();
        tx.execute(sql::topics::DELETE_TOPIC_LEASES, &[&key])
            .await
            .map_err(db)?;
        tx.execute(sql::topics::DELETE_TOPIC_EPOCHS, &[&key])
            .await
            .map_err(db)?;
        tx.execute(sql::topics::DELETE_TOPIC_PRODUCERS, &[&key])
            .await
            .map_err(db)?;
        tx.execute(sql::topics::DELETE_TOPIC_RANGES, &[&key])
            .await
            .map_err(db)?;
        tx.execute(sql::topics::DELETE_TOPIC_OFFSETS, &[&key])
            .await
            .map_err(db)?;
        tx.execute(super::sql::retention::DELETE_TOPIC_STARTS, &[&key])
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(topic)
    }

    pub async fn next_producer_id(&self) -> Result<i64, MetaError> {
        let c = self.client().await?;
        let r = c
            .query_one(sql::topics::NEXT_PRODUCER_ID, &[])
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
            sql::topics::SET_PRODUCER_EPOCH,
            &[&producer_id, &i64::from(next)],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(next)
    }

    pub async fn heartbeat(&self, agent: &AgentRow) -> Result<(), MetaError> {
        let c = self.client().await?;
        c.execute(
            sql::topics::HEARTBEAT,
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

    pub async fn agents(&self) -> Result<Vec<AgentRow>, MetaError> {
        let c = self.client().await?;
        let rows = c.query(sql::topics::AGENTS, &[]).await.map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| AgentRow {
                agent_id: r.get(0),
                shard_addresses: split_addresses(&r.get::<_, String>(1)),
                heartbeat_ms: r.get(2),
                failed_shards: decode_shards(&r.get::<_, String>(3)),
                beats: to_u64(r.get(4)),
                lease_beats: to_u64(r.get(5)),
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
        assert_eq!(
            super::redact("postgres://u:pw@h/db?sslmode=require&password=pw2&x=a@b"),
            "postgres://u:***@h/db?sslmode=require&password=***&x=a@b"
        );
        assert_eq!(
            super::redact("host=h user=u password=secret dbname=db"),
            "host=h user=u password=*** dbname=db"
        );
    }
}
