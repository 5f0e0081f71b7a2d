//! What this agent knows of the cluster's members ([`Members`]): the live
//! agents, other agents' shard counts and failed shards from their last
//! heartbeats, the health of this agent's own shards, and since when its
//! own heartbeats work; and from those, which agent should lead a
//! partition. Plain state behind locks, time passed in; `membership`
//! feeds it from the metadata store.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::messages::ShardHealth;
use crate::metastore::AgentRow;
use crate::routing::shard_for;

/// The cluster as this agent last saw it.
pub(super) struct Members {
    /// This agent's id.
    me: String,
    /// Live agent ids, sorted (this one always included), from the last
    /// heartbeat round.
    live: Mutex<Vec<String>>,
    /// Other live agents → (shard count, failed shards), from the last
    /// heartbeat round.
    peers: Mutex<HashMap<String, (usize, Vec<usize>)>>,
    /// This agent's shards whose WAL failed or whose executor ended.
    unwell: Mutex<HashMap<usize, ShardHealth>>,
    /// Since when (ms) this agent's heartbeats have worked without a
    /// failure; `None` right after one failed.
    ok_since: Mutex<Option<i64>>,
}

impl Members {
    /// Knows no agent but `me` yet.
    pub(super) fn new(me: &str) -> Self {
        Members {
            me: me.to_owned(),
            live: Mutex::new(Vec::new()),
            peers: Mutex::new(HashMap::new()),
            unwell: Mutex::new(HashMap::new()),
            ok_since: Mutex::new(None),
        }
    }

    /// The live agents (sorted) from the last heartbeat round.
    pub(super) fn live(&self) -> Vec<String> {
        self.live.lock().clone()
    }

    /// Whether `agent` was live at the last heartbeat round.
    pub(super) fn is_live(&self, agent: &str) -> bool {
        self.live.lock().iter().any(|a| a == agent)
    }

    /// Whether `agent`, by its last heartbeat (shard count, failed
    /// shards), reports the shard serving `topic/partition` as failed.
    pub(super) fn peer_shard_failed(&self, agent: &str, topic: &str, partition: u32) -> bool {
        peer_shard_failed(&self.peers.lock(), agent, topic, partition)
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

    /// This agent's heartbeat failed: until they work again for a whole
    /// agent timeout, no agent seen live is declared dead.
    pub(super) fn heartbeat_failed(&self) {
        *self.ok_since.lock() = None;
    }

    /// Takes in the agents whose heartbeats are fresh (`rows`) at `now_ms`.
    /// An agent seen live before is declared dead only once this agent's
    /// own heartbeats have worked for `timeout_ms`: after a metadata-store
    /// outage every heartbeat looks stale, because nobody could write one.
    /// Returns the new live list when it changed.
    pub(super) fn observe(
        &self,
        rows: Vec<AgentRow>,
        now_ms: i64,
        timeout_ms: i64,
    ) -> Option<Vec<String>> {
        *self.peers.lock() = rows
            .iter()
            .filter(|a| a.agent_id != self.me)
            .map(|a| {
                (
                    a.agent_id.clone(),
                    (a.shard_addresses.len(), a.failed_shards.clone()),
                )
            })
            .collect();
        let mut ids: Vec<String> = rows.into_iter().map(|a| a.agent_id).collect();
        if !ids.contains(&self.me) {
            ids.push(self.me.clone());
        }
        let ok_since = *self.ok_since.lock().get_or_insert(now_ms);
        let mut live = self.live.lock();
        if now_ms - ok_since < timeout_ms {
            for id in live.iter() {
                if !ids.contains(id) {
                    ids.push(id.clone());
                }
            }
        }
        ids.sort();
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
        let peers = self.peers.lock();
        let own_shard_works = !self.shard_unwell(own_shard);
        let working: Vec<String> = live
            .iter()
            .filter(|a| {
                if **a == self.me {
                    own_shard_works
                } else {
                    !peer_shard_failed(&peers, a, topic, partition)
                }
            })
            .cloned()
            .collect();
        let candidates = if working.is_empty() { &*live } else { &working };
        crate::assignment::owner(candidates, key, partition).is_none_or(|o| o == self.me)
    }
}

/// Whether `agent`, by its last heartbeat in `peers` (shard count, failed
/// shards), reports the shard serving `topic/partition` as failed.
fn peer_shard_failed(
    peers: &HashMap<String, (usize, Vec<usize>)>,
    agent: &str,
    topic: &str,
    partition: u32,
) -> bool {
    peers.get(agent).is_some_and(|(shards, failed)| {
        failed.contains(&shard_for(topic, partition, (*shards).max(1)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, shards: usize, failed: Vec<usize>) -> AgentRow {
        AgentRow {
            agent_id: id.into(),
            shard_addresses: (0..shards)
                .map(|i| format!("127.0.0.1:{}", 9000 + i))
                .collect(),
            heartbeat_ms: 0,
            failed_shards: failed,
        }
    }

    #[test]
    fn an_agent_missing_from_the_heartbeats_stays_live_until_ours_worked_a_whole_timeout() {
        let m = Members::new("a");
        let both = m.observe(vec![row("a", 1, vec![]), row("b", 1, vec![])], 1_000, 500);
        assert_eq!(both, Some(vec!["a".to_string(), "b".to_string()]));
        // Our heartbeats have worked for 400 ms < 500 ms: b is kept.
        assert_eq!(m.observe(vec![row("a", 1, vec![])], 1_400, 500), None);
        assert!(m.is_live("b"));
        // For 500 ms: b is gone.
        assert_eq!(
            m.observe(vec![row("a", 1, vec![])], 1_500, 500),
            Some(vec!["a".to_string()])
        );
        assert!(!m.is_live("b"));
    }

    #[test]
    fn a_failed_heartbeat_restarts_the_grace() {
        let m = Members::new("a");
        m.observe(vec![row("a", 1, vec![]), row("b", 1, vec![])], 1_000, 500);
        m.heartbeat_failed();
        // Working again since 2_000: at 2_400 b is still kept.
        assert_eq!(m.observe(vec![row("a", 1, vec![])], 2_000, 500), None);
        assert_eq!(m.observe(vec![row("a", 1, vec![])], 2_400, 500), None);
        assert!(m.is_live("b"));
    }

    #[test]
    fn partitions_go_to_agents_whose_shard_for_them_works() {
        let m = Members::new("a");
        m.observe(vec![row("a", 1, vec![]), row("b", 1, vec![])], 0, 500);
        // With b's only shard failed, every partition is a's.
        m.observe(vec![row("a", 1, vec![]), row("b", 1, vec![0])], 1, 500);
        assert!(m.peer_shard_failed("b", "t", 3));
        assert!((0..32).all(|p| m.assigned_here("t#1", "t", p, 0)));
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
