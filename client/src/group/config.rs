//! Settings of a group consumer and what it does where the group has no
//! committed offset. Data only.

use std::time::Duration;

pub use crate::consumer::AutoOffsetReset;

/// A group consumer's settings.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// The group's id.
    pub group_id: String,
    /// Subscribed topic names.
    pub topics: Vec<String>,
    /// Static membership: a restart with the same id within the session
    /// timeout gets the same partitions back without a rebalance; default
    /// none.
    pub instance_id: Option<String>,
    /// Shown by `group describe`; default "streamhouse-consumer".
    pub client_id: String,
    /// Silent this long and the member is removed; default 45 s.
    pub session_timeout: Duration,
    /// How long it has to give revoked partitions up; default 60 s.
    pub rebalance_timeout: Duration,
    /// "cooperative-sticky" (default), "range" or "roundrobin"; used when
    /// this member creates the group.
    pub assignor: String,
    /// Commit positions every `auto_commit_interval` and before giving
    /// partitions up; default on.
    pub auto_commit: bool,
    /// Default 5 s.
    pub auto_commit_interval: Duration,
    /// Default [`AutoOffsetReset::Latest`].
    pub auto_offset_reset: AutoOffsetReset,
}

impl GroupConfig {
    pub(crate) fn new(group_id: String) -> GroupConfig {
        GroupConfig {
            group_id,
            topics: Vec::new(),
            instance_id: None,
            client_id: "streamhouse-consumer".into(),
            session_timeout: Duration::from_secs(45),
            rebalance_timeout: Duration::from_secs(60),
            assignor: "cooperative-sticky".into(),
            auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            auto_offset_reset: AutoOffsetReset::Latest,
        }
    }
}
