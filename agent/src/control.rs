//! The control thread: one tokio runtime beside the shards that owns
//! everything slow or shared across agents — the metadata store, the object
//! store, the lease task, the uploader and reads of chunk objects. Shards
//! talk to it through a crossbeam channel (plus a wake-up) and it answers
//! through per-shard channels, so a shard never blocks on it and never takes
//! a lock it shares with another core. Must not touch shard logs directly.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::admin::{Admin, Readiness};
use crate::catalog::{validate_new_topic, Catalog};
use crate::clock::now_ms;
use crate::config::AgentConfig;
use crate::messages::{ClusterView, ControlError, ControlHandle, ShardHealth, ToControl, ToShard};
use crate::metastore::{MetaError, MetaStore, TopicRow};
use crate::metrics::Registry;
use crate::objstore::ObjectStore;
use crate::remote::{ChunkReader, RemoteCache};
use crate::routing::shard_for;
use streamhouse_shard::producers::RememberedBatch;

/// Attempts at a metadata call during start-up before giving up on it
/// (delays 100, 200, 400, 800 ms between them).
const START_ATTEMPTS: u32 = 5;

impl From<MetaError> for ControlError {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::Exists(t) => ControlError::Exists(t),
            MetaError::Unknown(t) => ControlError::Unknown(t),
            e @ (MetaError::Gap { .. } | MetaError::NotContiguous { .. }) => {
                ControlError::Corrupt(e.to_string())
            }
            e @ (MetaError::UnknownProducer(_) | MetaError::EpochExhausted(_)) => {
                ControlError::Invalid(e.to_string())
            }
            e @ MetaError::ProducerFenced { .. } => ControlError::Fenced(e.to_string()),
            other => ControlError::Unavailable(other.to_string()),
        }
    }
}

/// How long acquiring a lease may spend reading the last committed batches
/// from object storage, for a partition with no producer state stored:
/// 2 s.
const PRODUCER_FALLBACK_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything the control thread's tasks share.
pub(crate) struct Shared {
    pub config: Arc<AgentConfig>,
    pub catalog: Arc<Catalog>,
    pub meta: MetaStore,
    /// A connection of its own for lease renewal (on its own thread), so
    /// slow metadata work never delays it.
    renewals: MetaStore,
    /// Held by a renewal round and by every lease release, so no renewal
    /// in flight extends a lease just released.
    renew_gate: tokio::sync::Mutex<()>,
    pub store: ObjectStore,
    /// Each shard's inbox (replaced when a shard is restarted).
    shards: Vec<Mutex<mpsc::UnboundedSender<ToShard>>>,
    /// Leases this agent holds: (topic key, partition) -> (epoch, expiry ms).
    leases: Mutex<HashMap<(String, u32), (u64, i64)>>,
    pub cache: Mutex<RemoteCache>,
    pub stop: AtomicBool,
    /// Release leases when stopping.
    release: AtomicBool,
    pub metrics: Arc<Registry>,
    /// Live agent ids (this one always included), from the last heartbeat
    /// round.
    live: Mutex<Vec<String>>,
    /// Partitions being handed to another agent.
    moving: Mutex<HashSet<(String, u32)>>,
    /// Shards whose WAL failed or whose executor ended, by shard number.
    unwell: Mutex<HashMap<usize, ShardHealth>>,
    /// Other live agents' shard counts and failed shards, from the last
    /// heartbeat round.
    peer_failures: Mutex<HashMap<String, (usize, Vec<usize>)>>,
    /// Since when (ms) this agent's heartbeats have worked without a
    /// failure; `None` right after one failed.
    heartbeats_ok_since: Mutex<Option<i64>>,
    /// Since when other live agents' leases have been seen expired (see
    /// `takeover`).
    expired: Mutex<crate::takeover::ExpiredLeases>,
    /// What `/ready` answers from: the first lease round is done, and
    /// the last metadata store round succeeded (or why it failed).
    pub readiness: Arc<Readiness>,
    /// Set when the agent drains (SIGTERM, `shutdown`): no new leases.
    draining: Arc<AtomicBool>,
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

/// Topic name of a topic key `name#id`.
fn topic_name(key: &str) -> &str {
    key.rsplit_once('#').map_or(key, |(n, _)| n)
}

impl Shared {
    pub fn shard_of(&self, key: &str, partition: u32) -> usize {
        shard_for(topic_name(key), partition, self.config.shard_count())
    }

