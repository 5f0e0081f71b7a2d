//! The lease manager: acquire, renew, lose, release and hand back this
//! agent's partition leases, and the renewal thread (its own runtime and
//! metadata connection, so slow work never delays a renewal). Tells shards
//! through `Shared::tell`; must not decide who should lead a partition
//! (see `membership`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use tracing::Instrument;

use crate::cluster::takeover::Decision;
use crate::ids::{name_of, PartitionId, TopicKey};
use crate::messages::ToShard;
use crate::metastore::MetaError;
use crate::runtime::clock::now_ms;
use streamhouse_storage::producers::RememberedBatch;

use super::held::Held;
use super::runtime_thread;
use super::state::Shared;

/// Attempts at a metadata call during start-up before giving up on it
/// (delays 100, 200, 400, 800 ms between them).
const START_ATTEMPTS: u32 = 5;

/// How long acquiring a lease may spend reading the last committed batches
/// from object storage, for a partition with no producer state stored:
/// 2 s.
const PRODUCER_FALLBACK_TIMEOUT: Duration = Duration::from_secs(2);

impl Shared {
    /// Marks a partition's lease lost and tells its shard.
    pub fn lose(&self, key: &str, partition: u32, reason: String) {
        tracing::warn!(topic = %key, partition, %reason, "lease lost; no longer serving the partition");
        let held = self.leases.remove(key, partition);
        let m = &self.metrics.control;
        m.leases_lost.fetch_add(1, Ordering::Relaxed);
        m.leases_held.store(held as u64, Ordering::Relaxed);
        self.catalog.set_lease_epoch(key, partition, 0);
        self.tell(
            self.shard_of(key, partition),
            ToShard::LeaseLost {
                topic: TopicKey::from_stored(key),
                partition,
                reason,
            },
        );
    }

    /// Acquires one partition's lease and hands it to its shard.
    /// Another agent's lease is taken only once `takeover` says so (its
    /// renewals stood still long enough on this agent's clock): answered
    /// `LeaseHeld` meanwhile.
    /// With RUST_LOG at debug, each acquisition is a span (topic,
    /// partition) ending with an event giving its outcome and time.
    pub(super) async fn acquire(&self, key: &TopicKey, partition: u32) -> Result<(), MetaError> {
        let span = tracing::debug_span!(
            "lease_acquire",
            topic = key.name(),
            incarnation = key.incarnation(),
            partition
        );
        let started = Instant::now();
        let result = self
            .acquire_traced(key, partition)
            .instrument(span.clone())
            .await;
        span.in_scope(|| {
            let elapsed_ms = started.elapsed().as_millis() as u64;
            match &result {
                Ok(()) => {
                    tracing::debug!(elapsed_ms, outcome = "acquired", "lease acquisition ended")
                }
                Err(e) => tracing::debug!(elapsed_ms, outcome = %e, "lease acquisition ended"),
            }
        });
        result
    }

