//! The control thread's inbox: [`ToControl`], every request a shard (or
//! the supervisor) sends it, and [`ControlHandle`], the channel they send
//! it through. Owns no handling (see `dispatch` and `rpc`); imports only
//! `messages` and the RPC call type.

use std::sync::Arc;

use bytes::Bytes;
use futures::channel::{mpsc, oneshot};
use streamhouse_storage::TimeMatch;
use tokio::sync::Notify;

use crate::ids::TopicKey;
use crate::messages::{ClusterView, ControlError, ShardHealth, ToShard, UploadJob};

use super::rpc::RpcCall;

/// A request from a shard to the control thread.
pub enum ToControl {
    CreateTopic {
        name: String,
        partitions: u32,
        /// Configuration keys the topic sets (checked by the control
        /// thread).
        config: std::collections::BTreeMap<String, String>,
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    /// Raises a topic's partition count.
    CreatePartitions {
        name: String,
        count: u32,
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    /// Moves a held partition's log start to `to` (DeleteRecords); answers
    /// the log start now.
    DeleteRecords {
        topic: TopicKey,
        partition: u32,
        to: u64,
        reply: oneshot::Sender<Result<u64, ControlError>>,
    },
    /// Sets some configuration keys of a topic and returns others to the
    /// defaults, all or none; answers the configuration now stored.
    AlterConfigs {
        name: String,
        set: std::collections::BTreeMap<String, String>,
        delete: Vec<String>,
        reply: oneshot::Sender<Result<crate::topics::topic_config::TopicConfig, ControlError>>,
    },
    DeleteTopic {
        name: String,
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    ProducerId {
        reply: oneshot::Sender<Result<i64, ControlError>>,
    },
    /// The next epoch of an existing producer id (see
    /// `MetaStore::bump_producer_epoch`).
    BumpProducerEpoch {
        producer_id: i64,
        claimed: i32,
        reply: oneshot::Sender<Result<i32, ControlError>>,
    },
    /// Batches of `topic/partition` from object storage, starting with the
    /// one holding `offset`.
    ReadRemote {
        topic: TopicKey,
        partition: u32,
        offset: u64,
        max_bytes: usize,
        reply: oneshot::Sender<Result<Vec<Bytes>, ControlError>>,
    },
    /// The first committed record below `below` at or after a time, from
    /// the chunk index's time index and the chunk objects.
    RemoteOffsetForTime {
        topic: TopicKey,
        partition: u32,
        timestamp_ms: i64,
        below: u64,
        reply: oneshot::Sender<Result<Option<TimeMatch>, ControlError>>,
    },
    /// An RPC that runs on the control thread (`control::rpc`): the
    /// decoded request with its unit's handler; answers the encoded
    /// response message.
    Rpc {
        call: RpcCall,
        reply: oneshot::Sender<Result<Bytes, ControlError>>,
    },
    /// Reload topics from the metadata store now.
    SyncTopics {
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    /// The cluster view for Metadata / Describe / List answers.
    Cluster {
        topics: Vec<String>,
        reply: oneshot::Sender<Result<ClusterView, ControlError>>,
    },
    Upload(UploadJob),
    /// A shard's health changed: `Failed` (its WAL refuses appends: acquire
    /// none of its partitions), `Dead` (its executor ended: also stop
    /// renewing its leases, so they expire and others take them), or
    /// `Healthy` again.
    ShardHealth {
        shard: usize,
        health: ShardHealth,
    },
    /// A failed shard has shipped everything it could: give its partitions'
    /// leases up now, so other agents continue them at once.
    ReleaseShard {
        shard: usize,
    },
    /// A shard's executor was started again (after a panic) with a new
    /// inbox: send to it from now on, and hand it the shard's leases again.
    ShardRestarted {
        shard: usize,
        inbox: mpsc::UnboundedSender<ToShard>,
    },
}

/// How shards reach the control thread. Cheap to clone; `Send`.
#[derive(Clone)]
pub struct ControlHandle {
    pub(crate) tx: crossbeam_channel::Sender<ToControl>,
    pub(crate) notify: Arc<Notify>,
}

impl ControlHandle {
    /// Queues a request; false if the control thread is gone.
    pub fn send(&self, r: ToControl) -> bool {
        let ok = self.tx.send(r).is_ok();
        self.notify.notify_one();
        ok
    }

    /// Sends a request built around a reply channel and waits for the answer.
    pub async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, ControlError>>) -> ToControl,
    ) -> Result<T, ControlError> {
        let (tx, rx) = oneshot::channel();
        if !self.send(make(tx)) {
            return Err(ControlError::Unavailable("the agent is stopping".into()));
        }
        rx.await
            .unwrap_or_else(|_| Err(ControlError::Unavailable("the agent is stopping".into())))
    }
}
