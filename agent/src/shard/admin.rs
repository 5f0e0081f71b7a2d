//! The admin RPCs on a shard: topics (create, delete, list, describe,
//! configuration), cluster metadata, producer ids, and the gRPC health
//! check. Each asks the
//! control thread for what it does not know locally.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use streamhouse_proto as pb;

use crate::catalog::TopicEntry;
use crate::messages::{ClusterView, ToControl};
use crate::routing::shard_for;
use crate::topic_config::{Source, TopicConfig};

use super::context::ShardContext;
use super::grpc::{decode, encode_reply, read_message, Body, Code, Status};
use super::status::control_status;

impl ShardContext {
    /// `CreateTopic`: created through the control thread, answered with its metadata.
    pub(super) async fn create_topic(&self, req: pb::CreateTopicRequest) -> Result<Bytes, Status> {
        self.control
            .call(|reply| ToControl::CreateTopic {
                name: req.name.clone(),
                partitions: req.partitions,
                config: req.configs.into_iter().collect(),
                reply,
            })
            .await
            .map_err(control_status)?;
        let topic = self.describe(&req.name).await?;
        Ok(encode_reply(&pb::CreateTopicResponse {
            topic: Some(topic),
        }))
    }

    /// `DescribeConfigs`: every configuration key of a topic with the
    /// value in effect and where it comes from.
    pub(super) async fn describe_configs(
        &self,
        req: pb::DescribeConfigsRequest,
    ) -> Result<Bytes, Status> {
        if self.catalog.get(&req.topic).is_none() {
            self.sync_topics().await?;
        }
        let t = self
            .catalog
            .get(&req.topic)
            .ok_or_else(|| Status::new(Code::NotFound, format!("unknown topic {}", req.topic)))?;
        Ok(encode_reply(&self.configs_of(&req.topic, &t.config)))
    }

    /// `AlterConfigs`: sets and deletes keys, all or none.
    pub(super) async fn alter_configs(
        &self,
        req: pb::AlterConfigsRequest,
    ) -> Result<Bytes, Status> {
        let config = self
            .control
            .call(|reply| ToControl::AlterConfigs {
                name: req.topic.clone(),
                set: req.set.into_iter().collect(),
                delete: req.delete,
                reply,
            })
            .await
            .map_err(control_status)?;
        Ok(encode_reply(&pb::AlterConfigsResponse {
            configs: Some(self.configs_of(&req.topic, &config)),
        }))
    }

    fn configs_of(&self, topic: &str, config: &TopicConfig) -> pb::DescribeConfigsResponse {
        let entries = config
            .describe(&self.config.topic_defaults())
            .into_iter()
            .map(|e| pb::ConfigEntry {
                name: e.name.to_owned(),
                value: e.value,
                source: match e.source {
                    Source::Topic => pb::ConfigSource::Topic,
                    Source::Default => pb::ConfigSource::Default,
                } as i32,
                documentation: e.documentation.to_owned(),
            })
            .collect();
        pb::DescribeConfigsResponse {
            topic: topic.to_owned(),
            entries,
        }
    }

    /// `CreatePartitions`: raised through the control thread, answered with
    /// the topic's metadata.
    pub(super) async fn create_partitions(
        &self,
        req: pb::CreatePartitionsRequest,
    ) -> Result<Bytes, Status> {
        self.control
            .call(|reply| ToControl::CreatePartitions {
                name: req.topic.clone(),
                count: req.count,
                reply,
            })
            .await
            .map_err(control_status)?;
        self.refresh_topics();
        let topic = self.describe(&req.topic).await?;
        Ok(encode_reply(&pb::CreatePartitionsResponse {
            topic: Some(topic),
        }))
    }

    /// `DeleteTopic`.
    pub(super) async fn delete_topic(&self, req: pb::DeleteTopicRequest) -> Result<Bytes, Status> {
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

    /// `ListTopics`: every topic with its partitions' leaders.
    pub(super) async fn list_topics(&self, _req: pb::ListTopicsRequest) -> Result<Bytes, Status> {
        Ok(encode_reply(&pb::ListTopicsResponse {
            topics: self.describe_all(&[], &self.cluster(&[]).await?),
        }))
    }

    /// `DescribeTopic`.
    pub(super) async fn describe_topic(
        &self,
        req: pb::DescribeTopicRequest,
    ) -> Result<Bytes, Status> {
        Ok(encode_reply(&self.describe(&req.name).await?))
    }

    /// `Metadata`: live agents and the leaders of the topics asked for (all when none).
    pub(super) async fn metadata(&self, req: pb::MetadataRequest) -> Result<Bytes, Status> {
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

    /// `InitProducerId`: a new producer id, or the next epoch of a known one.
    pub(super) async fn init_producer_id(
        &self,
        req: pb::InitProducerIdRequest,
    ) -> Result<Bytes, Status> {
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

    /// `grpc.health.v1.Health/Check`: SERVING, or NOT_SERVING while draining.
    /// The service name "" (the whole agent) and "streamhouse" are known.
    pub async fn health(&self, body: &mut Body) -> Result<Bytes, Status> {
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
    pub(super) async fn cluster(&self, topics: &[String]) -> Result<ClusterView, Status> {
        self.control
            .call(|reply| ToControl::Cluster {
                topics: topics.to_vec(),
                reply,
            })
            .await
            .map_err(control_status)
    }

    pub(super) fn agents_metadata(view: &ClusterView) -> Vec<pb::AgentMetadata> {
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
    pub(super) fn topic_metadata(
        &self,
        name: &str,
        t: &TopicEntry,
        view: &ClusterView,
    ) -> pb::TopicMetadata {
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

    pub(super) async fn describe(&self, name: &str) -> Result<pb::TopicMetadata, Status> {
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

    pub(super) fn describe_all(
        &self,
        only: &[String],
        view: &ClusterView,
    ) -> Vec<pb::TopicMetadata> {
        self.catalog
            .list()
            .iter()
            .filter(|(n, _)| only.is_empty() || only.contains(n))
            .map(|(n, t)| self.topic_metadata(n, t, view))
            .collect()
    }
}
