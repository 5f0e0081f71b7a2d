//! Leader epochs a consumer keeps per partition: the epoch of the record
//! before each fetch position (sent with fetches, so a new leader can tell
//! when it no longer holds what was read), of the last record handed out
//! (what commits carry), and the count of truncations found. Positions
//! themselves stay with the `Consumer`.

use std::collections::BTreeMap;

/// A partition: (topic, partition).
type Key = (String, u32);

/// Records a consumer read that the log no longer holds: each time a
/// partition's new leader continued from an offset below what the consumer
/// had read from the old one ([`super::Consumer::truncations`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Truncations {
    /// How many times a partition's position moved back.
    pub events: u64,
    /// Offsets read and then found gone (the sum of the moves back).
    pub records: u64,
}

/// The epochs of the partitions a consumer reads.
#[derive(Debug, Default)]
pub(super) struct Epochs {
    /// Leader epoch of the record before each fetch position.
    fetched: BTreeMap<Key, u64>,
    /// Leader epoch of the last record handed out per partition.
    handed: BTreeMap<Key, u64>,
    truncations: Truncations,
}

impl Epochs {
    /// Forgets partitions no longer read.
    pub(super) fn retain(&mut self, keep: impl Fn(&Key) -> bool) {
        self.fetched.retain(|k, _| keep(k));
        self.handed.retain(|k, _| keep(k));
    }

    /// The epoch to send with the next fetch of `key`.
    pub(super) fn fetched(&self, key: &Key) -> Option<u64> {
        self.fetched.get(key).copied()
    }

    /// The epoch of the last record of `key` handed out.
    pub(super) fn handed(&self, key: &Key) -> Option<u64> {
        self.handed.get(key).copied()
    }

    /// The last record fetched of `key` has epoch `epoch`.
    pub(super) fn set_fetched(&mut self, key: &Key, epoch: Option<u64>) {
        set(&mut self.fetched, key, epoch);
    }

    /// The record of `key` just handed out has epoch `epoch`.
    pub(super) fn set_handed(&mut self, key: &Key, epoch: Option<u64>) {
        set(&mut self.handed, key, epoch);
    }

    /// Nothing waits to be handed out for `key` (a seek, a move back): the
    /// record before its position, fetched and handed out alike, has
    /// epoch `epoch`.
    pub(super) fn set_position(&mut self, key: &Key, epoch: Option<u64>) {
        self.set_fetched(key, epoch);
        self.set_handed(key, epoch);
    }

    /// Everything fetched has been handed out.
    pub(super) fn all_handed(&mut self) {
        self.handed.clone_from(&self.fetched);
    }

    /// A partition's position moved back over `gone` records.
    pub(super) fn truncated(&mut self, gone: u64) {
        self.truncations.events += 1;
        self.truncations.records += gone;
    }

    pub(super) fn truncations(&self) -> Truncations {
        self.truncations
    }
}

/// Records `epoch` for `key`, or forgets it when unknown (`None` or 0).
fn set(epochs: &mut BTreeMap<Key, u64>, key: &Key, epoch: Option<u64>) {
    match epoch.filter(|e| *e > 0) {
        Some(e) => epochs.insert(key.clone(), e),
        None => epochs.remove(key),
    };
}
