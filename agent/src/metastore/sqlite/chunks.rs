//! Chunk commits in SQLite: committing a chunk's ranges under their lease
//! epochs in one immediate transaction, the producer state stored with
//! them, and finding a committed range or end.

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use crate::metastore::sql::{self, for_sqlite};
use crate::metastore::{
    continues, to_i64, to_u64, ChunkCommit, MetaError, RangeLocation, TimeQuery,
};
use crate::metastore::{
    decode_producers, encode_producers, RememberedBatch, MAX_STORED_PRODUCERS,
    PRODUCER_STATE_TTL_MS,
};

use super::leases::lease_row;
use super::retention::{committed_end_in, log_start_in, set_log_start_in};
use super::{db, fenced, SqliteStore};

impl SqliteStore {
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
            .query_row(&for_sqlite(sql::chunks::CHUNK_EXISTS), [&chunk.key], |r| {
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
            // Below the log start (DeleteRecords moved it past data not
            // shipped yet): counted as committed, not kept.
            let (start, deleted_end) = log_start_in(&tx, &r.topic, r.partition)?;
            if r.end_offset <= start {
                set_log_start_in(
                    &tx,
                    &r.topic,
                    r.partition,
                    start,
                    r.end_offset.max(deleted_end),
                )?;
            } else {
                tx.execute(
                    &for_sqlite(sql::chunks::INSERT_RANGE),
                    params![
                        r.topic.as_str(),
                        i64::from(r.partition),
                        to_i64(r.base_offset),
                        to_i64(r.end_offset),
                        chunk.key,
                        to_i64(r.pos),
                        to_i64(r.len),
                        to_i64(r.epoch),
                        r.max_timestamp,
                        to_i64(r.bytes)
                    ],
                )
                .map_err(db)?;
            }
            for (producer_id, batches) in encode_producers(&r.producers) {
                tx.execute(
                    &for_sqlite(sql::chunks::UPSERT_PRODUCER),
                    params![
                        r.topic.as_str(),
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
                &for_sqlite(sql::chunks::EXPIRE_PRODUCERS),
                params![
                    r.topic.as_str(),
                    i64::from(r.partition),
                    now_ms.saturating_sub(PRODUCER_STATE_TTL_MS)
                ],
            )
            .map_err(db)?;
            // Exactly the cap: producers ending at the same offset (all
            // those of one range) are told apart by id.
            tx.execute(
                &for_sqlite(sql::chunks::CAP_PRODUCERS),
                params![
                    r.topic.as_str(),
                    i64::from(r.partition),
                    MAX_STORED_PRODUCERS
                ],
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
            .prepare(&for_sqlite(sql::chunks::PRODUCER_STATE))
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
            .query_row(&for_sqlite(sql::chunks::CHUNK_EXISTS), [key], |r| r.get(0))
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
                &for_sqlite(sql::chunks::RANGE_AT),
                params![topic, i64::from(partition), to_i64(offset)],
                range_location,
            )
            .optional()
            .map_err(db)
    }

    pub fn time_ranges(
        &self,
        topic: &str,
        partition: u32,
        q: &TimeQuery,
    ) -> Result<Vec<RangeLocation>, MetaError> {
        let conn = self.conn.lock();
        let mut stmt = conn
            .prepare_cached(&for_sqlite(sql::chunks::TIME_RANGES))
            .map_err(db)?;
        let rows = stmt
            .query_map(
                params![
                    topic,
                    i64::from(partition),
                    to_i64(q.from),
                    to_i64(q.below),
                    q.timestamp_ms,
                    i64::from(q.limit)
                ],
                range_location,
            )
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    pub fn committed_end(&self, topic: &str, partition: u32) -> Result<u64, MetaError> {
        committed_end_in(&self.conn.lock(), topic, partition)
    }
}

/// A `chunk_key, base_offset, end_offset, pos, len` row.
fn range_location(r: &rusqlite::Row<'_>) -> rusqlite::Result<RangeLocation> {
    Ok(RangeLocation {
        chunk_key: r.get(0)?,
        base_offset: to_u64(r.get(1)?),
        end_offset: to_u64(r.get(2)?),
        pos: to_u64(r.get(3)?),
        len: to_u64(r.get(4)?),
    })
}
