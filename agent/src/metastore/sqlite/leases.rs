//! Leases in SQLite: acquiring (a new holder gets `epoch + 1`), renewing
//! one or many in one transaction, releasing, and reading them back.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::cluster::leader_epochs::{EpochStart, MAX_EPOCHS_KEPT};
use crate::ids::PartitionId;
use crate::metastore::sql::{self, for_sqlite};
use crate::metastore::{
    takeover_allowed, to_i64, to_u64, LeaseGrant, LeaseRow, MetaError, Takeover, BUMP_LEASE_BEATS,
};

use super::{db, fenced, SqliteStore};

/// Extends a lease ($1 topic, $2 partition) to $5 (ms) if holder $3
/// still holds it at epoch $4 (PostgreSQL renews inside a statement that
/// also counts the beat).
const RENEW_LEASE: &str =
    "UPDATE leases SET expires_ms = ?5 WHERE topic = ?1 AND part = ?2 AND holder = ?3 AND epoch = ?4";

impl SqliteStore {
    pub fn acquire_lease(
        &self,
        topic: &str,
        partition: u32,
        agent: &str,
        (now_ms, ttl_ms): (i64, i64),
        take: Option<&Takeover>,
    ) -> Result<LeaseGrant, MetaError> {
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let cur = lease_row(&tx, topic, partition)?;
        let cur_epoch = cur.as_ref().map(|l| l.epoch);
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
            // Released by its holder.
            Some(l) if l.expires_ms == 0 => l.epoch + 1,
            Some(l) if takeover_allowed(&l, lease_beats(&tx, &l.holder)?, take, now_ms) => {
                l.epoch + 1
            }
            Some(l) => {
                return Err(MetaError::LeaseHeld {
                    topic: topic.into(),
                    partition,
                    holder: l.holder,
                    expires_ms: l.expires_ms,
                })
            }
        };
        tx.execute(
            &for_sqlite(sql::leases::SET_LEASE),
            params![
                topic,
                i64::from(partition),
                agent,
                to_i64(epoch),
                expires_ms
            ],
        )
        .map_err(db)?;
        // A new epoch begins at the committed end (nothing commits under
        // the old one any more: this transaction holds the write lock).
        // Re-acquiring one's own lease keeps the epoch and its start.
        if cur_epoch != Some(epoch) {
            tx.execute(
                &for_sqlite(sql::leases::RECORD_EPOCH_START),
                params![topic, i64::from(partition), to_i64(epoch)],
            )
            .map_err(db)?;
        }
        tx.execute(BUMP_LEASE_BEATS, params![agent]).map_err(db)?;
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
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let n = tx
            .execute(
                RENEW_LEASE,
                params![
                    topic,
                    i64::from(partition),
                    agent,
                    to_i64(epoch),
                    expires_ms
                ],
            )
            .map_err(db)?;
        if n == 1 {
            tx.execute(BUMP_LEASE_BEATS, params![agent]).map_err(db)?;
            tx.commit().map_err(db)?;
            return Ok(LeaseGrant { epoch, expires_ms });
        }
        let cur = lease_row(&tx, topic, partition)?;
        Err(fenced(topic, partition, agent, epoch, cur))
    }

    pub fn renew_leases(
        &self,
        leases: &[(PartitionId, u64)],
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
        for (id, epoch) in leases {
            let (topic, partition) = (id.topic.as_str(), &id.partition);
            let n = tx
                .execute(
                    RENEW_LEASE,
                    params![
                        topic,
                        i64::from(*partition),
                        agent,
                        to_i64(*epoch),
                        expires_ms
                    ],
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
        if out.iter().any(Result::is_ok) {
            tx.execute(BUMP_LEASE_BEATS, params![agent]).map_err(db)?;
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
                &for_sqlite(sql::leases::RELEASE_LEASE),
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
            .prepare(&for_sqlite(sql::leases::TOPIC_LEASES))
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
}

impl SqliteStore {
    /// The newest [`MAX_EPOCHS_KEPT`] epoch starts of a partition.
    pub fn leader_epochs(&self, topic: &str, partition: u32) -> Result<Vec<EpochStart>, MetaError> {
        let conn = self.conn.lock();
        let mut st = conn
            .prepare(&for_sqlite(sql::leases::EPOCH_STARTS))
            .map_err(db)?;
        let rows = st
            .query_map(
                params![topic, i64::from(partition), MAX_EPOCHS_KEPT as i64],
                |r| {
                    Ok(EpochStart {
                        epoch: to_u64(r.get(0)?),
                        start_offset: to_u64(r.get(1)?),
                    })
                },
            )
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }
}

pub(super) fn lease_row(
    conn: &Connection,
    topic: &str,
    partition: u32,
) -> Result<Option<LeaseRow>, MetaError> {
    conn.query_row(
        &for_sqlite(sql::leases::LEASE),
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

/// `agent`'s lease grants and renewals so far (0 when it has no row).
fn lease_beats(conn: &Connection, agent: &str) -> Result<u64, MetaError> {
    let n: Option<i64> = conn
        .query_row(&for_sqlite(sql::leases::LEASE_BEATS), params![agent], |r| {
            r.get(0)
        })
        .optional()
        .map_err(db)?;
    Ok(to_u64(n.unwrap_or(0)))
}