    /// Reads of committed data from chunk objects.
    fn chunks(&self) -> ChunkReader<'_> {
        ChunkReader {
            meta: &self.meta,
            store: &self.store,
            cache: &self.cache,
        }
    }

    pub fn tell(&self, shard: usize, msg: ToShard) {
        if let Some(tx) = self.shards.get(shard) {
            let _ = tx.lock().unbounded_send(msg);
        }
    }

    /// How often leases are renewed: a third of the TTL (at least 20 ms).
    fn renew_every(&self) -> Duration {
        Duration::from_millis((self.config.lease_ttl_ms / 3).max(20))
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.config.lease_ttl_ms).unwrap_or(i64::MAX / 4)
    }

    /// Marks a partition's lease lost and tells its shard.
    pub fn lose(&self, key: &str, partition: u32, reason: String) {
        tracing::warn!(topic = key, partition, %reason, "lease lost; no longer serving the partition");
        let held = {
            let mut l = self.leases.lock();
            l.remove(&(key.to_owned(), partition));
            l.len()
        };
        let m = &self.metrics.control;
        m.leases_lost.fetch_add(1, Ordering::Relaxed);
        m.leases_held.store(held as u64, Ordering::Relaxed);
        self.catalog.set_lease_epoch(key, partition, 0);
        self.tell(
            self.shard_of(key, partition),
            ToShard::LeaseLost {
                topic: key.to_owned(),
                partition,
                reason,
            },
        );
    }

    /// Acquires one partition's lease and hands it to its shard.
    /// A live agent's expired lease is left to it for a while (see
    /// `takeover`): answered `LeaseHeld` meanwhile.
    async fn acquire(&self, key: &str, partition: u32) -> Result<(), MetaError> {
        let before = self.meta.lease(key, partition).await?;
        if let Some(b) = before.as_ref().filter(|b| b.holder != self.config.agent_id) {
            if !self.may_take(key, partition, b) {
                return Err(MetaError::LeaseHeld {
                    topic: key.to_owned(),
                    partition,
                    holder: b.holder.clone(),
                    expires_ms: b.expires_ms,
                });
            }
        }
        let grant = self
            .meta
            .acquire_lease(
                key,
                partition,
                &self.config.agent_id,
                now_ms(),
                self.ttl_ms(),
            )
            .await?;
        let committed_end = self.meta.committed_end(key, partition).await?;
        let fresh = !before
            .as_ref()
            .is_some_and(|b| b.holder == self.config.agent_id && b.epoch == grant.epoch);
        // Producer state committed with the ranges; for a partition with
        // none stored (chunks committed before the store kept it), the
        // batches of the last committed range.
        let mut producers = self.meta.producer_state(key, partition).await?;
        if producers.is_empty() && committed_end > 0 {
            // Bounded: an acquisition (and so an agent's start) must not
            // wait on a slow object store.
            let read = tokio::time::timeout(
                PRODUCER_FALLBACK_TIMEOUT,
                self.chunks().last_headers(key, partition, committed_end),
            )
            .await;
            match read {
                Ok(Ok(h)) => producers.extend(h.iter().map(RememberedBatch::from)),
                Ok(Err(e)) => {
                    tracing::warn!(topic = key, partition, error = %e, "cannot read the last committed batches; idempotence relies on the stored producer state");
                }
                Err(_) => {
                    tracing::warn!(topic = key, partition, "reading the last committed batches took over {PRODUCER_FALLBACK_TIMEOUT:?}; idempotence relies on the stored producer state");
                }
            }
        }
        self.expired.lock().forget(key, partition);
        let held = {
            let mut l = self.leases.lock();
            l.insert((key.to_owned(), partition), (grant.epoch, grant.expires_ms));
            l.len()
        };
        let m = &self.metrics.control;
        m.leases_acquired.fetch_add(1, Ordering::Relaxed);
        m.leases_held.store(held as u64, Ordering::Relaxed);
        self.catalog.set_lease_epoch(key, partition, grant.epoch);
        tracing::info!(
            topic = key,
            partition,
            epoch = grant.epoch,
            committed_end,
            "lease acquired"
        );
        self.tell(
            self.shard_of(key, partition),
            ToShard::Lease {
                topic: key.to_owned(),
                partition,
                epoch: grant.epoch,
                expires_ms: grant.expires_ms,
                committed_end,
                fresh,
                producers,
            },
        );
        Ok(())
    }

    /// Whether this agent may take `key/partition` from the agent in its
    /// lease row `row` now (`takeover::ExpiredLeases::may_take`, with one
    /// lease TTL of grace).
    fn may_take(&self, key: &str, partition: u32, row: &crate::metastore::LeaseRow) -> bool {
        let live = self.live.lock().contains(&row.holder);
        let shard_failed = peer_shard_failed(
            &self.peer_failures.lock(),
            &row.holder,
            topic_name(key),
            partition,
        );
        let holder = crate::takeover::Holder {
            agent: &row.holder,
            epoch: row.epoch,
            expires_ms: row.expires_ms,
            live,
            shard_failed,
        };
        let may = self
            .expired
            .lock()
            .may_take(key, partition, &holder, now_ms(), self.ttl_ms());
        if !may {
            tracing::info!(topic = key, partition, holder = %row.holder, epoch = row.epoch, "lease expired but its holder is alive: leaving it time to renew");
        }
        may
    }

    /// The epoch this agent holds `key/partition` under, if it does.
    pub fn held_epoch(&self, key: &str, partition: u32) -> Option<u64> {
        self.leases
            .lock()
            .get(&(key.to_owned(), partition))
            .map(|(e, _)| *e)
    }

    /// Whether this agent should lead `key/partition` given the live agents:
    /// rendezvous hashing over the live agents whose shard for the partition
    /// works (this agent's own shards by their current health, others' by
    /// their last heartbeat); over all live agents when none does.
    fn assigned_here(&self, key: &str, partition: u32) -> bool {
        let live = self.live.lock();
        let peers = self.peer_failures.lock();
        let own_shard_works = !self
            .unwell
            .lock()
            .contains_key(&self.shard_of(key, partition));
        let name = topic_name(key);
        let working: Vec<String> = live
            .iter()
            .filter(|a| {
                if **a == self.config.agent_id {
                    own_shard_works
                } else {
                    !peer_shard_failed(&peers, a, name, partition)
                }
            })
            .cloned()
            .collect();
        let candidates = if working.is_empty() { &*live } else { &working };
        crate::assignment::owner(candidates, key, partition)
            .is_none_or(|o| o == self.config.agent_id)
    }

    /// Heartbeat, then refresh the list of live agents. An agent seen live
    /// before is declared dead only once this agent's own heartbeats have
    /// worked for a whole `--agent-timeout-ms`: after a metadata-store
    /// outage every heartbeat looks stale, because nobody could write one.
    async fn heartbeat(&self) -> Result<(), MetaError> {
        let r = self.heartbeat_round().await;
        if r.is_err() {
            *self.heartbeats_ok_since.lock() = None;
        }
        r
    }

    async fn heartbeat_round(&self) -> Result<(), MetaError> {
        let now = now_ms();
        let row = crate::metastore::AgentRow {
            agent_id: self.config.agent_id.clone(),
            shard_addresses: (0..self.config.shard_count())
                .map(|i| self.config.shard_address(i))
                .collect(),
            heartbeat_ms: now,
            failed_shards: {
                let mut f: Vec<usize> = self.unwell.lock().keys().copied().collect();
                f.sort_unstable();
                f
            },
        };
        self.meta.heartbeat(&row).await?;
        let since = now - i64::try_from(self.config.agent_timeout_ms).unwrap_or(i64::MAX / 4);
        let rows = self.meta.live_agents(since).await?;
        *self.peer_failures.lock() = rows
            .iter()
            .filter(|a| a.agent_id != self.config.agent_id)
            .map(|a| {
                (
                    a.agent_id.clone(),
                    (a.shard_addresses.len(), a.failed_shards.clone()),
                )
            })
            .collect();
        let mut ids: Vec<String> = rows.into_iter().map(|a| a.agent_id).collect();
        if !ids.contains(&self.config.agent_id) {
            ids.push(self.config.agent_id.clone());
        }
        let ok_since = *self.heartbeats_ok_since.lock().get_or_insert(now);
        let timeout = i64::try_from(self.config.agent_timeout_ms).unwrap_or(i64::MAX / 4);
        let mut live = self.live.lock();
        if now - ok_since < timeout {
            for id in live.iter() {
                if !ids.contains(id) {
                    ids.push(id.clone());
                }
            }
        }
        ids.sort();
        if *live != ids {
            tracing::info!(agents = ?ids, "live agents changed");
            *live = ids;
        }
        Ok(())
    }

    /// Hands every held partition that now belongs to another live agent
    /// over: its shard stops writes and gets its data committed, then the
    /// lease is released so the new owner can take it at once.
    fn rebalance(self: &Arc<Self>) {
        let held: Vec<(String, u32, u64)> = self
            .leases
            .lock()
            .iter()
            .map(|((k, p), (e, _))| (k.clone(), *p, *e))
            .collect();
        for (key, p, epoch) in held {
            // A failed shard cannot hand over (its log refuses the barrier);
            // it gives its leases up itself once it shipped what it could.
            if self.unwell.lock().contains_key(&self.shard_of(&key, p)) {
                continue;
            }
            if self.assigned_here(&key, p) || !self.moving.lock().insert((key.clone(), p)) {
                continue;
            }
            let s = self.clone();
            tokio::spawn(async move {
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
                    s.moving.lock().remove(&(key, p));
                    return;
                }
                // No renewal in flight may extend the lease after its release.
                let _gate = s.renew_gate.lock().await;
                s.give_up(&key, p, epoch, "handed over").await;
                s.moving.lock().remove(&(key, p));
            });
        }
    }

    /// The cluster as the metadata store sees it: live agents with their
    /// shard addresses, and per partition of `topics` (all when empty) its
    /// leader's address and lease epoch ("" when no live agent holds it).
    pub async fn cluster_view(&self, topics: &[String]) -> Result<ClusterView, MetaError> {
        let now = now_ms();
        let since = now - i64::try_from(self.config.agent_timeout_ms).unwrap_or(i64::MAX / 4);
        let agents = self.meta.live_agents(since).await?;
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
            let key = t.log_key(&name);
            let rows = self.meta.topic_leases(&key).await?;
            let mut parts = vec![(String::new(), String::new(), 0u64); t.partitions as usize];
            for (p, row) in rows {
                let Some(slot) = parts.get_mut(p as usize) else {
                    continue;
                };
                if row.expires_ms <= now {
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

    /// At start, before the shards replay their logs: takes back every
    /// lease this agent still holds from before a restart (the same epoch,
    /// even if it expired while nobody else took it), wherever the
    /// partition is assigned now, so durable data not yet in object
    /// storage is committed under it. Partitions that belong elsewhere are
    /// then handed over as usual. Retries a failing metadata store a few
    /// times: a lease not taken back here would leave that data unshipped.
    async fn reclaim_own(&self) {
        let keys: Vec<String> = self
            .catalog
            .list()
            .iter()
            .map(|(n, t)| t.log_key(n))
            .collect();
        for key in keys {
            let rows = match self.patiently(|| self.meta.topic_leases(&key)).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(topic = %key, error = %e, "cannot list leases to take back");
                    continue;
                }
            };
            for (p, row) in rows {
                if row.holder != self.config.agent_id {
                    continue;
                }
                match self.patiently(|| self.acquire(&key, p)).await {
                    Ok(()) | Err(MetaError::LeaseHeld { .. }) => {}
                    Err(e) => {
                        tracing::warn!(topic = %key, partition = p, error = %e, "cannot take back lease")
                    }
                }
            }
        }
    }

    /// Runs `op` up to [`START_ATTEMPTS`] times while it fails with an
    /// error other than a lease held elsewhere.
    async fn patiently<T, F, Fut>(&self, mut op: F) -> Result<T, MetaError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, MetaError>>,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Err(e) if attempt < START_ATTEMPTS && !matches!(e, MetaError::LeaseHeld { .. }) => {
                    tokio::time::sleep(crate::uploader::retry_delay(attempt)).await;
                    attempt += 1;
                }
                r => return r,
            }
        }
    }

    /// Acquires every partition of the known topics that is not held yet.
    /// Partitions another agent holds are skipped (retried next round).
    /// Nothing while the agent drains: it is about to give leases up.
    async fn acquire_missing(&self) {
        if self.draining.load(Ordering::Relaxed) {
            return;
        }
        let want: Vec<(String, u32)> = self
            .catalog
            .list()
            .iter()
            .flat_map(|(n, t)| {
                let key = t.log_key(n);
                (0..t.partitions).map(move |p| (key.clone(), p))
            })
            .collect();
        for (key, p) in want {
            if self.leases.lock().contains_key(&(key.clone(), p))
                || !self.assigned_here(&key, p)
                || self.unwell.lock().contains_key(&self.shard_of(&key, p))
            {
                continue;
            }
            match self.acquire(&key, p).await {
                Ok(()) => {}
                Err(MetaError::LeaseHeld { holder, .. }) => {
                    tracing::debug!(topic = %key, partition = p, %holder, "lease held elsewhere")
                }
                Err(e) => {
                    tracing::warn!(topic = %key, partition = p, error = %e, "cannot acquire lease")
                }
            }
        }
    }

    /// Renews every held lease; loses those that are fenced or expired.
    async fn renew_all(&self) {
        let _gate = self.renew_gate.lock().await;
        let dead: Vec<usize> = self
            .unwell
            .lock()
            .iter()
            .filter(|(_, h)| **h == ShardHealth::Dead)
            .map(|(s, _)| *s)
            .collect();
        let held: Vec<((String, u32), (u64, i64))> = self
            .leases
            .lock()
            .iter()
            .filter(|((k, p), _)| !dead.contains(&self.shard_of(k, *p)))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let agent = self.config.agent_id.clone();
        let batch: Vec<(String, u32, u64)> = held
            .iter()
            .map(|((k, p), (e, _))| (k.clone(), *p, *e))
            .collect();
        // One attempt may take at most a renewal period: the next one
        // (or the expiry check) must not wait behind a hung call.
        let attempt = tokio::time::timeout(
            self.renew_every(),
            self.renewals
                .renew_leases(&batch, &agent, now_ms(), self.ttl_ms()),
        )
        .await
        .unwrap_or_else(|_| {
            Err(MetaError::Backend(format!(
                "lease renewal took over {} ms",
                self.renew_every().as_millis()
            )))
        });
        let results = match attempt {
            Ok(r) => r,
            Err(e) => held.iter().map(|_| Err(e.clone())).collect(),
        };
        for (((key, p), (epoch, expires)), result) in held.into_iter().zip(results) {
            match result {
                Ok(g) => {
                    if let Some(v) = self.leases.lock().get_mut(&(key.clone(), p)) {
                        v.1 = g.expires_ms;
                    }
                    self.tell(
                        self.shard_of(&key, p),
                        ToShard::Renewed {
                            topic: key,
                            partition: p,
                            epoch,
                            expires_ms: g.expires_ms,
                        },
                    );
                }
                Err(MetaError::Fenced { detail, .. }) => self.lose(&key, p, detail),
                // Kept: the shard refuses writes past the expiry, and the
                // lease is renewed at the same epoch once the store answers
                // again, unless another agent took it (then `Fenced`). Its
                // acknowledged writes are still ours to ship; other agents
                // leave a live agent's expired lease alone for a TTL.
                Err(e) if now_ms() >= expires => {
                    tracing::warn!(topic = %key, partition = p, error = %e, "lease expired: cannot renew it; writes refused until it is renewed")
                }
                Err(e) => {
                    tracing::warn!(topic = %key, partition = p, error = %e, "lease renewal failed; will retry")
                }
            }
        }
    }

    /// Loads topics from the metadata store into the catalog.
    async fn sync_topics(&self) -> Result<(), MetaError> {
        let rows = self.meta.topics().await?;
        let known: HashSet<String> = rows.iter().map(TopicRow::key).collect();
        self.leases.lock().retain(|(k, _), _| known.contains(k));
        self.catalog.replace(&rows);
        Ok(())
    }

    async fn release_all(&self) {
        let held: Vec<((String, u32), (u64, i64))> = self.leases.lock().drain().collect();
        for ((key, p), (epoch, _)) in held {
            if let Err(e) = self
                .meta
                .release_lease(&key, p, &self.config.agent_id, epoch)
                .await
            {
                tracing::warn!(topic = %key, partition = p, error = %e, "cannot release lease");
            }
        }
    }

    async fn handle(self: Arc<Self>, req: ToControl) {
        match req {
            ToControl::CreateTopic {
                name,
                partitions,
                reply,
            } => {
                let _ = reply.send(self.create_topic(&name, partitions).await.map(|_| ()));
            }
            ToControl::DeleteTopic { name, reply } => {
                let r = self.meta.delete_topic(&name).await;
                let r = match r {
                    Ok(row) => {
                        self.catalog.remove(&name);
                        let key = row.key();
                        self.leases.lock().retain(|(k, _), _| *k != key);
                        Ok(())
                    }
                    Err(e) => Err(e.into()),
                };
                let _ = reply.send(r);
            }
            ToControl::ProducerId { reply } => {
                let _ = reply.send(self.meta.next_producer_id().await.map_err(Into::into));
            }
            ToControl::BumpProducerEpoch {
                producer_id,
                claimed,
                reply,
            } => {
                let r = self.meta.bump_producer_epoch(producer_id, claimed).await;
                let _ = reply.send(r.map_err(Into::into));
            }
            ToControl::ReadRemote {
                topic,
                partition,
                offset,
                max_bytes,
                reply,
            } => {
                let r = self
                    .chunks()
                    .read(&topic, partition, offset, max_bytes)
                    .await;
                let _ = reply.send(r);
            }
            ToControl::SyncTopics { reply } => {
                let r = self.sync_topics().await;
                if r.is_ok() {
                    self.acquire_missing().await;
                }
                let _ = reply.send(r.map_err(Into::into));
            }
            ToControl::Cluster { topics, reply } => {
                let _ = reply.send(self.cluster_view(&topics).await.map_err(Into::into));
            }
            ToControl::Upload(_) => {}
            ToControl::ShardHealth { shard, health } => {
                tracing::warn!(shard, ?health, "shard health changed");
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
            ToControl::ReleaseShard { shard } => self.release_shard(shard).await,
            ToControl::ShardRestarted { shard, inbox } => self.restarted(shard, inbox).await,
        }
    }

    /// Shard `shard` runs again with a new inbox: takes each of its leases
    /// again (the same epoch, renewed) so the new executor is told them.
    async fn restarted(&self, shard: usize, inbox: mpsc::UnboundedSender<ToShard>) {
        if let Some(tx) = self.shards.get(shard) {
            *tx.lock() = inbox;
        }
        let held: Vec<(String, u32)> = self
            .leases
            .lock()
            .keys()
            .filter(|(k, p)| self.shard_of(k, *p) == shard)
            .cloned()
            .collect();
        for (key, p) in held {
            match self.acquire(&key, p).await {
                Ok(()) => {}
                Err(MetaError::LeaseHeld { holder, .. }) => self.lose(
                    &key,
                    p,
                    format!("taken by {holder} while the shard restarted"),
                ),
                Err(e) => {
                    tracing::warn!(topic = %key, partition = p, error = %e, "cannot hand a lease to the restarted shard; it is lost");
                    self.lose(&key, p, format!("not handed to the restarted shard: {e}"));
                }
            }
        }
    }

    /// Gives up every lease of shard `shard`'s partitions (its WAL failed
    /// and everything it could ship is committed).
    async fn release_shard(&self, shard: usize) {
        let _gate = self.renew_gate.lock().await;
        let held: Vec<((String, u32), (u64, i64))> = self
            .leases
            .lock()
            .iter()
            .filter(|((k, p), _)| self.shard_of(k, *p) == shard)
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        for ((key, p), (epoch, _)) in held {
            tracing::warn!(topic = %key, partition = p, shard, "lease given up: the shard's WAL failed");
            self.give_up(&key, p, epoch, "the shard's WAL failed").await;
        }
    }

    /// Releases this agent's lease of `key/partition` held at `epoch`: out
    /// of the lease table and the catalog, released in the metadata store
    /// (it expires instead if that fails), and the shard told. The caller
    /// holds `renew_gate`, so no renewal in flight extends it again.
    async fn give_up(&self, key: &str, partition: u32, epoch: u64, why: &str) {
        let left = {
            let mut l = self.leases.lock();
            l.remove(&(key.to_owned(), partition));
            l.len()
        };
        let m = &self.metrics.control;
        m.leases_released.fetch_add(1, Ordering::Relaxed);
        m.leases_held.store(left as u64, Ordering::Relaxed);
        self.catalog.set_lease_epoch(key, partition, 0);
        if let Err(e) = self
            .meta
            .release_lease(key, partition, &self.config.agent_id, epoch)
            .await
        {
            tracing::warn!(topic = %key, partition, error = %e, %why, "cannot release lease; it will expire");
        }
        self.tell(
            self.shard_of(key, partition),
            ToShard::Released {
                topic: key.to_owned(),
                partition,
            },
        );
    }

    async fn create_topic(&self, name: &str, partitions: u32) -> Result<TopicRow, ControlError> {
        validate_new_topic(name, partitions).map_err(|e| ControlError::Invalid(e.to_string()))?;
        let row = self.meta.create_topic(name, partitions).await?;
        self.catalog.insert(&row);
        let key = row.key();
        for p in (0..partitions).filter(|p| self.assigned_here(&key, *p)) {
            if let Err(e) = self.acquire(&key, p).await {
                tracing::warn!(topic = %key, partition = p, error = %e, "cannot acquire lease of a new topic");
            }
        }
        // Answer once every owning shard has applied its leases, so the
        // first produce after CreateTopic finds them.
        let mut acks = Vec::new();
        for s in 0..self.shards.len() {
            let (tx, rx) = oneshot::channel();
            self.tell(s, ToShard::Barrier(tx));
            acks.push(rx);
        }
        for rx in acks {
            let _ = rx.await;
        }
        Ok(row)
    }
}

