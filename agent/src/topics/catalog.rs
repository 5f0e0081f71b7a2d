//! The topics one agent knows, as loaded from the metadata store (which is
//! the source of truth) and updated by the control thread after each admin
//! change. Shared by all shards behind a mutex that only admin calls and
//! topic refreshes take; the produce path reads a shard-local copy and only
//! watches [`Catalog::version`]. Also holds per-partition high watermarks
//! and lease epochs that shards and the lease task publish for metadata
//! answers. Must not hold partition data.

use crate::ids::{incarnation_of, name_of, TopicKey};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::metastore::TopicRow;
use crate::topics::topic_config::TopicConfig;

/// Most partitions a topic may have.
pub const MAX_PARTITIONS: u32 = 10_000;
/// Longest topic name, in bytes.
pub const MAX_TOPIC_NAME: usize = 249;

/// A topic as the catalog knows it.
#[derive(Debug, Clone)]
pub struct TopicEntry {
    /// Incarnation id: a topic deleted and created again gets a new one, so
    /// its old data in the WAL is never mistaken for the new topic's.
    pub id: u64,
    pub partitions: u32,
    /// High watermark per partition, published by the owning shard.
    pub high_watermarks: Arc<[AtomicU64]>,
    /// Lease epoch per partition held by this agent (0 = not held),
    /// published by the lease task.
    pub lease_epochs: Arc<[AtomicU64]>,
    /// What this agent's shards produced and fetched, per partition (for
    /// `/metrics`).
    pub traffic: Arc<[PartitionTraffic]>,
    /// The configuration keys the topic set (the others follow the
    /// agent's defaults).
    pub config: Arc<TopicConfig>,
}

/// Records and bytes one partition took and served on this agent, and
/// what it keeps in object storage while this agent leads it. The traffic
/// counters are written only by the shard that owns the partition; the
/// storage gauges by the control thread's retention pass (once per
/// `--retention-check-ms`); a cache line each, so shards on other cores
/// never write the same line.
#[repr(align(64))]
#[derive(Debug, Default)]
pub struct PartitionTraffic {
    pub produced_records: AtomicU64,
    /// Record batch bytes appended.
    pub produced_bytes: AtomicU64,
    pub fetched_records: AtomicU64,
    /// Keys and values of the records answered.
    pub fetched_bytes: AtomicU64,
    /// Bytes of its committed ranges in object storage (0 when another
    /// agent leads it).
    pub stored_bytes: AtomicU64,
    /// Objects holding its committed ranges (0 when another agent leads it).
    pub stored_objects: AtomicU64,
    /// Its first readable offset (0 when another agent leads it).
    pub log_start: AtomicU64,
}

impl TopicEntry {
    /// This incarnation's key in the shard logs, leases and chunk index.
    pub fn key(&self, name: &str) -> TopicKey {
        TopicKey::new(name, self.id)
    }
}

/// Catalog errors, each mapping to one gRPC status.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{0}")]
    Invalid(String),
}

/// The agent's view of the topics.
#[derive(Default)]
pub struct Catalog {
    topics: Mutex<BTreeMap<String, TopicEntry>>,
    version: AtomicU64,
}

fn zeroed(n: u32) -> Arc<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

/// Gives `t` `partitions` partitions, the existing ones keeping their
/// published values (shards move to the new arrays when they see the
/// catalog's version change).
fn grow(t: &mut TopicEntry, partitions: u32) {
    let copy = |old: &Arc<[AtomicU64]>| -> Arc<[AtomicU64]> {
        (0..partitions as usize)
            .map(|i| AtomicU64::new(old.get(i).map_or(0, |a| a.load(Ordering::Relaxed))))
            .collect()
    };
    t.high_watermarks = copy(&t.high_watermarks);
    t.lease_epochs = copy(&t.lease_epochs);
    t.traffic = (0..partitions as usize)
        .map(|i| {
            let n = PartitionTraffic::default();
            if let Some(o) = t.traffic.get(i) {
                for (to, from) in [
                    (&n.produced_records, &o.produced_records),
                    (&n.produced_bytes, &o.produced_bytes),
                    (&n.fetched_records, &o.fetched_records),
                    (&n.fetched_bytes, &o.fetched_bytes),
                    (&n.stored_bytes, &o.stored_bytes),
                    (&n.stored_objects, &o.stored_objects),
                    (&n.log_start, &o.log_start),
                ] {
                    to.store(from.load(Ordering::Relaxed), Ordering::Relaxed);
                }
            }
            n
        })
        .collect();
    t.partitions = partitions;
}

/// A stored configuration, keys no agent should have written left out
/// (with a warning; they take the defaults).
fn stored_config(row: &TopicRow) -> TopicConfig {
    let (config, skipped) = TopicConfig::stored(row.config.clone());
    for why in skipped {
        tracing::warn!(topic = %row.name, %why, "stored topic configuration key ignored");
    }
    config
}

