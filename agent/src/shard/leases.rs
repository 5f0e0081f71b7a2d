//! A shard's own copy of its partitions' lease state, updated only by
//! messages from the control thread's lease task; the produce path checks it
//! with no database call and no cross-core lock. Owns the rules for when a
//! partition may be served, and each held partition's leader-epoch
//! history (which epoch wrote which offsets); knows nothing about how
//! leases are obtained.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use crate::cluster::leader_epochs::EpochHistory;

/// Lease state of one partition as its shard sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseState {
    /// Held at `epoch`, served until `valid_until` (this process's
    /// monotonic clock: no step of the wall clock moves it).
    Held { epoch: u64, valid_until: Instant },
    /// Being handed to another agent: no new writes; data written under
    /// `epoch` is still shipped and committed before the lease is released.
    Moving { epoch: u64 },
    /// Lost (fenced, or expired without renewal), with the reason. Data
    /// written under `epoch` stays stamped with it when shipped: the
    /// metadata store commits it only if nobody took the lease since.
    Lost { epoch: u64, reason: String },
}

/// Why a partition may not be served now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseProblem {
    /// This agent never held the lease (another agent leads the partition).
    NotHeld,
    /// The partition is moving to another agent.
    Moving,
    /// Held once, but fenced or expired.
    Lost(String),
}

/// Lease states by topic key and partition.
#[derive(Default)]
pub struct ShardLeases {
    table: RefCell<HashMap<String, HashMap<u32, LeaseState>>>,
    /// Leader-epoch histories of the partitions leased here, as the
    /// control thread read them when it acquired each lease.
    histories: RefCell<HashMap<String, HashMap<u32, Rc<EpochHistory>>>>,
}

impl ShardLeases {
    /// Keeps the epoch history of a partition just leased at `epoch`. A
    /// history that does not end with `epoch` (a lease granted before
    /// histories were recorded) is not trusted: its epochs read as unknown.
    pub fn set_history(&self, topic: &str, partition: u32, epoch: u64, history: EpochHistory) {
        let history = if history.latest() == Some(epoch) {
            history
        } else {
            EpochHistory::default()
        };
        self.histories
            .borrow_mut()
            .entry(topic.to_owned())
            .or_default()
            .insert(partition, Rc::new(history));
    }

    /// The epoch history of a partition leased here (empty when unknown).
    pub fn history(&self, topic: &str, partition: u32) -> Rc<EpochHistory> {
        self.histories
            .borrow()
            .get(topic)
            .and_then(|p| p.get(&partition))
            .cloned()
            .unwrap_or_default()
    }

    pub fn set(&self, topic: &str, partition: u32, state: LeaseState) {
        self.table
            .borrow_mut()
            .entry(topic.to_owned())
            .or_default()
            .insert(partition, state);
    }

    /// Extends a held lease; ignored unless it is held at `epoch`.
    pub fn renew(&self, topic: &str, partition: u32, epoch: u64, valid_until: Instant) {
        let mut t = self.table.borrow_mut();
        if let Some(LeaseState::Held {
            epoch: e,
            valid_until: x,
        }) = t.get_mut(topic).and_then(|p| p.get_mut(&partition))
        {
            if *e == epoch {
                *x = (*x).max(valid_until);
            }
        }
    }

    /// Forgets a partition (its lease went to another agent).
    pub fn remove(&self, topic: &str, partition: u32) {
        if let Some(p) = self.table.borrow_mut().get_mut(topic) {
            p.remove(&partition);
        }
        if let Some(p) = self.histories.borrow_mut().get_mut(topic) {
            p.remove(&partition);
        }
    }

    pub fn remove_topic(&self, topic: &str) {
        self.table.borrow_mut().remove(topic);
        self.histories.borrow_mut().remove(topic);
    }

    /// The epoch this shard may serve `topic/partition` under at `now`.
    pub fn check(&self, topic: &str, partition: u32, now: Instant) -> Result<u64, LeaseProblem> {
        match self
            .table
            .borrow()
            .get(topic)
            .and_then(|p| p.get(&partition))
        {
            None => Err(LeaseProblem::NotHeld),
            Some(LeaseState::Moving { .. }) => Err(LeaseProblem::Moving),
            Some(LeaseState::Lost { reason, .. }) => Err(LeaseProblem::Lost(reason.clone())),
            Some(LeaseState::Held { valid_until, .. }) if *valid_until <= now => {
                Err(LeaseProblem::Lost(format!(
                    "lease not renewed for {} ms",
                    now.duration_since(*valid_until).as_millis()
                )))
            }
            Some(LeaseState::Held { epoch, .. }) => Ok(*epoch),
        }
    }

    /// Epoch held now regardless of expiry (for stamping chunks); also
    /// while the partition is moving.
    pub fn epoch(&self, topic: &str, partition: u32) -> Option<u64> {
        match self
            .table
            .borrow()
            .get(topic)
            .and_then(|p| p.get(&partition))
        {
            Some(LeaseState::Held { epoch, .. } | LeaseState::Moving { epoch }) => Some(*epoch),
            _ => None,
        }
    }

    /// Epoch the partition's local data was written under, for stamping a
    /// shipped chunk: as [`epoch`](Self::epoch), and also after the lease
    /// was lost (a lease that merely expired, with nobody taking it, still
    /// commits; a fenced one is refused by the metadata store).
    pub fn data_epoch(&self, topic: &str, partition: u32) -> Option<u64> {
        match self
            .table
            .borrow()
            .get(topic)
            .and_then(|p| p.get(&partition))
        {
            Some(
                LeaseState::Held { epoch, .. }
                | LeaseState::Moving { epoch }
                | LeaseState::Lost { epoch, .. },
            ) => Some(*epoch),
            None => None,
        }
    }

