//! Admin: create, list, describe and delete topics, and read cluster
//! metadata, through any agent shard. Owns nothing but the calls.

use streamhouse_proto as pb;
use streamhouse_proto::admin_service_client::AdminServiceClient;
use tonic::transport::Channel;

use crate::error::Result;
use crate::pool::{ConnectionPool, PoolConfig};

/// Topic administration.
///
/// ```no_run
/// # async fn example() -> streamhouse_client::Result<()> {
/// use streamhouse_client::Admin;
/// let admin = Admin::connect("127.0.0.1:9092").await?;
/// admin.create_topic("orders", 12).await?;
/// for t in admin.list_topics().await? {
///     println!("{} ({} partitions)", t.name, t.partitions.len());
/// }
/// # Ok(()) }
/// ```
pub struct Admin {
    client: AdminServiceClient<Channel>,
    _pool: ConnectionPool,
    _direct: Option<std::sync::Arc<dyn std::any::Any + Send + Sync>>,
}

impl Admin {
    /// Connects to one agent shard (host:port).
    ///
    /// # Cancellation
    /// Dropping the future leaves nothing behind.
    pub async fn connect(address: &str) -> Result<Admin> {
        let pool = ConnectionPool::new(PoolConfig::default());
        let lease = pool.get(address).await?;
        Ok(Admin {
            client: AdminServiceClient::new(lease.channel()),
            _pool: pool,
            _direct: None,
        })
    }

    /// Administers the in-process agent on `data_dir` (`direct` transport).
    ///
    /// # Cancellation
    /// As [`crate::direct::open_async`].
    #[cfg(feature = "direct")]
    pub async fn connect_direct(data_dir: impl Into<std::path::PathBuf>) -> Result<Admin> {
        let (bootstrap, handle) = crate::direct::open_async(data_dir.into()).await?;
        let mut a = Admin::connect(&bootstrap).await?;
        a._direct = Some(handle);
        Ok(a)
    }

    /// Creates a topic with `partitions` partitions; `AlreadyExists` if it exists.
    ///
    /// # Cancellation
    /// A request already sent is not withdrawn: after a dropped future the
    /// topic may or may not exist (ask [`describe_topic`](Self::describe_topic)).
    pub async fn create_topic(&self, name: &str, partitions: u32) -> Result<pb::TopicMetadata> {
        let r = self
            .client
            .clone()
            .create_topic(pb::CreateTopicRequest {
                name: name.into(),
                partitions,
            })
            .await?;
        Ok(r.into_inner().topic.unwrap_or_default())
    }

    /// Deletes a topic; `NotFound` if it does not exist.
    ///
    /// # Cancellation
    /// A request already sent is not withdrawn: after a dropped future the
    /// topic may or may not still exist.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        self.client
            .clone()
            .delete_topic(pb::DeleteTopicRequest { name: name.into() })
            .await?;
        Ok(())
    }

    /// Every topic with its partitions.
    ///
    /// # Cancellation
    /// Read-only: dropping the future has no effect.
    pub async fn list_topics(&self) -> Result<Vec<pb::TopicMetadata>> {
        Ok(self
            .client
            .clone()
            .list_topics(pb::ListTopicsRequest {})
            .await?
            .into_inner()
            .topics)
    }

    /// One topic's partitions: leader address, shard, lease epoch, high watermark.
    ///
    /// # Cancellation
    /// Read-only: dropping the future has no effect.
    pub async fn describe_topic(&self, name: &str) -> Result<pb::TopicMetadata> {
        Ok(self
            .client
            .clone()
            .describe_topic(pb::DescribeTopicRequest { name: name.into() })
            .await?
            .into_inner())
    }

    /// Agents, their shard addresses, and every topic's partition leaders.
    ///
    /// # Cancellation
    /// Read-only: dropping the future has no effect.
    pub async fn metadata(&self) -> Result<pb::MetadataResponse> {
        Ok(self
            .client
            .clone()
            .metadata(pb::MetadataRequest { topics: vec![] })
            .await?
            .into_inner())
    }
}
