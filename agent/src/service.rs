//! What each gRPC method means on a shard: Produce, Fetch and the Admin
//! calls, plus applying the control thread's messages (leases, committed
//! chunks) and handing sealed segments to the uploader. Owns request
//! validation, routing and lease checks, ack levels and the mapping of
//! engine errors to gRPC statuses. Must not touch sockets (see `grpc`) or
//! the WAL directly (it goes through `ShardLog`).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::channel::oneshot;
use prost::Message;
use streamhouse_proto as pb;
use streamhouse_shard::batch::{self, BatchBuilder, Codec, ProducerInfo};
use streamhouse_shard::{LogError, ShardLog};

use crate::catalog::{Catalog, TopicEntry};
use crate::clock::now_ms;
use crate::config::AgentConfig;
use crate::grpc::{read_message, Code, Status};
use crate::lease::{LeaseProblem, LeaseState, ShardLeases};
use crate::messages::{ClusterView, ControlError, ControlHandle, ToControl, ToShard, UploadJob};
use crate::metastore::ChunkRange;
use crate::metrics::ShardMetrics;
use crate::routing::shard_for;

/// Default and largest `max_bytes` of a fetch.
const DEFAULT_FETCH_BYTES: usize = 1 << 20;
const MAX_FETCH_BYTES: usize = 64 << 20;
/// Longest `max_wait_ms` honoured by a fetch.
const MAX_FETCH_WAIT: Duration = Duration::from_secs(30);

/// A topic as one shard sees it (shared by `Rc`, so the produce path never
/// touches a cross-core reference count).
struct LocalTopic {
    key: Rc<str>,
    entry: TopicEntry,
}

/// Everything one shard's request handlers share. Lives on the shard's
/// executor only.
pub struct ShardContext {
    pub shard: usize,
    pub config: Arc<AgentConfig>,
    pub catalog: Arc<Catalog>,
    pub log: ShardLog,
    /// Set by the signal handler; read on every request.
    pub draining: Arc<AtomicBool>,
    /// Requests being handled right now.
    pub inflight: Cell<usize>,
    topics: RefCell<HashMap<String, Rc<LocalTopic>>>,
    topics_version: Cell<u64>,
    /// The control thread (metadata, object store, uploads).
    pub control: ControlHandle,
    /// Lease state of this shard's partitions.
    pub leases: ShardLeases,
    /// Names this log's chunk objects: `chunks/LOG_ID/SEGMENT.wal`.
    log_id: String,
    /// Sealed segments not yet committed to object storage, with their sizes.
    unshipped: RefCell<BTreeMap<u64, u64>>,
    /// When each of them was sealed (ms since the epoch).
    sealed_at: RefCell<BTreeMap<u64, i64>>,
    /// This shard's counters.
    pub metrics: Arc<ShardMetrics>,
    /// Highest segment committed to object storage so far.
    committed_through: Cell<Option<u64>>,
    /// Produce requests with ack `object` waiting for their segment.
    object_waiters: RefCell<Vec<(u64, oneshot::Sender<()>)>>,
    /// Per partition, the end of its ranges this shard saw committed.
    committed_ends: RefCell<HashMap<(String, u32), u64>>,
}

fn bad(msg: impl Into<String>) -> Status {
    Status::new(Code::InvalidArgument, msg)
}

/// Encodes a reply message with its 5-byte gRPC prefix.
pub fn encode_reply(msg: &impl Message) -> Bytes {
    let len = msg.encoded_len();
    let mut buf = BytesMut::with_capacity(len + 5);
    buf.put_u8(0);
    buf.put_u32(len as u32);
    // The buffer has room for the whole message, so encoding cannot fail.
    let _ = msg.encode(&mut buf);
    buf.freeze()
}

fn decode<M: Message + Default>(bytes: Bytes, what: &str) -> Result<M, Status> {
    M::decode(bytes).map_err(|e| bad(format!("malformed {what}: {e}")))
}

/// The gRPC status for a storage-engine error.
pub fn log_status(e: LogError) -> Status {
    let code = match &e {
        LogError::UnknownPartition { .. } => Code::NotFound,
        LogError::InvalidBatch(_) => Code::InvalidArgument,
        // Ahead of the sequence: retry once the batches before it are
        // answered. Behind it and not remembered: a retry cannot help.
        LogError::Sequence(e) if e.is_ahead() => Code::Aborted,
        LogError::Sequence(_) => Code::FailedPrecondition,
        LogError::OffsetOutOfRange { .. } => Code::OutOfRange,
        LogError::Corrupt(_) | LogError::Undecodable { .. } => Code::DataLoss,
        // The write was not acknowledged and the shard recovers its WAL by
        // itself (or gives its partitions up): a retry may succeed.
        LogError::Io { .. } | LogError::Poisoned(_) => Code::Unavailable,
    };
    Status::new(code, e.to_string())
}

