//! What this agent knows of the cluster's members ([`Members`]): every
//! registered agent's last row and since when (this agent's monotonic
//! clock) its heartbeat and lease counters stood still, the live agents
//! that follows from it, the health of this agent's own shards; and from
//! those, which agent should lead a partition. No wall-clock time another
//! agent wrote is compared with this agent's clock: an agent is alive
//! while its counter moves. Plain state behind locks, time passed in;
//! `membership` feeds it from the metadata store.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::messages::ShardHealth;
use crate::metastore::AgentRow;
use crate::topics::routing::shard_for;

/// One agent's row as last read, and since when its counters stood still.
struct Seen {
    row: AgentRow,
    /// When `row.beats` was first seen at its current value.
    beats_since: Instant,
    /// When `row.lease_beats` was first seen at its current value.
    lease_since: Instant,
}

/// The cluster as this agent last saw it.
pub(super) struct Members {
    /// This agent's id.
    me: String,
    /// Every registered agent, from the last heartbeat round.
    seen: Mutex<HashMap<String, Seen>>,
    /// Live agent ids, sorted (this one always included), from the last
    /// heartbeat round.
    live: Mutex<Vec<String>>,
    /// This agent's shards whose WAL failed or whose executor ended.
    unwell: Mutex<HashMap<usize, ShardHealth>>,
    /// The last heartbeat round worked (else the next one starts every
    /// agent's watch again: while this agent cannot read the store it
    /// sees nobody's counters move, its own included).
    watching: Mutex<bool>,
}

impl Members {
    /// Knows no agent but `me` yet.
    pub(super) fn new(me: &str) -> Self {
        Members {
            me: me.to_owned(),
            seen: Mutex::new(HashMap::new()),
            live: Mutex::new(Vec::new()),
            unwell: Mutex::new(HashMap::new()),
            watching: Mutex::new(false),
        }
    }

    /// The live agents (sorted) from the last heartbeat round.
    pub(super) fn live(&self) -> Vec<String> {
        self.live.lock().clone()
    }

    /// The last rows of the live agents (shard addresses), by id.
    pub(super) fn live_rows(&self) -> Vec<AgentRow> {
        let live = self.live.lock();
        let seen = self.seen.lock();
        live.iter()
            .filter_map(|id| seen.get(id).map(|s| s.row.clone()))
            .collect()
    }

    /// Whether `agent` was live at the last heartbeat round.
    pub(super) fn is_live(&self, agent: &str) -> bool {
        self.live.lock().iter().any(|a| a == agent)
    }

    /// `agent`'s lease grants and renewals as last read, and for how long
    /// (at `now`) they have not moved; `None` for an agent not registered.
    pub(super) fn lease_silence(&self, agent: &str, now: Instant) -> Option<(u64, Duration)> {
        self.seen.lock().get(agent).map(|s| {
            (
                s.row.lease_beats,
                now.saturating_duration_since(s.lease_since),
            )
        })
    }

    /// Whether `agent`, by its last heartbeat (shard count, failed
    /// shards), reports the shard serving `topic/partition` as failed.
    pub(super) fn peer_shard_failed(&self, agent: &str, topic: &str, partition: u32) -> bool {
        agent != self.me && peer_shard_failed(&self.seen.lock(), agent, topic, partition)
    }

    /// Whether this agent's shard `shard` failed or died.
    pub(super) fn shard_unwell(&self, shard: usize) -> bool {
        self.unwell.lock().contains_key(&shard)
    }

    /// This agent's shards whose executor ended (their leases are not
    /// renewed any more).
    pub(super) fn dead_shards(&self) -> Vec<usize> {
        self.unwell
            .lock()
            .iter()
            .filter(|(_, h)| **h == ShardHealth::Dead)
            .map(|(s, _)| *s)
            .collect()
    }