    async fn acquire_traced(&self, key: &TopicKey, partition: u32) -> Result<(), MetaError> {
        let before = self.meta.lease(key, partition).await?;
        let mut take = None;
        if let Some(b) = before.as_ref().filter(|b| b.holder != self.config.agent_id) {
            match self.takeover_decision(key, partition, b) {
                Decision::Take(t) => take = t,
                Decision::Wait => {
                    return Err(MetaError::LeaseHeld {
                        topic: key.to_string(),
                        partition,
                        holder: b.holder.clone(),
                        expires_ms: b.expires_ms,
                    })
                }
            }
        }
        let sent_at = Instant::now();
        let grant = self
            .meta
            .acquire_lease(
                key,
                partition,
                &self.config.agent_id,
                (now_ms(), self.ttl_ms()),
                take.as_ref(),
            )
            .await?;
        let committed_end = self.meta.committed_end(key, partition).await?;
        let epochs = self.meta.leader_epochs(key, partition).await?;
        let log_start = self.meta.log_start(key, partition).await?;
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
                    tracing::warn!(topic = %key, partition, error = %e, "cannot read the last committed batches; idempotence relies on the stored producer state");
                }
                Err(_) => {
                    tracing::warn!(topic = %key, partition, "reading the last committed batches took over {PRODUCER_FALLBACK_TIMEOUT:?}; idempotence relies on the stored producer state");
                }
            }
        }
        let held = self.leases.insert(
            key,
            partition,
            Held {
                epoch: grant.epoch,
                valid_until: self.valid_until(sent_at),
            },
        );
        let m = &self.metrics.control;
        m.leases_acquired.fetch_add(1, Ordering::Relaxed);
        m.leases_held.store(held as u64, Ordering::Relaxed);
        self.catalog.set_lease_epoch(key, partition, grant.epoch);
        tracing::info!(
            topic = %key,
            partition,
            epoch = grant.epoch,
            committed_end,
            "lease acquired"
        );
        self.tell(
            self.shard_of(key, partition),
            ToShard::Lease {
                topic: TopicKey::from_stored(key),
                partition,
                epoch: grant.epoch,
                valid_until: self.valid_until(sent_at),
                committed_end,
                fresh,
                producers,
                epochs,
                log_start,
            },
        );
        Ok(())
    }

    /// What to do about `key/partition`'s lease row `row`, held by another
    /// agent (see `takeover::decide`).
    fn takeover_decision(
        &self,
        key: &str,
        partition: u32,
        row: &crate::metastore::LeaseRow,
    ) -> Decision {
        let holder = crate::cluster::takeover::Holder {
            agent: &row.holder,
            epoch: row.epoch,
            expires_ms: row.expires_ms,
            live: self.members.is_live(&row.holder),
            shard_failed: self
                .members
                .peer_shard_failed(&row.holder, name_of(key), partition),
            silence: self.members.lease_silence(&row.holder, Instant::now()),
        };
        let ttl = Duration::from_millis(self.config.lease_ttl_ms);
        let d = crate::cluster::takeover::decide(&holder, ttl);
        if d == Decision::Wait {
            tracing::debug!(topic = %key, partition, holder = %row.holder, epoch = row.epoch, "the holder may still serve the lease: waiting until its renewals stood still long enough");
        }
        d
    }

    /// The epoch this agent holds `key/partition` under, if it does.
    pub fn held_epoch(&self, key: &str, partition: u32) -> Option<u64> {
        self.leases.get(key, partition).map(|h| h.epoch)
    }

    /// At start, before the shards replay their logs: takes back every
    /// lease this agent still holds from before a restart (the same epoch,
    /// even if it expired while nobody else took it), wherever the
    /// partition is assigned now, so durable data not yet in object
    /// storage is committed under it. Partitions that belong elsewhere are
    /// then handed over as usual. Retries a failing metadata store a few
    /// times: a lease not taken back here would leave that data unshipped.
    pub(super) async fn reclaim_own(&self) {
        let keys: Vec<TopicKey> = self.catalog.list().iter().map(|(n, t)| t.key(n)).collect();
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
    pub(super) async fn patiently<T, F, Fut>(&self, mut op: F) -> Result<T, MetaError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, MetaError>>,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Err(e) if attempt < START_ATTEMPTS && !matches!(e, MetaError::LeaseHeld { .. }) => {
                    tokio::time::sleep(super::uploader::retry_delay(attempt)).await;
                    attempt += 1;
                }
                r => return r,
            }
        }
    }

    /// Acquires every partition of the known topics that is not held yet.
    /// Partitions another agent holds are skipped (retried next round).
    /// Nothing while the agent drains: it is about to give leases up.
    pub(super) async fn acquire_missing(&self) {
        if self.draining.load(Ordering::Relaxed) {
            return;
        }
        let want: Vec<PartitionId> = self
            .catalog
            .list()
            .iter()
            .flat_map(|(n, t)| {
                let key = t.key(n);
                (0..t.partitions).map(move |p| PartitionId::new(key.clone(), p))
            })
            .collect();
        for PartitionId {
            topic: key,
            partition: p,
        } in want
        {
            if self.leases.get(&key, p).is_some()
                || !self.assigned_here(&key, p)
                || self.members.shard_unwell(self.shard_of(&key, p))
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
    pub(super) async fn renew_all(&self) {
        let _gate = self.renew_gate.lock().await;
        let dead = self.members.dead_shards();
        let held = self
            .leases
            .matching(|k, p| !dead.contains(&self.shard_of(k, p)));
        let agent = self.config.agent_id.clone();
        let batch: Vec<(PartitionId, u64)> =
            held.iter().map(|(id, h)| (id.clone(), h.epoch)).collect();
        // With RUST_LOG at debug, each round is a span ending with an
        // event counting what it renewed and how long the store took.
        let span = tracing::debug_span!("lease_renewal", leases = batch.len());
        // One attempt may take at most a renewal period: the next one
        // (or the expiry check) must not wait behind a hung call.
        let sent_at = Instant::now();
        let attempt = tokio::time::timeout(
            self.renew_every(),
            self.renewals
                .renew_leases(&batch, &agent, now_ms(), self.ttl_ms()),
        )
        .instrument(span.clone())
        .await
        .unwrap_or_else(|_| {
            Err(MetaError::Backend(format!(
                "lease renewal took over {} ms",
                self.renew_every().as_millis()
            )))
        });
        // Nothing below awaits: the span may stay entered to the end.
        let _entered = span.enter();
        let results: Vec<_> = match attempt {
            Ok(r) => r,
            Err(e) => held.iter().map(|_| Err(e.clone())).collect(),
        };
        tracing::debug!(
            renewed = results.iter().filter(|r| r.is_ok()).count(),
            failed = results.iter().filter(|r| r.is_err()).count(),
            elapsed_ms = sent_at.elapsed().as_millis() as u64,
            "lease renewal round ended"
        );
        for (
            (
                PartitionId {
                    topic: key,
                    partition: p,
                },
                Held {
                    epoch,
                    valid_until: served_until,
                },
            ),
            result,
        ) in held.into_iter().zip(results)
        {
            match result {
                Ok(_) => {
                    let valid_until = self.valid_until(sent_at);
                    self.leases.set_valid_until(&key, p, valid_until);
                    self.tell(
                        self.shard_of(&key, p),
                        ToShard::Renewed {
                            topic: key,
                            partition: p,
                            epoch,
                            valid_until,
                        },
                    );
                }
                Err(MetaError::Fenced { detail, .. }) => self.lose(&key, p, detail),
                // Kept: the shard refuses writes past the expiry, and the
                // lease is renewed at the same epoch once the store answers
                // again, unless another agent took it (then `Fenced`). Its
                // acknowledged writes are still ours to ship; other agents
                // leave a live agent's unrenewed lease alone for two TTLs.
                Err(e) if Instant::now() >= served_until => {
                    tracing::warn!(topic = %key, partition = p, error = %e, "lease expired: cannot renew it; writes refused until it is renewed")
                }
                Err(e) => {
                    tracing::warn!(topic = %key, partition = p, error = %e, "lease renewal failed; will retry")
                }
            }
        }
    }

    pub(super) async fn release_all(&self) {
        let held = self.leases.drain();
        for (
            PartitionId {
                topic: key,
                partition: p,
            },
            Held { epoch, .. },
        ) in held
        {
            if let Err(e) = self
                .meta
                .release_lease(&key, p, &self.config.agent_id, epoch)
                .await
            {
                tracing::warn!(topic = %key, partition = p, error = %e, "cannot release lease");
            }
        }
    }

    /// Shard `shard` runs again with a new inbox: takes each of its leases
    /// again (the same epoch, renewed) so the new executor is told them.
    pub(super) async fn restarted(&self, shard: usize, inbox: mpsc::UnboundedSender<ToShard>) {
        if let Some(tx) = self.shards.get(shard) {
            *tx.lock() = inbox;
        }
        let held = self.leases.matching(|k, p| self.shard_of(k, p) == shard);
        for (
            PartitionId {
                topic: key,
                partition: p,
            },
            _,
        ) in held
        {
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
    pub(super) async fn release_shard(&self, shard: usize) {
        let _gate = self.renew_gate.lock().await;
        let held = self.leases.matching(|k, p| self.shard_of(k, p) == shard);
        for (
            PartitionId {
                topic: key,
                partition: p,
            },
            Held { epoch, .. },
        ) in held
        {
            tracing::warn!(topic = %key, partition = p, shard, "lease given up: the shard's WAL failed");
            self.give_up(&key, p, epoch, "the shard's WAL failed").await;
        }
    }

    /// Releases this agent's lease of `key/partition` held at `epoch`: out
    /// of the lease table and the catalog, released in the metadata store
    /// (it expires instead if that fails), and the shard told. The caller
    /// holds `renew_gate`, so no renewal in flight extends it again.
    pub(super) async fn give_up(&self, key: &TopicKey, partition: u32, epoch: u64, why: &str) {
        let left = self.leases.remove(key, partition);
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
                topic: TopicKey::from_stored(key),
                partition,
            },
        );
    }
}

/// Starts the thread that renews leases every [`Shared::renew_every`],
/// on its own runtime and metadata connection: a slow acquisition, upload
/// commit or SQLite call on the control thread never delays renewal.
/// Stops when `shared.stop` is set.
pub(super) fn start_renewals(
    shared: Arc<Shared>,
) -> std::io::Result<Option<std::thread::JoinHandle<()>>> {
    let h = runtime_thread::spawn("leases", move || async move {
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
    })?;
    Ok(Some(h))
}
