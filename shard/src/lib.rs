//! StreamHouse shard storage engine: one core's durable log.
//!
//! Owns the batch format ([`batch`]), WAL segment frames and recovery scans
//! ([`segment`]), the write-ahead log with group commit ([`log`]), the
//! per-partition offset index ([`index`]) and the idempotent-producer table
//! ([`producers`]). It runs on one glommio executor and knows nothing of
//! sockets, gRPC or tokio.

pub mod batch;
#[cfg(feature = "engine")]
pub mod index;
#[cfg(feature = "engine")]
pub mod log;
#[cfg(feature = "engine")]
pub mod producers;
#[cfg(feature = "engine")]
pub mod segment;
pub mod stats;

#[cfg(feature = "engine")]
pub use log::{
    Appended, LogConfig, LogError, ReadResult, RecoveryReport, ReopenError, SealedSegment,
    SegmentRange, ShardLog,
};
