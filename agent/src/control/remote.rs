//! Reads of committed data from chunk objects: find the range through the
//! metadata store's chunk index, fetch it with one ranged GET (kept in a
//! small byte-bounded cache), and pick out the partition's batches, each
//! verified by its frame and batch CRCs. Runs on the control thread; reads
//! the metadata and object stores it is given, never the control plane's
//! state.

use crate::ids::TopicKey;
use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use streamhouse_proto::batch::BatchHeader;
use streamhouse_storage::segment::{self, FrameProblem, ScannedFrame};

use parking_lot::Mutex;
use streamhouse_storage::batch;
use streamhouse_storage::TimeMatch;

use crate::messages::ControlError;
use crate::metastore::{MetaStore, RangeLocation, TimeQuery};
use crate::objstore::ObjectStore;

/// Committed ranges a time lookup reads at most ([`ChunkReader::offset_for_time`]):
/// a bound on the work of one query whatever the batch headers claim.
pub const MAX_RANGES_READ: usize = 8;

/// Ranged GETs kept in memory, evicted oldest first past a byte budget.
pub struct RemoteCache {
    budget: usize,
    used: usize,
    map: HashMap<(String, u64), Bytes>,
    order: VecDeque<(String, u64)>,
}

impl RemoteCache {
    /// A cache of at most `budget` bytes (0 disables it).
    pub fn new(budget: usize) -> Self {
        RemoteCache {
            budget,
            used: 0,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub fn get(&self, key: &str, pos: u64) -> Option<Bytes> {
        self.map.get(&(key.to_owned(), pos)).cloned()
    }

    pub fn put(&mut self, key: &str, pos: u64, data: Bytes) {
        if data.len() > self.budget {
            return;
        }
        let k = (key.to_owned(), pos);
        if self.map.contains_key(&k) {
            return;
        }
        self.used += data.len();
        self.map.insert(k.clone(), data);
        self.order.push_back(k);
        while self.used > self.budget {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(d) = self.map.remove(&old) {
                self.used -= d.len();
            }
        }
    }

    /// Bytes held.
    pub fn used(&self) -> usize {
        self.used
    }
}

/// Where committed data is read from: the chunk index, the objects, and
/// the cache of ranged GETs.
pub(crate) struct ChunkReader<'a> {
    pub meta: &'a MetaStore,
    pub store: &'a ObjectStore,
    pub cache: &'a Mutex<RemoteCache>,
}

impl ChunkReader<'_> {
    /// Batches of `topic/partition` from the committed range holding `offset`
    /// (or the first range after it), at least one and about `max_bytes`.
    pub(crate) async fn read(
        &self,
        topic: &TopicKey,
        partition: u32,
        offset: u64,
        max_bytes: usize,
    ) -> Result<Vec<Bytes>, ControlError> {
        let Some(mut loc) = self.meta.find_range(topic, partition, offset).await? else {
            return Err(ControlError::OutOfRange(format!(
                "offset {offset} of {topic}/{partition} is neither in the local log nor in object storage"
            )));
        };
        // Retention may have moved the log start since the shard checked
        // it: a range past `offset`, or an object gone, is OUT_OF_RANGE
        // then, never a silent skip or an error.
        if loc.base_offset > offset {
            self.not_below_start(topic, partition, offset).await?;
        }
        let data = match self.range_bytes(&loc).await {
            Ok(d) => d,
            Err(e) => {
                self.not_below_start(topic, partition, offset).await?;
                // Compaction may have moved the range to a new object since
                // it was looked up (and the sweep deleted the old one): it
                // is read there then.
                match self.meta.find_range(topic, partition, offset).await? {
                    Some(moved) if moved.chunk_key != loc.chunk_key => {
                        loc = moved;
                        self.range_bytes(&loc).await?
                    }
                    _ => return Err(e),
                }
            }
        };
        let mut out = Vec::new();
        let mut bytes = 0;
        for f in frames(&data, &loc) {
            let (f, batch) = f?;
            let end = f.header.base_offset + u64::from(f.header.record_count);
            if f.topic == topic.as_str() && f.partition == partition && end > offset {
                bytes += batch.len();
                out.push(batch);
                if bytes >= max_bytes {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Headers of the batches in a partition's last committed range (the one
    /// ending at `committed_end`), oldest first.
    pub(crate) async fn last_headers(
        &self,
        topic: &TopicKey,
        partition: u32,
        committed_end: u64,
    ) -> Result<Vec<BatchHeader>, ControlError> {
        let Some(loc) = self
            .meta
            .find_range(topic, partition, committed_end.saturating_sub(1))
            .await?
        else {
            return Ok(Vec::new());
        };
        let data = self.range_bytes(&loc).await?;
        let mut out = Vec::new();
        for f in frames(&data, &loc) {
            let (f, _) = f?;
            if f.topic == topic.as_str() && f.partition == partition {
                out.push(f.header);
            }
        }
        Ok(out)
    }

    /// The first committed record of `topic/partition` below offset `below`
    /// whose timestamp is at least `timestamp_ms`, found through the chunk
    /// index's time index: only ranges (and in them only batches) whose
    /// largest timestamp reaches the time are read. At most
    /// [`MAX_RANGES_READ`] ranges are read per call; past them the answer
    /// is the next candidate range's first offset with an unknown
    /// timestamp (-1): never later than the true answer, so a reader
    /// starting there skips nothing.
    pub(crate) async fn offset_for_time(
        &self,
        topic: &TopicKey,
        partition: u32,
        timestamp_ms: i64,
        below: u64,
    ) -> Result<Option<TimeMatch>, ControlError> {
        let q = TimeQuery {
            timestamp_ms,
            from: 0,
            below,
            limit: MAX_RANGES_READ as u32 + 1,
        };
        let ranges = self.meta.time_ranges(topic, partition, &q).await?;
        for loc in ranges.iter().take(MAX_RANGES_READ) {
            let data = self.range_bytes(loc).await?;
            for f in frames(&data, loc) {
                let (f, batch) = f?;
                if f.topic != topic.as_str()
                    || f.partition != partition
                    || f.header.max_timestamp < timestamp_ms
                {
                    continue;
                }
                let (_, records) = batch::decode(&batch).map_err(|e| {
                    ControlError::Corrupt(format!(
                        "a batch of {topic}/{partition} in {} cannot be decoded: {e}",
                        loc.chunk_key
                    ))
                })?;
                let hit = records
                    .iter()
                    .find(|r| r.offset < below && r.timestamp >= timestamp_ms);
                if let Some(r) = hit {
                    return Ok(Some(TimeMatch {
                        offset: r.offset,
                        timestamp_ms: r.timestamp,
                    }));
                }
            }
        }
        Ok(ranges.get(MAX_RANGES_READ).map(|loc| TimeMatch {
            offset: loc.base_offset,
            timestamp_ms: -1,
        }))
    }

    /// `OutOfRange` naming the log start when `offset` is below it.
    async fn not_below_start(
        &self,
        topic: &TopicKey,
        partition: u32,
        offset: u64,
    ) -> Result<(), ControlError> {
        let start = self.meta.log_start(topic, partition).await?;
        if offset < start {
            return Err(ControlError::OutOfRange(format!(
                "offset {offset} of {}/{partition} is before the log start {start}: retention \
                 or DeleteRecords removed the records before it",
                topic.name()
            )));
        }
        Ok(())
    }

    /// The bytes of a committed range, from the cache or one ranged GET.
    async fn range_bytes(&self, loc: &RangeLocation) -> Result<Bytes, ControlError> {
        let cached = self.cache.lock().get(&loc.chunk_key, loc.pos);
        let data = match cached {
            Some(d) => d,
            None => {
                let d = self
                    .store
                    .get_range(&loc.chunk_key, loc.pos, loc.len)
                    .await
                    .map_err(|e| {
                        ControlError::Unavailable(format!("reading {}: {e}", loc.chunk_key))
                    })?;
                if (d.len() as u64) < loc.len {
                    return Err(ControlError::Corrupt(format!(
                        "chunk {} is shorter than its index says ({} of {} bytes at {})",
                        loc.chunk_key,
                        d.len(),
                        loc.len,
                        loc.pos
                    )));
                }
                self.cache.lock().put(&loc.chunk_key, loc.pos, d.clone());
                d
            }
        };
        Ok(data)
    }
}

/// Every frame of a range, with its batch bytes; stops at the first bad one.
fn frames<'a>(
    data: &'a Bytes,
    loc: &'a RangeLocation,
) -> impl Iterator<Item = Result<(ScannedFrame, Bytes), ControlError>> + 'a {
    let mut pos = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || loop {
        if failed || pos >= data.len() {
            return None;
        }
        match segment::parse_frame(data, pos) {
            // A restart frame holds no records.
            Ok(f) if f.restart.is_some() => pos += f.len as usize,
            Ok(f) => {
                let next = pos + f.len as usize;
                let batch = data.slice(f.batch_pos as usize..next);
                pos = next;
                return Some(Ok((f, batch)));
            }
            Err(FrameProblem::ZeroTail) => return None,
            Err(FrameProblem::Invalid(why)) => {
                failed = true;
                return Some(Err(ControlError::Corrupt(format!(
                    "chunk {} at byte {}: {why}",
                    loc.chunk_key,
                    loc.pos + pos as u64
                ))));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_evicts_oldest_past_its_budget() {
        let mut c = RemoteCache::new(10);
        c.put("a", 0, Bytes::from_static(b"12345"));
        c.put("b", 0, Bytes::from_static(b"12345"));
        assert_eq!(c.used(), 10);
        c.put("c", 0, Bytes::from_static(b"123"));
        assert!(c.get("a", 0).is_none());
        assert!(c.get("b", 0).is_some() && c.get("c", 0).is_some());
        c.put("big", 0, Bytes::from(vec![0u8; 11]));
        assert!(c.get("big", 0).is_none());
    }
}
