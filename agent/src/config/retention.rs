//! The cluster defaults of topic configuration (`--default-retention-*`,
//! flattened into `AgentConfig`) and their checks: what a topic that did
//! not set a key gets (see `topic_config`). Owns parsing and validation
//! only.

use clap::Args;

use crate::topics::topic_config::ConfigDefaults;

/// Topic configuration defaults.
#[derive(Debug, Clone, Args)]
pub struct RetentionFlags {
    /// `retention.ms` of topics that do not set it: how long records are
    /// kept, in milliseconds (default 604800000, 7 days; -1: for ever).
    #[arg(
        long,
        env = "STREAMHOUSE_DEFAULT_RETENTION_MS",
        default_value_t = 604_800_000,
        allow_negative_numbers = true,
        value_parser = crate::config::units::millis_or_forever
    )]
    pub default_retention_ms: i64,

    /// `retention.bytes` of topics that do not set it: most bytes a
    /// partition keeps in object storage (default -1: no limit).
    #[arg(
        long,
        env = "STREAMHOUSE_DEFAULT_RETENTION_BYTES",
        default_value_t = -1,
        allow_negative_numbers = true,
        value_parser = crate::config::units::bytes_or_unlimited
    )]
    pub default_retention_bytes: i64,

    /// How often each partition's retention is applied, in milliseconds
    /// (default 60000): its log start moves past the committed ranges its
    /// topic's `retention.ms` and `retention.bytes` let go.
    #[arg(long, env = "STREAMHOUSE_RETENTION_CHECK_MS", default_value_t = 60_000, value_parser = crate::config::units::millis::<u64>)]
    pub retention_check_ms: u64,

    /// How long a chunk object no committed range references any more is
    /// kept before it is deleted from object storage, in milliseconds
    /// (default 300000, 5 min): reads that found a range just before
    /// retention deleted it finish first. Swept every
    /// `--retention-check-ms` by one agent.
    #[arg(
        long,
        env = "STREAMHOUSE_OBJECT_DELETE_GRACE_MS",
        default_value_t = 300_000,
        value_parser = crate::config::units::millis::<u64>
    )]
    pub object_delete_grace_ms: u64,

    /// Size of the objects compaction writes, in bytes (default 8388608,
    /// 8 MiB; 0 turns compaction off): each partition's ranges in small
    /// or mostly dead chunk objects are gathered into objects of about
    /// this size, one partition's each, every `--retention-check-ms`.
    #[arg(
        long,
        env = "STREAMHOUSE_COMPACTION_TARGET_BYTES",
        default_value_t = 8 << 20,
        value_parser = crate::config::units::bytes::<u64>
    )]
    pub compaction_target_bytes: u64,

    /// Most bytes one compaction pass of this agent reads from object
    /// storage, in bytes (default 268435456, 256 MiB): the bound on its
    /// work per `--retention-check-ms`. At least the target size.
    #[arg(
        long,
        env = "STREAMHOUSE_COMPACTION_BYTES_PER_PASS",
        default_value_t = 256 << 20
    )]
    pub compaction_bytes_per_pass: u64,
}

impl RetentionFlags {
    /// Refuses defaults no topic could set.
    pub fn validate(&self) -> Result<(), String> {
        for (flag, v) in [
            ("--default-retention-ms", self.default_retention_ms),
            ("--default-retention-bytes", self.default_retention_bytes),
        ] {
            if v != -1 && v < 1 {
                return Err(format!(
                    "{flag} must be -1 (no limit) or at least 1, got {v}"
                ));
            }
        }
        if self.retention_check_ms == 0 {
            return Err("--retention-check-ms must be at least 1".into());
        }
        if self.compaction_target_bytes > 0
            && self.compaction_bytes_per_pass < self.compaction_target_bytes
        {
            return Err(format!(
                "--compaction-bytes-per-pass ({}) must be at least --compaction-target-bytes ({})",
                self.compaction_bytes_per_pass, self.compaction_target_bytes
            ));
        }
        Ok(())
    }

    /// What compaction aims at; `None` when it is off.
    pub fn compaction(&self) -> Option<crate::compaction::CompactionPolicy> {
        (self.compaction_target_bytes > 0).then(|| crate::compaction::CompactionPolicy {
            target_bytes: self.compaction_target_bytes,
            ..Default::default()
        })
    }

    /// How long an unreferenced chunk object is kept.
    pub fn delete_grace(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.object_delete_grace_ms)
    }

    /// Time between retention passes (and object sweeps).
    pub fn check_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.retention_check_ms)
    }

    /// The defaults topics get; `max_message_bytes` is the agent's
    /// `--max-request-bytes`.
    pub fn defaults(&self, max_request_bytes: usize) -> ConfigDefaults {
        ConfigDefaults {
            retention_ms: self.default_retention_ms,
            retention_bytes: self.default_retention_bytes,
            max_message_bytes: max_request_bytes as u64,
        }
    }
}
