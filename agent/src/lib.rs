//! StreamHouse agent as a library: the `streamhouse-agent` binary is a thin
//! wrapper around [`start`], and clients embed it in-process for their
//! `direct` transport.
//!
//! Modules: [`config`] (flags), [`catalog`] (topics), [`routing`] (partition
//! → shard), [`grpc`] (HTTP/2 framing), [`service`] (what each call means),
//! [`shard`] (one executor's life), [`lifecycle`] (starting and stopping the
//! shards, the data-dir lock).

pub mod catalog;
pub mod config;
pub mod grpc;
pub mod lifecycle;
pub mod routing;
pub mod service;
pub mod shard;

pub use config::AgentConfig;
pub use lifecycle::{start, RunningAgent};
