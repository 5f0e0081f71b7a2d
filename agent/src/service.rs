//! What each gRPC method means on a shard: Produce, Fetch and the Admin
//! calls. Owns request validation, routing checks and the mapping of engine
//! errors to gRPC statuses. Must not touch sockets (see `grpc`) or the WAL
//! directly (it goes through `ShardLog`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use streamhouse_proto as pb;
use streamhouse_shard::batch::{self, BatchBuilder, Codec, ProducerInfo};
use streamhouse_shard::{LogError, ShardLog};

use crate::catalog::{Catalog, CatalogError, TopicEntry};
use crate::config::AgentConfig;
use crate::grpc::{read_message, Code, Status};
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
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
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
        LogError::Sequence(_) => Code::FailedPrecondition,
        LogError::OffsetOutOfRange { .. } => Code::OutOfRange,
        LogError::Corrupt(_) => Code::DataLoss,
        LogError::Io { .. } | LogError::Poisoned(_) => Code::Internal,
    };
    Status::new(code, e.to_string())
}

fn catalog_status(e: CatalogError) -> Status {
    let code = match &e {
        CatalogError::Invalid(_) => Code::InvalidArgument,
        CatalogError::Exists(_) => Code::AlreadyExists,
        CatalogError::Unknown(_) => Code::NotFound,
        CatalogError::Io { .. } => Code::Internal,
    };
    Status::new(code, e.to_string())
}

