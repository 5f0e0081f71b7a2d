//! Cluster metadata cache: for each topic its partitions' leader addresses,
//! refreshed from any reachable agent (bootstrap addresses first, then every
//! shard address learned since). Owns routing knowledge only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use streamhouse_proto as pb;
use streamhouse_proto::admin_service_client::AdminServiceClient;

use crate::error::{Error, Result};
use crate::net::pool::bounded;
use crate::net::pool::ConnectionPool;

/// Where one partition is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRoute {
    /// host:port of the owning agent shard.
    pub leader: String,
    /// Epoch of the leader's lease.
    pub lease_epoch: u64,
}

/// Routes of one topic, indexed by partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRoutes {
    /// One route per partition.
    pub partitions: Vec<PartitionRoute>,
}

/// The cache.
#[derive(Debug)]
pub struct Metadata {
    bootstrap: Vec<String>,
    topics: RwLock<HashMap<String, Arc<TopicRoutes>>>,
    agents: RwLock<Vec<String>>,
    version: AtomicU64,
}

impl Metadata {
    /// An empty cache that asks `bootstrap` addresses first.
    pub fn new(bootstrap: Vec<String>) -> Self {
        Metadata {
            bootstrap,
            topics: RwLock::new(HashMap::new()),
            agents: RwLock::new(Vec::new()),
            version: AtomicU64::new(1),
        }
    }

    /// Changes whenever cached routes change; lets callers keep their own
    /// copy of a topic's routes and re-read it only then.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Cached routes of a topic.
    pub fn topic(&self, name: &str) -> Option<Arc<TopicRoutes>> {
        self.topics.read().get(name).cloned()
    }

    /// Addresses to ask for metadata: bootstrap first, then known shards;
    /// addresses whose circuit is open go last.
    fn candidates(&self, pool: &ConnectionPool) -> Vec<String> {
        let mut v = self.bootstrap.clone();
        for a in self.agents.read().iter() {
            if !v.contains(a) {
                v.push(a.clone());
            }
        }
        let now = tokio::time::Instant::now();
        v.sort_by_key(|a| pool.breakers.state(a, now) != crate::net::breaker::BreakerState::Closed);
        v
    }

    /// Fetches metadata for `topics` (all topics when empty) from the first
    /// agent that answers, and updates the cache. A topic the agent does not
    /// know is `UnknownTopic`. Each agent asked gets `call_timeout`.
    ///
    /// # Errors
    /// [`Error::Transport`] when no bootstrap address answers;
    /// [`Error::Status`] when the agent refuses.
    ///
    /// # Cancellation
    /// Dropping the future leaves the cache as it was: it is updated only
    /// from a complete answer.
    pub async fn refresh(&self, pool: &ConnectionPool, topics: &[String]) -> Result<()> {
        let mut last = Error::Config("no bootstrap addresses given".into());
        for addr in self.candidates(pool) {
            let lease = match pool.get(&addr).await {
                Ok(l) => l,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            let mut client = AdminServiceClient::new(lease.channel());
            let call = client.metadata(pb::MetadataRequest {
                topics: topics.to_vec(),
            });
            match bounded(
                pool.config().call_timeout,
                &format!("metadata from {addr}"),
                call,
            )
            .await
            {
                Ok(resp) => {
                    pool.breakers.success(&addr);
                    self.apply(resp.into_inner(), topics);
                    return Ok(());
                }
                Err(s) if s.code() == tonic::Code::NotFound => {
                    if let [one] = topics {
                        self.topics.write().remove(one);
                        self.version.fetch_add(1, Ordering::AcqRel);
                        return Err(Error::UnknownTopic(one.clone()));
                    }
                    return Err(s.into());
                }
                Err(s) => {
                    pool.invalidate(&addr, lease.id());
                    last = Error::from(s);
                }
            }
        }
        Err(last)
    }

    fn apply(&self, resp: pb::MetadataResponse, asked: &[String]) {
        let mut agents = self.agents.write();
        for a in &resp.agents {
            for s in &a.shard_addresses {
                if !agents.contains(s) {
                    agents.push(s.clone());
                }
            }
        }
        drop(agents);
        let mut topics = self.topics.write();
        if asked.is_empty() {
            topics.clear();
        }
        for t in resp.topics {
            let routes = TopicRoutes {
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| PartitionRoute {
                        leader: p.leader_address.clone(),
                        lease_epoch: p.lease_epoch,
                    })
                    .collect(),
            };
            topics.insert(t.name, Arc::new(routes));
        }
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// Routes of a topic, fetching them when not cached.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`] when the topic does not exist; as
    /// [`refresh`](Self::refresh) otherwise.
    ///
    /// # Cancellation
    /// As [`refresh`](Self::refresh).
    pub async fn get_or_fetch(
        &self,
        pool: &ConnectionPool,
        topic: &str,
    ) -> Result<Arc<TopicRoutes>> {
        if let Some(t) = self.topic(topic) {
            return Ok(t);
        }
        self.refresh(pool, &[topic.to_owned()]).await?;
        self.topic(topic)
            .ok_or_else(|| Error::UnknownTopic(topic.to_owned()))
    }

    /// Cached leader address of `topic`/`partition` ("" while its lease is
    /// moving); `None` when the topic or partition is not cached.
    pub fn cached_leader(&self, topic: &str, partition: u32) -> Option<String> {
        self.topic(topic)?
            .partitions
            .get(partition as usize)
            .map(|p| p.leader.clone())
    }

    /// The first address to ask (bootstrap first; open circuits last).
    pub fn any_address(&self, pool: &ConnectionPool) -> Option<String> {
        self.candidates(pool).into_iter().next()
    }
}

impl Metadata {
    /// host:port of the shard leading `topic`/`partition`, fetching the
    /// topic's routes if they are not cached.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`] or [`Error::UnknownPartition`];
    /// [`Error::Status`] with [`Code::Unavailable`](crate::Code::Unavailable)
    /// while the partition has no leader; as [`refresh`](Self::refresh)
    /// otherwise.
    ///
    /// # Cancellation
    /// As [`refresh`](Self::refresh).
    pub async fn leader(
        &self,
        pool: &ConnectionPool,
        topic: &str,
        partition: u32,
    ) -> Result<String> {
        let routes = self.get_or_fetch(pool, topic).await?;
        routes
            .partitions
            .get(partition as usize)
            .map(|p| p.leader.clone())
            .ok_or_else(|| Error::UnknownPartition {
                topic: topic.to_owned(),
                partition,
                partitions: routes.partitions.len() as u32,
            })
    }
}