    /// Whether a batch admitted under `epoch` may be acknowledged once it
    /// is in the WAL, at `now`: yes while the lease is still held at that
    /// epoch and unexpired, or while the partition is being handed over
    /// (the hand-over ships everything written before it). Otherwise the
    /// lease lapsed while the batch was written (the agent was paused, or
    /// could not renew): another agent may lead the partition from its
    /// committed end already, without the batch.
    pub fn may_acknowledge(
        &self,
        topic: &str,
        partition: u32,
        epoch: u64,
        now: Instant,
    ) -> Result<(), LeaseProblem> {
        match self.check(topic, partition, now) {
            Ok(e) if e == epoch => Ok(()),
            Ok(e) => Err(LeaseProblem::Lost(format!(
                "held at epoch {e} now, the batch was admitted at epoch {epoch}"
            ))),
            Err(LeaseProblem::Moving) => Ok(()),
            Err(p) => Err(p),
        }
    }

    /// Marks a partition's lease lost, keeping the epoch its data was
    /// written under. Unknown partitions stay unknown.
    pub fn lose(&self, topic: &str, partition: u32, reason: String) {
        let mut t = self.table.borrow_mut();
        if let Some(state) = t.get_mut(topic).and_then(|p| p.get_mut(&partition)) {
            let epoch = match state {
                LeaseState::Held { epoch, .. }
                | LeaseState::Moving { epoch }
                | LeaseState::Lost { epoch, .. } => *epoch,
            };
            *state = LeaseState::Lost { epoch, reason };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// `ms` milliseconds after a fixed instant.
    fn at(ms: u64) -> Instant {
        thread_local!(static T0: Instant = Instant::now());
        T0.with(|t| *t + Duration::from_millis(ms))
    }

    #[test]
    fn serves_only_held_unexpired_leases() {
        let l = ShardLeases::default();
        assert_eq!(l.check("t#1", 0, at(0)), Err(LeaseProblem::NotHeld));
        l.set(
            "t#1",
            0,
            LeaseState::Held {
                epoch: 3,
                valid_until: at(100),
            },
        );
        assert_eq!(l.check("t#1", 0, at(99)), Ok(3));
        assert!(matches!(
            l.check("t#1", 0, at(100)),
            Err(LeaseProblem::Lost(_))
        ));
        l.renew("t#1", 0, 2, at(500));
        assert!(
            l.check("t#1", 0, at(100)).is_err(),
            "other epoch: no renewal"
        );
        l.renew("t#1", 0, 3, at(500));
        assert_eq!(l.check("t#1", 0, at(100)), Ok(3));
        l.set("t#1", 0, LeaseState::Moving { epoch: 3 });
        assert_eq!(l.check("t#1", 0, at(100)), Err(LeaseProblem::Moving));
        assert_eq!(l.epoch("t#1", 0), Some(3));
        l.lose("t#1", 0, "fenced".into());
        assert_eq!(
            l.check("t#1", 0, at(100)),
            Err(LeaseProblem::Lost("fenced".into()))
        );
        assert_eq!(l.epoch("t#1", 0), None);
        assert_eq!(l.data_epoch("t#1", 0), Some(3), "its data keeps its epoch");
        l.lose("t#1", 9, "never held".into());
        assert_eq!(l.data_epoch("t#1", 9), None);
        l.remove_topic("t#1");
        assert_eq!(l.check("t#1", 0, at(0)), Err(LeaseProblem::NotHeld));
    }

    #[test]
    fn a_history_is_kept_only_when_it_names_the_lease_epoch() {
        use crate::cluster::leader_epochs::EpochStart;
        let l = ShardLeases::default();
        let hist = |epochs: &[u64]| {
            EpochHistory::new(
                epochs
                    .iter()
                    .map(|&epoch| EpochStart {
                        epoch,
                        start_offset: epoch * 10,
                    })
                    .collect(),
            )
        };
        assert!(l.history("t#1", 0).is_empty());
        l.set_history("t#1", 0, 3, hist(&[1, 3]));
        assert_eq!(l.history("t#1", 0).epoch_of(35), Some(3));
        l.set_history("t#1", 1, 4, hist(&[1, 3]));
        assert!(
            l.history("t#1", 1).is_empty(),
            "the lease's own epoch is missing"
        );
        l.remove("t#1", 0);
        assert!(l.history("t#1", 0).is_empty());
    }

    #[test]
    fn a_batch_is_acknowledged_only_under_the_lease_it_was_admitted_under() {
        let l = ShardLeases::default();
        let held = |epoch, ms| LeaseState::Held {
            epoch,
            valid_until: at(ms),
        };
        l.set("t#1", 0, held(3, 100));
        assert_eq!(l.may_acknowledge("t#1", 0, 3, at(99)), Ok(()));
        assert!(
            matches!(
                l.may_acknowledge("t#1", 0, 3, at(100)),
                Err(LeaseProblem::Lost(_))
            ),
            "expired while the batch was written"
        );
        l.set("t#1", 0, held(4, 500));
        assert!(
            matches!(
                l.may_acknowledge("t#1", 0, 3, at(100)),
                Err(LeaseProblem::Lost(_))
            ),
            "taken again at another epoch (continued at the committed end)"
        );
        l.set("t#1", 0, LeaseState::Moving { epoch: 4 });
        assert_eq!(
            l.may_acknowledge("t#1", 0, 4, at(900)),
            Ok(()),
            "being shipped"
        );
        l.lose("t#1", 0, "fenced".into());
        assert!(l.may_acknowledge("t#1", 0, 4, at(100)).is_err());
        l.remove("t#1", 0);
        assert_eq!(
            l.may_acknowledge("t#1", 0, 4, at(100)),
            Err(LeaseProblem::NotHeld)
        );
    }
}
