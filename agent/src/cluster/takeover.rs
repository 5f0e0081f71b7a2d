//! When this agent may take over another agent's lease. No wall-clock time
//! the holder wrote is compared with this agent's clock: the holder counts
//! every grant and renewal in its `lease_beats`, and a lease is over once
//! those have stood still for a whole TTL of this agent's own watch. The
//! holder stops serving a TTL less a tenth after it sent its last renewal
//! that succeeded, which was before the count this agent watches moved; so
//! the two never serve the partition at once unless their clocks' rates
//! differ by a tenth.
//!
//! An alive holder (its heartbeats move) whose renewals stood still usually
//! could not reach the store for a while (an outage, an overloaded
//! machine); it still has the partition's acknowledged, unshipped writes in
//! its WAL and renews at the same epoch as soon as it can. Taking the lease
//! at a new epoch would continue the partition at its committed end and
//! drop those writes, so such a holder gets a second TTL. Owns only the
//! rule; knows nothing about the metadata store or the shards.

use std::time::Duration;

use crate::metastore::Takeover;

/// What the rule needs to know about the current lease row of a partition
/// and its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder<'a> {
    /// Agent id in the lease row.
    pub agent: &'a str,
    /// Lease epoch in the row.
    pub epoch: u64,
    /// The row's expiry as its holder wrote it (ms since the Unix epoch,
    /// the holder's clock); 0 once released. Only "released" is read.
    pub expires_ms: i64,
    /// The holder's heartbeats move (it is in this agent's live set).
    pub live: bool,
    /// The holder reports the shard that serves this partition as failed.
    pub shard_failed: bool,
    /// The holder's `lease_beats` as last read and how long they have stood
    /// still on this agent's clock; `None` when it is not registered.
    pub silence: Option<(u64, Duration)>,
}

/// What to do about another agent's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Ask the store for it, which grants it only while nothing moved
    /// since (`None`: released, nothing to check).
    Take(Option<Takeover>),
    /// Its holder may still serve it.
    Wait,
}

/// Whether to take `holder`'s lease, `ttl` being the lease TTL.
pub fn decide(holder: &Holder<'_>, ttl: Duration) -> Decision {
    if holder.expires_ms == 0 {
        return Decision::Take(None);
    }
    let takeover = |lease_beats| Takeover {
        holder: holder.agent.to_owned(),
        epoch: holder.epoch,
        lease_beats,
    };
    match holder.silence {
        // A holder that never counted its renewals (an older agent): the
        // store judges by the row's expiry, as such agents do.
        None | Some((0, _)) => Decision::Take(Some(takeover(0))),
        Some((beats, silent)) => {
            let wait = if holder.live && !holder.shard_failed {
                ttl * 2
            } else {
                ttl
            };
            if silent >= wait {
                Decision::Take(Some(takeover(beats)))
            } else {
                Decision::Wait
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_millis(3_000);

    fn holder(live: bool, shard_failed: bool, silent_ms: u64) -> Holder<'static> {
        Holder {
            agent: "a",
            epoch: 3,
            expires_ms: 1_000,
            live,
            shard_failed,
            silence: Some((9, Duration::from_millis(silent_ms))),
        }
    }

    fn take(beats: u64) -> Decision {
        Decision::Take(Some(Takeover {
            holder: "a".into(),
            epoch: 3,
            lease_beats: beats,
        }))
    }

    #[test]
    fn a_dead_holders_lease_is_taken_after_a_ttl_of_silence() {
        assert_eq!(decide(&holder(false, false, 2_999), TTL), Decision::Wait);
        assert_eq!(decide(&holder(false, false, 3_000), TTL), take(9));
        // A failed shard hands nothing back: no second TTL.
        assert_eq!(decide(&holder(true, true, 3_000), TTL), take(9));
    }

    #[test]
    fn a_live_holder_gets_a_second_ttl() {
        assert_eq!(decide(&holder(true, false, 5_999), TTL), Decision::Wait);
        assert_eq!(decide(&holder(true, false, 6_000), TTL), take(9));
    }

    #[test]
    fn released_and_older_holders_are_left_to_the_store() {
        let released = Holder {
            expires_ms: 0,
            ..holder(true, false, 0)
        };
        assert_eq!(decide(&released, TTL), Decision::Take(None));
        let older = Holder {
            silence: Some((0, Duration::ZERO)),
            ..holder(true, false, 0)
        };
        assert_eq!(decide(&older, TTL), take(0));
        let unknown = Holder {
            silence: None,
            ..holder(true, false, 0)
        };
        assert_eq!(decide(&unknown, TTL), take(0));
    }
}
