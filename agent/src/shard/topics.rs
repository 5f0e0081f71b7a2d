//! Keeping the shard's topic cache (`topic_cache`) current and the routing
//! check: which topics exist, which partitions this shard owns, their high
//! watermarks, and reloading topics from the metadata store when a name is
//! unknown.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use crate::control::inbox::ToControl;
use crate::messages::ControlError;
use crate::topics::routing::shard_for;

use super::context::ShardContext;
use super::grpc::{Code, Status};
use super::status::{bad, control_status};
use super::topic_cache::LocalTopic;

impl ShardContext {
    /// Reloads the shard's copy of the catalog when it changed: registers
    /// owned partitions with the log and publishes their high watermarks.
    pub(super) fn refresh_topics(&self) {
        let v = self.catalog.version();
        if v == self.topics.version() {
            return;
        }
        let shards = self.config.shard_count();
        let mut fresh = HashMap::new();
        for (name, entry) in self.catalog.list() {
            let key: Rc<str> = entry.key(&name).as_str().into();
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
        for gone in self.topics.replace(fresh, v) {
            self.log.remove_topic(&gone.key);
            self.leases.remove_topic(&gone.key);
            self.log_starts.remove_topic(&gone.key);
            self.append_clock.forget_topic(&gone.key);
        }
    }

    pub(super) fn topic(&self, name: &str) -> Option<Rc<LocalTopic>> {
        self.refresh_topics();
        self.topics.get(name)
    }

    /// Looks up a topic and checks that `partition` exists and is owned here.
    pub(super) async fn route(
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
                        config: Default::default(),
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

    pub(super) fn publish_high_watermark(&self, key: &str, partition: u32) {
        let Some(hw) = self.log.high_watermark(key, partition) else {
            return;
        };
        if let Some(t) = self.topics.by_key(key) {
            if let Some(a) = t.entry.high_watermarks.get(partition as usize) {
                a.fetch_max(hw, Ordering::Relaxed);
            }
        }
    }

    /// Reloads topics from the metadata store (a topic another agent
    /// created may not have reached this one's catalog yet). A failure is
    /// the store's (`UNAVAILABLE`), never read as "unknown topic".
    pub(super) async fn sync_topics(&self) -> Result<(), Status> {
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
}
