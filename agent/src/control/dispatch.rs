//! One [`ToControl`](super::inbox::ToControl) request from a shard →
//! the control-plane call that answers it (an RPC unit's call runs as
//! it is: `rpc`). Holds no state and no policy of
//! its own.

use std::sync::Arc;

use super::inbox::ToControl;

use super::state::Shared;

impl Shared {
    pub(super) async fn handle(self: Arc<Self>, req: ToControl) {
        match req {
            ToControl::CreateTopic {
                name,
                partitions,
                config,
                reply,
            } => {
                let r = self.create_topic(&name, partitions, config).await;
                let _ = reply.send(r.map(|_| ()));
            }
            ToControl::CreatePartitions { name, count, reply } => {
                let _ = reply.send(self.add_partitions(&name, count).await);
            }
            ToControl::DeleteRecords {
                topic,
                partition,
                to,
                reply,
            } => {
                let _ = reply.send(self.advance_log_start(&topic, partition, to).await);
            }
            ToControl::AlterConfigs {
                name,
                set,
                delete,
                reply,
            } => {
                let _ = reply.send(self.alter_configs(&name, set, delete).await);
            }
            ToControl::DeleteTopic { name, reply } => {
                let r = self.meta.delete_topic(&name).await;
                let r = match r {
                    Ok(row) => {
                        self.catalog.remove(&name);
                        let key = row.key();
                        self.leases.remove_topic(&key);
                        Ok(())
                    }
                    Err(e) => Err(e.into()),
                };
                let _ = reply.send(r);
            }
            ToControl::ProducerId { reply } => {
                let _ = reply.send(self.meta.next_producer_id().await.map_err(Into::into));
            }
            ToControl::BumpProducerEpoch {
                producer_id,
                claimed,
                reply,
            } => {
                let r = self.meta.bump_producer_epoch(producer_id, claimed).await;
                let _ = reply.send(r.map_err(Into::into));
            }
            ToControl::ReadRemote {
                topic,
                partition,
                offset,
                max_bytes,
                reply,
            } => {
                let r = self
                    .chunks()
                    .read(&topic, partition, offset, max_bytes)
                    .await;
                let _ = reply.send(r);
            }
            ToControl::RemoteOffsetForTime {
                topic,
                partition,
                timestamp_ms,
                below,
                reply,
            } => {
                let r = self
                    .chunks()
                    .offset_for_time(&topic, partition, timestamp_ms, below)
                    .await;
                let _ = reply.send(r);
            }
            ToControl::Rpc { call, reply } => {
                let _ = reply.send(call.run(self.clone()).await);
            }
            ToControl::SyncTopics { reply } => {
                let r = self.sync_topics().await;
                if r.is_ok() {
                    self.acquire_missing().await;
                }
                let _ = reply.send(r.map_err(Into::into));
            }
            ToControl::Cluster { topics, reply } => {
                let _ = reply.send(self.cluster_view(&topics).await.map_err(Into::into));
            }
            ToControl::Upload(_) => {}
            ToControl::ShardHealth { shard, health } => {
                tracing::warn!(shard, ?health, "shard health changed");
                self.members.set_health(shard, health);
            }
            ToControl::ReleaseShard { shard } => self.release_shard(shard).await,
            ToControl::ShardRestarted { shard, inbox } => self.restarted(shard, inbox).await,
        }
    }
}