/// The running control thread.
pub struct Control {
    handle: ControlHandle,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Control {
    pub fn handle(&self) -> ControlHandle {
        self.handle.clone()
    }

    /// The agent's drain flag (false until SIGTERM or `shutdown`); set,
    /// the control plane takes no new leases.
    pub fn drain_flag(&self) -> Arc<AtomicBool> {
        self.shared.draining.clone()
    }

    /// Stops the lease task and uploader and joins; with `release`, gives
    /// every lease up first (everything written is in object storage, so
    /// other agents may take the partitions at once).
    pub fn shutdown(mut self, release: bool) {
        self.shared.release.store(release, Ordering::Release);
        self.shared.stop.store(true, Ordering::Release);
        self.handle.notify.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the control thread: opens the metadata and object stores, loads
/// topics into `catalog`, acquires leases and queues them for the shards.
/// Returns once that is done, with one message receiver per shard.
pub fn start(
    config: Arc<AgentConfig>,
    catalog: Arc<Catalog>,
    metrics: Arc<Registry>,
) -> Result<(Control, Vec<mpsc::UnboundedReceiver<ToShard>>), String> {
    let shards = config.shard_count();
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..shards).map(|_| mpsc::unbounded()).unzip();
    let (tx, rx) = crossbeam_channel::unbounded();
    let notify = Arc::new(Notify::new());
    let handle = ControlHandle {
        tx,
        notify: notify.clone(),
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<Arc<Shared>, String>>();
    let thread = std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("cannot start the control runtime: {e}")));
                    return;
                }
            };
            rt.block_on(run(config, catalog, metrics, senders, rx, notify, ready_tx));
        })
        .map_err(|e| format!("cannot start the control thread: {e}"))?;
    match ready_rx.recv() {
        Ok(Ok(shared)) => Ok((
            Control {
                handle,
                shared,
                thread: Some(thread),
            },
            receivers,
        )),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err("the control thread stopped during start".into())
        }
    }
}