    /// This agent's failed or dead shards, sorted (sent with its heartbeat).
    pub(super) fn unwell_shards(&self) -> Vec<usize> {
        let mut f: Vec<usize> = self.unwell.lock().keys().copied().collect();
        f.sort_unstable();
        f
    }

    /// Shard `shard` of this agent is now `health`.
    pub(super) fn set_health(&self, shard: usize, health: ShardHealth) {
        let mut unwell = self.unwell.lock();
        match health {
            ShardHealth::Healthy => {
                unwell.remove(&shard);
            }
            other => {
                unwell.insert(shard, other);
            }
        }
    }

    /// This agent's heartbeat round failed: the next one that works
    /// starts watching every agent again.
    pub(super) fn heartbeat_failed(&self) {
        *self.watching.lock() = false;
    }

    /// Takes in every registered agent's row at `now`. An agent is live
    /// while its heartbeat counter moved within the last `timeout` of this
    /// agent's watch; one just seen (or seen again after this agent could
    /// not read the store) is given a whole `timeout`. Returns the new live
    /// list when it changed.
    pub(super) fn observe(
        &self,
        rows: Vec<AgentRow>,
        now: Instant,
        timeout: Duration,
    ) -> Option<Vec<String>> {
        let again = !std::mem::replace(&mut *self.watching.lock(), true);
        let mut seen = self.seen.lock();
        let mut fresh = HashMap::with_capacity(rows.len());
        for row in rows {
            let s = match seen.remove(&row.agent_id) {
                Some(old) if !again => Seen {
                    beats_since: if old.row.beats == row.beats {
                        old.beats_since
                    } else {
                        now
                    },
                    lease_since: if old.row.lease_beats == row.lease_beats {
                        old.lease_since
                    } else {
                        now
                    },
                    row,
                },
                _ => Seen {
                    row,
                    beats_since: now,
                    lease_since: now,
                },
            };
            fresh.insert(s.row.agent_id.clone(), s);
        }
        *seen = fresh;
        let mut ids: Vec<String> = seen
            .values()
            .filter(|s| now.saturating_duration_since(s.beats_since) < timeout)
            .map(|s| s.row.agent_id.clone())
            .collect();
        if !ids.contains(&self.me) {
            ids.push(self.me.clone());
        }
        ids.sort();
        let mut live = self.live.lock();
        if *live == ids {
            return None;
        }
        *live = ids.clone();
        Some(ids)
    }

    /// Whether this agent should lead `topic/partition` (`key` its topic
    /// key), its own shard for it being `own_shard`: rendezvous hashing over
    /// the live agents whose shard for the partition works (this agent's
    /// by its current health, others' by their last heartbeat); over all
    /// live agents when none does.
    pub(super) fn assigned_here(
        &self,
        key: &str,
        topic: &str,
        partition: u32,
        own_shard: usize,
    ) -> bool {
        let live = self.live.lock();
        let seen = self.seen.lock();
        let own_shard_works = !self.shard_unwell(own_shard);
        let working: Vec<String> = live
            .iter()
            .filter(|a| {
                if **a == self.me {
                    own_shard_works
                } else {
                    !peer_shard_failed(&seen, a, topic, partition)
                }
            })
            .cloned()
            .collect();
        let candidates = if working.is_empty() { &*live } else { &working };
        crate::cluster::assignment::owner(candidates, key, partition).is_none_or(|o| o == self.me)
    }
}