impl ShardContext {
    pub fn new(
        shard: usize,
        config: Arc<AgentConfig>,
        catalog: Arc<Catalog>,
        log: ShardLog,
        draining: Arc<AtomicBool>,
    ) -> Rc<Self> {
        let ctx = Rc::new(ShardContext {
            shard,
            config,
            catalog,
            log,
            draining,
            inflight: Cell::new(0),
            topics: RefCell::new(HashMap::new()),
            topics_version: Cell::new(0),
        });
        ctx.refresh_topics();
        ctx
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
            }
        }
        self.topics_version.set(v);
    }

    fn topic(&self, name: &str) -> Option<Rc<LocalTopic>> {
        self.refresh_topics();
        self.topics.borrow().get(name).cloned()
    }

    /// Looks up a topic and checks that `partition` exists and is owned here.
    fn route(
        &self,
        name: &str,
        partition: u32,
        auto_create: bool,
    ) -> Result<Rc<LocalTopic>, Status> {
        if name.is_empty() {
            return Err(bad("topic name is empty"));
        }
        let t = match self.topic(name) {
            Some(t) => t,
            None if auto_create && self.config.auto_create_topics => {
                match self
                    .catalog
                    .create_topic(name, self.config.default_partitions)
                {
                    Ok(_) | Err(CatalogError::Exists(_)) => {}
                    Err(e) => return Err(catalog_status(e)),
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
    pub async fn call(&self, path: &str, body: &mut h2::RecvStream) -> Result<Bytes, Status> {
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
                self.catalog
                    .create_topic(&req.name, req.partitions)
                    .map_err(catalog_status)?;
                let topic = self.describe(&req.name)?;
                Ok(encode_reply(&pb::CreateTopicResponse {
                    topic: Some(topic),
                }))
            }
            pb::paths::DELETE_TOPIC => {
                let req: pb::DeleteTopicRequest =
                    decode(read_message(body, limit).await?, "DeleteTopicRequest")?;
                self.catalog
                    .delete_topic(&req.name)
                    .map_err(catalog_status)?;
                self.refresh_topics();
                Ok(encode_reply(&pb::DeleteTopicResponse {}))
            }
            pb::paths::LIST_TOPICS => {
                let _: pb::ListTopicsRequest =
                    decode(read_message(body, limit).await?, "ListTopicsRequest")?;
                Ok(encode_reply(&pb::ListTopicsResponse {
                    topics: self.describe_all(&[]),
                }))
            }
            pb::paths::DESCRIBE_TOPIC => {
                let req: pb::DescribeTopicRequest =
                    decode(read_message(body, limit).await?, "DescribeTopicRequest")?;
                Ok(encode_reply(&self.describe(&req.name)?))
            }
            pb::paths::METADATA => {
                let req: pb::MetadataRequest =
                    decode(read_message(body, limit).await?, "MetadataRequest")?;
                for t in &req.topics {
                    if self.catalog.get(t).is_none() {
                        return Err(Status::new(Code::NotFound, format!("unknown topic {t}")));
                    }
                }
                Ok(encode_reply(&pb::MetadataResponse {
                    agents: vec![self.agent_metadata()],
                    topics: self.describe_all(&req.topics),
                }))
            }
            pb::paths::INIT_PRODUCER_ID => {
                let _: pb::InitProducerIdRequest =
                    decode(read_message(body, limit).await?, "InitProducerIdRequest")?;
                let id = self.catalog.next_producer_id().map_err(catalog_status)?;
                Ok(encode_reply(&pb::InitProducerIdResponse {
                    producer_id: id,
                    producer_epoch: 0,
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
    pub async fn health(&self, body: &mut h2::RecvStream) -> Result<Bytes, Status> {
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

    fn agent_metadata(&self) -> pb::AgentMetadata {
        pb::AgentMetadata {
            agent_id: self.config.agent_id.clone(),
            shard_addresses: (0..self.config.shard_count())
                .map(|i| self.config.shard_address(i))
                .collect(),
        }
    }

    fn topic_metadata(&self, name: &str, t: &TopicEntry) -> pb::TopicMetadata {
        let shards = self.config.shard_count();
        pb::TopicMetadata {
            name: name.to_owned(),
            partitions: (0..t.partitions)
                .map(|p| {
                    let shard = shard_for(name, p, shards);
                    pb::PartitionMetadata {
                        partition: p,
                        leader_agent_id: self.config.agent_id.clone(),
                        leader_address: self.config.shard_address(shard),
                        shard: shard as u32,
                        lease_epoch: 0,
                        high_watermark: t.high_watermarks[p as usize].load(Ordering::Relaxed),
                    }
                })
                .collect(),
        }
    }

    fn describe(&self, name: &str) -> Result<pb::TopicMetadata, Status> {
        let t = self
            .catalog
            .get(name)
            .ok_or_else(|| Status::new(Code::NotFound, format!("unknown topic {name}")))?;
        Ok(self.topic_metadata(name, &t))
    }

    fn describe_all(&self, only: &[String]) -> Vec<pb::TopicMetadata> {
        self.catalog
            .list()
            .iter()
            .filter(|(n, _)| only.is_empty() || only.contains(n))
            .map(|(n, t)| self.topic_metadata(n, t))
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
        let t = self.route(&req.topic, req.partition, true)?;
        if ack == pb::AckLevel::AckObject {
            return Err(Status::new(
                Code::Unimplemented,
                "ack level OBJECT needs an object store, which this agent does not have",
            ));
        }
        let encoded = if !req.batch.is_empty() {
            let h = batch::validate(&req.batch).map_err(|e| bad(format!("invalid batch: {e}")))?;
            if h.records_len as usize > self.config.max_request_bytes {
                return Err(Status::new(
                    Code::ResourceExhausted,
                    format!(
                        "batch of {} bytes uncompressed exceeds the limit of {} bytes",
                        h.records_len, self.config.max_request_bytes
                    ),
                ));
            }
            req.batch.to_vec()
        } else {
            self.encode_records(&req)?
        };
        let appended = self
            .log
            .append(&t.key, req.partition, encoded)
            .await
            .map_err(log_status)?;
        t.entry.high_watermarks[req.partition as usize].fetch_max(
            appended.base_offset + u64::from(appended.record_count),
            Ordering::Relaxed,
        );
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
        let t = self.route(&req.topic, req.partition, false)?;
        let max_bytes = match req.max_bytes as usize {
            0 => DEFAULT_FETCH_BYTES,
            n => n.min(MAX_FETCH_BYTES),
        };
        let mut r = self
            .log
            .read(&t.key, req.partition, req.offset, max_bytes)
            .await
            .map_err(log_status)?;
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
            records: r
                .records
                .into_iter()
                .map(|r| pb::FetchedRecord {
                    offset: r.offset,
                    key: r.key,
                    value: r.value,
                    timestamp: r.timestamp.max(0) as u64,
                    headers: r
                        .headers
                        .into_iter()
                        .map(|(key, value)| pb::Header { key, value })
                        .collect(),
                })
                .collect(),
            high_watermark: r.high_watermark,
            log_start_offset: r.log_start,
        })
    }
}