/// Starts the thread that renews leases every [`Shared::renew_every`],
/// on its own runtime and metadata connection: a slow acquisition, upload
/// commit or SQLite call on the control thread never delays renewal.
/// Stops when `shared.stop` is set.
fn start_renewals(shared: Arc<Shared>) -> std::io::Result<Option<std::thread::JoinHandle<()>>> {
    let h = std::thread::Builder::new()
        .name("leases".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the lease renewal runtime");
                    return;
                }
            };
            rt.block_on(async {
                let every = shared.renew_every();
                let mut next = tokio::time::Instant::now() + every;
                while !shared.stop.load(Ordering::Acquire) {
                    // Short sleeps: stopping is noticed within 50 ms.
                    let now = tokio::time::Instant::now();
                    if now < next {
                        tokio::time::sleep((next - now).min(Duration::from_millis(50))).await;
                        continue;
                    }
                    next = now + every;
                    shared.renew_all().await;
                }
            });
        })?;
    Ok(Some(h))
}

async fn run(
    config: Arc<AgentConfig>,
    catalog: Arc<Catalog>,
    metrics: Arc<Registry>,
    shards: Vec<mpsc::UnboundedSender<ToShard>>,
    rx: crossbeam_channel::Receiver<ToControl>,
    notify: Arc<Notify>,
    ready: std::sync::mpsc::Sender<Result<Arc<Shared>, String>>,
) {
    let meta_url = config.metadata_url();
    let meta = match MetaStore::open(&meta_url).await {
        Ok(m) => m,
        Err(e) => {
            let _ = ready.send(Err(format!("--metadata {meta_url}: {e}")));
            return;
        }
    };
    let renewals = match MetaStore::open(&meta_url).await {
        Ok(m) => m,
        Err(e) => {
            let _ = ready.send(Err(format!("--metadata {meta_url}: {e}")));
            return;
        }
    };
    let store_url = config.object_store_url();
    let store = match ObjectStore::open(&store_url) {
        Ok(s) => s.with_call_timeout(Duration::from_millis(config.object_store_timeout_ms.max(1))),
        Err(e) => {
            let _ = ready.send(Err(format!("--object-store: {e}")));
            return;
        }
    };
    tracing::info!(metadata = %meta_url, object_store = %store.describe(), "control plane open");
    let shard_ports = (0..config.shard_count())
        .map(|i| config.shard_listen(i))
        .collect();
    let shared = Arc::new(Shared {
        cache: Mutex::new(RemoteCache::new(config.read_cache_bytes)),
        config,
        catalog,
        meta,
        renewals,
        renew_gate: tokio::sync::Mutex::new(()),
        store,
        shards: shards.into_iter().map(Mutex::new).collect(),
        leases: Mutex::new(HashMap::new()),
        stop: AtomicBool::new(false),
        metrics,
        release: AtomicBool::new(false),
        live: Mutex::new(Vec::new()),
        moving: Mutex::new(HashSet::new()),
        unwell: Mutex::new(HashMap::new()),
        peer_failures: Mutex::new(HashMap::new()),
        heartbeats_ok_since: Mutex::new(None),
        expired: Mutex::new(crate::takeover::ExpiredLeases::default()),
        readiness: Arc::new(Readiness::new(shard_ports)),
        draining: Arc::new(AtomicBool::new(false)),
    });
    if let Err(e) = shared.sync_topics().await {
        let _ = ready.send(Err(format!("cannot load topics: {e}")));
        return;
    }
    if let Some(addr) = shared.config.admin_listen {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                tracing::info!(%addr, "admin HTTP (/health, /ready)");
                let admin = Admin {
                    readiness: shared.readiness.clone(),
                    metrics: shared.metrics.clone(),
                    max_connections: shared.config.max_admin_connections,
                    read_timeout: shared.config.admin_read_timeout(),
                };
                tokio::spawn(crate::admin::serve(l, Arc::new(admin)));
            }
            Err(e) => {
                let _ = ready.send(Err(format!("--admin-listen {addr}: {e}")));
                return;
            }
        }
    }
    if let Err(e) = shared.heartbeat().await {
        let _ = ready.send(Err(format!("cannot register the agent: {e}")));
        return;
    }
    // Let the agents already running see this one before partitions are
    // claimed, so a joining agent takes only its share.
    shared.reclaim_own().await;
    shared.acquire_missing().await;
    shared.readiness.set_started();
    let _ = ready.send(Ok(shared.clone()));

    let renewer = match start_renewals(shared.clone()) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the lease renewal thread; leases are renewed on the control thread");
            None
        }
    };
    let (up_tx, up_rx) = tokio::sync::mpsc::unbounded_channel();
    let uploader = tokio::spawn(crate::uploader::run(shared.clone(), up_rx));
    let tick = Duration::from_millis(
        (shared.config.lease_ttl_ms / 3)
            .min(shared.config.heartbeat_ms)
            .max(20),
    );
    let mut next_tick = tokio::time::Instant::now() + tick;
    while !shared.stop.load(Ordering::Acquire) {
        while let Ok(req) = rx.try_recv() {
            match req {
                ToControl::Upload(job) => {
                    let _ = up_tx.send(job);
                }
                other => {
                    tokio::spawn(shared.clone().handle(other));
                }
            }
        }
        tokio::select! {
            _ = notify.notified() => {}
            _ = tokio::time::sleep_until(next_tick) => {
                next_tick = tokio::time::Instant::now() + tick;
                let s = shared.clone();
                if renewer.is_none() {
                    s.renew_all().await;
                }
                let beat = s.heartbeat().await;
                let synced = s.sync_topics().await;
                let error = beat.and(synced).err().map(|e| e.to_string());
                if let Some(e) = &error {
                    tracing::warn!(error = %e, "metadata store unreachable");
                }
                s.readiness.set_meta_error(error);
                s.rebalance();
                s.acquire_missing().await;
            }
        }
    }
    uploader.abort();
    if let Some(h) = renewer {
        let _ = tokio::task::spawn_blocking(move || h.join()).await;
    }
    if shared.release.load(Ordering::Acquire) {
        shared.release_all().await;
        tracing::info!("control plane stopped; leases released");
    } else {
        tracing::info!("control plane stopped; leases kept until they expire");
    }
}
