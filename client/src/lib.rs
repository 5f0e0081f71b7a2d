//! StreamHouse client: [`Producer`], [`Consumer`] and [`Admin`] over gRPC
//! (tokio + tonic). The `streamctl` command line is a crate of its own
//! (`streamctl/`), so this one pulls no command-line dependencies.
//!
//! Modules: [`producer`] (batching, sending, retries, idempotence) built on
//! [`partitioner`], [`backoff`] and [`retry`], taking and giving back the
//! types of [`record`]; [`consumer`] (fetching by offset or time);
//! [`group`] (the group consumer and group administration); [`admin`]
//! with [`delete_records`] and [`topic_config`]; [`net`] (connections per
//! agent shard, circuit breakers, routes) is shared by all of them;
//! an agent in-process is the `streamhouse-direct` crate's (it hands the
//! clients a handle to [`hold`](ProducerBuilder::hold)).

#![warn(missing_docs)]
#![warn(clippy::missing_errors_doc)]

pub mod acls;
pub mod admin;
pub mod backoff;
pub mod bootstrap;
pub mod consumer;
pub mod delete_records;
pub mod error;
pub mod group;
pub mod net;
pub mod partitioner;
pub mod producer;
pub mod record;
pub mod retry;
pub mod topic_config;
pub mod users;

pub use acls::AclRule;
pub use admin::{Admin, AgentInfo, ClusterInfo, PartitionInfo, TopicInfo};
pub use bootstrap::Bootstrap;
pub use consumer::{
    parse_time_ms, Consumer, ConsumerBuilder, ConsumerRecord, Offset, OffsetAndTimestamp,
    ReadLevel, Truncations,
};
pub use error::{Code, Error, Result};
pub use group::{AutoOffsetReset, GroupConsumer, GroupConsumerBuilder, RebalanceListener};
pub use net::Token;
pub use producer::{
    AckFuture, Acks, Admission, BatchSendFuture, Producer, ProducerBuilder, ProducerConfig,
    ProducerMetrics, SendFuture, MAX_IN_FLIGHT_PER_PARTITION,
};
pub use record::{BatchMetadata, BatchRecord, ProducerRecord, RecordMetadata};
pub use streamhouse_proto as proto;
/// Batch compression ([`ProducerBuilder::compression`]).
pub use streamhouse_proto::batch::Codec;
/// One partition of a topic by name (group assignments, commits, seeks).
pub use streamhouse_proto::TopicPartition;
pub use topic_config::{ConfigEntry, ConfigSource};
pub use users::{NewToken, TokenInfo, UserInfo};

/// The README's examples, compiled as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
