//! Reads of committed data from chunk objects: find the range through the
//! metadata store's chunk index, fetch it with one ranged GET (kept in a
//! small byte-bounded cache), and pick out the partition's batches, each
//! verified by its frame and batch CRCs. Runs on the control thread.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use streamhouse_shard::segment::{self, FrameProblem};

use crate::control::{ControlError, Shared};

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

/// Batches of `topic/partition` from the committed range holding `offset`
/// (or the first range after it), at least one and about `max_bytes`.
pub(crate) async fn read(
    shared: &Shared,
    topic: &str,
    partition: u32,
    offset: u64,
    max_bytes: usize,
) -> Result<Vec<Bytes>, ControlError> {
    let Some(loc) = shared.meta.find_range(topic, partition, offset).await? else {
        return Err(ControlError::OutOfRange(format!(
            "offset {offset} of {topic}/{partition} is neither in the local log nor in object storage"
        )));
    };
    let cached = shared.cache.lock().get(&loc.chunk_key, loc.pos);
    let data = match cached {
        Some(d) => d,
        None => {
            let d = shared
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
            shared.cache.lock().put(&loc.chunk_key, loc.pos, d.clone());
            d
        }
    };
    let mut out = Vec::new();
    let mut bytes = 0;
    let mut pos = 0usize;
    while pos < data.len() {
        let f = match segment::parse_frame(&data, pos) {
            Ok(f) => f,
            Err(FrameProblem::ZeroTail) => break,
            Err(FrameProblem::Invalid(why)) => {
                return Err(ControlError::Corrupt(format!(
                    "chunk {} at byte {}: {why}",
                    loc.chunk_key,
                    loc.pos + pos as u64
                )))
            }
        };
        let next = pos + f.len as usize;
        let end = f.header.base_offset + u64::from(f.header.record_count);
        if f.topic == topic && f.partition == partition && end > offset {
            let start = f.batch_pos as usize;
            out.push(data.slice(start..next));
            bytes += next - start;
            if bytes >= max_bytes {
                break;
            }
        }
        pos = next;
    }
    Ok(out)
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
