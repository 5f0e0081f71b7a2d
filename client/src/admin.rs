//! Admin: create, list, describe and delete topics, and read cluster
//! metadata, through any agent shard of a bootstrap list (topic
//! configuration: `topic_config`); answers are the
//! client's own types ([`TopicInfo`], [`PartitionInfo`], [`ClusterInfo`]),
//! not generated protobuf ones. Owns nothing but the calls.

use std::future::Future;

use crate::net::AgentChannel;
use streamhouse_proto as pb;
use streamhouse_proto::admin_service_client::AdminServiceClient;

use crate::bootstrap::Bootstrap;
use crate::error::{Error, Result};
use crate::net::pool::{bounded, ConnectionPool, PoolConfig};

/// One partition of a topic, as the cluster sees it now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartitionInfo {
    /// Partition number.
    pub partition: u32,
    /// Id of the agent holding its lease ("" while it moves).
    pub leader_agent_id: String,
    /// host:port of the shard that owns it ("" while it moves).
    pub leader_address: String,
    /// Shard number on its agent.
    pub shard: u32,
    /// Epoch of its current lease.
    pub lease_epoch: u64,
    /// Offset the next produced record gets.
    pub high_watermark: u64,
}

/// A topic and its partitions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TopicInfo {
    /// Topic name.
    pub name: String,
    /// Its partitions, by number.
    pub partitions: Vec<PartitionInfo>,
}

/// An agent of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AgentInfo {
    /// The agent's id.
    pub agent_id: String,
    /// host:port of each of its shards, by shard number.
    pub shard_addresses: Vec<String>,
}

/// Live agents and every topic's partitions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClusterInfo {
    /// Live agents.
    pub agents: Vec<AgentInfo>,
    /// Every topic.
    pub topics: Vec<TopicInfo>,
}

impl From<pb::PartitionMetadata> for PartitionInfo {
    fn from(p: pb::PartitionMetadata) -> Self {
        PartitionInfo {
            partition: p.partition,
            leader_agent_id: p.leader_agent_id,
            leader_address: p.leader_address,
            shard: p.shard,
            lease_epoch: p.lease_epoch,
            high_watermark: p.high_watermark,
        }
    }
}

impl From<pb::TopicMetadata> for TopicInfo {
    fn from(t: pb::TopicMetadata) -> Self {
        TopicInfo {
            name: t.name,
            partitions: t.partitions.into_iter().map(Into::into).collect(),
        }
    }
}

/// Topic administration.
///
/// ```no_run
/// # async fn example() -> streamhouse_client::Result<()> {
/// use streamhouse_client::Admin;
/// let admin = Admin::connect(["127.0.0.1:9092", "127.0.0.1:9093"]).await?;
/// admin.create_topic("orders", 12).await?;
/// for t in admin.list_topics().await? {
///     println!("{} ({} partitions)", t.name, t.partitions.len());
/// }
/// # Ok(()) }
/// ```
pub struct Admin {
    bootstrap: Vec<String>,
    /// Index in `bootstrap` of the address that answered last: tried first.
    preferred: std::sync::atomic::AtomicUsize,
    pool: ConnectionPool,
    /// What [`hold`](Self::hold) keeps (an in-process agent); declared
    /// last so the connections close before it goes.
    _held: Option<std::sync::Arc<dyn std::any::Any + Send + Sync>>,
}

impl Admin {
    /// Connects to the first agent shard of `bootstrap` that answers (one
    /// `host:port`, or a list); each call later goes to the first that can
    /// be reached. Calls have the pool's `call_timeout` (10 s).
    ///
    /// # Errors
    /// [`Error::Transport`] when no address of `bootstrap` answers, or one is
    /// not `host:port` (the message says what to change).
    ///
    /// # Cancellation
    /// Dropping the future leaves nothing behind.
    pub async fn connect(bootstrap: impl Bootstrap) -> Result<Admin> {
        Admin::with_pool(bootstrap, PoolConfig::default()).await
    }

    /// [`connect`](Self::connect) with connection settings of its own.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    ///
    /// # Cancellation
    /// Dropping the future leaves nothing behind.
    pub async fn with_pool(bootstrap: impl Bootstrap, pool: PoolConfig) -> Result<Admin> {
        let admin = Admin {
            bootstrap: bootstrap.addresses(),
            preferred: std::sync::atomic::AtomicUsize::new(0),
            pool: ConnectionPool::new(pool),
            _held: None,
        };
        admin.client().await?;
        Ok(admin)
    }

    /// Keeps `handle` alive as long as this `Admin`, dropped after its
    /// connections close: an in-process agent it administers (the
    /// `streamhouse-direct` crate), or anything else it depends on.
    pub fn hold(mut self, handle: std::sync::Arc<dyn std::any::Any + Send + Sync>) -> Self {
        self._held = Some(handle);
        self
    }

    /// A client on the first bootstrap address that can be reached,
    /// starting with the one that answered last.
    async fn client(&self) -> Result<AdminServiceClient<AgentChannel>> {
        Ok(AdminServiceClient::new(self.channel().await?))
    }

    /// A channel to `address` from this admin's pool.
    pub(crate) async fn pool_get(&self, address: &str) -> Result<AgentChannel> {
        Ok(self.pool.get(address).await?.channel())
    }

