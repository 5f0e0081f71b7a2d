//! Per-partition offset and time index: where each batch of a partition
//! lives in the shard's segments, and the largest record timestamp of each
//! (Kafka's `.timeindex`, one entry per batch). In memory only; rebuilt by
//! recovery. No I/O.

/// Location of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub base_offset: u64,
    /// Offset after the batch's last record.
    pub next_offset: u64,
    pub segment: u64,
    /// Byte position of the batch (not the frame) inside the segment.
    pub pos: u64,
    /// Batch length in bytes.
    pub len: u32,
    /// Largest record timestamp of the batch (ms since the Unix epoch), as
    /// its header states.
    pub max_timestamp: i64,
}

/// Batches of one partition in offset order.
#[derive(Debug, Default)]
pub struct OffsetIndex {
    entries: Vec<IndexEntry>,
}

impl OffsetIndex {
    pub fn push(&mut self, e: IndexEntry) {
        self.entries.push(e);
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Batches stored in segment `id`, in offset order.
    pub fn in_segment(&self, id: u64) -> impl Iterator<Item = &IndexEntry> {
        self.entries.iter().filter(move |e| e.segment == id)
    }

    /// Segment of the batch holding `offset`, if indexed.
    pub fn segment_of(&self, offset: u64) -> Option<u64> {
        let i = self.entries.partition_point(|e| e.next_offset <= offset);
        self.entries
            .get(i)
            .filter(|e| e.base_offset <= offset)
            .map(|e| e.segment)
    }

    /// Forgets every batch in segments up to and including `id`.
    pub fn drop_through_segment(&mut self, id: u64) {
        let n = self.entries.partition_point(|e| e.segment <= id);
        self.entries.drain(..n);
    }

    /// First indexed offset.
    pub fn first_offset(&self) -> Option<u64> {
        self.entries.first().map(|e| e.base_offset)
    }

    /// The last batch indexed.
    pub fn last(&self) -> Option<&IndexEntry> {
        self.entries.last()
    }

    /// Batches at or after `offset` whose largest timestamp is at least
    /// `timestamp_ms`, in offset order: the batches that may hold the first
    /// record with a timestamp ≥ `timestamp_ms`. Timestamps need not grow
    /// with offsets, so this is a scan of the batches after `offset`
    /// (O(batches); in memory, no I/O).
    pub fn at_or_after_time(
        &self,
        offset: u64,
        timestamp_ms: i64,
    ) -> impl Iterator<Item = &IndexEntry> {
        let start = self.entries.partition_point(|e| e.next_offset <= offset);
        self.entries[start..]
            .iter()
            .filter(move |e| e.max_timestamp >= timestamp_ms)
    }

    /// Batches starting with the one holding `offset`, until about `max_bytes`
    /// of batches are covered (always at least one when `offset` is indexed).
    pub fn from_offset(&self, offset: u64, max_bytes: usize) -> Vec<IndexEntry> {
        let start = self.entries.partition_point(|e| e.next_offset <= offset);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for e in &self.entries[start..] {
            if !out.is_empty() && bytes + e.len as usize > max_bytes {
                break;
            }
            bytes += e.len as usize;
            out.push(*e);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_batch_holding_an_offset() {
        let mut ix = OffsetIndex::default();
        for i in 0..10u64 {
            ix.push(IndexEntry {
                base_offset: i * 10,
                next_offset: i * 10 + 10,
                segment: 0,
                pos: i * 100,
                len: 100,
                max_timestamp: 1000 + i as i64,
            });
        }
        assert_eq!(ix.from_offset(0, 1)[0].base_offset, 0);
        assert_eq!(ix.from_offset(35, 1)[0].base_offset, 30);
        assert_eq!(ix.from_offset(35, 250).len(), 2);
        assert!(ix.from_offset(100, 1000).is_empty());
    }

    fn entry(base: u64, max_timestamp: i64) -> IndexEntry {
        IndexEntry {
            base_offset: base,
            next_offset: base + 10,
            segment: 0,
            pos: base * 10,
            len: 100,
            max_timestamp,
        }
    }

    #[test]
    fn finds_the_first_batch_reaching_a_time() {
        let mut ix = OffsetIndex::default();
        // Timestamps out of order across batches, as producers may send.
        for (i, ts) in [100, 300, 200, 500, 400].into_iter().enumerate() {
            ix.push(entry(i as u64 * 10, ts));
        }
        let bases = |from: u64, t: i64| -> Vec<u64> {
            ix.at_or_after_time(from, t)
                .map(|e| e.base_offset)
                .collect()
        };
        assert_eq!(bases(0, 0), vec![0, 10, 20, 30, 40]);
        assert_eq!(bases(0, 250), vec![10, 30, 40]);
        assert_eq!(bases(0, 450), vec![30]);
        assert!(bases(0, 501).is_empty());
        // From an offset inside a batch: that batch counts.
        assert_eq!(bases(15, 250), vec![10, 30, 40]);
        assert_eq!(bases(20, 250), vec![30, 40]);
        assert!(bases(50, 0).is_empty());
    }
}
