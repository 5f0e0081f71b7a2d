//! Consumer-group metrics of the groups this agent coordinates, for
//! `/metrics`: members and generation per group, rebalances, and per
//! partition the committed offset and the lag (from the high watermark of
//! the partition's leader, wherever it runs). Written by the
//! coordinator after each saved change; the series are bounded
//! ([`MAX_PARTITION_SERIES`]). Imports nothing of the crate.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

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

    /// The Prometheus text of every group metric.
    pub fn render(&self, out: &mut String) {
        let hw = self.high_watermarks.lock().clone();
        let g = self.groups.lock();
        let _ = writeln!(
            out,
            "# TYPE streamhouse_group_rebalances_total counter\nstreamhouse_group_rebalances_total {}",
            self.rebalances.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# TYPE streamhouse_group_members gauge");
        for (name, s) in g.iter() {
            let _ = writeln!(
                out,
                "streamhouse_group_members{{group=\"{}\"}} {}",
                escape(name),
                s.members
            );
        }
        let _ = writeln!(out, "# TYPE streamhouse_group_generation gauge");
        for (name, s) in g.iter() {
            let _ = writeln!(
                out,
                "streamhouse_group_generation{{group=\"{}\"}} {}",
                escape(name),
                s.generation
            );
        }
        let _ = writeln!(out, "# TYPE streamhouse_group_committed_offset gauge");
        let mut lags = Vec::new();
        for (name, s) in g.iter() {
            for ((t, p), o) in &s.committed {
                let labels = format!(
                    "group=\"{}\",topic=\"{}\",partition=\"{p}\"",
                    escape(name),
                    escape(t)
                );
                let _ = writeln!(out, "streamhouse_group_committed_offset{{{labels}}} {o}");
                if let Some(high) = hw.as_ref().and_then(|f| f(t, *p)) {
                    lags.push((labels, high.saturating_sub(*o)));
                }
            }
        }
        let _ = writeln!(out, "# TYPE streamhouse_group_lag gauge");
        for (labels, lag) in lags {
            let _ = writeln!(out, "streamhouse_group_lag{{{labels}}} {lag}");
        }
    }
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_render_with_lag_where_the_high_watermark_is_known() {
        let m = GroupMetrics::default();
        m.set_high_watermarks(Arc::new(|t, p| (t == "t" && p == 0).then_some(50)));
        m.observe_group("g\"1", 2, 1);
        m.observe_group("g\"1", 3, 3);
        m.observe_commit("g\"1", [("t".to_string(), 0, 40), ("t".to_string(), 1, 7)]);
        let mut out = String::new();
        m.render(&mut out);
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
        let mut out = String::new();
        m.render(&mut out);
        assert!(!out.contains("g\\\"1"));
    }
}
