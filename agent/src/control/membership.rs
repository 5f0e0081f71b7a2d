//! Membership: this agent's heartbeat, the live agents and their failed
//! shards, rendezvous assignment of partitions to agents, the rebalance
//! that hands partitions to their owner, and the cluster view clients are
//! answered from. Must not change a lease except through `leases`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::oneshot;

use crate::messages::{ClusterView, ToShard};
use crate::metastore::MetaError;
use crate::runtime::clock::now_ms;
use crate::topics::routing::shard_for;

use super::held::Held;
use super::state::Shared;
use crate::ids::name_of;

impl Shared {
    /// Whether this agent should lead `key/partition` (see
    /// [`Members::assigned_here`](super::members::Members::assigned_here)).
    pub(super) fn assigned_here(&self, key: &str, partition: u32) -> bool {
        self.members
            .assigned_here(key, name_of(key), partition, self.shard_of(key, partition))
    }

    /// Heartbeat, then refresh the list of live agents (see
    /// [`Members::observe`](super::members::Members::observe) for when an agent is declared dead).
    pub(super) async fn heartbeat(&self) -> Result<(), MetaError> {
        let r = self.heartbeat_round().await;
        if r.is_err() {
            self.members.heartbeat_failed();
        }
        r
    }

    pub(super) async fn heartbeat_round(&self) -> Result<(), MetaError> {
        let row = crate::metastore::AgentRow {
            agent_id: self.config.agent_id.clone(),
            shard_addresses: (0..self.config.shard_count())
                .map(|i| self.config.shard_address(i))
                .collect(),
            heartbeat_ms: now_ms(),
            failed_shards: self.members.unwell_shards(),
            beats: 0,
            lease_beats: 0,
        };
        self.meta.heartbeat(&row).await?;
        let rows = self.meta.agents().await?;
        let timeout = Duration::from_millis(self.config.agent_timeout_ms);
        if let Some(ids) = self.members.observe(rows, Instant::now(), timeout) {
            tracing::info!(agents = ?ids, "live agents changed");
        }
        Ok(())
    }

    /// Hands every held partition that now belongs to another live agent
    /// over: its shard stops writes and gets its data committed, then the
    /// lease is released so the new owner can take it at once.
    pub(super) fn rebalance(self: &Arc<Self>) {
        let held = self.leases.matching(|_, _| true);
        for (id, Held { epoch, .. }) in held {
            let (key, p) = (id.topic.clone(), id.partition);
            // A failed shard cannot hand over (its log refuses the barrier);
            // it gives its leases up itself once it shipped what it could.
            if self.members.shard_unwell(self.shard_of(&key, p)) {
                continue;
            }
            if self.assigned_here(&key, p) || !self.moving.lock().insert(id.clone()) {
                continue;
            }
            let s = self.clone();
            self.tasks.spawn("handoff", async move {
                tracing::info!(topic = %key, partition = p, "handing the partition to another agent");
                let (tx, rx) = oneshot::channel();
                s.tell(
                    s.shard_of(&key, p),
                    ToShard::Handoff {
                        topic: key.clone(),
                        partition: p,
                        done: tx,
                    },
                );
                if rx.await.is_err() {
                    // The shard stopped or its log failed before everything
                    // was committed: keep the lease (it expires if we die).
                    tracing::warn!(topic = %key, partition = p, "hand-over did not finish; keeping the lease");
                    s.moving.lock().remove(&id);
                    return;
                }
                // No renewal in flight may extend the lease after its release.
                let _gate = s.renew_gate.lock().await;
                s.give_up(&key, p, epoch, "handed over").await;
                s.moving.lock().remove(&id);
            });
        }
    }

    /// The cluster as the metadata store sees it: live agents with their
    /// shard addresses, and per partition of `topics` (all when empty) its
    /// leader's address and lease epoch ("" when no live agent holds it).
    pub async fn cluster_view(&self, topics: &[String]) -> Result<ClusterView, MetaError> {
        let agents = self.members.live_rows();
        let mut view = ClusterView {
            agents: agents
                .iter()
                .map(|a| (a.agent_id.clone(), a.shard_addresses.clone()))
                .collect(),
            topics: Vec::new(),
        };
        for (name, t) in self.catalog.list() {
            if !topics.is_empty() && !topics.contains(&name) {
                continue;
            }
            let key = t.key(&name);
            let rows = self.meta.topic_leases(&key).await?;
            let mut parts = vec![(String::new(), String::new(), 0u64); t.partitions as usize];
            for (p, row) in rows {
                let Some(slot) = parts.get_mut(p as usize) else {
                    continue;
                };
                // Released: nobody leads it until the next holder says so.
                if row.expires_ms == 0 {
                    continue;
                }
                if let Some(a) = agents.iter().find(|a| a.agent_id == row.holder) {
                    let shard = shard_for(&name, p, a.shard_addresses.len().max(1));
                    if let Some(addr) = a.shard_addresses.get(shard) {
                        *slot = (row.holder.clone(), addr.clone(), row.epoch);
                    }
                }
            }
            view.topics.push((name, parts));
        }
        Ok(view)
    }
}
