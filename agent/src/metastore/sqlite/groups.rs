//! Consumer groups in SQLite: each group's state as one row with a
//! version (saved only over the version it was read at), and its
//! committed offsets, written only while the group is at the version the
//! commit was checked against. See `metastore::groups`.

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use crate::ids::TopicKey;
use crate::metastore::groups::{
    epoch_of_stored, stored_epoch, OffsetCommit, StoredGroup, StoredOffset,
};
use crate::metastore::sql::{self, for_sqlite};
use crate::metastore::{to_i64, to_u64, MetaError};

use super::{db, SqliteStore};

impl SqliteStore {
    pub fn load_group(&self, group: &str) -> Result<Option<StoredGroup>, MetaError> {
        self.conn
            .lock()
            .query_row(&for_sqlite(sql::groups::LOAD_GROUP), [group], stored_group)
            .optional()
            .map_err(db)
    }

    /// Read from the covering index (schema 8): through the primary key,
    /// SQLite would read past the state's overflow pages to the version.
    pub fn group_version(&self, group: &str) -> Result<Option<i64>, MetaError> {
        self.conn
            .lock()
            .prepare_cached(
                "SELECT version FROM consumer_groups INDEXED BY consumer_groups_version \
                 WHERE group_id = ?1",
            )
            .and_then(|mut st| st.query_row([group], |r| r.get(0)).optional())
            .map_err(db)
    }

    pub fn list_groups(&self) -> Result<Vec<StoredGroup>, MetaError> {
        let conn = self.conn.lock();
        let mut st = conn
            .prepare(
                "SELECT group_id, state, version, updated_ms FROM consumer_groups ORDER BY group_id",
            )
            .map_err(db)?;
        let rows = st.query_map([], stored_group).map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    pub fn save_group(
        &self,
        group: &str,
        state: &str,
        expected: Option<i64>,
        now_ms: i64,
    ) -> Result<Option<i64>, MetaError> {
        let conn = self.conn.lock();
        let n = match expected {
            None => conn
                .execute(
                    &for_sqlite(sql::groups::CREATE_GROUP),
                    params![group, state, now_ms],
                )
                .map_err(db)?,
            Some(v) => conn
                .execute(
                    &for_sqlite(sql::groups::SAVE_GROUP),
                    params![group, state, now_ms, v],
                )
                .map_err(db)?,
        };
        Ok((n == 1).then(|| expected.map_or(1, |v| v + 1)))
    }

    pub fn delete_group(&self, group: &str, expected: i64) -> Result<bool, MetaError> {
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let n = tx
            .execute(
                &for_sqlite(sql::groups::DELETE_GROUP),
                params![group, expected],
            )
            .map_err(db)?;
        if n == 1 {
            tx.execute(&for_sqlite(sql::groups::DELETE_GROUP_OFFSETS), [group])
                .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(n == 1)
    }

    pub fn commit_offsets(
        &self,
        group: &str,
        expected: i64,
        offsets: &[OffsetCommit],
        now_ms: i64,
    ) -> Result<bool, MetaError> {
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let version: Option<i64> = tx
            .query_row(&for_sqlite(sql::groups::GROUP_VERSION), [group], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db)?;
        if version != Some(expected) {
            return Ok(false);
        }
        tx.execute(
            &for_sqlite(sql::groups::TOUCH_GROUP),
            params![group, now_ms],
        )
        .map_err(db)?;
        for o in offsets {
            tx.execute(
                "INSERT INTO group_offsets (group_id, topic, part, committed_offset, metadata, commit_ms, leader_epoch) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (group_id, topic, part) DO UPDATE SET \
                 committed_offset = excluded.committed_offset, metadata = excluded.metadata, \
                 commit_ms = excluded.commit_ms, leader_epoch = excluded.leader_epoch",
                params![
                    group,
                    o.topic.as_str(),
                    i64::from(o.partition),
                    to_i64(o.offset),
                    o.metadata,
                    now_ms,
                    stored_epoch(o.leader_epoch)
                ],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(true)
    }

    pub fn count_groups(&self) -> Result<u64, MetaError> {
        let n: i64 = self
            .conn
            .lock()
            .query_row(&for_sqlite(sql::groups::COUNT_GROUPS), [], |r| r.get(0))
            .map_err(db)?;
        Ok(to_u64(n))
    }

    pub fn groups_unchanged_since(
        &self,
        before_ms: i64,
        limit: i64,
    ) -> Result<Vec<String>, MetaError> {
        let conn = self.conn.lock();
        let mut st = conn
            .prepare(
                "SELECT group_id FROM consumer_groups WHERE updated_ms < ?1 \
                 ORDER BY updated_ms, group_id LIMIT ?2",
            )
            .map_err(db)?;
        let rows = st
            .query_map(params![before_ms, limit], |r| r.get(0))
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    pub fn group_offsets(&self, group: &str) -> Result<Vec<StoredOffset>, MetaError> {
        let conn = self.conn.lock();
        let mut st = conn
            .prepare(
                "SELECT topic, part, committed_offset, metadata, commit_ms, leader_epoch FROM group_offsets \
                 WHERE group_id = ?1 ORDER BY topic, part",
            )
            .map_err(db)?;
        let rows = st
            .query_map([group], |r| {
                Ok(StoredOffset {
                    topic: TopicKey::from_stored(&r.get::<_, String>(0)?),
                    partition: u32::try_from(r.get::<_, i64>(1)?).unwrap_or(u32::MAX),
                    offset: to_u64(r.get(2)?),
                    metadata: r.get(3)?,
                    commit_ms: r.get(4)?,
                    leader_epoch: epoch_of_stored(r.get(5)?),
                })
            })
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }
}

fn stored_group(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredGroup> {
    Ok(StoredGroup {
        name: r.get(0)?,
        state: r.get(1)?,
        version: r.get(2)?,
        updated_ms: r.get(3)?,
    })
}
