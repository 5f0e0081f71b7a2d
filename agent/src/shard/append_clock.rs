//! The time a shard stamps on records sent without one (timestamp 0, "log
//! append time"): the wall clock, but never earlier than the last stamp
//! of the same partition, so a clock stepped back (NTP, an operator, a VM
//! resumed) never makes a partition's assigned timestamps decrease, and
//! seek by time stays exact for them. Per shard, in memory: a partition
//! led by another agent, or by this one after a restart, starts again from
//! that agent's clock. Reads no clock itself (the caller passes `now_ms`);
//! timestamps the producer set are not its business.

use std::cell::RefCell;
use std::collections::HashMap;

/// The last stamp per partition.
#[derive(Debug, Default)]
pub struct AppendClock {
    last: RefCell<HashMap<(String, u32), i64>>,
}

impl AppendClock {
    /// The stamp for records appended to `key/partition` now: `now_ms`
    /// (ms since the Unix epoch), or the partition's last stamp if that is
    /// later.
    pub fn stamp(&self, key: &str, partition: u32, now_ms: i64) -> i64 {
        let mut last = self.last.borrow_mut();
        match last.get_mut(&(key.to_owned(), partition)) {
            Some(t) => {
                *t = (*t).max(now_ms);
                *t
            }
            None => {
                last.insert((key.to_owned(), partition), now_ms);
                now_ms
            }
        }
    }

    /// Forgets every partition of topic `key` (the topic was deleted).
    pub fn forget_topic(&self, key: &str) {
        self.last.borrow_mut().retain(|(k, _), _| k != key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_stepped_back_stamps_the_last_time_until_it_catches_up() {
        let c = AppendClock::default();
        assert_eq!(c.stamp("t", 0, 5_000), 5_000);
        assert_eq!(c.stamp("t", 0, 1_400), 5_000, "stepped back");
        assert_eq!(c.stamp("t", 1, 1_400), 1_400, "another partition");
        assert_eq!(c.stamp("t", 0, 5_001), 5_001, "caught up");
        c.forget_topic("t");
        assert_eq!(c.stamp("t", 0, 1_400), 1_400, "forgotten");
    }
}
