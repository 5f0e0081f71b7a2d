//! StreamHouse agent as a library: the `streamhouse-agent` binary is a thin
//! wrapper around [`start`], and the `streamhouse-direct` crate embeds it
//! in an application's process (the direct transport).
//!
//! Modules (docs/ARCHITECTURE.md walks them):
//! - [`shard`]: everything pinned to one core — its life (recover, listen,
//!   drain), connections, gRPC framing, the RPCs (`shard::rpc`: one unit
//!   per RPC and the route table), the shard's topic cache, lease table
//!   and upload bookkeeping.
//! - [`control`]: the control thread — its inbox, leases, membership,
//!   topics, the uploader, reads from chunk objects, retention, compaction,
//!   the object sweep, and the RPCs it answers (`control::rpc`: consumer
//!   groups).
//! - [`groups`]: consumer groups' rules, assignors and store requests
//!   (imports nothing of `control` or `shard`).
//! - [`compaction`]: what object and key compaction decide and write
//!   (pure).
//! - [`messages`]: the plain data that crosses between a shard and the
//!   control thread.
//! - [`admin`]: the admin HTTP port (health, readiness, metrics).
//! - [`metastore`] (SQLite / PostgreSQL), [`objstore`] (local dir / S3).
//! - [`lifecycle`] (starting and stopping, the data-dir lock),
//!   [`supervisor`] (a shard's executor thread, restarted after a panic),
//!   [`sockets`] (the descriptors a shard holds, shut down when its
//!   executor dies), [`limits`] (descriptors and connection limits),
//!   [`layout`] (the shard count a data dir was written with), [`ports`]
//!   (free port ranges for shard listeners).
//! - Shared vocabulary: [`config`] (flags), [`catalog`] (topics),
//!   [`routing`] (partition → shard), [`assignment`] (partition → agent),
//!   [`takeover`] (when an expired lease may be taken), [`tasks`] (a
//!   task registry per thread), [`ids`] (topic
//!   keys and partition ids), [`leader_epochs`] (where each lease epoch
//!   began writing), [`grpc_status`], [`topic_config`] (a topic's
//!   settings), [`watermarks`] (high watermarks for group lag),
//!   [`logging`], [`metrics`], [`clock`].

pub mod admin;
pub mod assignment;
pub mod catalog;
pub mod clock;
pub mod compaction;
pub mod config;
pub mod control;
pub mod groups;
pub mod grpc_status;
pub mod ids;
pub mod layout;
pub mod leader_epochs;
pub mod lifecycle;
pub mod limits;
pub mod logging;
pub mod messages;
pub mod metastore;
pub mod metrics;
pub mod objstore;
pub mod ports;
pub mod routing;
pub mod shard;
pub mod sockets;
pub mod supervisor;
pub mod takeover;
pub mod tasks;
pub mod topic_config;
pub mod watermarks;

pub use config::AgentConfig;
pub use lifecycle::{start, RunningAgent};
