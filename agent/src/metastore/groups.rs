//! Consumer groups in the metadata store: a group's state (serialized by
//! `crate::groups`, opaque here) as one row with a version, saved only over
//! the version it was read at, so two agents that both think they
//! coordinate a group cannot lose each other's changes; and the group's
//! committed offsets per partition (keyed by topic incarnation, deleted
//! with the topic), written only while the group is at the version the
//! commit was checked against.

use crate::ids::TopicKey;

use super::{MetaError, MetaStore};

/// A group's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGroup {
    pub name: String,
    /// The state, as `crate::groups` serialized it.
    pub state: String,
    /// Bumped by every save; 1 for a new group.
    pub version: i64,
    /// When it was last saved or had offsets committed, ms since the
    /// epoch.
    pub updated_ms: i64,
}

/// An offset to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommit {
    pub topic: TopicKey,
    pub partition: u32,
    /// The next offset the group should read.
    pub offset: u64,
    /// Free text stored with it (bounded by the caller).
    pub metadata: String,
    /// The leader epoch of the record before `offset`; `None` when the
    /// committer did not know it (stored as 0).
    pub leader_epoch: Option<u64>,
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOffset {
    pub topic: TopicKey,
    pub partition: u32,
    pub offset: u64,
    pub metadata: String,
    /// When it was committed, ms since the epoch.
    pub commit_ms: i64,
    /// The leader epoch committed with it (`None`: not known).
    pub leader_epoch: Option<u64>,
}

/// How a leader epoch is stored with a committed offset (0: not known;
/// lease epochs start at 1).
pub(crate) fn stored_epoch(e: Option<u64>) -> i64 {
    e.map_or(0, super::to_i64)
}

/// The leader epoch of a stored committed offset.
pub(crate) fn epoch_of_stored(v: i64) -> Option<u64> {
    (v > 0).then(|| super::to_u64(v))
}

impl MetaStore {
    /// The group's row, if it exists.
    pub async fn load_group(&self, group: &str) -> Result<Option<StoredGroup>, MetaError> {
        match self {
            MetaStore::Sqlite(s) => s.load_group(group),
            MetaStore::Postgres(s) => s.bounded(s.load_group(group)).await,
        }
    }

    /// The version of the group's row (bumped by every save), if it exists:
    /// how a coordinator checks that the state it holds in memory is still
    /// the stored one without reading the state.
    pub async fn group_version(&self, group: &str) -> Result<Option<i64>, MetaError> {
        match self {
            MetaStore::Sqlite(s) => s.group_version(group),
            MetaStore::Postgres(s) => s.bounded(s.group_version(group)).await,
        }
    }

    /// Every group's row, by name.
    pub async fn list_groups(&self) -> Result<Vec<StoredGroup>, MetaError> {
        match self {
            MetaStore::Sqlite(s) => s.list_groups(),
            MetaStore::Postgres(s) => s.bounded(s.list_groups()).await,
        }
    }

    /// Saves `state` over version `expected` (`None`: creates the group).
    /// The new version, or `None` when the row is at another version (or,
    /// creating, already exists): read it again and redo the change.
    pub async fn save_group(
        &self,
        group: &str,
        state: &str,
        expected: Option<i64>,
        now_ms: i64,
    ) -> Result<Option<i64>, MetaError> {
        match self {
            MetaStore::Sqlite(s) => s.save_group(group, state, expected, now_ms),
            MetaStore::Postgres(s) => {
                s.bounded(s.save_group(group, state, expected, now_ms))
                    .await
            }
        }
    }

    /// Deletes the group and its offsets if it is at version `expected`;
    /// `false` (nothing deleted) otherwise.
    pub async fn delete_group(&self, group: &str, expected: i64) -> Result<bool, MetaError> {
        match self {
            MetaStore::Sqlite(s) => s.delete_group(group, expected),
            MetaStore::Postgres(s) => s.bounded(s.delete_group(group, expected)).await,
        }
    }

    /// Stores `offsets` (stamped `now_ms`, also the group's `updated_ms`)
    /// in one transaction if the group is still at version `expected`;
    /// `false` (nothing stored) otherwise.
    pub async fn commit_offsets(
        &self,
        group: &str,
        expected: i64,
        offsets: &[OffsetCommit],
        now_ms: i64,
    ) -> Result<bool, MetaError> {
        match self {
            MetaStore::Sqlite(s) => s.commit_offsets(group, expected, offsets, now_ms),
            MetaStore::Postgres(s) => {
                s.bounded(s.commit_offsets(group, expected, offsets, now_ms))
                    .await
            }
        }
    }

    /// How many groups exist.
    pub async fn count_groups(&self) -> Result<u64, MetaError> {
        match self {
            MetaStore::Sqlite(s) => s.count_groups(),
            MetaStore::Postgres(s) => s.bounded(s.count_groups()).await,
        }
    }

    /// Ids of at most `limit` groups neither saved nor committed to since
    /// `before_ms`, the longest unchanged first: candidates for expiry.
    pub async fn groups_unchanged_since(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<String>, MetaError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        match self {
            MetaStore::Sqlite(s) => s.groups_unchanged_since(before_ms, limit),
            MetaStore::Postgres(s) => s.bounded(s.groups_unchanged_since(before_ms, limit)).await,
        }
    }

    /// The group's committed offsets, by topic key and partition.
    pub async fn group_offsets(&self, group: &str) -> Result<Vec<StoredOffset>, MetaError> {
        match self {
            MetaStore::Sqlite(s) => s.group_offsets(group),
            MetaStore::Postgres(s) => s.bounded(s.group_offsets(group)).await,
        }
    }
}
