//! Topic configuration through [`Admin`]: create a topic with keys set
//! (`retention.ms`, `retention.bytes`, `cleanup.policy`,
//! `max.message.bytes`, named as Kafka names them), read every key's value
//! in effect, and change keys. Owns the calls and their answer types only.

use std::collections::HashMap;

use streamhouse_proto as pb;

use crate::admin::{Admin, TopicInfo};
use crate::error::Result;

/// Where a value in effect comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigSource {
    /// Set on the topic.
    Topic,
    /// The cluster default (the answering agent's flags).
    Default,
}

/// One configuration key of a topic with its value in effect.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigEntry {
    /// The key, as Kafka names it (`retention.ms`).
    pub name: String,
    /// Its value in effect.
    pub value: String,
    /// Whether the topic set it.
    pub source: ConfigSource,
    /// What the key means, in a sentence.
    pub documentation: String,
}

fn entries(r: pb::DescribeConfigsResponse) -> Vec<ConfigEntry> {
    r.entries
        .into_iter()
        .map(|e| ConfigEntry {
            source: if e.source == pb::ConfigSource::Topic as i32 {
                ConfigSource::Topic
            } else {
                ConfigSource::Default
            },
            name: e.name,
            value: e.value,
            documentation: e.documentation,
        })
        .collect()
}

impl Admin {
    /// Creates a topic with `partitions` partitions and the configuration
    /// keys in `configs` (the others follow the cluster defaults); an
    /// unknown key or a bad value is `InvalidArgument` and creates nothing.
    ///
    /// # Errors
    /// As [`create_topic`](Self::create_topic); [`Error::Status`](crate::Error::Status) with
    /// [`Code::InvalidArgument`](crate::Code::InvalidArgument) for an unknown
    /// key or a bad value (named in the message).
    ///
    /// # Cancellation
    /// A request already sent is not withdrawn: after a dropped future the
    /// topic may or may not exist.
    pub async fn create_topic_with_configs<K, V>(
        &self,
        name: &str,
        partitions: u32,
        configs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<TopicInfo>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let req = pb::CreateTopicRequest {
            name: name.into(),
            partitions,
            configs: configs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect::<HashMap<_, _>>(),
        };
        let r = self
            .call(
                "create topic",
                |mut c| async move { c.create_topic(req).await },
            )
            .await?;
        Ok(r.topic.unwrap_or_default().into())
    }

    /// Every configuration key of `topic` with its value in effect;
    /// `NotFound` for an unknown topic.
    ///
    /// # Errors
    /// [`Error::Status`](crate::Error::Status) with [`Code::NotFound`](crate::Code::NotFound) for an
    /// unknown topic; [`Error::Transport`](crate::Error::Transport) when no agent answers.
    ///
    /// # Cancellation
    /// Read-only: dropping the future has no effect.
    pub async fn describe_configs(&self, topic: &str) -> Result<Vec<ConfigEntry>> {
        let req = pb::DescribeConfigsRequest {
            topic: topic.into(),
        };
        let r = self
            .call("describe configs", |mut c| async move {
                c.describe_configs(req).await
            })
            .await?;
        Ok(entries(r))
    }

    /// Sets the keys in `set` and returns those in `delete` to the
    /// cluster defaults, all or none (`InvalidArgument` names the first
    /// bad key or value); answers every key's value now in effect.
    ///
    /// # Errors
    /// As [`describe_configs`](Self::describe_configs);
    /// [`Code::InvalidArgument`](crate::Code::InvalidArgument) for an unknown
    /// key or a bad value, and nothing is changed.
    ///
    /// # Cancellation
    /// A request already sent is not withdrawn: after a dropped future the
    /// change may or may not have been made.
    pub async fn alter_configs<K, V>(
        &self,
        topic: &str,
        set: impl IntoIterator<Item = (K, V)>,
        delete: &[&str],
    ) -> Result<Vec<ConfigEntry>>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let req = pb::AlterConfigsRequest {
            topic: topic.into(),
            set: set
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect::<HashMap<_, _>>(),
            delete: delete.iter().map(|k| k.to_string()).collect(),
        };
        let r = self
            .call("alter configs", |mut c| async move {
                c.alter_configs(req).await
            })
            .await?;
        Ok(r.configs.map(entries).unwrap_or_default())
    }
}