fn control_status(e: ControlError) -> Status {
    let code = match &e {
        ControlError::Invalid(_) => Code::InvalidArgument,
        ControlError::Exists(_) => Code::AlreadyExists,
        ControlError::Unknown(_) => Code::NotFound,
        ControlError::OutOfRange(_) => Code::OutOfRange,
        ControlError::Unavailable(_) => Code::Unavailable,
        ControlError::Corrupt(_) => Code::DataLoss,
        ControlError::Internal(_) => Code::Internal,
        ControlError::Fenced(_) => Code::FailedPrecondition,
    };
    Status::new(code, e.to_string())
}

fn lease_status(topic: &str, partition: u32, p: LeaseProblem) -> Status {
    match p {
        LeaseProblem::NotHeld => Status::new(
            Code::NotFound,
            format!("this agent does not hold the lease of {topic}/{partition}"),
        ),
        LeaseProblem::Moving => Status::new(
            Code::NotFound,
            format!("{topic}/{partition} is moving to another agent"),
        ),
        // Fenced, expired, or not renewable now (metadata store down): a
        // condition of the cluster, not of the request, so clients retry
        // (and look the leader up again).
        LeaseProblem::Lost(why) => Status::new(
            Code::Unavailable,
            format!(
                "this agent does not serve {topic}/{partition} now: its lease is lost ({why}); \
                 retry, the partition's new leader is in the metadata"
            ),
        ),
    }
}

/// What a [`ShardContext`] is built from.
pub struct ContextParts {
    pub shard: usize,
    pub config: Arc<AgentConfig>,
    pub catalog: Arc<Catalog>,
    pub log: ShardLog,
    pub draining: Arc<AtomicBool>,
    pub control: ControlHandle,
    /// Names this log's chunk objects.
    pub log_id: String,
    pub metrics: Arc<ShardMetrics>,
}

impl ShardContext {
    pub fn new(parts: ContextParts) -> Rc<Self> {
        let ContextParts {
            shard,
            config,
            catalog,
            log,
            draining,
            control,
            log_id,
            metrics,
        } = parts;
        let ctx = Rc::new(ShardContext {
            shard,
            config,
            catalog,
            log,
            draining,
            inflight: Cell::new(0),
            topics: RefCell::new(HashMap::new()),
            topics_version: Cell::new(0),
            control,
            leases: ShardLeases::default(),
            log_id,
            unshipped: RefCell::new(BTreeMap::new()),
            sealed_at: RefCell::new(BTreeMap::new()),
            object_waiters: RefCell::new(Vec::new()),
            committed_ends: RefCell::new(HashMap::new()),
            committed_through: Cell::new(None),
            metrics,
        });
        ctx.refresh_topics();
        ctx
    }

