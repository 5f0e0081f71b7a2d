//! The first readable offset of each partition this shard serves (its log
//! start), as retention or DeleteRecords last moved it in the metadata
//! store: a fetch below it is OUT_OF_RANGE, and Fetch and ListOffsets
//! answer it. Set only from control messages and from DeleteRecords'
//! answer, and never moved back. Knows nothing of how it is decided.

use std::cell::RefCell;
use std::collections::HashMap;

/// Log starts by topic key and partition; 0 when never moved.
#[derive(Default)]
pub struct LogStarts {
    table: RefCell<HashMap<String, HashMap<u32, u64>>>,
}

impl LogStarts {
    /// The partition's log start (0 when never moved).
    pub fn get(&self, topic: &str, partition: u32) -> u64 {
        self.table
            .borrow()
            .get(topic)
            .and_then(|p| p.get(&partition))
            .copied()
            .unwrap_or(0)
    }

    /// Moves the partition's log start to `start` unless it is already
    /// there or past it.
    pub fn advance(&self, topic: &str, partition: u32, start: u64) {
        let mut table = self.table.borrow_mut();
        let s = table
            .entry(topic.to_owned())
            .or_default()
            .entry(partition)
            .or_default();
        *s = (*s).max(start);
    }

    /// Forgets a deleted topic's partitions.
    pub fn remove_topic(&self, topic: &str) {
        self.table.borrow_mut().remove(topic);
    }
}

#[cfg(test)]
mod tests {
    use super::LogStarts;

    #[test]
    fn a_log_start_only_moves_forward() {
        let s = LogStarts::default();
        assert_eq!(s.get("t#1", 0), 0);
        s.advance("t#1", 0, 50);
        s.advance("t#1", 0, 20);
        assert_eq!(s.get("t#1", 0), 50);
        assert_eq!(s.get("t#1", 1), 0);
        s.remove_topic("t#1");
        assert_eq!(s.get("t#1", 0), 0);
    }
}
