//! Log starts in SQLite: reading a partition's, finding where retention
//! lets it start, and advancing it (deleting the ranges below it) under the
//! partition's lease, in one immediate transaction.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::metastore::sql::for_sqlite;
use crate::metastore::sql::retention::{
    retention_start, DEAD_CHUNKS, DELETE_GONE, FIRST_UNEXPIRED, FIRST_WITHIN_BYTES, FORGET_CHUNK,
    GONE_END, LOG_START, RANGES_END, SET_LOG_START, STORED,
};
use crate::metastore::{to_i64, to_u64, MetaError, Stored};

use super::leases::lease_row;
use super::{db, fenced, SqliteStore};

/// `(start_offset, deleted_end)` of a partition; `(0, 0)` without a row.
pub(super) fn log_start_in(
    conn: &Connection,
    topic: &str,
    partition: u32,
) -> Result<(u64, u64), MetaError> {
    let row: Option<(i64, i64)> = conn
        .query_row(
            &for_sqlite(LOG_START),
            params![topic, i64::from(partition)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db)?;
    Ok(row.map_or((0, 0), |(s, d)| (to_u64(s), to_u64(d))))
}

/// Stores a partition's log start and deleted end.
pub(super) fn set_log_start_in(
    conn: &Connection,
    topic: &str,
    partition: u32,
    start: u64,
    deleted_end: u64,
) -> Result<(), MetaError> {
    conn.execute(
        &for_sqlite(SET_LOG_START),
        params![
            topic,
            i64::from(partition),
            to_i64(start),
            to_i64(deleted_end)
        ],
    )
    .map_err(db)?;
    Ok(())
}

fn ranges_end_in(conn: &Connection, topic: &str, partition: u32) -> Result<u64, MetaError> {
    let end: i64 = conn
        .query_row(
            &for_sqlite(RANGES_END),
            params![topic, i64::from(partition)],
            |r| r.get(0),
        )
        .map_err(db)?;
    Ok(to_u64(end))
}

/// Where a partition's committed data ends: after its last range, or
/// where the ranges retention deleted ended.
pub(super) fn committed_end_in(
    conn: &Connection,
    topic: &str,
    partition: u32,
) -> Result<u64, MetaError> {
    let (_, deleted_end) = log_start_in(conn, topic, partition)?;
    Ok(ranges_end_in(conn, topic, partition)?.max(deleted_end))
}

impl SqliteStore {
    pub fn log_start(&self, topic: &str, partition: u32) -> Result<u64, MetaError> {
        Ok(log_start_in(&self.conn.lock(), topic, partition)?.0)
    }

    pub fn retention_point(
        &self,
        topic: &str,
        partition: u32,
        cutoff_ms: Option<i64>,
        max_bytes: Option<u64>,
    ) -> Result<Option<u64>, MetaError> {
        let conn = self.conn.lock();
        let p = i64::from(partition);
        let first = |sql: &str, bound: i64| -> Result<Option<i64>, MetaError> {
            conn.query_row(sql, params![topic, p, bound], |r| r.get(0))
                .map_err(db)
        };
        let unexpired = cutoff_ms
            .map(|c| first(&for_sqlite(FIRST_UNEXPIRED), c))
            .transpose()?;
        let within = max_bytes
            .map(|b| first(&for_sqlite(FIRST_WITHIN_BYTES), to_i64(b)))
            .transpose()?;
        Ok(retention_start(
            ranges_end_in(&conn, topic, partition)?,
            unexpired,
            within,
        ))
    }

    pub fn advance_log_start(
        &self,
        agent: &str,
        topic: &str,
        partition: u32,
        epoch: u64,
        to: u64,
    ) -> Result<u64, MetaError> {
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let cur = lease_row(&tx, topic, partition)?;
        if !cur
            .as_ref()
            .is_some_and(|l| l.holder == agent && l.epoch == epoch)
        {
            return Err(fenced(topic, partition, agent, epoch, cur));
        }
        let (start, deleted_end) = log_start_in(&tx, topic, partition)?;
        let start = start.max(to);
        let p = i64::from(partition);
        let gone: i64 = tx
            .query_row(
                &for_sqlite(GONE_END),
                params![topic, p, to_i64(start)],
                |r| r.get(0),
            )
            .map_err(db)?;
        tx.execute(&for_sqlite(DELETE_GONE), params![topic, p, to_i64(start)])
            .map_err(db)?;
        set_log_start_in(&tx, topic, partition, start, deleted_end.max(to_u64(gone)))?;
        tx.commit().map_err(db)?;
        Ok(start)
    }

    pub fn stored(&self, topic: &str, partition: u32) -> Result<Stored, MetaError> {
        self.conn
            .lock()
            .query_row(STORED, params![topic, i64::from(partition)], |r| {
                Ok(Stored {
                    bytes: to_u64(r.get(0)?),
                    objects: to_u64(r.get(1)?),
                })
            })
            .map_err(db)
    }

    pub fn dead_chunks(&self, limit: u32) -> Result<Vec<String>, MetaError> {
        let conn = self.conn.lock();
        let mut st = conn.prepare_cached(&for_sqlite(DEAD_CHUNKS)).map_err(db)?;
        let rows = st
            .query_map(params![i64::from(limit)], |r| r.get(0))
            .map_err(db)?;
        rows.collect::<Result<Vec<String>, _>>().map_err(db)
    }

    pub fn forget_chunk(&self, key: &str) -> Result<bool, MetaError> {
        let n = self
            .conn
            .lock()
            .execute(&for_sqlite(FORGET_CHUNK), params![key])
            .map_err(db)?;
        Ok(n > 0)
    }
}
