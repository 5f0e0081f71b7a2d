//! The cluster defaults of topic configuration (`--default-retention-*`,
//! flattened into `AgentConfig`) and their checks: what a topic that did
//! not set a key gets (see `topic_config`). Owns parsing and validation
//! only.

use clap::Args;

use crate::topic_config::ConfigDefaults;

/// Topic configuration defaults.
#[derive(Debug, Clone, Args)]
pub struct RetentionFlags {
    /// `retention.ms` of topics that do not set it: how long records are
    /// kept, in milliseconds (default 604800000, 7 days; -1: for ever).
    #[arg(
        long,
        env = "STREAMHOUSE_DEFAULT_RETENTION_MS",
        default_value_t = 604_800_000,
        allow_negative_numbers = true
    )]
    pub default_retention_ms: i64,

    /// `retention.bytes` of topics that do not set it: most bytes a
    /// partition keeps in object storage (default -1: no limit).
    #[arg(
        long,
        env = "STREAMHOUSE_DEFAULT_RETENTION_BYTES",
        default_value_t = -1,
        allow_negative_numbers = true
    )]
    pub default_retention_bytes: i64,
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
        Ok(())
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