    /// The call timeout of this admin's connections (the pool's).
    pub(crate) fn call_timeout(&self) -> std::time::Duration {
        self.pool.config().call_timeout
    }

    /// A channel to the first bootstrap address that can be reached,
    /// starting with the one that answered last.
    pub(crate) async fn channel(&self) -> Result<AgentChannel> {
        use std::sync::atomic::Ordering;
        let mut last = Error::Config("bootstrap needs at least one host:port".into());
        let n = self.bootstrap.len();
        let first = self.preferred.load(Ordering::Relaxed);
        for i in (0..n).map(|k| (first + k) % n) {
            match self.pool.get(&self.bootstrap[i]).await {
                Ok(lease) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Ok(lease.channel());
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// One call, bounded by `call_timeout`.
    pub(crate) async fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: FnOnce(AdminServiceClient<AgentChannel>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let client = self.client().await?;
        let timeout = self.pool.config().call_timeout;
        Ok(bounded(timeout, what, f(client)).await?.into_inner())
    }

    /// Creates a topic with `partitions` partitions; `AlreadyExists` if it exists.
    ///
    /// # Errors
    /// [`Error::Status`] with
    /// [`Code::AlreadyExists`](crate::Code::AlreadyExists) when the topic
    /// exists, [`Code::InvalidArgument`](crate::Code::InvalidArgument) for a
    /// bad name or partition count; [`Error::Transport`] when no agent answers.
    ///
    /// # Cancellation
    /// A request already sent is not withdrawn: after a dropped future the
    /// topic may or may not exist (ask [`describe_topic`](Self::describe_topic)).
    pub async fn create_topic(&self, name: &str, partitions: u32) -> Result<TopicInfo> {
        self.create_topic_with_configs(name, partitions, std::iter::empty::<(String, String)>())
            .await
    }

    /// Raises a topic's partition count to `count`; `InvalidArgument` when
    /// it has that many or more already (partitions are never removed). The
    /// new partitions start empty; records with a key may go to another
    /// partition from then on (the key's hash modulo the count), and
    /// producers and consumers see them once they refresh their metadata.
    ///
    /// # Errors
    /// [`Error::Status`] with [`Code::NotFound`](crate::Code::NotFound) for an
    /// unknown topic, [`Code::InvalidArgument`](crate::Code::InvalidArgument)
    /// when `count` is not above the current count or past the limit;
    /// [`Error::Transport`] when no agent answers.
    ///
    /// # Cancellation
    /// A request already sent is not withdrawn: after a dropped future the
    /// partitions may or may not have been added.
    pub async fn create_partitions(&self, topic: &str, count: u32) -> Result<TopicInfo> {
        let req = pb::CreatePartitionsRequest {
            topic: topic.into(),
            count,
        };
        let r = self
            .call("create partitions", |mut c| async move {
                c.create_partitions(req).await
            })
            .await?;
        Ok(r.topic.unwrap_or_default().into())
    }

    /// Deletes a topic; `NotFound` if it does not exist.
    ///
    /// # Errors
    /// [`Error::Status`] with [`Code::NotFound`](crate::Code::NotFound) for an
    /// unknown topic; [`Error::Transport`] when no agent answers.
    ///
    /// # Cancellation
    /// A request already sent is not withdrawn: after a dropped future the
    /// topic may or may not still exist.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let req = pb::DeleteTopicRequest { name: name.into() };
        self.call(
            "delete topic",
            |mut c| async move { c.delete_topic(req).await },
        )
        .await?;
        Ok(())
    }

    /// Every topic with its partitions.
    ///
    /// # Errors
    /// [`Error::Transport`] when no agent answers; [`Error::Status`] when the
    /// agent cannot read the metadata store.
    ///
    /// # Cancellation
    /// Read-only: dropping the future has no effect.
    pub async fn list_topics(&self) -> Result<Vec<TopicInfo>> {
        let r = self
            .call("list topics", |mut c| async move {
                c.list_topics(pb::ListTopicsRequest {}).await
            })
            .await?;
        Ok(r.topics.into_iter().map(Into::into).collect())
    }

    /// One topic's partitions: leader address, shard, lease epoch, high watermark.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`] when the topic does not exist;
    /// [`Error::Transport`] when no agent answers.
    ///
    /// # Cancellation
    /// Read-only: dropping the future has no effect.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicInfo> {
        let req = pb::DescribeTopicRequest { name: name.into() };
        let r = self
            .call("describe topic", |mut c| async move {
                c.describe_topic(req).await
            })
            .await?;
        Ok(r.into())
    }

    /// Agents, their shard addresses, and every topic's partition leaders.
    ///
    /// # Errors
    /// [`Error::Transport`] when no agent answers; [`Error::Status`] when the
    /// agent cannot read the metadata store.
    ///
    /// # Cancellation
    /// Read-only: dropping the future has no effect.
    pub async fn metadata(&self) -> Result<ClusterInfo> {
        let r = self
            .call("metadata", |mut c| async move {
                c.metadata(pb::MetadataRequest { topics: vec![] }).await
            })
            .await?;
        Ok(ClusterInfo {
            agents: r
                .agents
                .into_iter()
                .map(|a| AgentInfo {
                    agent_id: a.agent_id,
                    shard_addresses: a.shard_addresses,
                })
                .collect(),
            topics: r.topics.into_iter().map(Into::into).collect(),
        })
    }
}
