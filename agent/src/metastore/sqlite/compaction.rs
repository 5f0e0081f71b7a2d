//! Compaction's chunk index calls in SQLite: weighing a partition's ranges,
//! switching them to a rewritten object under the partition's lease in one
//! immediate transaction, and claiming an orphan object for the sweep.

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use crate::metastore::compaction::{
    CompactedFrom, RangeSwitch, CLAIM_CHUNK, COMPACTED_KEYS, DELETE_RANGE, INSERT_RANGE,
    RANGES_TO_WEIGH, RANGE_UNCHANGED,
};
use crate::metastore::{to_i64, to_u64, MetaError};

use super::leases::lease_row;
use super::{db, fenced, SqliteStore};

impl SqliteStore {
    pub fn ranges_to_weigh(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        limit: u32,
    ) -> Result<Vec<CompactedFrom>, MetaError> {
        let conn = self.conn.lock();
        let mut st = conn.prepare_cached(RANGES_TO_WEIGH).map_err(db)?;
        let rows = st
            .query_map(
                params![topic, i64::from(partition), to_i64(from), i64::from(limit)],
                |r| {
                    Ok(CompactedFrom {
                        base_offset: to_u64(r.get(0)?),
                        end_offset: to_u64(r.get(1)?),
                        chunk_key: r.get(2)?,
                        pos: to_u64(r.get(3)?),
                        len: to_u64(r.get(4)?),
                        bytes: to_u64(r.get(5)?),
                        epoch: to_u64(r.get(6)?),
                        max_timestamp: r.get(7)?,
                        object_size: to_u64(r.get(8)?),
                        object_live: to_u64(r.get(9)?),
                    })
                },
            )
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    pub fn switch_ranges(
        &self,
        agent: &str,
        epoch: u64,
        s: &RangeSwitch,
    ) -> Result<bool, MetaError> {
        let (topic, p) = (s.topic.as_str(), i64::from(s.partition));
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let cur = lease_row(&tx, topic, s.partition)?;
        if !cur
            .as_ref()
            .is_some_and(|l| l.holder == agent && l.epoch == epoch)
        {
            return Err(fenced(topic, s.partition, agent, epoch, cur));
        }
        for f in &s.from {
            let same: Option<i64> = tx
                .query_row(
                    RANGE_UNCHANGED,
                    params![
                        topic,
                        p,
                        to_i64(f.base_offset),
                        f.chunk_key,
                        to_i64(f.pos),
                        to_i64(f.len),
                        to_i64(f.end_offset)
                    ],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db)?;
            if same.is_none() {
                return Ok(false);
            }
        }
        let claimed = tx
            .execute(CLAIM_CHUNK, params![s.key, agent, to_i64(s.size)])
            .map_err(db)?;
        if claimed == 0 {
            return Ok(false);
        }
        for f in &s.from {
            tx.execute(DELETE_RANGE, params![topic, p, to_i64(f.base_offset)])
                .map_err(db)?;
        }
        for t in &s.to {
            tx.execute(
                INSERT_RANGE,
                params![
                    topic,
                    p,
                    to_i64(t.base_offset),
                    to_i64(t.end_offset),
                    s.key,
                    to_i64(t.pos),
                    to_i64(t.len),
                    to_i64(t.epoch),
                    t.max_timestamp
                ],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(true)
    }

    pub fn compacted_keys(&self) -> Result<Vec<String>, MetaError> {
        let conn = self.conn.lock();
        let mut st = conn.prepare_cached(COMPACTED_KEYS).map_err(db)?;
        let rows = st.query_map([], |r| r.get(0)).map_err(db)?;
        rows.collect::<Result<Vec<String>, _>>().map_err(db)
    }

    pub fn claim_orphan(&self, key: &str, size: u64) -> Result<bool, MetaError> {
        let n = self
            .conn
            .lock()
            .execute(CLAIM_CHUNK, params![key, "", to_i64(size)])
            .map_err(db)?;
        Ok(n > 0)
    }
}
