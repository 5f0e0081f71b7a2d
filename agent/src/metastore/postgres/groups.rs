//! Consumer groups in PostgreSQL: each group's state as one row with a
//! version (saved only over the version it was read at), and its
//! committed offsets, written with the group's row locked at the version
//! the commit was checked against. See `metastore::groups`.

use crate::ids::TopicKey;
use crate::metastore::groups::{
    epoch_of_stored, stored_epoch, OffsetCommit, StoredGroup, StoredOffset,
};
use crate::metastore::sql;
use crate::metastore::{to_i64, to_u64, MetaError};

use super::{db, PostgresStore};

impl PostgresStore {
    pub async fn load_group(&self, group: &str) -> Result<Option<StoredGroup>, MetaError> {
        let c = self.client().await?;
        let row = c
            .query_opt(sql::groups::LOAD_GROUP, &[&group])
            .await
            .map_err(db)?;
        Ok(row.map(|r| stored_group(&r)))
    }

    pub async fn group_version(&self, group: &str) -> Result<Option<i64>, MetaError> {
        let c = self.client().await?;
        let row = c
            .query_opt(sql::groups::GROUP_VERSION, &[&group])
            .await
            .map_err(db)?;
        Ok(row.map(|r| r.get(0)))
    }

    pub async fn list_groups(&self) -> Result<Vec<StoredGroup>, MetaError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT group_id, state, version, updated_ms FROM consumer_groups \
                 ORDER BY group_id COLLATE \"C\"",
                &[],
            )
            .await
            .map_err(db)?;
        Ok(rows.iter().map(stored_group).collect())
    }

    pub async fn save_group(
        &self,
        group: &str,
        state: &str,
        expected: Option<i64>,
        now_ms: i64,
    ) -> Result<Option<i64>, MetaError> {
        let c = self.client().await?;
        let n = match expected {
            None => c
                .execute(sql::groups::CREATE_GROUP, &[&group, &state, &now_ms])
                .await
                .map_err(db)?,
            Some(v) => c
                .execute(sql::groups::SAVE_GROUP, &[&group, &state, &now_ms, &v])
                .await
                .map_err(db)?,
        };
        Ok((n == 1).then(|| expected.map_or(1, |v| v + 1)))
    }

    pub async fn delete_group(&self, group: &str, expected: i64) -> Result<bool, MetaError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        let n = tx
            .execute(sql::groups::DELETE_GROUP, &[&group, &expected])
            .await
            .map_err(db)?;
        if n == 1 {
            tx.execute(sql::groups::DELETE_GROUP_OFFSETS, &[&group])
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(n == 1)
    }

    pub async fn commit_offsets(
        &self,
        group: &str,
        expected: i64,
        offsets: &[OffsetCommit],
        now_ms: i64,
    ) -> Result<bool, MetaError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        let version: Option<i64> = tx
            .query_opt(
                "SELECT version FROM consumer_groups WHERE group_id = $1 FOR UPDATE",
                &[&group],
            )
            .await
            .map_err(db)?
            .map(|r| r.get(0));
        if version != Some(expected) {
            return Ok(false);
        }
        tx.execute(sql::groups::TOUCH_GROUP, &[&group, &now_ms])
            .await
            .map_err(db)?;
        // One statement for every partition, locked in key order.
        let mut sorted: Vec<&OffsetCommit> = offsets.iter().collect();
        sorted
            .sort_by(|a, b| (a.topic.as_str(), a.partition).cmp(&(b.topic.as_str(), b.partition)));
        let topics: Vec<&str> = sorted.iter().map(|o| o.topic.as_str()).collect();
        let parts: Vec<i64> = sorted.iter().map(|o| i64::from(o.partition)).collect();
        let offs: Vec<i64> = sorted.iter().map(|o| to_i64(o.offset)).collect();
        let metas: Vec<&str> = sorted.iter().map(|o| o.metadata.as_str()).collect();
        let epochs: Vec<i64> = sorted
            .iter()
            .map(|o| stored_epoch(o.leader_epoch))
            .collect();
        tx.execute(
            "INSERT INTO group_offsets (group_id, topic, part, committed_offset, metadata, commit_ms, leader_epoch) \
             SELECT $1, t, p, o, m, $6, e FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::text[], $7::bigint[]) AS r(t, p, o, m, e) \
             ON CONFLICT (group_id, topic, part) DO UPDATE SET \
             committed_offset = excluded.committed_offset, metadata = excluded.metadata, \
             commit_ms = excluded.commit_ms, leader_epoch = excluded.leader_epoch",
            &[&group, &topics, &parts, &offs, &metas, &now_ms, &epochs],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    pub async fn count_groups(&self) -> Result<u64, MetaError> {
        let c = self.client().await?;
        let n: i64 = c
            .query_one(sql::groups::COUNT_GROUPS, &[])
            .await
            .map_err(db)?
            .get(0);
        Ok(to_u64(n))
    }

    pub async fn groups_unchanged_since(
        &self,
        before_ms: i64,
        limit: i64,
    ) -> Result<Vec<String>, MetaError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT group_id FROM consumer_groups WHERE updated_ms < $1 \
                 ORDER BY updated_ms, group_id COLLATE \"C\" LIMIT $2",
                &[&before_ms, &limit],
            )
            .await
            .map_err(db)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub async fn group_offsets(&self, group: &str) -> Result<Vec<StoredOffset>, MetaError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT topic, part, committed_offset, metadata, commit_ms, leader_epoch FROM group_offsets \
                 WHERE group_id = $1 ORDER BY topic COLLATE \"C\", part",
                &[&group],
            )
            .await
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| StoredOffset {
                topic: TopicKey::from_stored(&r.get::<_, String>(0)),
                partition: u32::try_from(r.get::<_, i64>(1)).unwrap_or(u32::MAX),
                offset: to_u64(r.get(2)),
                metadata: r.get(3),
                commit_ms: r.get(4),
                leader_epoch: epoch_of_stored(r.get(5)),
            })
            .collect())
    }
}

fn stored_group(r: &tokio_postgres::Row) -> StoredGroup {
    StoredGroup {
        name: r.get(0),
        state: r.get(1),
        version: r.get(2),
        updated_ms: r.get(3),
    }
}