/// Checks a topic name: 1-249 bytes of `[A-Za-z0-9._-]`.
pub fn validate_topic_name(name: &str) -> Result<(), CatalogError> {
    if name.is_empty() {
        return Err(CatalogError::Invalid("topic name is empty".into()));
    }
    if name.len() > MAX_TOPIC_NAME {
        return Err(CatalogError::Invalid(format!(
            "topic name is {} bytes; the limit is {MAX_TOPIC_NAME}",
            name.len()
        )));
    }
    if name == "." || name == ".." {
        return Err(CatalogError::Invalid(format!(
            "topic name {name:?} is reserved (it names a directory)"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(CatalogError::Invalid(format!(
            "topic name {name:?} contains {c:?}; use letters, digits, '.', '_' and '-'"
        )));
    }
    Ok(())
}

/// Checks a new topic's name and partition count.
pub fn validate_new_topic(name: &str, partitions: u32) -> Result<(), CatalogError> {
    validate_topic_name(name)?;
    if partitions == 0 || partitions > MAX_PARTITIONS {
        return Err(CatalogError::Invalid(format!(
            "partitions must be between 1 and {MAX_PARTITIONS}, got {partitions}"
        )));
    }
    Ok(())
}

impl Catalog {
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// Changes whenever topics are added, removed or configured.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn get(&self, name: &str) -> Option<TopicEntry> {
        self.topics.lock().get(name).cloned()
    }

    pub fn list(&self) -> Vec<(String, TopicEntry)> {
        self.topics
            .lock()
            .iter()
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect()
    }

    /// Adds a topic (or replaces one with a different incarnation id), or
    /// takes a known topic's new configuration.
    pub fn insert(&self, row: &TopicRow) -> TopicEntry {
        let mut topics = self.topics.lock();
        if let Some(t) = topics.get_mut(&row.name).filter(|t| t.id == row.id) {
            if t.config.as_stored() != &row.config {
                t.config = Arc::new(stored_config(row));
                self.version.fetch_add(1, Ordering::AcqRel);
            }
            if row.partitions > t.partitions {
                grow(t, row.partitions);
                self.version.fetch_add(1, Ordering::AcqRel);
            }
            return t.clone();
        }
        let entry = TopicEntry {
            config: Arc::new(stored_config(row)),
            id: row.id,
            partitions: row.partitions,
            high_watermarks: zeroed(row.partitions),
            lease_epochs: zeroed(row.partitions),
            traffic: (0..row.partitions)
                .map(|_| PartitionTraffic::default())
                .collect(),
        };
        topics.insert(row.name.clone(), entry.clone());
        self.version.fetch_add(1, Ordering::AcqRel);
        entry
    }

    /// Removes a topic; returns it if it was known.
    pub fn remove(&self, name: &str) -> Option<TopicEntry> {
        let old = self.topics.lock().remove(name);
        if old.is_some() {
            self.version.fetch_add(1, Ordering::AcqRel);
        }
        old
    }

    /// Makes the catalog hold exactly `rows` (topics loaded from the
    /// metadata store).
    pub fn replace(&self, rows: &[TopicRow]) {
        let names: Vec<String> = self.topics.lock().keys().cloned().collect();
        for n in names {
            if !rows.iter().any(|r| r.name == n) {
                self.remove(&n);
            }
        }
        for r in rows {
            self.insert(r);
        }
    }

    /// Publishes the lease epoch this agent holds on a partition (0: none).
    pub fn set_lease_epoch(&self, key: &str, partition: u32, epoch: u64) {
        let topics = self.topics.lock();
        let entry = topics
            .get(name_of(key))
            .filter(|t| incarnation_of(key) == Some(t.id));
        if let Some(e) = entry.and_then(|t| t.lease_epochs.get(partition as usize)) {
            e.store(epoch, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, id: u64, partitions: u32) -> TopicRow {
        TopicRow {
            config: Default::default(),
            name: name.into(),
            id,
            partitions,
        }
    }

    #[test]
    fn validates_names_and_partition_counts() {
        assert!(validate_new_topic("orders.v1_x-y", 3).is_ok());
        for (name, parts) in [("", 1), ("a b", 1), ("x", 0), ("x", MAX_PARTITIONS + 1)] {
            assert!(validate_new_topic(name, parts).is_err(), "{name:?} {parts}");
        }
        assert!(validate_new_topic(&"a".repeat(MAX_TOPIC_NAME + 1), 1).is_err());
    }

    #[test]
    fn versions_change_with_topics_and_replace_syncs() {
        let c = Catalog::new();
        let v0 = c.version();
        c.insert(&row("a", 1, 2));
        assert!(c.version() > v0);
        let v1 = c.version();
        c.insert(&row("a", 1, 2));
        assert_eq!(c.version(), v1, "same incarnation: no change");
        c.set_lease_epoch("a#1", 1, 7);
        assert_eq!(
            c.get("a").unwrap().lease_epochs[1].load(Ordering::Relaxed),
            7
        );
        c.replace(&[row("a", 3, 1), row("b", 2, 4)]);
        assert_eq!(c.get("a").unwrap().id, 3);
        // A lease of the old incarnation never shows on the new one.
        c.set_lease_epoch("a#1", 0, 9);
        assert_eq!(
            c.get("a").unwrap().lease_epochs[0].load(Ordering::Relaxed),
            0
        );
        c.set_lease_epoch("a#3", 0, 9);
        assert_eq!(
            c.get("a").unwrap().lease_epochs[0].load(Ordering::Relaxed),
            9
        );
        assert_eq!(c.get("b").unwrap().partitions, 4);
        assert!(c.remove("b").is_some());
        assert!(c.remove("b").is_none());
        assert_eq!(c.list().len(), 1);
    }
}
