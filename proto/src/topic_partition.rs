//! [`TopicPartition`]: one partition of a topic by name, as group
//! assignments, commits, seeks and pauses name it on both sides of the
//! wire, with its conversions to and from the protocol's grouped form
//! ([`TopicPartitions`](crate::TopicPartitions): a topic and its
//! partitions). Owns no other type.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::TopicPartitions;

/// One partition of a topic, by topic name. Ordered by topic, then
/// partition. Stored by the agent (consumer groups' rows) as
/// `{"topic": .., "partition": ..}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicPartition {
    /// The topic's name.
    pub topic: String,
    /// The partition's number, from 0.
    pub partition: u32,
}

impl TopicPartition {
    /// Partition `partition` of `topic`.
    pub fn new(topic: impl Into<String>, partition: u32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl From<(String, u32)> for TopicPartition {
    fn from((topic, partition): (String, u32)) -> Self {
        TopicPartition { topic, partition }
    }
}

impl From<(&str, u32)> for TopicPartition {
    fn from((topic, partition): (&str, u32)) -> Self {
        TopicPartition::new(topic, partition)
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// `parts` grouped by topic, as the protocol carries them: topics in
/// order, each topic's partitions in order.
pub fn group_by_topic<'a>(
    parts: impl IntoIterator<Item = &'a TopicPartition>,
) -> Vec<TopicPartitions> {
    let mut by_topic: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for tp in parts {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    by_topic
        .into_iter()
        .map(|(topic, mut partitions)| {
            partitions.sort_unstable();
            partitions.dedup();
            TopicPartitions {
                topic: topic.to_owned(),
                partitions,
            }
        })
        .collect()
}

/// The partitions of the protocol's grouped form, one by one.
pub fn flatten(parts: &[TopicPartitions]) -> BTreeSet<TopicPartition> {
    parts
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| TopicPartition::new(&t.topic, *p))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_and_flattening_are_inverse() {
        let set: BTreeSet<TopicPartition> = [("b", 2), ("a", 1), ("b", 0), ("a", 0)]
            .into_iter()
            .map(TopicPartition::from)
            .collect();
        let grouped = group_by_topic(&set);
        assert_eq!(grouped.len(), 2);
        assert_eq!(grouped[0].topic, "a");
        assert_eq!(grouped[0].partitions, vec![0, 1]);
        assert_eq!(grouped[1].partitions, vec![0, 2]);
        assert_eq!(flatten(&grouped), set);
    }

    #[test]
    fn the_stored_form_names_topic_and_partition() {
        let tp = TopicPartition::new("orders", 7);
        assert_eq!(tp.to_string(), "orders/7");
        assert!(TopicPartition::new("a", 9) < TopicPartition::new("b", 0));
    }
}
