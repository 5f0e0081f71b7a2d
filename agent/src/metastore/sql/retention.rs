//! The statements of log starts and retention both backends run
//! (`$N` parameters, see [`super::for_sqlite`]): a partition's log start, the offset its
//! retention settings allow it to start at, the ranges deleted below it,
//! and the chunk objects left without ranges. The lease checks around them
//! live in each backend.

/// `start_offset, deleted_end` of a partition ($1 topic, $2 partition);
/// no row: 0 and 0.
pub(crate) const LOG_START: &str =
    "SELECT start_offset, deleted_end FROM log_starts WHERE topic = $1 AND part = $2";

/// Where the partition's committed ranges end ($1, $2); 0 without any.
pub(crate) const RANGES_END: &str =
    "SELECT COALESCE(MAX(end_offset), 0) FROM chunk_ranges WHERE topic = $1 AND part = $2";

/// Where the ranges wholly below $3 end (0 without any).
pub(crate) const GONE_END: &str = "SELECT COALESCE(MAX(end_offset), 0) FROM chunk_ranges
     WHERE topic = $1 AND part = $2 AND end_offset <= $3";

/// Deletes the ranges wholly below $3.
pub(crate) const DELETE_GONE: &str =
    "DELETE FROM chunk_ranges WHERE topic = $1 AND part = $2 AND end_offset <= $3";

/// Stores a partition's log start ($3) and deleted end ($4).
pub(crate) const SET_LOG_START: &str =
    "INSERT INTO log_starts (topic, part, start_offset, deleted_end) VALUES ($1, $2, $3, $4)
     ON CONFLICT (topic, part) DO UPDATE SET start_offset = excluded.start_offset,
         deleted_end = excluded.deleted_end";

/// The first range (in offset order) not wholly older than $3 (ms): where
/// time retention lets the partition start. A range whose largest
/// timestamp is unknown (committed before the time index) counts as new.
pub(crate) const FIRST_UNEXPIRED: &str = "SELECT MIN(base_offset) FROM chunk_ranges
     WHERE topic = $1 AND part = $2 AND (max_timestamp IS NULL OR max_timestamp >= $3)";

/// The first range from which on the partition's ranges hold at most $3
/// bytes: where size retention lets it start.
pub(crate) const FIRST_WITHIN_BYTES: &str = "SELECT MIN(base_offset) FROM (
         SELECT base_offset, CAST(SUM(COALESCE(bytes, len)) OVER (ORDER BY base_offset DESC) AS BIGINT) AS kept
         FROM chunk_ranges WHERE topic = $1 AND part = $2) AS newest
     WHERE kept <= $3";

/// Up to $1 chunk objects no committed range references any more
/// (retention deleted their ranges, their topics were deleted, or none
/// was ever kept), in key order.
pub(crate) const DEAD_CHUNKS: &str = "SELECT key FROM chunks WHERE NOT EXISTS (
         SELECT 1 FROM chunk_ranges WHERE chunk_ranges.chunk_key = chunks.key)
     ORDER BY key LIMIT $1";

/// Forgets chunk $1 if no range references it (its object is deleted).
pub(crate) const FORGET_CHUNK: &str = "DELETE FROM chunks WHERE key = $1 AND NOT EXISTS (
         SELECT 1 FROM chunk_ranges WHERE chunk_ranges.chunk_key = $1)";

/// Bytes of a partition's committed ranges in object storage ($1, $2),
/// and the objects holding them.
pub(crate) const STORED: &str = "SELECT CAST(COALESCE(SUM(COALESCE(bytes, len)), 0) AS BIGINT),
         CAST(COUNT(DISTINCT chunk_key) AS BIGINT)
     FROM chunk_ranges WHERE topic = $1 AND part = $2";

/// Deletes a topic's log starts ($1 topic key).
pub(crate) const DELETE_TOPIC_STARTS: &str = "DELETE FROM log_starts WHERE topic = $1";

/// Where retention lets a partition start, from the answers of
/// [`RANGES_END`] and, for each setting in force, [`FIRST_UNEXPIRED`] or
/// [`FIRST_WITHIN_BYTES`] (`Some(None)`: no range qualifies, so every
/// range goes). `None`: nothing committed, or no setting in force.
pub(crate) fn retention_start(
    ranges_end: u64,
    first_unexpired: Option<Option<i64>>,
    first_within_bytes: Option<Option<i64>>,
) -> Option<u64> {
    if ranges_end == 0 {
        return None;
    }
    [first_unexpired, first_within_bytes]
        .into_iter()
        .flatten()
        .map(|first| first.map_or(ranges_end, |b| u64::try_from(b).unwrap_or(0)))
        .max()
}

#[cfg(test)]
mod tests {
    use super::retention_start;

    #[test]
    fn the_later_of_the_settings_wins_and_nothing_committed_moves_nothing() {
        assert_eq!(retention_start(0, Some(None), Some(None)), None);
        assert_eq!(retention_start(100, None, None), None);
        assert_eq!(retention_start(100, Some(Some(40)), None), Some(40));
        assert_eq!(
            retention_start(100, Some(Some(40)), Some(Some(70))),
            Some(70)
        );
        assert_eq!(retention_start(100, Some(None), Some(Some(70))), Some(100));
    }
}
