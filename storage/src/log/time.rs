//! Seek by time in the local log: the first durable record of a partition
//! whose timestamp is at least a given time, found through the time index
//! (one largest-timestamp per batch) and one read of the batches it names.
//! Never writes.

use super::error::LogError;
use super::partition::unknown;
use super::ShardLog;

/// Batches whose header promises a timestamp ≥ t but whose records hold
/// none (a producer wrote a wrong header) are skipped; after this many the
/// answer is the next candidate batch's first offset, so one request does
/// bounded work whatever the producers wrote.
const MAX_BATCHES_READ: usize = 32;

/// The first record at or after a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeMatch {
    pub offset: u64,
    /// The record's timestamp (ms since the Unix epoch).
    pub timestamp_ms: i64,
}

impl ShardLog {
    /// The first durable record of `topic/partition` at or after `from`
    /// whose timestamp is ≥ `timestamp_ms`, or `None` when no local record
    /// reaches that time. `from` below the log start counts from the start.
    /// Cancelling it leaves nothing behind (it only reads).
    pub async fn offset_for_time(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        timestamp_ms: i64,
    ) -> Result<Option<TimeMatch>, LogError> {
        let mut from = from;
        for _ in 0..MAX_BATCHES_READ {
            let candidate = {
                let st = self.inner.state.borrow();
                let p = st
                    .partitions
                    .find(topic, partition)
                    .ok_or_else(|| unknown(topic, partition))?;
                from = from.max(p.log_start);
                let first = p.index.at_or_after_time(from, timestamp_ms).next().copied();
                first
            };
            let Some(e) = candidate else {
                return Ok(None);
            };
            let read = match self
                .read(topic, partition, e.base_offset, e.len as usize)
                .await
            {
                Ok(r) => r,
                // Dropped to object storage meanwhile: start again past it.
                Err(LogError::OffsetOutOfRange { log_start, .. }) => {
                    from = log_start;
                    continue;
                }
                Err(err) => return Err(err),
            };
            let hit = read
                .records
                .iter()
                .filter(|r| r.offset >= from && r.offset < e.next_offset)
                .find(|r| r.timestamp >= timestamp_ms);
            if let Some(r) = hit {
                return Ok(Some(TimeMatch {
                    offset: r.offset,
                    timestamp_ms: r.timestamp,
                }));
            }
            from = e.next_offset;
        }
        let st = self.inner.state.borrow();
        let p = st
            .partitions
            .find(topic, partition)
            .ok_or_else(|| unknown(topic, partition))?;
        let last = p
            .index
            .at_or_after_time(from, timestamp_ms)
            .next()
            .map(|e| TimeMatch {
                offset: e.base_offset,
                timestamp_ms: e.max_timestamp,
            });
        Ok(last)
    }
}
