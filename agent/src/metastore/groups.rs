//! Consumer groups in the metadata store: a group's state (serialized by
//! `crate::groups`, opaque here) as one row with a version, saved only over
//! the version it was read at, so two agents that both think they
//! coordinate a group cannot lose each other's changes; and the group's
//! committed offsets per partition (keyed by topic incarnation, deleted
//! with the topic), written only while the group is at the version the
//! commit was checked against.

use crate::ids::TopicKey;

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
