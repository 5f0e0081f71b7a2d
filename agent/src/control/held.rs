//! The leases this agent holds ([`HeldLeases`]): per partition (topic
//! key, partition) the epoch it holds it under and when it expires. Only
//! the table; acquiring, renewing and releasing are `leases`'s, and the
//! metadata store is the authority.

use std::collections::{HashMap, HashSet};

use std::time::Instant;

use parking_lot::Mutex;

use crate::ids::{PartitionId, TopicKey};

/// One held lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Held {
    pub epoch: u64,
    /// Served until then: the last successful grant or renewal was sent
    /// before it by the lease TTL less its safety margin (monotonic clock).
    pub valid_until: Instant,
}

/// Partition → the lease held on it.
#[derive(Default)]
pub(super) struct HeldLeases {
    map: Mutex<HashMap<PartitionId, Held>>,
}

impl HeldLeases {
    /// Records a lease taken (or taken again); returns how many are held.
    pub(super) fn insert(&self, key: &str, partition: u32, held: Held) -> usize {
        let mut m = self.map.lock();
        m.insert(PartitionId::of(key, partition), held);
        m.len()
    }

    /// Forgets a lease (lost or released); returns how many are left.
    pub(super) fn remove(&self, key: &str, partition: u32) -> usize {
        let mut m = self.map.lock();
        m.remove(&PartitionId::of(key, partition));
        m.len()
    }

    /// Every held lease, in no order.
    pub(super) fn all(&self) -> Vec<(PartitionId, Held)> {
        self.map
            .lock()
            .iter()
            .map(|(p, h)| (p.clone(), *h))
            .collect()
    }

    /// The lease held on `key/partition`, if one is.
    pub(super) fn get(&self, key: &str, partition: u32) -> Option<Held> {
        self.map
            .lock()
            .get(&PartitionId::of(key, partition))
            .copied()
    }

    /// A renewal of `key/partition` moved its end (ignored when the lease
    /// was let go meanwhile).
    pub(super) fn set_valid_until(&self, key: &str, partition: u32, valid_until: Instant) {
        if let Some(h) = self.map.lock().get_mut(&PartitionId::of(key, partition)) {
            h.valid_until = h.valid_until.max(valid_until);
        }
    }

    /// Every held lease whose partition `keep` accepts.
    pub(super) fn matching(
        &self,
        mut keep: impl FnMut(&str, u32) -> bool,
    ) -> Vec<(PartitionId, Held)> {
        self.map
            .lock()
            .iter()
            .filter(|(id, _)| keep(&id.topic, id.partition))
            .map(|(k, h)| (k.clone(), *h))
            .collect()
    }

    /// Forgets the leases of topics not in `known` (topic keys).
    pub(super) fn retain_topics(&self, known: &HashSet<TopicKey>) {
        self.map
            .lock()
            .retain(|id, _| known.contains(id.topic.as_str()));
    }

    /// Forgets the leases of topic key `key`.
    pub(super) fn remove_topic(&self, key: &str) {
        self.map.lock().retain(|id, _| id.topic.as_str() != key);
    }

    /// Takes every lease out of the table.
    pub(super) fn drain(&self) -> Vec<(PartitionId, Held)> {
        self.map.lock().drain().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_counts_and_filters_what_is_held() {
        let t = HeldLeases::default();
        let t0 = Instant::now();
        let h = |epoch| Held {
            epoch,
            valid_until: t0,
        };
        assert_eq!(t.insert("a#1", 0, h(1)), 1);
        assert_eq!(t.insert("a#1", 1, h(2)), 2);
        assert_eq!(t.insert("b#2", 0, h(3)), 3);
        assert_eq!(t.insert("a#1", 0, h(4)), 3, "taken again: replaced");
        assert_eq!(t.get("a#1", 0).map(|h| h.epoch), Some(4));
        let later = t0 + std::time::Duration::from_millis(250);
        t.set_valid_until("a#1", 1, later);
        t.set_valid_until("gone#9", 0, later);
        assert_eq!(t.get("a#1", 1).map(|h| h.valid_until), Some(later));
        assert_eq!(t.matching(|k, _| k == "a#1").len(), 2);
        t.remove_topic("b#2");
        assert_eq!(t.get("b#2", 0), None);
        t.retain_topics(&[TopicKey::from_stored("a#1")].into_iter().collect());
        assert_eq!(t.remove("a#1", 0), 1);
        assert_eq!(t.drain().len(), 1);
        assert!(t.matching(|_, _| true).is_empty());
    }
}
