//! Consumer-group metrics of the groups this agent coordinates, for
//! `/metrics`: members and generation per group, rebalances, and per
//! partition the committed offset and the lag (from the high watermark of
//! the partition's leader, wherever it runs). Written by the
//! coordinator after each saved change; the series are bounded
//! ([`MAX_PARTITION_SERIES`]). Imports nothing of the crate outside
//! `metrics`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::encode::{single, Value};

/// Most (group, topic, partition) series kept: 10,000; commits of further
/// partitions are not shown (the group's members and generation still
/// are).
pub const MAX_PARTITION_SERIES: usize = 10_000;

/// The high watermark of `topic`/`partition`, if known.
pub type HighWatermarks = Arc<dyn Fn(&str, u32) -> Option<u64> + Send + Sync>;

#[derive(Debug, Default, Clone)]
struct GroupStat {
    members: u64,
    generation: u64,
    /// (topic, partition) → committed offset.
    committed: BTreeMap<(String, u32), u64>,
}

/// The coordinator's view of its groups.
#[derive(Default)]
pub struct GroupMetrics {
    groups: Mutex<BTreeMap<String, GroupStat>>,
    rebalances: AtomicU64,
    high_watermarks: Mutex<Option<HighWatermarks>>,
}

impl GroupMetrics {
    /// Where lag's high watermarks come from (set once the catalog exists).
    pub fn set_high_watermarks(&self, f: HighWatermarks) {
        *self.high_watermarks.lock() = Some(f);
    }

    /// After a saved heartbeat: `group` has `members` at `generation`
    /// (each generation above the last one seen counts as a rebalance).
    pub fn observe_group(&self, group: &str, members: u64, generation: u64) {
        let mut g = self.groups.lock();
        let s = g.entry(group.to_owned()).or_default();
        if generation > s.generation && s.generation != 0 {
            self.rebalances
                .fetch_add(generation - s.generation, Ordering::Relaxed);
        }
        s.members = members;
        s.generation = generation;
    }

    /// After a commit of `group`: (topic, partition, offset) each.
    pub fn observe_commit(
        &self,
        group: &str,
        offsets: impl IntoIterator<Item = (String, u32, u64)>,
    ) {
        let mut g = self.groups.lock();
        let mut series: usize = g.values().map(|s| s.committed.len()).sum();
        let s = g.entry(group.to_owned()).or_default();
        for (t, p, o) in offsets {
            let key = (t, p);
            if !s.committed.contains_key(&key) {
                if series >= MAX_PARTITION_SERIES {
                    continue;
                }
                series += 1;
            }
            s.committed.insert(key, o);
        }
    }

    /// The partitions with a committed-offset series.
    pub fn partitions(&self) -> std::collections::BTreeSet<(String, u32)> {
        self.groups
            .lock()
            .values()
            .flat_map(|s| s.committed.keys().cloned())
            .collect()
    }

    /// A deleted group's series go.
    pub fn forget(&self, group: &str) {
        self.groups.lock().remove(group);
    }

    /// Keeps the series of the groups `keep` says this agent still
    /// coordinates; the others (moved to another agent) go.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.groups.lock().retain(|g, _| keep(g));
    }
}

/// A gauge family with a series per group: (name, help, value).
type PerGroup = (&'static str, &'static str, fn(&GroupStat) -> u64);

/// The group families, for the exposition registry.
pub(super) struct GroupsCollector(pub Arc<GroupMetrics>);

impl fmt::Debug for GroupsCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GroupsCollector")
    }
}

impl Collector for GroupsCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let m = &self.0;
        let hw = m.high_watermarks.lock().clone();
        let g = m.groups.lock();
        single(
            &mut enc,
            "streamhouse_group_rebalances",
            "Generations of the groups this agent coordinates (each a rebalance).",
            None,
            Value::Counter(m.rebalances.load(Ordering::Relaxed)),
        )?;
        let per_group: [PerGroup; 2] = [
            (
                "streamhouse_group_members",
                "Members of each group this agent coordinates.",
                |s| s.members,
            ),
            (
                "streamhouse_group_generation",
                "Generation of each group this agent coordinates.",
                |s| s.generation,
            ),
        ];
        for (metric, help, value) in per_group {
            let mut family = enc.encode_descriptor(metric, help, None, MetricType::Gauge)?;
            for (name, s) in g.iter() {
                let labels = [("group", name.as_str())];
                Value::IntGauge(value(s)).write(&mut family.encode_family(&labels)?)?;
            }
        }
        let mut family = enc.encode_descriptor(
            "streamhouse_group_committed_offset",
            "Committed offset of each group and partition (next record to consume).",
            None,
            MetricType::Gauge,
        )?;
        let mut lags = Vec::new();
        for (name, s) in g.iter() {
            for ((t, p), o) in &s.committed {
                let partition = p.to_string();
                let labels = [
                    ("group", name.as_str()),
                    ("topic", t.as_str()),
                    ("partition", partition.as_str()),
                ];
                Value::IntGauge(*o).write(&mut family.encode_family(&labels)?)?;
                if let Some(high) = hw.as_ref().and_then(|f| f(t, *p)) {
                    lags.push((name, t, partition, high.saturating_sub(*o)));
                }
            }
        }
        let mut family = enc.encode_descriptor(
            "streamhouse_group_lag",
            "Records between the committed offset and the partition's high watermark.",
            None,
            MetricType::Gauge,
        )?;
        for (name, t, partition, lag) in lags {
            let labels = [
                ("group", name.as_str()),
                ("topic", t.as_str()),
                ("partition", partition.as_str()),
            ];
            Value::IntGauge(lag).write(&mut family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(m: &Arc<GroupMetrics>) -> String {
        let mut r = prometheus_client::registry::Registry::default();
        r.register_collector(Box::new(GroupsCollector(m.clone())));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &r).unwrap();
        out
    }

    #[test]
    fn groups_render_with_lag_where_the_high_watermark_is_known() {
        let m = GroupMetrics::default();
        m.set_high_watermarks(Arc::new(|t, p| (t == "t" && p == 0).then_some(50)));
        m.observe_group("g\"1", 2, 1);
        m.observe_group("g\"1", 3, 3);
        m.observe_commit("g\"1", [("t".to_string(), 0, 40), ("t".to_string(), 1, 7)]);
        let m = Arc::new(m);
        let out = render(&m);
        assert!(
            out.contains("streamhouse_group_rebalances_total 2\n"),
            "{out}"
        );
        assert!(
            out.contains("streamhouse_group_members{group=\"g\\\"1\"} 3\n"),
            "{out}"
        );
        assert!(out.contains(
            "streamhouse_group_committed_offset{group=\"g\\\"1\",topic=\"t\",partition=\"1\"} 7\n"
        ));
        assert!(out
            .contains("streamhouse_group_lag{group=\"g\\\"1\",topic=\"t\",partition=\"0\"} 10\n"));
        assert!(
            !out.contains("partition=\"1\"} 7\nstreamhouse_group_lag"),
            "no lag without a high watermark"
        );
        m.forget("g\"1");
        let out = render(&m);
        assert!(!out.contains("g\\\"1"));
    }
}
