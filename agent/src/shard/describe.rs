//! How topics and the cluster look in answers: a topic's metadata with
//! its partitions' leaders, the live agents, a topic's configuration with
//! the source of each value, and the cluster view they are built from
//! (asked of the control thread). Used by the admin RPCs (`rpc/admin/`);
//! handles no request itself.

use std::sync::atomic::Ordering;

use streamhouse_proto as pb;

use crate::control::inbox::ToControl;
use crate::messages::ClusterView;
use crate::topics::catalog::TopicEntry;
use crate::topics::routing::shard_for;
use crate::topics::topic_config::{Source, TopicConfig};

use super::context::ShardContext;
use super::grpc::{Code, Status};
use super::status::control_status;

impl ShardContext {
    /// A topic's configuration as DescribeConfigs answers it: every key
    /// with its value in effect and where it comes from.
    pub(super) fn configs_of(
        &self,
        topic: &str,
        config: &TopicConfig,
    ) -> pb::DescribeConfigsResponse {
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
