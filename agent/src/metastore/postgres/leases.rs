//! Leases in PostgreSQL: acquiring (a new holder gets `epoch + 1`), renewing
//! one or many in one round trip, releasing, and reading them back. Every
//! write locks the lease row it changes.

use tokio_postgres::GenericClient;

use crate::cluster::leader_epochs::{EpochStart, MAX_EPOCHS_KEPT};
use crate::ids::PartitionId;
use crate::metastore::sql;
use crate::metastore::sqlite::fenced;
use crate::metastore::{
    takeover_allowed, to_i64, to_u64, LeaseGrant, LeaseRow, MetaError, Takeover, BUMP_LEASE_BEATS,
};

use super::{db, PostgresStore};

impl PostgresStore {
    pub async fn acquire_lease(
        &self,
        topic: &str,
        partition: u32,
        agent: &str,
        (now_ms, ttl_ms): (i64, i64),
        take: Option<&Takeover>,
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
            record_epoch_start(&tx, topic, part, 1).await?;
            tx.execute(BUMP_LEASE_BEATS, &[&agent]).await.map_err(db)?;
            tx.commit().await.map_err(db)?;
            return Ok(LeaseGrant {
                epoch: 1,
                expires_ms,
            });
        }
        let Some(cur) = lease_row(&tx, topic, partition, true).await? else {
            return Err(MetaError::backend("lease row vanished during acquire"));
        };
        // The holder's renewals lock this row too: one that commits first
        // has moved its lease_beats when they are read here.
        let epoch = if cur.holder == agent {
            cur.epoch
        } else if cur.expires_ms == 0
            || takeover_allowed(&cur, lease_beats(&tx, &cur.holder).await?, take, now_ms)
        {
            cur.epoch + 1
        } else {
            return Err(MetaError::LeaseHeld {
                topic: topic.into(),
                partition,
                holder: cur.holder,
                expires_ms: cur.expires_ms,
            });
        };
        tx.execute(
            sql::leases::SET_LEASE,
            &[&topic, &part, &agent, &to_i64(epoch), &expires_ms],
        )
        .await
        .map_err(db)?;
        // A new epoch begins at the committed end (chunk commits lock this
        // lease row, so none is under way); one's own lease keeps its epoch.
        if epoch != cur.epoch {
            record_epoch_start(&tx, topic, part, epoch).await?;
        }
        tx.execute(BUMP_LEASE_BEATS, &[&agent]).await.map_err(db)?;
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
        // One statement: the renewal and its count in the holder's
        // lease_beats commit together.
        let n: i64 = c
            .query_one(
                "WITH upd AS (UPDATE leases SET expires_ms = $5 \
                     WHERE topic = $1 AND part = $2 AND holder = $3 AND epoch = $4 RETURNING 1), \
                 bump AS (INSERT INTO agents (agent_id, addresses, heartbeat_ms, lease_beats) \
                     SELECT $3, '', 0, 1 WHERE EXISTS (SELECT 1 FROM upd) \
                     ON CONFLICT (agent_id) DO UPDATE SET lease_beats = agents.lease_beats + 1) \
                 SELECT count(*) FROM upd",
                &[
                    &topic,
                    &i64::from(partition),
                    &agent,
                    &to_i64(epoch),
                    &expires_ms,
                ],
            )
            .await
            .map_err(db)?
            .get(0);
        if n == 1 {
            return Ok(LeaseGrant { epoch, expires_ms });
        }
        let cur = lease_row(&*c, topic, partition, false).await?;
        Err(fenced(topic, partition, agent, epoch, cur))
    }

    pub async fn renew_leases(
        &self,
        leases: &[(PartitionId, u64)],
        agent: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Vec<Result<LeaseGrant, MetaError>>, MetaError> {
        let expires_ms = now_ms + ttl_ms;
        let c = self.client().await?;
        // One statement, no transaction open across round trips: an agent
        // stopped (SIGSTOP, a frozen VM) between two statements would keep
        // the rows locked and hold up the agents taking its partitions over.
        let topics: Vec<&str> = leases.iter().map(|(id, _)| id.topic.as_str()).collect();
        let parts: Vec<i64> = leases
            .iter()
            .map(|(id, _)| i64::from(id.partition))
            .collect();
        let epochs: Vec<i64> = leases.iter().map(|(_, e)| to_i64(*e)).collect();
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
                     WHERE l.holder = $5 ORDER BY l.topic COLLATE \"C\", l.part FOR UPDATE OF l), \
                 upd AS (UPDATE leases SET expires_ms = $1 FROM mine \
                     WHERE leases.topic = mine.topic AND leases.part = mine.part \
                     RETURNING leases.topic, leases.part, leases.epoch), \
                 bump AS (INSERT INTO agents (agent_id, addresses, heartbeat_ms, lease_beats) \
                     SELECT $5, '', 0, 1 WHERE EXISTS (SELECT 1 FROM upd) \
                     ON CONFLICT (agent_id) DO UPDATE SET lease_beats = agents.lease_beats + 1) \
                 SELECT topic, part, epoch FROM upd",
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
        for (id, epoch) in leases {
            let (topic, partition) = (id.topic.as_str(), &id.partition);
            out.push(
                if renewed.contains(&(topic.to_owned(), i64::from(*partition), to_i64(*epoch))) {
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
            sql::leases::RELEASE_LEASE,
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
            .query(sql::leases::TOPIC_LEASES, &[&topic])
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
}

pub(super) async fn lease_row(
    c: &impl GenericClient,
    topic: &str,
    partition: u32,
    lock: bool,
) -> Result<Option<LeaseRow>, MetaError> {
    let sql = if lock {
        "SELECT holder, epoch, expires_ms FROM leases WHERE topic = $1 AND part = $2 FOR UPDATE"
    } else {
        sql::leases::LEASE
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

async fn record_epoch_start(
    tx: &impl GenericClient,
    topic: &str,
    part: i64,
    epoch: u64,
) -> Result<(), MetaError> {
    tx.execute(
        sql::leases::RECORD_EPOCH_START,
        &[&topic, &part, &to_i64(epoch)],
    )
    .await
    .map_err(db)?;
    Ok(())
}

impl PostgresStore {
    /// The newest [`MAX_EPOCHS_KEPT`] epoch starts of a partition.
    pub async fn leader_epochs(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<Vec<EpochStart>, MetaError> {
        let c = self.client().await?;
        let rows = c
            .query(
                sql::leases::EPOCH_STARTS,
                &[&topic, &i64::from(partition), &(MAX_EPOCHS_KEPT as i64)],
            )
            .await
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| EpochStart {
                epoch: to_u64(r.get(0)),
                start_offset: to_u64(r.get(1)),
            })
            .collect())
    }
}

/// `agent`'s lease grants and renewals so far (0 when it has no row).
async fn lease_beats(c: &impl GenericClient, agent: &str) -> Result<u64, MetaError> {
    let row = c
        .query_opt(sql::leases::LEASE_BEATS, &[&agent])
        .await
        .map_err(db)?;
    Ok(row.map_or(0, |r| to_u64(r.get(0))))
}
