//! Compaction's chunk index calls in PostgreSQL: weighing a partition's
//! ranges, switching them to a rewritten object in one transaction holding
//! the partition's lease row (`FOR UPDATE`, as chunk commits and retention
//! do, so none of them interleave on one partition), and claiming an
//! orphan object for the sweep.

use crate::metastore::compaction::{
    CompactedFrom, RangeSwitch, CLAIM_CHUNK, COMPACTED_KEYS, DELETE_RANGE, INSERT_RANGE,
    RANGES_TO_WEIGH, RANGE_UNCHANGED,
};
use crate::metastore::sqlite::fenced;
use crate::metastore::{to_i64, to_u64, MetaError};

use super::leases::lease_row;
use super::{db, PostgresStore};

impl PostgresStore {
    pub async fn ranges_to_weigh(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        limit: u32,
    ) -> Result<Vec<CompactedFrom>, MetaError> {
        let c = self.client().await?;
        let rows = c
            .query(
                RANGES_TO_WEIGH,
                &[
                    &topic,
                    &i64::from(partition),
                    &to_i64(from),
                    &i64::from(limit),
                ],
            )
            .await
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| CompactedFrom {
                base_offset: to_u64(r.get(0)),
                end_offset: to_u64(r.get(1)),
                chunk_key: r.get(2),
                pos: to_u64(r.get(3)),
                len: to_u64(r.get(4)),
                bytes: to_u64(r.get(5)),
                epoch: to_u64(r.get(6)),
                max_timestamp: r.get(7),
                object_size: to_u64(r.get(8)),
                object_live: to_u64(r.get(9)),
            })
            .collect())
    }

    pub async fn switch_ranges(
        &self,
        agent: &str,
        epoch: u64,
        s: &RangeSwitch,
    ) -> Result<bool, MetaError> {
        let (topic, p) = (s.topic.as_str(), i64::from(s.partition));
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        let cur = lease_row(&tx, topic, s.partition, true).await?;
        if !cur
            .as_ref()
            .is_some_and(|l| l.holder == agent && l.epoch == epoch)
        {
            return Err(fenced(topic, s.partition, agent, epoch, cur));
        }
        for f in &s.from {
            let same = tx
                .query_opt(
                    RANGE_UNCHANGED,
                    &[
                        &topic,
                        &p,
                        &to_i64(f.base_offset),
                        &f.chunk_key,
                        &to_i64(f.pos),
                        &to_i64(f.len),
                        &to_i64(f.end_offset),
                    ],
                )
                .await
                .map_err(db)?;
            if same.is_none() {
                return Ok(false);
            }
        }
        let claimed = tx
            .execute(CLAIM_CHUNK, &[&s.key, &agent, &to_i64(s.size)])
            .await
            .map_err(db)?;
        if claimed == 0 {
            return Ok(false);
        }
        for f in &s.from {
            tx.execute(DELETE_RANGE, &[&topic, &p, &to_i64(f.base_offset)])
                .await
                .map_err(db)?;
        }
        for t in &s.to {
            tx.execute(
                INSERT_RANGE,
                &[
                    &topic,
                    &p,
                    &to_i64(t.base_offset),
                    &to_i64(t.end_offset),
                    &s.key,
                    &to_i64(t.pos),
                    &to_i64(t.len),
                    &to_i64(t.epoch),
                    &t.max_timestamp,
                ],
            )
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    pub async fn compacted_keys(&self) -> Result<Vec<String>, MetaError> {
        let c = self.client().await?;
        let rows = c.query(COMPACTED_KEYS, &[]).await.map_err(db)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub async fn claim_orphan(&self, key: &str, size: u64) -> Result<bool, MetaError> {
        let c = self.client().await?;
        let n = c
            .execute(CLAIM_CHUNK, &[&key, &"", &to_i64(size)])
            .await
            .map_err(db)?;
        Ok(n > 0)
    }
}
