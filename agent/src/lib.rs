//! StreamHouse agent as a library: the `streamhouse-agent` binary is a thin
//! wrapper around [`start`], and clients embed it in-process for their
//! `direct` transport.
//!
//! Modules: [`config`] (flags), [`catalog`] (topics), [`routing`] (partition
//! → shard), [`grpc`] (HTTP/2 framing), [`connection`] (one client
//! connection's life), [`budget`] (request bytes held in memory),
//! [`limits`] (descriptors and connection limits), [`admin`] (the admin
//! HTTP port), [`service`] (what each call means),
//! [`shard`] (one executor's life), [`lease`] (a shard's lease table),
//! [`messages`] (what crosses between a shard and the control thread),
//! [`control`] (the thread owning the metadata and object stores: leases,
//! membership, topics, the uploader, reads from chunk objects),
//! [`metastore`] (SQLite / PostgreSQL), [`objstore`] (local dir / S3),
//! [`clock`] (wall-clock milliseconds),
//! [`lifecycle`] (starting and stopping, the data-dir lock),
//! [`layout`] (the shard count a data dir was written with),
//! [`ports`] (free port ranges for shard listeners), [`wal_watch`] (a
//! shard's response to a failed WAL), [`supervisor`] (a shard's executor
//! thread, restarted after a panic), [`sockets`] (the descriptors a
//! shard holds, shut down when its executor dies).

pub mod admin;
pub mod assignment;
pub mod budget;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod connection;
pub mod control;
pub mod grpc;
pub mod layout;
pub mod lease;
pub mod lifecycle;
pub mod limits;
pub mod messages;
pub mod metastore;
pub mod metrics;
pub mod objstore;
pub mod ports;
pub mod routing;
pub mod service;
pub mod shard;
pub mod sockets;
pub mod supervisor;
pub mod takeover;
pub mod wal_watch;

pub use config::AgentConfig;
pub use lifecycle::{start, RunningAgent};