    /// Applies one message from the control thread.
    pub fn apply(self: &Rc<Self>, msg: ToShard) {
        match msg {
            ToShard::Lease {
                topic,
                partition,
                epoch,
                expires_ms,
                committed_end,
                fresh,
                producers,
            } => {
                self.refresh_topics();
                self.log.add_partition(&topic, partition);
                let reset = if fresh {
                    self.log.reset_to(&topic, partition, committed_end)
                } else {
                    self.log.advance_start(&topic, partition, committed_end)
                };
                if reset {
                    self.log.restore_producers(&topic, partition, &producers);
                }
                self.publish_high_watermark(&topic, partition);
                self.leases
                    .set(&topic, partition, LeaseState::Held { epoch, expires_ms });
            }
            ToShard::Renewed {
                topic,
                partition,
                epoch,
                expires_ms,
            } => self.leases.renew(&topic, partition, epoch, expires_ms),
            ToShard::LeaseLost {
                topic,
                partition,
                reason,
            } => self.leases.lose(&topic, partition, reason),
            ToShard::Committed { segment, ends } => {
                {
                    let mut committed = self.committed_ends.borrow_mut();
                    for (topic, partition, end) in ends {
                        let e = committed.entry((topic, partition)).or_insert(0);
                        *e = (*e).max(end);
                    }
                }
                if let Err(e) = self.log.drop_segment(segment) {
                    tracing::warn!(shard = self.shard, segment, error = %e, "cannot drop a shipped segment");
                }
                self.unshipped.borrow_mut().remove(&segment);
                self.publish_backlog();
                // The uploader commits a shard's segments in seal order.
                self.committed_through.set(Some(segment));
                let mut waiters = self.object_waiters.borrow_mut();
                let (done, keep): (Vec<_>, Vec<_>) =
                    waiters.drain(..).partition(|(seg, _)| *seg <= segment);
                *waiters = keep;
                drop(waiters);
                for (_, tx) in done {
                    let _ = tx.send(());
                }
            }
            ToShard::Released { topic, partition } => self.leases.remove(&topic, partition),
            ToShard::Barrier(tx) => {
                let _ = tx.send(());
            }
            ToShard::Handoff {
                topic,
                partition,
                done,
            } => {
                // Stop taking writes, then answer once everything written
                // so far is committed to object storage.
                if let Some(epoch) = self.leases.epoch(&topic, partition) {
                    self.leases
                        .set(&topic, partition, LeaseState::Moving { epoch });
                }
                let ctx = self.clone();
                glommio::spawn_local(async move {
                    // Batches accepted before the partition stopped taking
                    // writes may still be queued or being written: once they
                    // are durable, the segment holding the last one is known.
                    if let Err(e) = ctx.log.durable_barrier().await {
                        tracing::warn!(shard = ctx.shard, %topic, partition, error = %e, "cannot hand the partition over: the log failed");
                        return;
                    }
                    let target = match ctx.log.last_segment_of(&topic, partition) {
                        Some(seg) if seg >= ctx.log.active_segment() => Some(ctx.log.hurry_seal()),
                        other => other,
                    };
                    if let Some(t) = target {
                        if ctx.wait_committed(t).await.is_err() {
                            return;
                        }
                    }
                    let _ = done.send(());
                })
                .detach();
            }
        }
    }

    fn publish_high_watermark(&self, key: &str, partition: u32) {
        let Some(hw) = self.log.high_watermark(key, partition) else {
            return;
        };
        let topics = self.topics.borrow();
        if let Some(t) = topics.values().find(|t| &*t.key == key) {
            if let Some(a) = t.entry.high_watermarks.get(partition as usize) {
                a.fetch_max(hw, Ordering::Relaxed);
            }
        }
    }

    /// Hands a sealed segment to the uploader, with each partition's range
    /// stamped with the lease epoch it was written under (also when that
    /// lease was lost since: the metadata store commits it only if nobody
    /// took the lease meanwhile). Ranges of partitions this shard holds no
    /// lease state for go along unstamped, for the uploader to resolve: the
    /// segment is deleted only once every range in it is committed (or was
    /// before).
    pub fn ship(&self, segment: u64, path: std::path::PathBuf, len: u64) {
        let (mut ranges, mut unleased) = (Vec::new(), Vec::new());
        for r in self.log.segment_ranges(segment) {
            let epoch = self.leases.data_epoch(&r.topic, r.partition);
            let producers =
                self.log
                    .producer_snapshot(&r.topic, r.partition, r.base_offset, r.end_offset);
            let range = ChunkRange {
                topic: r.topic,
                partition: r.partition,
                base_offset: r.base_offset,
                end_offset: r.end_offset,
                pos: r.pos,
                len: r.len,
                epoch: epoch.unwrap_or(0),
                producers,
            };
            match epoch {
                Some(_) => ranges.push(range),
                None => unleased.push(range),
            }
        }
        self.unshipped.borrow_mut().insert(segment, len);
        self.sealed_at.borrow_mut().insert(segment, now_ms());
        self.publish_backlog();
        let job = UploadJob {
            shard: self.shard,
            segment,
            path,
            key: format!("chunks/{}/{segment:020}.wal", self.log_id),
            ranges,
            unleased,
        };
        if !self.control.send(ToControl::Upload(job)) {
            tracing::warn!(
                shard = self.shard,
                segment,
                "control thread gone; segment stays local"
            );
        }
    }

