//! The consumer-group flags of the agent's configuration (`--group-*`,
//! flattened into `AgentConfig`), their checks, and the coordinator
//! settings they make. Owns parsing and validation only.

use clap::Args;

/// Consumer-group limits and timeouts.
#[derive(Debug, Clone, Args)]
pub struct GroupFlags {
    /// How often consumer-group members are told to heartbeat, in
    /// milliseconds (default 3000).
    #[arg(long, env = "STREAMHOUSE_GROUP_HEARTBEAT_MS", default_value_t = 3000, value_parser = crate::config::units::millis::<u64>)]
    pub group_heartbeat_ms: u64,

    /// Shortest session timeout a consumer-group member may ask for, in
    /// milliseconds (default 1000; the default session is 45 s).
    #[arg(
        long,
        env = "STREAMHOUSE_GROUP_MIN_SESSION_TIMEOUT_MS",
        default_value_t = 1000,
        value_parser = crate::config::units::millis::<u64>
    )]
    pub group_min_session_timeout_ms: u64,

    /// Longest session timeout a consumer-group member may ask for, in
    /// milliseconds (default 1800000, 30 min).
    #[arg(
        long,
        env = "STREAMHOUSE_GROUP_MAX_SESSION_TIMEOUT_MS",
        default_value_t = 1_800_000,
        value_parser = crate::config::units::millis::<u64>
    )]
    pub group_max_session_timeout_ms: u64,

    /// Most members of one consumer group (default 1000).
    #[arg(long, env = "STREAMHOUSE_GROUP_MAX_MEMBERS", default_value_t = 1000)]
    pub group_max_members: usize,

    /// Most consumer groups in the cluster (default 100000); a request that
    /// would create another is refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "STREAMHOUSE_GROUP_MAX_GROUPS", default_value_t = 100_000)]
    pub group_max_groups: usize,

    /// A group without members is deleted, with its committed offsets, once
    /// this long has passed since it last changed and since its last
    /// commit, in milliseconds (default 604800000, 7 days, as Kafka's
    /// `offsets.retention.minutes`).
    #[arg(
        long,
        env = "STREAMHOUSE_GROUP_OFFSETS_RETENTION_MS",
        default_value_t = 604_800_000,
        value_parser = crate::config::units::millis::<u64>
    )]
    pub group_offsets_retention_ms: u64,
}

impl GroupFlags {
    /// Refuses settings no coordinator can work with.
    pub fn validate(&self) -> Result<(), String> {
        if self.group_heartbeat_ms == 0 || self.group_min_session_timeout_ms == 0 {
            return Err(
                "--group-heartbeat-ms and --group-min-session-timeout-ms must be at least 1".into(),
            );
        }
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return Err(
                "--group-min-session-timeout-ms must not exceed --group-max-session-timeout-ms"
                    .into(),
            );
        }
        if self.group_max_members == 0 {
            return Err("--group-max-members must be at least 1".into());
        }
        if self.group_max_groups == 0 {
            return Err("--group-max-groups must be at least 1".into());
        }
        if self.group_offsets_retention_ms < 1000 {
            return Err("--group-offsets-retention-ms must be at least 1000".into());
        }
        Ok(())
    }

    /// The coordinator's settings these flags make.
    pub fn settings(&self) -> crate::groups::settings::GroupSettings {
        use std::time::Duration;
        let defaults = crate::groups::settings::GroupSettings::default();
        let min = Duration::from_millis(self.group_min_session_timeout_ms);
        let max = Duration::from_millis(self.group_max_session_timeout_ms);
        crate::groups::settings::GroupSettings {
            heartbeat_interval: Duration::from_millis(self.group_heartbeat_ms),
            default_session_timeout: defaults.default_session_timeout.clamp(min, max),
            min_session_timeout: min,
            max_session_timeout: max,
            default_rebalance_timeout: defaults.default_rebalance_timeout.clamp(min, max),
            max_members: self.group_max_members,
            max_groups: self.group_max_groups,
            offsets_retention: Duration::from_millis(self.group_offsets_retention_ms),
        }
    }
}
