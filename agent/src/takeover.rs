//! When this agent may take another agent's expired lease. An expired lease
//! whose holder is alive usually means the holder could not reach the
//! metadata store for a while (an outage, an overloaded machine), not that
//! it stopped: it still has the partition's acknowledged, unshipped writes
//! in its WAL and renews the lease at the same epoch as soon as it can.
//! Taking the lease at a new epoch then would continue the partition at
//! its committed end and drop those writes. Owns only the rule and the
//! memory of when each expired lease was first seen; knows nothing about
//! the metadata store or the shards.

use crate::ids::PartitionId;
use std::collections::HashMap;

/// What the rule needs to know about the current lease row of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder<'a> {
    /// Agent id in the lease row.
    pub agent: &'a str,
    /// Lease epoch in the row.
    pub epoch: u64,
    /// Expiry in the row, ms since the Unix epoch; 0 once released.
    pub expires_ms: i64,
    /// The holder's heartbeat is recent (it is in this agent's live set).
    pub live: bool,
    /// The holder reports the shard that serves this partition as failed.
    pub shard_failed: bool,
}

/// Remembers, per partition, since when (this agent's clock, ms) its lease
/// has been seen expired under one holder and epoch.
#[derive(Debug, Default)]
pub struct ExpiredLeases {
    seen: HashMap<PartitionId, (String, u64, i64)>,
}

impl ExpiredLeases {
    /// Whether this agent may try to take `key/partition` from `holder` at
    /// `now_ms`. Yes for a released lease, a holder that is not alive or
    /// whose shard failed (it hands nothing back). For a live holder's
    /// expired lease only once it has stayed expired under the same epoch
    /// for `grace_ms` (one lease TTL) of this agent's own observation: a
    /// live holder that can reach the store renews within a renewal period,
    /// so a lease still expired after that was dropped without a release.
    /// An unexpired lease is refused by the store anyway; answered yes.
    pub fn may_take(
        &mut self,
        key: &str,
        partition: u32,
        holder: &Holder<'_>,
        now_ms: i64,
        grace_ms: i64,
    ) -> bool {
        let slot = PartitionId::of(key, partition);
        let waiting = holder.expires_ms != 0
            && holder.expires_ms <= now_ms
            && holder.live
            && !holder.shard_failed;
        if !waiting {
            self.seen.remove(&slot);
            return true;
        }
        let since = match self.seen.get(&slot) {
            Some((agent, epoch, since)) if agent == holder.agent && *epoch == holder.epoch => {
                *since
            }
            _ => {
                self.seen
                    .insert(slot, (holder.agent.to_owned(), holder.epoch, now_ms));
                now_ms
            }
        };
        now_ms - since >= grace_ms
    }

    /// Forgets `key/partition` (its lease was taken, or is ours).
    pub fn forget(&mut self, key: &str, partition: u32) {
        self.seen.remove(&PartitionId::of(key, partition));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expired(live: bool, shard_failed: bool) -> Holder<'static> {
        Holder {
            agent: "a",
            epoch: 3,
            expires_ms: 1_000,
            live,
            shard_failed,
        }
    }

    #[test]
    fn a_live_holders_expired_lease_waits_one_grace_period() {
        let mut e = ExpiredLeases::default();
        let h = expired(true, false);
        assert!(!e.may_take("t", 0, &h, 5_000, 3_000), "first seen expired");
        assert!(!e.may_take("t", 0, &h, 7_999, 3_000));
        assert!(e.may_take("t", 0, &h, 8_000, 3_000), "expired for a TTL");
        // Another partition has its own clock.
        assert!(!e.may_take("t", 1, &h, 8_000, 3_000));
    }

    #[test]
    fn a_renewal_or_a_new_holder_restarts_the_wait() {
        let mut e = ExpiredLeases::default();
        let h = expired(true, false);
        assert!(!e.may_take("t", 0, &h, 5_000, 3_000));
        // Renewed in between: not expired, so the store decides.
        let renewed = Holder {
            expires_ms: 10_000,
            ..h.clone()
        };
        assert!(e.may_take("t", 0, &renewed, 6_000, 3_000));
        assert!(!e.may_take("t", 0, &h, 11_000, 3_000), "expired again");
        let other = Holder {
            agent: "b",
            epoch: 4,
            ..h.clone()
        };
        assert!(!e.may_take("t", 0, &other, 13_000, 3_000), "new holder");
        assert!(e.may_take("t", 0, &other, 16_000, 3_000));
        e.forget("t", 0);
        assert!(!e.may_take("t", 0, &other, 16_000, 3_000), "forgotten");
    }

    #[test]
    fn dead_holders_failed_shards_and_released_leases_do_not_wait() {
        let mut e = ExpiredLeases::default();
        assert!(e.may_take("t", 0, &expired(false, false), 5_000, 3_000));
        assert!(e.may_take("t", 0, &expired(true, true), 5_000, 3_000));
        let released = Holder {
            expires_ms: 0,
            ..expired(true, false)
        };
        assert!(e.may_take("t", 0, &released, 5_000, 3_000));
    }
}