/// Whether `agent`, by its last row in `seen` (shard count, failed
/// shards), reports the shard serving `topic/partition` as failed.
fn peer_shard_failed(
    seen: &HashMap<String, Seen>,
    agent: &str,
    topic: &str,
    partition: u32,
) -> bool {
    seen.get(agent).is_some_and(|s| {
        let shards = s.row.shard_addresses.len().max(1);
        s.row
            .failed_shards
            .contains(&shard_for(topic, partition, shards))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, shards: usize, failed: Vec<usize>, beats: u64) -> AgentRow {
        AgentRow {
            agent_id: id.into(),
            shard_addresses: (0..shards)
                .map(|i| format!("127.0.0.1:{}", 9000 + i))
                .collect(),
            heartbeat_ms: 0,
            failed_shards: failed,
            beats,
            lease_beats: beats,
        }
    }

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    const TIMEOUT: Duration = Duration::from_millis(500);

    #[test]
    fn an_agent_is_live_while_its_counter_moves_on_our_clock() {
        let t0 = Instant::now();
        let m = Members::new("a");
        let both = m.observe(
            vec![row("a", 1, vec![], 1), row("b", 1, vec![], 7)],
            t0,
            TIMEOUT,
        );
        assert_eq!(both, Some(vec!["a".to_string(), "b".to_string()]));
        // b's counter moved at 300: live until 800 whatever its wall clock.
        m.observe(vec![row("b", 1, vec![], 8)], at(t0, 300), TIMEOUT);
        assert_eq!(
            m.observe(vec![row("b", 1, vec![], 8)], at(t0, 799), TIMEOUT),
            None
        );
        assert!(m.is_live("b"));
        assert_eq!(
            m.lease_silence("b", at(t0, 799)),
            Some((8, Duration::from_millis(499)))
        );
        assert_eq!(
            m.observe(vec![row("b", 1, vec![], 8)], at(t0, 800), TIMEOUT),
            Some(vec!["a".to_string()])
        );
        assert!(!m.is_live("b"));
        assert_eq!(m.lease_silence("c", at(t0, 800)), None);
    }

    #[test]
    fn a_failed_heartbeat_round_starts_every_watch_again() {
        let t0 = Instant::now();
        let m = Members::new("a");
        m.observe(
            vec![row("a", 1, vec![], 1), row("b", 1, vec![], 1)],
            t0,
            TIMEOUT,
        );
        m.heartbeat_failed();
        // Nothing moved during the outage; watched again from 2_000.
        assert_eq!(
            m.observe(vec![row("b", 1, vec![], 1)], at(t0, 2_000), TIMEOUT),
            None
        );
        assert_eq!(
            m.observe(vec![row("b", 1, vec![], 1)], at(t0, 2_400), TIMEOUT),
            None
        );
        assert!(m.is_live("b"));
        assert_eq!(
            m.lease_silence("b", at(t0, 2_400)),
            Some((1, Duration::from_millis(400)))
        );
        assert!(m
            .observe(vec![row("b", 1, vec![], 1)], at(t0, 2_500), TIMEOUT)
            .is_some());
        assert!(!m.is_live("b"));
    }

    #[test]
    fn partitions_go_to_agents_whose_shard_for_them_works() {
        let t0 = Instant::now();
        let m = Members::new("a");
        m.observe(
            vec![row("a", 1, vec![], 1), row("b", 1, vec![], 1)],
            t0,
            TIMEOUT,
        );
        // With b's only shard failed, every partition is a's.
        m.observe(
            vec![row("a", 1, vec![], 2), row("b", 1, vec![0], 2)],
            at(t0, 1),
            TIMEOUT,
        );
        assert!(m.peer_shard_failed("b", "t", 3));
        assert!((0..32).all(|p| m.assigned_here("t#1", "t", p, 0)));
        assert_eq!(m.live_rows().len(), 2);
        // With a's shard failed too, the plain rendezvous owner decides:
        // some partitions are b's.
        m.set_health(0, ShardHealth::Failed);
        assert!(m.shard_unwell(0) && m.dead_shards().is_empty());
        assert!((0..32).any(|p| !m.assigned_here("t#1", "t", p, 0)));
        m.set_health(0, ShardHealth::Dead);
        assert_eq!((m.dead_shards(), m.unwell_shards()), (vec![0], vec![0]));
        m.set_health(0, ShardHealth::Healthy);
        assert!(!m.shard_unwell(0));
    }
}
