//! Which committed ranges of a partition compaction moves, in groups that
//! each become one new object. A range is worth moving when its object is
//! small (an uploaded chunk below the target size: the many small objects
//! of ack-`object` traffic and of shards with many partitions) or mostly
//! dead (under half its bytes still referenced: a big object retention or
//! other partitions' moves left hollow). Consecutive such ranges form a
//! group up to the target size; a group is rewritten when it gathers at
//! least two objects' ranges and is full, gathers
//! [`CompactionPolicy::min_sources`] objects, or holds a mostly dead
//! object's range. Objects compaction wrote are moved again only once
//! mostly dead, so no byte is rewritten over and over.

use std::collections::HashSet;

use crate::metastore::compaction::CompactedFrom;

use super::COMPACTED_PREFIX;

/// What compaction aims at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// Size of the objects compaction writes, bytes: a group is closed
    /// before its ranges' own bytes would pass it (a single range may).
    /// Default 8 MiB (`--compaction-target-bytes`).
    pub target_bytes: u64,
    /// Fewest source objects that make a group worth rewriting though it
    /// is below the target and none of its objects is mostly dead.
    /// Default 8.
    pub min_sources: usize,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            target_bytes: 8 << 20,
            min_sources: 8,
        }
    }
}

/// Most ranges in one group: 256 (one transaction's rows).
pub const MAX_GROUP_RANGES: usize = 256;

/// Whether under half of the range's object is still referenced.
fn mostly_dead(r: &CompactedFrom) -> bool {
    r.object_live.saturating_mul(2) < r.object_size
}

/// Whether the range is worth moving at all: its object is a small
/// uploaded chunk or mostly dead.
pub fn worth_moving(r: &CompactedFrom, policy: &CompactionPolicy) -> bool {
    let small = !r.chunk_key.starts_with(COMPACTED_PREFIX) && r.object_size < policy.target_bytes;
    small || mostly_dead(r)
}

/// The groups of `ranges` (one partition's, in offset order) to rewrite,
/// each into one object, in offset order.
pub fn plan(ranges: &[CompactedFrom], policy: &CompactionPolicy) -> Vec<Vec<CompactedFrom>> {
    let mut out = Vec::new();
    let mut group: Vec<CompactedFrom> = Vec::new();
    let mut bytes = 0u64;
    let close = |group: &mut Vec<CompactedFrom>, full: bool, out: &mut Vec<Vec<CompactedFrom>>| {
        let sources: HashSet<&str> = group.iter().map(|r| r.chunk_key.as_str()).collect();
        let worth = group.iter().any(mostly_dead)
            || sources.len() >= policy.min_sources
            || (full && sources.len() >= 2);
        if worth {
            out.push(std::mem::take(group));
        } else {
            group.clear();
        }
    };
    for r in ranges {
        if !worth_moving(r, policy) {
            close(&mut group, false, &mut out);
            bytes = 0;
            continue;
        }
        let fits = bytes + r.bytes <= policy.target_bytes && group.len() < MAX_GROUP_RANGES;
        if !group.is_empty() && !fits {
            close(&mut group, true, &mut out);
            bytes = 0;
        }
        bytes += r.bytes;
        group.push(r.clone());
    }
    close(&mut group, false, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Range `[b, b + 10)` of `bytes` own bytes in object `key` of `size`
    /// bytes of which `live` are referenced.
    fn range(b: u64, key: &str, bytes: u64, size: u64, live: u64) -> CompactedFrom {
        CompactedFrom {
            base_offset: b,
            end_offset: b + 10,
            chunk_key: key.into(),
            pos: 0,
            len: bytes,
            bytes,
            epoch: 1,
            max_timestamp: None,
            object_size: size,
            object_live: live,
        }
    }

    fn bases(groups: &[Vec<CompactedFrom>]) -> Vec<Vec<u64>> {
        groups
            .iter()
            .map(|g| g.iter().map(|r| r.base_offset).collect())
            .collect()
    }

    const P: CompactionPolicy = CompactionPolicy {
        target_bytes: 100,
        min_sources: 3,
    };

    #[test]
    fn small_objects_are_gathered_up_to_the_target() {
        // Six small shared objects of 50 bytes, 30 of them this partition's.
        let rs: Vec<_> = (0..6)
            .map(|i| range(i * 10, &format!("chunks/{i}"), 30, 50, 50))
            .collect();
        // 30 + 30 + 30 = 90; the fourth would pass 100: full at three.
        assert_eq!(
            bases(&plan(&rs, &P)),
            vec![vec![0, 10, 20], vec![30, 40, 50]]
        );
    }

    #[test]
    fn too_few_small_objects_wait_for_more() {
        let rs: Vec<_> = (0..2)
            .map(|i| range(i * 10, &format!("chunks/{i}"), 10, 50, 50))
            .collect();
        assert!(plan(&rs, &P).is_empty());
    }

    #[test]
    fn a_mostly_dead_big_object_moves_alone_and_a_live_one_stays() {
        let rs = vec![
            range(0, "chunks/big-live", 200, 400, 300),
            range(10, "chunks/big-hollow", 150, 400, 150),
            range(20, "compacted/a", 90, 100, 90),
        ];
        assert_eq!(bases(&plan(&rs, &P)), vec![vec![10]]);
    }

    #[test]
    fn compacted_objects_are_not_gathered_again_and_break_groups() {
        let mut rs: Vec<_> = (0..2)
            .map(|i| range(i * 10, &format!("chunks/{i}"), 10, 50, 50))
            .collect();
        rs.push(range(20, "compacted/x", 10, 20, 20));
        rs.extend((3..5).map(|i| range(i * 10, &format!("chunks/{i}"), 10, 50, 50)));
        assert!(plan(&rs, &P).is_empty());
        rs.push(range(50, "chunks/5", 10, 50, 50));
        assert_eq!(bases(&plan(&rs, &P)), vec![vec![30, 40, 50]]);
    }

    #[test]
    fn one_object_alone_is_not_rewritten_for_being_full() {
        let rs = vec![
            range(0, "chunks/a", 90, 95, 95),
            range(10, "chunks/a", 5, 95, 95),
            range(20, "chunks/b", 90, 95, 95),
        ];
        assert!(plan(&rs, &P).is_empty());
    }
}
