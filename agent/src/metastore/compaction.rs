//! The chunk index's side of object compaction: a partition's committed
//! ranges with what their objects hold ([`CompactedFrom`]), the switch of
//! ranges to a rewritten object in one transaction under the partition's
//! lease ([`RangeSwitch`]), and the claim of an object no row names (an
//! orphan a compaction left) for the sweep. The statements both backends
//! run verbatim live here; the lease checks around them in each backend.
//! Must not read or write objects (`control/compaction`).

use crate::ids::TopicKey;

/// One committed range of a partition, as compaction weighs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactedFrom {
    pub base_offset: u64,
    pub end_offset: u64,
    pub chunk_key: String,
    /// Byte position and span of the range in its object.
    pub pos: u64,
    pub len: u64,
    /// The range's own bytes (its frames); `len` when unknown.
    pub bytes: u64,
    pub epoch: u64,
    /// Largest record timestamp, ms; `None` when unknown.
    pub max_timestamp: Option<i64>,
    /// Size of the range's object.
    pub object_size: u64,
    /// Own bytes of every range (of any partition) still in the object.
    pub object_live: u64,
}

/// A committed range after compaction: in the new object at `pos`,
/// `len` bytes, all its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewrittenRange {
    pub base_offset: u64,
    pub end_offset: u64,
    pub pos: u64,
    pub len: u64,
    pub epoch: u64,
    pub max_timestamp: Option<i64>,
}

/// The switch of a partition's ranges from their objects to one new
/// object: the `from` rows (each must still be exactly as read, else
/// nothing changes) give way to the `to` rows, which cover the same
/// offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSwitch {
    pub topic: TopicKey,
    pub partition: u32,
    /// The new object's key and size in bytes.
    pub key: String,
    pub size: u64,
    pub from: Vec<CompactedFrom>,
    pub to: Vec<RewrittenRange>,
}

/// Up to $4 ranges of partition ($1, $2) from offset $3 on, in offset
/// order, with their object's size and live bytes.
pub(crate) const RANGES_TO_WEIGH: &str =
    "SELECT r.base_offset, r.end_offset, r.chunk_key, r.pos, r.len, COALESCE(r.bytes, r.len),
         r.epoch, r.max_timestamp, c.size,
         CAST((SELECT COALESCE(SUM(COALESCE(o.bytes, o.len)), 0) FROM chunk_ranges o
               WHERE o.chunk_key = r.chunk_key) AS BIGINT)
     FROM chunk_ranges r JOIN chunks c ON c.key = r.chunk_key
     WHERE r.topic = $1 AND r.part = $2 AND r.base_offset >= $3
     ORDER BY r.base_offset LIMIT $4";

/// The range of ($1, $2) at base offset $3 if it is still in object $4 at
/// position $5 with span $6 and ends at $7: one row, or none.
pub(crate) const RANGE_UNCHANGED: &str = "SELECT 1 FROM chunk_ranges
     WHERE topic = $1 AND part = $2 AND base_offset = $3 AND chunk_key = $4 AND pos = $5
       AND len = $6 AND end_offset = $7";

/// Deletes the range of ($1, $2) at base offset $3.
pub(crate) const DELETE_RANGE: &str =
    "DELETE FROM chunk_ranges WHERE topic = $1 AND part = $2 AND base_offset = $3";

/// Registers object $1 of agent $2 with size $3 unless a row names it.
pub(crate) const CLAIM_CHUNK: &str = "INSERT INTO chunks (key, agent, size) VALUES ($1, $2, $3)
     ON CONFLICT (key) DO NOTHING";

/// Stores a rewritten range: topic, part, base, end, key, pos, len,
/// epoch, max timestamp, own bytes (= len).
pub(crate) const INSERT_RANGE: &str =
    "INSERT INTO chunk_ranges (topic, part, base_offset, end_offset, chunk_key, pos, len, epoch,
         max_timestamp, bytes)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $7)";

/// Keys of the registered objects compaction wrote.
pub(crate) const COMPACTED_KEYS: &str = "SELECT key FROM chunks WHERE key LIKE 'compacted/%'";

/// Whether `to` covers exactly the offsets of `from`: both in offset
/// order without overlaps, and every offset of either inside the other.
/// A switch that does not is refused before any statement runs.
pub(crate) fn covers_the_same(s: &RangeSwitch) -> bool {
    let from: Vec<(u64, u64)> = s
        .from
        .iter()
        .map(|f| (f.base_offset, f.end_offset))
        .collect();
    let to: Vec<(u64, u64)> = s.to.iter().map(|t| (t.base_offset, t.end_offset)).collect();
    !from.is_empty()
        && ordered(&from)
        && ordered(&to)
        && to.iter().all(|r| inside(*r, &from))
        && from.iter().all(|r| inside(*r, &to))
}

/// Ranges in offset order, each non-empty, none overlapping the next.
fn ordered(ranges: &[(u64, u64)]) -> bool {
    ranges.iter().all(|(b, e)| b < e) && ranges.windows(2).all(|w| w[0].1 <= w[1].0)
}

/// Whether every offset of `(b, e)` is in one of `ranges` (ordered).
fn inside((b, e): (u64, u64), ranges: &[(u64, u64)]) -> bool {
    let mut at = b;
    for &(rb, re) in ranges {
        if re <= at {
            continue;
        }
        if rb > at {
            return false;
        }
        at = re;
        if at >= e {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(b: u64, e: u64) -> CompactedFrom {
        CompactedFrom {
            base_offset: b,
            end_offset: e,
            chunk_key: "chunks/x".into(),
            pos: 0,
            len: 1,
            bytes: 1,
            epoch: 1,
            max_timestamp: None,
            object_size: 1,
            object_live: 1,
        }
    }

    fn to(b: u64, e: u64) -> RewrittenRange {
        RewrittenRange {
            base_offset: b,
            end_offset: e,
            pos: 0,
            len: 1,
            epoch: 1,
            max_timestamp: None,
        }
    }

    fn switch(from: Vec<CompactedFrom>, to: Vec<RewrittenRange>) -> RangeSwitch {
        RangeSwitch {
            topic: TopicKey::from_stored("t#1"),
            partition: 0,
            key: "compacted/x".into(),
            size: 1,
            from,
            to,
        }
    }

    #[test]
    fn a_switch_covers_its_sources_offsets_exactly() {
        assert!(covers_the_same(&switch(
            vec![from(0, 10), from(10, 20)],
            vec![to(0, 20)]
        )));
        assert!(covers_the_same(&switch(
            vec![from(0, 10), from(30, 40)],
            vec![to(0, 10), to(30, 40)]
        )));
        // A merged row across a gap the sources had.
        assert!(!covers_the_same(&switch(
            vec![from(0, 10), from(30, 40)],
            vec![to(0, 40)]
        )));
        assert!(!covers_the_same(&switch(vec![from(0, 10)], vec![to(0, 9)])));
        assert!(!covers_the_same(&switch(vec![from(0, 10)], vec![])));
        assert!(!covers_the_same(&switch(
            vec![from(0, 10), from(10, 20)],
            vec![to(10, 20), to(0, 10)]
        )));
    }
}