    /// Seals the active segment and waits until every sealed segment is
    /// committed and dropped, or `deadline`. True when everything is shipped.
    /// A failed log is reopened first, so that what recovery can read back
    /// is sealed and shipped too.
    pub async fn ship_everything(&self, deadline: std::time::Instant) -> bool {
        if self.log.failure().is_some() {
            let _ = self.log.reopen().await;
        }
        self.log.seal_now();
        loop {
            let sealed_left = !self.log.sealed_segments().is_empty();
            if self.log.active_is_empty() && !sealed_left {
                return true;
            }
            if self.log.failure().is_some() && !sealed_left {
                // The failed active segment cannot be sealed.
                return false;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            glommio::timer::sleep(Duration::from_millis(5)).await;
        }
    }

    fn publish_backlog(&self) {
        let unshipped = self.unshipped.borrow();
        let mut sealed_at = self.sealed_at.borrow_mut();
        sealed_at.retain(|s, _| unshipped.contains_key(s));
        self.metrics
            .upload_backlog_bytes
            .store(unshipped.values().sum(), Ordering::Relaxed);
        self.metrics.oldest_unshipped_ms.store(
            sealed_at.values().next().copied().unwrap_or(0),
            Ordering::Relaxed,
        );
    }

    /// Bytes of sealed segments not yet in object storage.
    pub fn upload_backlog(&self) -> u64 {
        self.unshipped.borrow().values().sum()
    }

    /// Waits until segment `segment` is committed to object storage.
    async fn wait_committed(&self, segment: u64) -> Result<(), Status> {
        if self.committed_through.get().is_some_and(|c| c >= segment) {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        self.object_waiters.borrow_mut().push((segment, tx));
        rx.await
            .map_err(|_| Status::new(Code::Unavailable, "agent is shutting down"))
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Reloads the shard's copy of the catalog when it changed: registers
    /// owned partitions with the log and publishes their high watermarks.
    fn refresh_topics(&self) {
        let v = self.catalog.version();
        if v == self.topics_version.get() {
            return;
        }
        let shards = self.config.shard_count();
        let mut fresh = HashMap::new();
        for (name, entry) in self.catalog.list() {
            let key: Rc<str> = entry.log_key(&name).into();
            for p in 0..entry.partitions {
                if shard_for(&name, p, shards) == self.shard {
                    self.log.add_partition(&key, p);
                    if let Some(hw) = self.log.high_watermark(&key, p) {
                        entry.high_watermarks[p as usize].fetch_max(hw, Ordering::Relaxed);
                    }
                }
            }
            fresh.insert(name, Rc::new(LocalTopic { key, entry }));
        }
        let old = std::mem::replace(&mut *self.topics.borrow_mut(), fresh);
        for (name, t) in old {
            let still = self.topics.borrow().get(&name).map(|n| n.key.clone());
            if still.as_deref() != Some(&*t.key) {
                self.log.remove_topic(&t.key);
                self.leases.remove_topic(&t.key);
            }
        }
        self.topics_version.set(v);
    }

    fn topic(&self, name: &str) -> Option<Rc<LocalTopic>> {
        self.refresh_topics();
        self.topics.borrow().get(name).cloned()
    }

    /// Looks up a topic and checks that `partition` exists and is owned here.
    async fn route(
        &self,
        name: &str,
        partition: u32,
        auto_create: bool,
    ) -> Result<Rc<LocalTopic>, Status> {
        if name.is_empty() {
            return Err(bad("topic name is empty"));
        }
        let mut found = self.topic(name);
        if found.is_none() {
            self.sync_topics().await?;
            found = self.topic(name);
        }
        let t = match found {
            Some(t) => t,
            None if auto_create && self.config.auto_create_topics => {
                let partitions = self.config.default_partitions;
                let created = self
                    .control
                    .call(|reply| ToControl::CreateTopic {
                        name: name.to_owned(),
                        partitions,
                        reply,
                    })
                    .await;
                match created {
                    Ok(_) | Err(ControlError::Exists(_)) => {}
                    Err(e) => return Err(control_status(e)),
                }
                self.topic(name)
                    .ok_or_else(|| Status::new(Code::NotFound, format!("unknown topic {name}")))?
            }
            None => return Err(Status::new(Code::NotFound, format!("unknown topic {name}"))),
        };
        if partition >= t.entry.partitions {
            return Err(Status::new(
                Code::NotFound,
                format!(
                    "unknown partition {name}/{partition}: the topic has {} partitions",
                    t.entry.partitions
                ),
            ));
        }
        let owner = shard_for(name, partition, self.config.shard_count());
        if owner != self.shard {
            return Err(Status::new(
                Code::NotFound,
                format!(
                    "partition {name}/{partition} is served by shard {owner} at {}",
                    self.config.shard_address(owner)
                ),
            ));
        }
        Ok(t)
    }

    /// Dispatches one unary call by method path.
    pub async fn call(&self, path: &str, body: &mut crate::grpc::Body) -> Result<Bytes, Status> {
        let limit = self.config.max_request_bytes;
        match path {
            pb::paths::PRODUCE => {
                let req = decode(read_message(body, limit).await?, "ProduceRequest")?;
                self.produce(req).await.map(|r| encode_reply(&r))
            }
            pb::paths::FETCH => {
                let req = decode(read_message(body, limit).await?, "FetchRequest")?;
                self.fetch(req).await.map(|r| encode_reply(&r))
            }
            pb::paths::CREATE_TOPIC => {
                let req: pb::CreateTopicRequest =
                    decode(read_message(body, limit).await?, "CreateTopicRequest")?;
                self.control
                    .call(|reply| ToControl::CreateTopic {
                        name: req.name.clone(),
                        partitions: req.partitions,
                        reply,
                    })
                    .await
                    .map_err(control_status)?;
                let topic = self.describe(&req.name).await?;
                Ok(encode_reply(&pb::CreateTopicResponse {
                    topic: Some(topic),
                }))
            }
            pb::paths::DELETE_TOPIC => {
                let req: pb::DeleteTopicRequest =
                    decode(read_message(body, limit).await?, "DeleteTopicRequest")?;
                self.control
                    .call(|reply| ToControl::DeleteTopic {
                        name: req.name.clone(),
                        reply,
                    })
                    .await
                    .map_err(control_status)?;
                self.refresh_topics();
                Ok(encode_reply(&pb::DeleteTopicResponse {}))
            }
            pb::paths::LIST_TOPICS => {
                let _: pb::ListTopicsRequest =
                    decode(read_message(body, limit).await?, "ListTopicsRequest")?;
                Ok(encode_reply(&pb::ListTopicsResponse {
                    topics: self.describe_all(&[], &self.cluster(&[]).await?),
                }))
            }
            pb::paths::DESCRIBE_TOPIC => {
                let req: pb::DescribeTopicRequest =
                    decode(read_message(body, limit).await?, "DescribeTopicRequest")?;
                Ok(encode_reply(&self.describe(&req.name).await?))
            }
            pb::paths::METADATA => {
                let req: pb::MetadataRequest =
                    decode(read_message(body, limit).await?, "MetadataRequest")?;
                for t in &req.topics {
                    if self.catalog.get(t).is_none() {
                        self.sync_topics().await?;
                        if self.catalog.get(t).is_none() {
                            return Err(Status::new(Code::NotFound, format!("unknown topic {t}")));
                        }
                    }
                }
                let view = self.cluster(&req.topics).await?;
                Ok(encode_reply(&pb::MetadataResponse {
                    agents: Self::agents_metadata(&view),
                    topics: self.describe_all(&req.topics, &view),
                }))
            }
            pb::paths::INIT_PRODUCER_ID => {
                let req: pb::InitProducerIdRequest =
                    decode(read_message(body, limit).await?, "InitProducerIdRequest")?;
                let (producer_id, producer_epoch) = if req.producer_id == 0 {
                    let id = self
                        .control
                        .call(|reply| ToControl::ProducerId { reply })
                        .await
                        .map_err(control_status)?;
                    (id, 0)
                } else {
                    let epoch = self
                        .control
                        .call(|reply| ToControl::BumpProducerEpoch {
                            producer_id: req.producer_id,
                            claimed: req.producer_epoch,
                            reply,
                        })
                        .await
                        .map_err(control_status)?;
                    (req.producer_id, epoch)
                };
                Ok(encode_reply(&pb::InitProducerIdResponse {
                    producer_id,
                    producer_epoch,
                }))
            }
            other => Err(Status::new(
                Code::Unimplemented,
                format!("unknown method {other}"),
            )),
        }
    }

    /// `grpc.health.v1.Health/Check`: SERVING, or NOT_SERVING while draining.
    /// The service name "" (the whole agent) and "streamhouse" are known.
    pub async fn health(&self, body: &mut crate::grpc::Body) -> Result<Bytes, Status> {
        use pb::health::health_check_response::ServingStatus;
        let req: pb::health::HealthCheckRequest = decode(
            read_message(body, self.config.max_request_bytes).await?,
            "HealthCheckRequest",
        )?;
        let status = match req.service.as_str() {
            "" | "streamhouse" if self.is_draining() => ServingStatus::NotServing,
            "" | "streamhouse" => ServingStatus::Serving,
            other => {
                return Err(Status::new(
                    Code::NotFound,
                    format!("unknown service {other:?}"),
                ))
            }
        };
        Ok(encode_reply(&pb::health::HealthCheckResponse {
            status: status as i32,
        }))
    }

    /// Live agents and partition leaders from the metadata store.
    async fn cluster(&self, topics: &[String]) -> Result<ClusterView, Status> {
        self.control
            .call(|reply| ToControl::Cluster {
                topics: topics.to_vec(),
                reply,
            })
            .await
            .map_err(control_status)
    }

    fn agents_metadata(view: &ClusterView) -> Vec<pb::AgentMetadata> {
        view.agents
            .iter()
            .map(|(id, addrs)| pb::AgentMetadata {
                agent_id: id.clone(),
                shard_addresses: addrs.clone(),
            })
            .collect()
    }

    /// A topic's partitions with their leaders as `view` has them (an empty
    /// leader address: no live agent holds the partition right now).
    fn topic_metadata(&self, name: &str, t: &TopicEntry, view: &ClusterView) -> pb::TopicMetadata {
        let leaders = view.topics.iter().find(|(n, _)| n == name).map(|(_, l)| l);
        pb::TopicMetadata {
            name: name.to_owned(),
            partitions: (0..t.partitions)
                .map(|p| {
                    let (holder, address, epoch) = leaders
                        .and_then(|l| l.get(p as usize))
                        .cloned()
                        .unwrap_or_default();
                    let shards = view
                        .agents
                        .iter()
                        .find(|(id, _)| *id == holder)
                        .map_or(1, |(_, a)| a.len().max(1));
                    pb::PartitionMetadata {
                        partition: p,
                        leader_agent_id: holder,
                        leader_address: address,
                        shard: shard_for(name, p, shards) as u32,
                        lease_epoch: epoch,
                        high_watermark: t.high_watermarks[p as usize].load(Ordering::Relaxed),
                    }
                })
                .collect(),
        }
    }

    /// Reloads topics from the metadata store (a topic another agent
    /// created may not have reached this one's catalog yet).
    /// Reloads topics from the metadata store. A failure is the store's
    /// (`UNAVAILABLE`), never read as "unknown topic".
    async fn sync_topics(&self) -> Result<(), Status> {
        self.control
            .call(|reply| ToControl::SyncTopics { reply })
            .await
            .map_err(|e| {
                Status::new(
                    Code::Unavailable,
                    format!("cannot look topics up: {e}; retry"),
                )
            })
    }

    async fn describe(&self, name: &str) -> Result<pb::TopicMetadata, Status> {
        if self.catalog.get(name).is_none() {
            self.sync_topics().await?;
        }
        let t = self
            .catalog
            .get(name)
            .ok_or_else(|| Status::new(Code::NotFound, format!("unknown topic {name}")))?;
        let view = self.cluster(&[name.to_owned()]).await?;
        Ok(self.topic_metadata(name, &t, &view))
    }

    fn describe_all(&self, only: &[String], view: &ClusterView) -> Vec<pb::TopicMetadata> {
        self.catalog
            .list()
            .iter()
            .filter(|(n, _)| only.is_empty() || only.contains(n))
            .map(|(n, t)| self.topic_metadata(n, t, view))
            .collect()
    }

    async fn produce(&self, req: pb::ProduceRequest) -> Result<pb::ProduceResponse, Status> {
        let ack = pb::AckLevel::try_from(req.ack)
            .map_err(|_| bad(format!("unknown ack level {}", req.ack)))?;
        if !req.batch.is_empty() && !req.records.is_empty() {
            return Err(bad("set either records or batch, not both"));
        }
        if req.batch.is_empty() && req.records.is_empty() {
            return Err(bad("empty batch: the request holds no records"));
        }
        let t = self.route(&req.topic, req.partition, true).await?;
        // Tests make the shard's executor panic here (see `supervisor`).
        fail::fail_point!("shard-produce");
        let epoch = self
            .leases
            .check(&t.key, req.partition, now_ms())
            .map_err(|p| lease_status(&req.topic, req.partition, p))?;
        let backlog = self.upload_backlog();
        if backlog > self.config.max_upload_backlog_bytes {
            return Err(Status::new(
                Code::ResourceExhausted,
                format!(
                    "{backlog} bytes are waiting for upload to object storage (limit {}); \
                     is the object store reachable?",
                    self.config.max_upload_backlog_bytes
                ),
            ));
        }
        let encoded = if !req.batch.is_empty() {
            // The whole records section is checked before anything is
            // acknowledged: a batch the agent accepts, every reader can decode.
            let (max_batch, max_record) =
                (self.config.max_request_bytes, self.config.max_record_bytes);
            batch::check_records(&req.batch, max_batch, max_record).map_err(|e| match e {
                batch::BatchError::TooLarge { .. } | batch::BatchError::RecordTooLarge { .. } => {
                    Status::new(Code::ResourceExhausted, format!("batch too large: {e}"))
                }
                e => bad(format!("invalid batch: {e}")),
            })?;
            req.batch.to_vec()
        } else {
            self.encode_records(&req)?
        };
        let batch_len = encoded.len() as u64;
        // A batch that overtook an earlier one of its producer waits for it;
        // the lease may change meanwhile, so it is checked again after.
        if let Ok(h) = batch::parse_header(&encoded) {
            let waited = self
                .log
                .wait_for_turn(
                    &t.key,
                    req.partition,
                    h.producer,
                    h.record_count,
                    req.oldest_sequence,
                )
                .await;
            if waited {
                match self.leases.check(&t.key, req.partition, now_ms()) {
                    Ok(e) if e == epoch => {}
                    Ok(_) => {
                        return Err(Status::new(
                            Code::Unavailable,
                            format!(
                                "lease of {}/{} changed while the batch waited for its turn; retry",
                                req.topic, req.partition
                            ),
                        ))
                    }
                    Err(p) => return Err(lease_status(&req.topic, req.partition, p)),
                }
            }
        }
        let appended = self
            .log
            .append_in_flight(&t.key, req.partition, encoded, req.oldest_sequence)
            .await
            .map_err(log_status)?;
        if !appended.duplicate {
            let m = &self.metrics;
            m.produce_requests.fetch_add(1, Ordering::Relaxed);
            m.produce_records
                .fetch_add(u64::from(appended.record_count), Ordering::Relaxed);
            m.produce_bytes.fetch_add(batch_len, Ordering::Relaxed);
            m.batch_records.observe(u64::from(appended.record_count));
        }
        t.entry.high_watermarks[req.partition as usize].fetch_max(
            appended.base_offset + u64::from(appended.record_count),
            Ordering::Relaxed,
        );
        // Tests hold a written batch here to stop the agent before its ack.
        fail::fail_point!("shard-produce-written");
        if ack == pb::AckLevel::AckDurable {
            self.leases
                .may_acknowledge(&t.key, req.partition, epoch, now_ms())
                .map_err(|p| {
                    Status::new(
                        Code::Unavailable,
                        format!(
                            "the lease of {}/{} lapsed while the batch was written ({}): it \
                             may not be kept; retry with the partition's leader (an idempotent \
                             producer's retry is never stored twice)",
                            req.topic,
                            req.partition,
                            match p {
                                LeaseProblem::Lost(why) => why,
                                LeaseProblem::NotHeld => "no longer held".into(),
                                LeaseProblem::Moving => "moving".into(),
                            }
                        ),
                    )
                })?;
        }
        if ack == pb::AckLevel::AckObject {
            if let Some(segment) = appended.segment {
                if segment == self.log.active_segment() {
                    self.log.hurry_seal();
                }
                self.wait_committed(segment).await?;
            }
            // Committed chunks leave fenced partitions out: with the lease
            // still held at the same epoch the batch was committed; else
            // (moving, handed over, lost) it was if its partition's
            // committed end covers it.
            let end = appended.base_offset + u64::from(appended.record_count);
            let held =
                matches!(self.leases.check(&t.key, req.partition, now_ms()), Ok(e) if e == epoch);
            let committed = self
                .committed_ends
                .borrow()
                .get(&(t.key.to_string(), req.partition))
                .is_some_and(|c| *c >= end);
            if !held && !committed {
                return Err(Status::new(
                    Code::Unavailable,
                    format!(
                        "{}/{} moved to another agent before the batch reached object storage: \
                         it is not stored; retry with the partition's new leader",
                        req.topic, req.partition
                    ),
                ));
            }
        }
        Ok(pb::ProduceResponse {
            base_offset: appended.base_offset,
            record_count: appended.record_count,
            duplicate: appended.duplicate,
            append_time: now_ms() as u64,
        })
    }

    fn encode_records(&self, req: &pb::ProduceRequest) -> Result<Vec<u8>, Status> {
        let epoch = i16::try_from(req.producer_epoch).map_err(|_| {
            bad(format!(
                "producer_epoch {} is out of range",
                req.producer_epoch
            ))
        })?;
        let producer = ProducerInfo {
            producer_id: req.producer_id,
            producer_epoch: epoch,
            base_sequence: req.base_sequence,
        };
        let now = now_ms();
        let mut b = BatchBuilder::with_capacity(Codec::None, producer, req.records.len() * 128);
        let mut headers = Vec::new();
        for (i, r) in req.records.iter().enumerate() {
            let size = r.key.as_ref().map_or(0, |k| k.len())
                + r.value.len()
                + r.headers
                    .iter()
                    .map(|h| h.key.len() + h.value.len())
                    .sum::<usize>();
            if size > self.config.max_record_bytes {
                return Err(Status::new(
                    Code::ResourceExhausted,
                    format!(
                        "record {i} is {size} bytes; the limit is {} bytes",
                        self.config.max_record_bytes
                    ),
                ));
            }
            let ts = match r.timestamp {
                0 => now,
                t => i64::try_from(t)
                    .map_err(|_| bad(format!("record {i} timestamp {t} is out of range")))?,
            };
            headers.clear();
            headers.extend(r.headers.iter().map(|h| (h.key.clone(), h.value.clone())));
            b.push(r.key.as_deref(), &r.value, ts, &headers);
        }
        Ok(b.finish())
    }

    async fn fetch(&self, req: pb::FetchRequest) -> Result<pb::FetchResponse, Status> {
        self.metrics.fetch_requests.fetch_add(1, Ordering::Relaxed);
        let t = self.route(&req.topic, req.partition, false).await?;
        // A partition being handed over still serves reads: its data is here
        // until the lease is released.
        match self.leases.check(&t.key, req.partition, now_ms()) {
            Ok(_) | Err(LeaseProblem::Moving) => {}
            Err(p) => return Err(lease_status(&req.topic, req.partition, p)),
        }
        let max_bytes = match req.max_bytes as usize {
            0 => DEFAULT_FETCH_BYTES,
            n => n.min(MAX_FETCH_BYTES),
        };
        let local_start = self.log.log_start(&t.key, req.partition).unwrap_or(0);
        if req.offset < local_start {
            return self.fetch_remote(&t, &req, max_bytes, local_start).await;
        }
        let mut r = self
            .log
            .read(&t.key, req.partition, req.offset, max_bytes)
            .await
            .map_err(log_status)?;
        // At the high watermark a fetch waits for data; past it, no record
        // was ever acknowledged there, and waiting would hide records
        // written at the offsets in between.
        if req.offset > r.high_watermark {
            return Err(Status::new(
                Code::OutOfRange,
                format!(
                    "offset {} of {}/{} is past the high watermark {}",
                    req.offset, req.topic, req.partition, r.high_watermark
                ),
            ));
        }
        if r.records.is_empty() && req.max_wait_ms > 0 && req.offset >= r.high_watermark {
            let wait = Duration::from_millis(u64::from(req.max_wait_ms)).min(MAX_FETCH_WAIT);
            self.log
                .wait_for_data(&t.key, req.partition, req.offset, wait)
                .await;
            r = self
                .log
                .read(&t.key, req.partition, req.offset, max_bytes)
                .await
                .map_err(log_status)?;
        }
        Ok(pb::FetchResponse {
            records: r.records.into_iter().map(fetched).collect(),
            high_watermark: r.high_watermark,
            log_start_offset: 0,
        })
    }

    /// A fetch below the local log start: batches from chunk objects.
    async fn fetch_remote(
        &self,
        t: &LocalTopic,
        req: &pb::FetchRequest,
        max_bytes: usize,
        local_start: u64,
    ) -> Result<pb::FetchResponse, Status> {
        let batches = self
            .control
            .call(|reply| ToControl::ReadRemote {
                topic: t.key.to_string(),
                partition: req.partition,
                offset: req.offset,
                max_bytes,
                reply,
            })
            .await
            .map_err(control_status)?;
        let mut records = Vec::new();
        // As for local reads: `max_bytes` bounds the decompressed records,
        // and a batch that cannot be decoded ends the answer (or is the
        // answer, as DATA_LOSS, when nothing comes before it).
        let mut inflated = 0usize;
        for b in batches {
            let decoded = batch::parse_header(&b).and_then(|h| {
                if !records.is_empty() && inflated + h.records_len as usize > max_bytes {
                    return Ok(None);
                }
                batch::decode(&b).map(Some)
            });
            let (h, recs) = match decoded {
                Ok(Some(v)) => v,
                Ok(None) => break,
                Err(_) if !records.is_empty() => break,
                Err(e) => {
                    return Err(Status::new(
                        Code::DataLoss,
                        format!(
                            "batch of {}/{} in object storage cannot be decoded: {e}",
                            req.topic, req.partition
                        ),
                    ))
                }
            };
            inflated += h.records_len as usize;
            records.extend(
                recs.into_iter()
                    .filter(|r| r.offset >= req.offset && r.offset < local_start)
                    .map(fetched),
            );
        }
        Ok(pb::FetchResponse {
            records,
            high_watermark: self.log.high_watermark(&t.key, req.partition).unwrap_or(0),
            log_start_offset: 0,
        })
    }
}

fn fetched(r: batch::DecodedRecord) -> pb::FetchedRecord {
    pb::FetchedRecord {
        offset: r.offset,
        key: r.key,
        value: r.value,
        timestamp: r.timestamp.max(0) as u64,
        headers: r
            .headers
            .into_iter()
            .map(|(key, value)| pb::Header { key, value })
            .collect(),
    }
}
