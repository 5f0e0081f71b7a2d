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
//! - [`runtime`]: the process around the shards — starting and stopping
//!   (the data-dir lock), a shard's executor thread restarted after a
//!   panic, the descriptors a shard holds, descriptor limits, the shard
//!   count a data dir was written with, free port ranges, task
//!   registries, log output, time.
//! - [`topics`]: the catalog of topics, a topic's settings, which shard
//!   owns a partition.
//! - [`cluster`]: which agent should lead a partition, when an expired
//!   lease may be taken, where each lease epoch began writing, high
//!   watermarks for group lag.
//! - Shared vocabulary, at the root: [`config`] (flags), [`ids`] (topic
//!   keys and partition ids), [`messages`], [`grpc_status`]; and
//!   [`metrics`].

pub mod admin;
pub mod auth;
pub mod cluster;
pub mod compaction;
pub mod config;
pub mod control;
pub mod groups;
pub mod grpc_status;
pub mod ids;
pub mod messages;
pub mod metastore;
pub mod metrics;
pub mod objstore;
pub mod runtime;
pub mod shard;
pub mod tls;
pub mod topics;

pub use config::AgentConfig;
pub use runtime::lifecycle::{start, RunningAgent};
