//! Chunk commits in PostgreSQL: committing a chunk's ranges under their
//! lease epochs in one transaction, the producer state stored with them,
//! and finding a committed range or end.

use crate::metastore::compaction::CLAIM_CHUNK;
use crate::metastore::sql;
use crate::metastore::sqlite::fenced;
use crate::metastore::{
    continues, to_i64, to_u64, ChunkCommit, MetaError, RangeLocation, TimeQuery,
};
use crate::metastore::{
    decode_producers, encode_producers, RememberedBatch, MAX_STORED_PRODUCERS,
    PRODUCER_STATE_TTL_MS,
};

use super::leases::lease_row;
use super::retention::{committed_end_in, log_start_in, set_log_start_in};
use super::{db, PostgresStore};

impl PostgresStore {
    pub async fn commit_chunk(
        &self,
        agent: &str,
        chunk: &ChunkCommit,
        now_ms: i64,
    ) -> Result<bool, MetaError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        let inserted = tx
            .execute(CLAIM_CHUNK, &[&chunk.key, &agent, &to_i64(chunk.size)])
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
            let end = committed_end_in(&tx, &r.topic, r.partition).await?;
            if !continues(r, end)? {
                continue;
            }
            // Below the log start (DeleteRecords moved it past data not
            // shipped yet): counted as committed, not kept.
            let (start, deleted_end) = log_start_in(&tx, &r.topic, r.partition).await?;
            if r.end_offset <= start {
                let deleted_end = r.end_offset.max(deleted_end);
                set_log_start_in(&tx, &r.topic, r.partition, start, deleted_end).await?;
            } else {
                tx.execute(
                    sql::chunks::INSERT_RANGE,
                    &[
                        &r.topic.as_str(),
                        &i64::from(r.partition),
                        &to_i64(r.base_offset),
                        &to_i64(r.end_offset),
                        &chunk.key,
                        &to_i64(r.pos),
                        &to_i64(r.len),
                        &to_i64(r.epoch),
                        &r.max_timestamp,
                        &to_i64(r.bytes),
                    ],
                )
                .await
                .map_err(db)?;
            }
            let part = i64::from(r.partition);
            let end = to_i64(r.end_offset);
            for (producer_id, batches) in encode_producers(&r.producers) {
                tx.execute(
                    sql::chunks::UPSERT_PRODUCER,
                    &[
                        &r.topic.as_str(),
                        &part,
                        &producer_id,
                        &batches,
                        &end,
                        &now_ms,
                    ],
                )
                .await
                .map_err(db)?;
            }
            tx.execute(
                sql::chunks::EXPIRE_PRODUCERS,
                &[
                    &r.topic.as_str(),
                    &part,
                    &now_ms.saturating_sub(PRODUCER_STATE_TTL_MS),
                ],
            )
            .await
            .map_err(db)?;
            tx.execute(
                // Exactly the cap: producers ending at the same offset (all
                // those of one range) are told apart by id.
                sql::chunks::CAP_PRODUCERS,
                &[&r.topic.as_str(), &part, &MAX_STORED_PRODUCERS],
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
                sql::chunks::PRODUCER_STATE,
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
        Ok(c.query_opt(sql::chunks::CHUNK_EXISTS, &[&key])
            .await
            .map_err(db)?
            .is_some())
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
                sql::chunks::RANGE_AT,
                &[&topic, &i64::from(partition), &to_i64(offset)],
            )
            .await
            .map_err(db)?;
        Ok(row.as_ref().map(range_location))
    }

    pub async fn time_ranges(
        &self,
        topic: &str,
        partition: u32,
        q: &TimeQuery,
    ) -> Result<Vec<RangeLocation>, MetaError> {
        let c = self.client().await?;
        let rows = c
            .query(
                sql::chunks::TIME_RANGES,
                &[
                    &topic,
                    &i64::from(partition),
                    &to_i64(q.from),
                    &to_i64(q.below),
                    &q.timestamp_ms,
                    &i64::from(q.limit),
                ],
            )
            .await
            .map_err(db)?;
        Ok(rows.iter().map(range_location).collect())
    }

    pub async fn committed_end(&self, topic: &str, partition: u32) -> Result<u64, MetaError> {
        let c = self.client().await?;
        committed_end_in(&*c, topic, partition).await
    }
}

/// A `chunk_key, base_offset, end_offset, pos, len` row.
fn range_location(r: &tokio_postgres::Row) -> RangeLocation {
    RangeLocation {
        chunk_key: r.get(0),
        base_offset: to_u64(r.get(1)),
        end_offset: to_u64(r.get(2)),
        pos: to_u64(r.get(3)),
        len: to_u64(r.get(4)),
    }
}
