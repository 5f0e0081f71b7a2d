//! Log starts in PostgreSQL: reading a partition's, finding where
//! retention lets it start, and advancing it (deleting the ranges below it)
//! in one transaction holding the partition's lease row (`FOR UPDATE`, as
//! chunk commits do, so the two never interleave on one partition).

use tokio_postgres::GenericClient;

use crate::metastore::sql::retention::{
    retention_start, DEAD_CHUNKS, DELETE_GONE, FIRST_UNEXPIRED, FIRST_WITHIN_BYTES, FORGET_CHUNK,
    GONE_END, LOG_START, RANGES_END, SET_LOG_START, STORED,
};
use crate::metastore::sqlite::fenced;
use crate::metastore::{to_i64, to_u64, MetaError, Stored};

use super::leases::lease_row;
use super::{db, PostgresStore};

/// `(start_offset, deleted_end)` of a partition; `(0, 0)` without a row.
pub(super) async fn log_start_in(
    c: &impl GenericClient,
    topic: &str,
    partition: u32,
) -> Result<(u64, u64), MetaError> {
    let row = c
        .query_opt(LOG_START, &[&topic, &i64::from(partition)])
        .await
        .map_err(db)?;
    Ok(row.map_or((0, 0), |r| (to_u64(r.get(0)), to_u64(r.get(1)))))
}

/// Stores a partition's log start and deleted end.
pub(super) async fn set_log_start_in(
    c: &impl GenericClient,
    topic: &str,
    partition: u32,
    start: u64,
    deleted_end: u64,
) -> Result<(), MetaError> {
    c.execute(
        SET_LOG_START,
        &[
            &topic,
            &i64::from(partition),
            &to_i64(start),
            &to_i64(deleted_end),
        ],
    )
    .await
    .map_err(db)?;
    Ok(())
}

async fn ranges_end_in(
    c: &impl GenericClient,
    topic: &str,
    partition: u32,
) -> Result<u64, MetaError> {
    let r = c
        .query_one(RANGES_END, &[&topic, &i64::from(partition)])
        .await
        .map_err(db)?;
    Ok(to_u64(r.get(0)))
}

/// Where a partition's committed data ends: after its last range, or
/// where the ranges retention deleted ended.
pub(super) async fn committed_end_in(
    c: &impl GenericClient,
    topic: &str,
    partition: u32,
) -> Result<u64, MetaError> {
    let (_, deleted_end) = log_start_in(c, topic, partition).await?;
    Ok(ranges_end_in(c, topic, partition).await?.max(deleted_end))
}

impl PostgresStore {
    pub async fn log_start(&self, topic: &str, partition: u32) -> Result<u64, MetaError> {
        let c = self.client().await?;
        Ok(log_start_in(&*c, topic, partition).await?.0)
    }

    pub async fn retention_point(
        &self,
        topic: &str,
        partition: u32,
        cutoff_ms: Option<i64>,
        max_bytes: Option<u64>,
    ) -> Result<Option<u64>, MetaError> {
        let c = self.client().await?;
        let p = i64::from(partition);
        let mut answers = [None, None];
        for (answer, (sql, bound)) in answers.iter_mut().zip([
            (FIRST_UNEXPIRED, cutoff_ms),
            (FIRST_WITHIN_BYTES, max_bytes.map(to_i64)),
        ]) {
            if let Some(bound) = bound {
                let r = c.query_one(sql, &[&topic, &p, &bound]).await.map_err(db)?;
                *answer = Some(r.get::<_, Option<i64>>(0));
            }
        }
        let [unexpired, within] = answers;
        Ok(retention_start(
            ranges_end_in(&*c, topic, partition).await?,
            unexpired,
            within,
        ))
    }

    pub async fn advance_log_start(
        &self,
        agent: &str,
        topic: &str,
        partition: u32,
        epoch: u64,
        to: u64,
    ) -> Result<u64, MetaError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        let cur = lease_row(&tx, topic, partition, true).await?;
        if !cur
            .as_ref()
            .is_some_and(|l| l.holder == agent && l.epoch == epoch)
        {
            return Err(fenced(topic, partition, agent, epoch, cur));
        }
        let (start, deleted_end) = log_start_in(&tx, topic, partition).await?;
        let start = start.max(to);
        let p = i64::from(partition);
        let gone = tx
            .query_one(GONE_END, &[&topic, &p, &to_i64(start)])
            .await
            .map_err(db)?;
        tx.execute(DELETE_GONE, &[&topic, &p, &to_i64(start)])
            .await
            .map_err(db)?;
        let deleted_end = deleted_end.max(to_u64(gone.get(0)));
        set_log_start_in(&tx, topic, partition, start, deleted_end).await?;
        tx.commit().await.map_err(db)?;
        Ok(start)
    }

    pub async fn stored(&self, topic: &str, partition: u32) -> Result<Stored, MetaError> {
        let c = self.client().await?;
        let r = c
            .query_one(STORED, &[&topic, &i64::from(partition)])
            .await
            .map_err(db)?;
        Ok(Stored {
            bytes: to_u64(r.get(0)),
            objects: to_u64(r.get(1)),
        })
    }

    pub async fn dead_chunks(&self, limit: u32) -> Result<Vec<String>, MetaError> {
        let c = self.client().await?;
        let rows = c
            .query(DEAD_CHUNKS, &[&i64::from(limit)])
            .await
            .map_err(db)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub async fn forget_chunk(&self, key: &str) -> Result<bool, MetaError> {
        let c = self.client().await?;
        let n = c.execute(FORGET_CHUNK, &[&key]).await.map_err(db)?;
        Ok(n > 0)
    }
}
