//! Consumer groups on the client: [`GroupConsumer`] reads the partitions
//! its group's coordinator assigns it and commits offsets to the group.
//! `builder` checks a member's settings and starts it, `link` reaches the
//! coordinator, `membership` heartbeats in the background, `admin` is group
//! administration on `Admin`, `consumer` applies assignments and reads,
//! `listener` is what the application is told, `config` the settings.

mod admin;
mod builder;
mod config;
mod consumer;
mod link;
mod listener;
mod membership;

pub use builder::GroupConsumerBuilder;
pub use config::{AutoOffsetReset, GroupConfig};
pub use consumer::GroupConsumer;
pub use listener::RebalanceListener;
pub use membership::TopicPartition;

use streamhouse_proto as pb;

/// The committed offsets of a `FetchOffsets` answer (partitions never
/// committed left out).
fn committed_of(r: pb::FetchOffsetsResponse) -> std::collections::BTreeMap<TopicPartition, u64> {
    committed_with_epochs(r)
        .into_iter()
        .map(|(tp, at)| (tp, at.offset))
        .collect()
}

/// Where a partition's reading stands: the next offset and the leader
/// epoch of the record before it (`None`: not known).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    offset: u64,
    epoch: Option<u64>,
}

/// As [`committed_of`], with the leader epoch committed with each offset.
fn committed_with_epochs(
    r: pb::FetchOffsetsResponse,
) -> std::collections::BTreeMap<TopicPartition, Position> {
    r.offsets
        .into_iter()
        .filter_map(|o| {
            let offset = o.offset?;
            let at = Position {
                offset,
                epoch: o.leader_epoch,
            };
            Some((TopicPartition::new(o.topic, o.partition), at))
        })
        .collect()
}
