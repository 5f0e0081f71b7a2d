//! The logging flags of the agent's configuration (`--log-format`,
//! flattened into `AgentConfig`). Owns parsing only; `crate::runtime::logging`
//! sets the subscriber up from them.

use clap::{Args, ValueEnum};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One line per event for people: time, level, thread (`shard-N` or
    /// `control`), target, message and fields, prefixed with the agent id.
    /// Coloured only on a terminal and never when `NO_COLOR` is set.
    Text,
    /// One JSON object per line for log pipelines: `timestamp`, `level`,
    /// `agent_id`, `threadName`, `target`, `fields` (with `message`) and
    /// the spans the event happened in.
    Json,
}

/// Logging flags.
#[derive(Debug, Clone, Args)]
pub struct LogFlags {
    /// Log line format on stderr: `text` (default) or `json`. Which events
    /// are written is set by `RUST_LOG` (default `info`).
    #[arg(
        long,
        env = "STREAMHOUSE_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
}
