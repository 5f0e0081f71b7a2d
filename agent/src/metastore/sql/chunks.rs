//! Statements of the chunk index both backends run: committed ranges,
//! the producer state stored with them, and reads of both.
//! Written once with `$N` parameters (see [`super::for_sqlite`]).

/// Keeps a partition's $3 producers with the latest ranges (ties by the higher id).
pub(crate) const CAP_PRODUCERS: &str =
    "DELETE FROM producer_state WHERE topic = $1 AND part = $2 AND producer_id NOT IN (
                     SELECT producer_id FROM producer_state WHERE topic = $1 AND part = $2
                     ORDER BY end_offset DESC, producer_id DESC LIMIT $3)";

/// Whether chunk $1 is registered.
pub(crate) const CHUNK_EXISTS: &str = "SELECT key FROM chunks WHERE key = $1";

/// Drops a partition's producers last stored before $3 (ms).
pub(crate) const EXPIRE_PRODUCERS: &str =
    "DELETE FROM producer_state WHERE topic = $1 AND part = $2 AND updated_ms < $3";

/// Adds a committed range ($1 topic, $2 partition, $3 base offset, $4 end offset, $5 chunk key, $6 position, $7 length, $8 epoch, $9 largest timestamp, $10 own bytes).
pub(crate) const INSERT_RANGE: &str =
    "INSERT INTO chunk_ranges (topic, part, base_offset, end_offset, chunk_key, pos, len, epoch,
                     max_timestamp, bytes)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// A partition's stored producers ($1, $2).
pub(crate) const PRODUCER_STATE: &str =
    "SELECT producer_id, batches FROM producer_state WHERE topic = $1 AND part = $2";

/// The first range of a partition ($1, $2) ending after offset $3.
pub(crate) const RANGE_AT: &str =
    "SELECT chunk_key, base_offset, end_offset, pos, len FROM chunk_ranges
                 WHERE topic = $1 AND part = $2 AND end_offset > $3
                 ORDER BY end_offset LIMIT 1";

/// Up to $6 ranges of a partition ($1, $2) between offsets $3 and $4 that may hold a record at or after $5 (ms).
pub(crate) const TIME_RANGES: &str =
    "SELECT chunk_key, base_offset, end_offset, pos, len FROM chunk_ranges
                 WHERE topic = $1 AND part = $2 AND end_offset > $3 AND base_offset < $4
                   AND (max_timestamp IS NULL OR max_timestamp >= $5)
                 ORDER BY base_offset LIMIT $6";

/// Stores a producer's remembered batches ($1 topic, $2 partition, $3 producer id, $4 batches, $5 end offset, $6 ms), never over a later range's.
pub(crate) const UPSERT_PRODUCER: &str =
    "INSERT INTO producer_state (topic, part, producer_id, batches, end_offset, updated_ms)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (topic, part, producer_id) DO UPDATE SET
                         batches = excluded.batches, end_offset = excluded.end_offset,
                         updated_ms = excluded.updated_ms
                     WHERE producer_state.end_offset <= excluded.end_offset";
