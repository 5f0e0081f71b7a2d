//! Consumer-group settings and limits (agent flags `--group-*`), and the
//! checks of what a request may ask for against them.

use std::time::Duration;

use crate::messages::ControlError;

/// Longest group id, bytes: 255.
pub const MAX_GROUP_ID_BYTES: usize = 255;

/// Longest member id, client id and group instance id, bytes: 255.
pub const MAX_MEMBER_NAME_BYTES: usize = 255;

/// Most partitions one FetchOffsets may name, and most offsets one
/// CommitOffsets may carry: 10,000.
pub const MAX_LISTED_PARTITIONS: usize = 10_000;

/// Most topics one member may subscribe to: 1,000.
pub const MAX_SUBSCRIBED_TOPICS: usize = 1000;

/// Longest metadata stored with a committed offset, bytes: 4,096 (Kafka's
/// `offset.metadata.max.bytes`).
pub const MAX_OFFSET_METADATA_BYTES: usize = 4096;

/// The coordinator's settings.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    /// How often members are told to heartbeat; default 3 s
    /// (`--group-heartbeat-ms`).
    pub heartbeat_interval: Duration,
    /// Session timeout of a member that asks for none; default 45 s
    /// (Kafka's).
    pub default_session_timeout: Duration,
    /// Shortest session timeout a member may ask for; default 1 s
    /// (`--group-min-session-timeout-ms`).
    pub min_session_timeout: Duration,
    /// Longest; default 30 min (`--group-max-session-timeout-ms`).
    pub max_session_timeout: Duration,
    /// How long a member has to report revoked partitions given up, when it
    /// asks for no other; default 60 s. Bounded like session timeouts, up
    /// to 30 min.
    pub default_rebalance_timeout: Duration,
    /// Most members per group; default 1,000 (`--group-max-members`).
    pub max_members: usize,
    /// Most groups in the cluster; default 100,000 (`--group-max-groups`).
    pub max_groups: usize,
    /// How long a group without members is kept, with its offsets, after
    /// its last change and its last commit; default 7 days
    /// (`--group-offsets-retention-ms`).
    pub offsets_retention: Duration,
}

impl Default for GroupSettings {
    fn default() -> Self {
        GroupSettings {
            heartbeat_interval: Duration::from_secs(3),
            default_session_timeout: Duration::from_secs(45),
            min_session_timeout: Duration::from_secs(1),
            max_session_timeout: Duration::from_secs(30 * 60),
            default_rebalance_timeout: Duration::from_secs(60),
            max_groups: 100_000,
            offsets_retention: Duration::from_secs(7 * 24 * 3600),
            max_members: 1000,
        }
    }
}

impl GroupSettings {
    pub fn check_group_id(&self, id: &str) -> Result<(), ControlError> {
        if id.is_empty() {
            return Err(ControlError::Invalid("group id is empty".into()));
        }
        if id.len() > MAX_GROUP_ID_BYTES {
            return Err(ControlError::Invalid(format!(
                "group id of {} bytes; at most {MAX_GROUP_ID_BYTES}",
                id.len()
            )));
        }
        if id.chars().any(char::is_control) {
            return Err(ControlError::Invalid(
                "group id holds control characters".into(),
            ));
        }
        Ok(())
    }

    fn bounded(&self, what: &str, ms: u32, default: Duration) -> Result<Duration, ControlError> {
        if ms == 0 {
            return Ok(default);
        }
        let d = Duration::from_millis(u64::from(ms));
        if d < self.min_session_timeout || d > self.max_session_timeout {
            return Err(ControlError::Invalid(format!(
                "{what} of {ms} ms is outside [{}, {}] ms",
                self.min_session_timeout.as_millis(),
                self.max_session_timeout.as_millis()
            )));
        }
        Ok(d)
    }

    /// The session timeout a member asked for (`ms`, 0 for the default).
    pub fn session_timeout(&self, ms: u32) -> Result<Duration, ControlError> {
        self.bounded("session timeout", ms, self.default_session_timeout)
    }

    /// The rebalance timeout a member asked for (`ms`, 0 for the default).
    pub fn rebalance_timeout(&self, ms: u32) -> Result<Duration, ControlError> {
        self.bounded("rebalance timeout", ms, self.default_rebalance_timeout)
    }

    pub fn check_topics(&self, topics: &[String]) -> Result<(), ControlError> {
        if topics.len() > MAX_SUBSCRIBED_TOPICS {
            return Err(ControlError::Invalid(format!(
                "a subscription of {} topics; at most {MAX_SUBSCRIBED_TOPICS}",
                topics.len()
            )));
        }
        Ok(())
    }

    /// A member id, client id or instance id: at most
    /// [`MAX_MEMBER_NAME_BYTES`], no control characters (empty is fine:
    /// not given).
    pub fn check_name(&self, what: &str, v: &str) -> Result<(), ControlError> {
        if v.len() > MAX_MEMBER_NAME_BYTES {
            return Err(ControlError::Invalid(format!(
                "{what} of {} bytes; at most {MAX_MEMBER_NAME_BYTES}",
                v.len()
            )));
        }
        if v.chars().any(char::is_control) {
            return Err(ControlError::Invalid(format!(
                "{what} holds control characters"
            )));
        }
        Ok(())
    }

    /// A request naming `n` partitions (FetchOffsets, CommitOffsets).
    pub fn check_listed(&self, what: &str, n: usize) -> Result<(), ControlError> {
        if n > MAX_LISTED_PARTITIONS {
            return Err(ControlError::Invalid(format!(
                "{what} of {n} partitions; at most {MAX_LISTED_PARTITIONS} per request"
            )));
        }
        Ok(())
    }

    pub fn check_metadata(&self, metadata: &str) -> Result<(), ControlError> {
        if metadata.len() > MAX_OFFSET_METADATA_BYTES {
            return Err(ControlError::Invalid(format!(
                "offset metadata of {} bytes; at most {MAX_OFFSET_METADATA_BYTES}",
                metadata.len()
            )));
        }
        Ok(())
    }
}
