//! Topic administration on the control thread: loading topics from the
//! metadata store into the catalog, and creating one (validated, its
//! leases acquired, every shard caught up before the answer).

use std::collections::HashSet;

use futures::channel::oneshot;

use crate::catalog::validate_new_topic;
use crate::messages::{ControlError, ToShard};
use crate::metastore::{MetaError, TopicRow};

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
    ) -> Result<TopicRow, ControlError> {
        validate_new_topic(name, partitions).map_err(|e| ControlError::Invalid(e.to_string()))?;
        let row = self.meta.create_topic(name, partitions).await?;
        self.catalog.insert(&row);
        let key = row.key();
        for p in (0..partitions).filter(|p| self.assigned_here(&key, *p)) {
            if let Err(e) = self.acquire(&key, p).await {
                tracing::warn!(topic = %key, partition = p, error = %e, "cannot acquire lease of a new topic");
            }
        }
        // Answer once every owning shard has applied its leases, so the
        // first produce after CreateTopic finds them.
        let mut acks = Vec::new();
        for s in 0..self.shards.len() {
            let (tx, rx) = oneshot::channel();
            self.tell(s, ToShard::Barrier(tx));
            acks.push(rx);
        }
        for rx in acks {
            let _ = rx.await;
        }
        Ok(row)
    }
}
