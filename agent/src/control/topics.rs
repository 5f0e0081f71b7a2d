//! Topic administration on the control thread: loading topics from the
//! metadata store into the catalog, creating one (validated, its leases
//! acquired, every shard caught up before the answer) and changing a
//! topic's configuration.

use std::collections::{BTreeMap, HashSet};

use futures::channel::oneshot;

use crate::messages::{ControlError, ToShard};
use crate::metastore::{MetaError, TopicRow};
use crate::topics::catalog::{validate_new_topic, MAX_PARTITIONS};
use crate::topics::topic_config::TopicConfig;

use super::state::Shared;
use crate::ids::TopicKey;

impl Shared {
    /// Loads topics from the metadata store into the catalog.
    pub(super) async fn sync_topics(&self) -> Result<(), MetaError> {
        let rows = self.meta.topics().await?;
        let known: HashSet<TopicKey> = rows.iter().map(TopicRow::key).collect();
        self.leases.retain_topics(&known);
        self.catalog.replace(&rows);
        Ok(())
    }

    pub(super) async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        config: BTreeMap<String, String>,
    ) -> Result<TopicRow, ControlError> {
        validate_new_topic(name, partitions).map_err(|e| ControlError::Invalid(e.to_string()))?;
        let config = TopicConfig::checked(config, &self.config.topic_defaults())
            .map_err(|e| ControlError::Invalid(e.to_string()))?;
        let row = self
            .meta
            .create_topic_with(name, partitions, config.set_keys())
            .await?;
        self.catalog.insert(&row);
        let key = row.key();
        for p in (0..partitions).filter(|p| self.assigned_here(&key, *p)) {
            if let Err(e) = self.acquire(&key, p).await {
                tracing::warn!(topic = %key, partition = p, error = %e, "cannot acquire lease of a new topic");
            }
        }
        // Answer once every owning shard has applied its leases, so the
        // first produce after CreateTopic finds them.
        self.shards_caught_up().await;
        Ok(row)
    }

    /// Returns once every shard has applied the messages sent to it so far.
    async fn shards_caught_up(&self) {
        let mut acks = Vec::new();
        for s in 0..self.shards.len() {
            let (tx, rx) = oneshot::channel();
            self.tell(s, ToShard::Barrier(tx));
            acks.push(rx);
        }
        for rx in acks {
            let _ = rx.await;
        }
    }

    /// Raises a topic's partition count to `count` (at most
    /// `MAX_PARTITIONS`), acquires the new partitions assigned here, and
    /// answers once this agent's shards know them; other agents take them
    /// at their next topic sync.
    pub(super) async fn add_partitions(&self, name: &str, count: u32) -> Result<(), ControlError> {
        if count > MAX_PARTITIONS {
            return Err(ControlError::Invalid(format!(
                "partitions must be at most {MAX_PARTITIONS}, got {count}"
            )));
        }
        let row = self.meta.add_partitions(name, count).await?;
        let before = self.catalog.get(name).map_or(0, |t| t.partitions);
        self.catalog.insert(&row);
        let key = row.key();
        for p in (before..count).filter(|p| self.assigned_here(&key, *p)) {
            if let Err(e) = self.acquire(&key, p).await {
                tracing::warn!(topic = %key, partition = p, error = %e, "cannot acquire lease of a new partition");
            }
        }
        tracing::info!(topic = %name, partitions = count, "partitions added");
        self.shards_caught_up().await;
        Ok(())
    }

    /// Sets `set` and returns the keys in `delete` to the defaults on a
    /// topic, all or none, checked against the stored configuration in the
    /// store's transaction; the catalog takes the result at once (other
    /// agents at their next topic sync).
    pub(super) async fn alter_configs(
        &self,
        name: &str,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    ) -> Result<TopicConfig, ControlError> {
        let defaults = self.config.topic_defaults();
        // Checked before the store is asked, so a bad request costs no
        // transaction; checked again against the stored keys inside it.
        TopicConfig::default()
            .altered(&set, &delete, &defaults)
            .map_err(|e| ControlError::Invalid(e.to_string()))?;
        let alter = move |stored: &BTreeMap<String, String>| {
            let (current, _) = TopicConfig::stored(stored.clone());
            current
                .altered(&set, &delete, &defaults)
                .map(|c| c.set_keys().clone())
                .map_err(|e| e.to_string())
        };
        let row = self
            .meta
            .alter_topic_config(name, std::sync::Arc::new(alter))
            .await?;
        let entry = self.catalog.insert(&row);
        tracing::info!(topic = %name, config = ?row.config, "topic configuration changed");
        Ok((*entry.config).clone())
    }
}
