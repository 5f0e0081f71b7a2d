//! StreamHouse storage engine: the durable log one shard (one core of an
//! agent) runs.
//!
//! Owns WAL segment frames and recovery scans ([`segment`]), the
//! write-ahead log with group commit ([`log`]), the per-partition offset
//! index ([`index`]) and the idempotent-producer table ([`producers`]). It
//! runs on one glommio executor and knows nothing of sockets, gRPC or
//! tokio. The batches it stores are in the wire format of
//! `streamhouse_proto::batch`, re-exported as [`batch`].

pub use streamhouse_proto::batch;
pub mod index;
pub mod log;
pub mod producers;
pub mod segment;
#[cfg(feature = "failpoints")]
pub mod sim;
pub mod stats;

pub use log::{
    Appended, LogConfig, LogError, ReadResult, RecoveryReport, ReopenError, SealedSegment,
    SegmentRange, ShardLog, TimeMatch,
};
