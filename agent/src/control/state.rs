//! The control thread's shared state ([`Shared`]): configuration, the
//! metadata and object stores, each shard's inbox, the lease table, the
//! view of other agents, and the flags the thread's tasks read. Holds the
//! small helpers every part of the control plane needs (which shard owns a
//! partition, telling a shard); the behaviour lives in the sibling modules
//! (`leases`, `membership`, `topics`, `dispatch`), which this one must not
//! import.

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;
use parking_lot::Mutex;

use super::held::HeldLeases;
use super::members::Members;
use super::remote::{ChunkReader, RemoteCache};
use crate::admin::Readiness;
use crate::config::AgentConfig;
use crate::ids::{name_of, PartitionId};
use crate::messages::{ControlError, ToShard};
use crate::metastore::{MetaError, MetaStore};
use crate::metrics::Registry;
use crate::objstore::ObjectStore;
use crate::runtime::tasks::TaskRegistry;
use crate::topics::catalog::Catalog;
use crate::topics::routing::shard_for;

/// Everything the control thread's tasks share.
pub(crate) struct Shared {
    pub config: Arc<AgentConfig>,
    pub catalog: Arc<Catalog>,
    pub meta: MetaStore,
    /// A connection of its own for lease renewal (on its own thread), so
    /// slow metadata work never delays it.
    pub(super) renewals: MetaStore,
    /// Held by a renewal round and by every lease release, so no renewal
    /// in flight extends a lease just released.
    pub(super) renew_gate: tokio::sync::Mutex<()>,
    pub store: ObjectStore,
    /// Each shard's inbox (replaced when a shard is restarted).
    pub(super) shards: Vec<Mutex<mpsc::UnboundedSender<ToShard>>>,
    /// Leases this agent holds.
    pub(super) leases: HeldLeases,
    pub cache: Mutex<RemoteCache>,
    pub stop: AtomicBool,
    /// Release leases when stopping.
    pub(super) release: AtomicBool,
    pub metrics: Arc<Registry>,
    /// Live agents, their failed shards, this agent's shards' health.
    pub(super) members: Members,
    /// Partitions being handed to another agent.
    pub(super) moving: Mutex<HashSet<PartitionId>>,
    /// What `/ready` answers from: the first lease round is done, and
    /// the last metadata store round succeeded (or why it failed).
    pub readiness: Arc<Readiness>,
    /// Set when the agent drains (SIGTERM, `shutdown`): no new leases.
    pub(super) draining: Arc<AtomicBool>,
    /// The control thread's background tasks.
    pub(super) tasks: Arc<TaskRegistry>,
    /// Consumer groups this agent answers for.
    pub(super) groups: crate::groups::coordinator::Coordinator,
    /// High watermarks of the partitions its groups committed (lag, and
    /// commits past a partition's end).
    pub(super) watermarks: Arc<crate::cluster::watermarks::Watermarks>,
    /// Users' tokens as last loaded (see `security`).
    pub(super) credentials: Arc<crate::auth::CredentialBook>,
}

impl From<MetaError> for ControlError {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::Exists(t) => ControlError::Exists(t),
            MetaError::Unknown(t) => ControlError::Unknown(t),
            MetaError::InvalidConfig(why) => ControlError::Invalid(why),
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

impl Shared {
    pub fn shard_of(&self, key: &str, partition: u32) -> usize {
        shard_for(name_of(key), partition, self.config.shard_count())
    }

    /// Reads of committed data from chunk objects.
    pub(super) fn chunks(&self) -> ChunkReader<'_> {
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
    pub(super) fn renew_every(&self) -> Duration {
        Duration::from_millis((self.config.lease_ttl_ms / 3).max(20))
    }

    /// Until when a lease granted or renewed by a call sent at `sent_at`
    /// is served: the TTL less a tenth of it, on the monotonic clock. The
    /// tenth covers clocks that run at different rates (any agent taking
    /// the lease over waits a whole TTL of its own clock from after the
    /// store saw that call); a step of the wall clock changes nothing.
    pub(super) fn valid_until(&self, sent_at: std::time::Instant) -> std::time::Instant {
        let ttl = self.config.lease_ttl_ms;
        sent_at + Duration::from_millis(ttl - ttl / 10)
    }

    pub(super) fn ttl_ms(&self) -> i64 {
        i64::try_from(self.config.lease_ttl_ms).unwrap_or(i64::MAX / 4)
    }
}
