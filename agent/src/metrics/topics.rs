//! Per-topic (or, with `--metrics-per-partition`, per-partition) produce,
//! fetch and storage families on `/metrics`, read from the catalog's
//! traffic counters that each partition's shard writes and the storage
//! gauges the retention pass writes. Owns these names; the
//! catalog is reached through the source the control plane sets.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::encode::Value;
use crate::topics::catalog::{PartitionTraffic, TopicEntry};

/// The topics known, by name (the catalog's list).
pub type TopicsSource = Arc<dyn Fn() -> Vec<(String, TopicEntry)> + Send + Sync>;

/// Where the topics come from, and whether each partition gets series.
#[derive(Default)]
pub(super) struct TopicsSlot {
    pub source: Option<TopicsSource>,
    pub per_partition: bool,
}

/// The topic families, for the exposition registry.
pub(super) struct TopicsCollector(pub Arc<Mutex<TopicsSlot>>);

impl fmt::Debug for TopicsCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TopicsCollector")
    }
}

/// (name, help, unit, counter of one partition).
type Family = (
    &'static str,
    &'static str,
    Option<Unit>,
    fn(&PartitionTraffic) -> &AtomicU64,
);

const FAMILIES: [Family; 4] = [
    (
        "streamhouse_topic_produced_records",
        "Records appended to the topic's partitions led by this agent.",
        None,
        |t| &t.produced_records,
    ),
    (
        "streamhouse_topic_produced",
        "Record batch bytes appended to the topic's partitions led by this agent.",
        Some(Unit::Bytes),
        |t| &t.produced_bytes,
    ),
    (
        "streamhouse_topic_fetched_records",
        "Records of the topic answered to fetches by this agent.",
        None,
        |t| &t.fetched_records,
    ),
    (
        "streamhouse_topic_fetched",
        "Key and value bytes of the topic's records answered to fetches by this agent.",
        Some(Unit::Bytes),
        |t| &t.fetched_bytes,
    ),
];

impl Collector for TopicsCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let (source, per_partition) = {
            let slot = self.0.lock();
            (slot.source.clone(), slot.per_partition)
        };
        let mut topics = source.map(|s| s()).unwrap_or_default();
        topics.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, help, unit, counter) in FAMILIES {
            let mut family =
                enc.encode_descriptor(name, help, unit.as_ref(), MetricType::Counter)?;
            for (topic, entry) in &topics {
                if per_partition {
                    for (p, traffic) in entry.traffic.iter().enumerate() {
                        let partition = p.to_string();
                        let labels = [("topic", topic.as_str()), ("partition", partition.as_str())];
                        let v = counter(traffic).load(Ordering::Relaxed);
                        Value::Counter(v).write(&mut family.encode_family(&labels)?)?;
                    }
                } else {
                    let v = entry
                        .traffic
                        .iter()
                        .map(|t| counter(t).load(Ordering::Relaxed))
                        .sum();
                    let labels = [("topic", topic.as_str())];
                    Value::Counter(v).write(&mut family.encode_family(&labels)?)?;
                }
            }
        }
        type Field = fn(&PartitionTraffic) -> &AtomicU64;
        let gauges: [(&str, &str, Option<&Unit>, Field); 2] = [
            (
                "streamhouse_topic_stored",
                "Bytes of the topic's committed ranges in object storage, of the partitions \
                 this agent leads (as of the last retention pass).",
                Some(&Unit::Bytes),
                |t| &t.stored_bytes,
            ),
            (
                "streamhouse_topic_stored_objects",
                "Objects holding the topic's committed ranges, of the partitions this agent \
                 leads, once per partition (an object shared by partitions counts for each), \
                 as of the last retention pass.",
                None,
                |t| &t.stored_objects,
            ),
        ];
        for (name, help, unit, field) in gauges {
            let mut family = enc.encode_descriptor(name, help, unit, MetricType::Gauge)?;
            for (topic, entry) in &topics {
                if per_partition {
                    for (p, t) in entry.traffic.iter().enumerate() {
                        let partition = p.to_string();
                        let labels = [("topic", topic.as_str()), ("partition", partition.as_str())];
                        let v = field(t).load(Ordering::Relaxed);
                        Value::IntGauge(v).write(&mut family.encode_family(&labels)?)?;
                    }
                } else {
                    let v: u64 = entry
                        .traffic
                        .iter()
                        .map(|t| field(t).load(Ordering::Relaxed))
                        .sum();
                    let labels = [("topic", topic.as_str())];
                    Value::IntGauge(v).write(&mut family.encode_family(&labels)?)?;
                }
            }
        }
        if per_partition {
            let mut starts = enc.encode_descriptor(
                "streamhouse_partition_log_start_offset",
                "First readable offset of each partition this agent leads (0 elsewhere), as of \
                 the last retention pass.",
                None,
                MetricType::Gauge,
            )?;
            for (topic, entry) in &topics {
                for (p, t) in entry.traffic.iter().enumerate() {
                    let partition = p.to_string();
                    let labels = [("topic", topic.as_str()), ("partition", partition.as_str())];
                    let v = t.log_start.load(Ordering::Relaxed);
                    Value::IntGauge(v).write(&mut starts.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}
