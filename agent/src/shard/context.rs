//! A shard's request context ([`ShardContext`]): what every handler of
//! one shard shares (config, catalog, log, control handle, lease table,
//! topic cache, upload bookkeeping), built once per executor, and the
//! application of the control thread's messages to it. Lives on the
//! shard's executor only; the handlers are in `dispatch`, `produce`,
//! `fetch` and `admin`.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use streamhouse_storage::ShardLog;

use crate::config::AgentConfig;
use crate::control::inbox::ControlHandle;
use crate::messages::ToShard;
use crate::metrics::ShardMetrics;
use crate::runtime::tasks::TaskRegistry;
use crate::topics::catalog::Catalog;

use super::append_clock::AppendClock;
use super::leases::{LeaseState, ShardLeases};
use super::log_starts::LogStarts;
use super::topic_cache::TopicCache;
use super::uploads::Uploads;

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
    /// The topics as this shard last loaded them from the catalog.
    pub(super) topics: TopicCache,
    /// The control thread (metadata, object store, uploads).
    pub control: ControlHandle,
    /// Lease state of this shard's partitions.
    pub leases: ShardLeases,
    /// First readable offset of this shard's partitions.
    pub log_starts: LogStarts,
    /// The timestamps this shard stamps on records sent without one.
    pub(super) append_clock: AppendClock,
    /// Names this log's chunk objects: `chunks/LOG_ID/SEGMENT.wal`.
    pub(super) log_id: String,
    /// Upload bookkeeping: unshipped segments, commits, waiters.
    pub(super) uploads: Uploads,
    /// This shard's counters.
    pub metrics: Arc<ShardMetrics>,
    /// The shard's background tasks.
    pub tasks: Arc<TaskRegistry>,
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
            topics: TopicCache::default(),
            control,
            leases: ShardLeases::default(),
            log_starts: LogStarts::default(),
            append_clock: AppendClock::default(),
            log_id,
            uploads: Uploads::default(),
            metrics,
            tasks: Arc::new(TaskRegistry::default()),
        });
        ctx.refresh_topics();
        ctx
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Applies one message from the control thread.
    pub fn apply(self: &Rc<Self>, msg: ToShard) {
        match msg {
            ToShard::Lease {
                topic,
                partition,
                epoch,
                valid_until,
                committed_end,
                fresh,
                producers,
                epochs,
                log_start,
            } => {
                self.refresh_topics();
                self.log_starts.advance(&topic, partition, log_start);
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
                self.uploads
                    .note_committed_end(&topic, partition, committed_end);
                self.leases.set_history(&topic, partition, epoch, epochs);
                self.leases
                    .set(&topic, partition, LeaseState::Held { epoch, valid_until });
            }
            ToShard::LogStart {
                topic,
                partition,
                start,
            } => self.log_starts.advance(&topic, partition, start),
            ToShard::Renewed {
                topic,
                partition,
                epoch,
                valid_until,
            } => self.leases.renew(&topic, partition, epoch, valid_until),
            ToShard::LeaseLost {
                topic,
                partition,
                reason,
            } => self.leases.lose(&topic, partition, reason),
            ToShard::Committed { segment, ends } => {
                if let Err(e) = self.log.drop_segment(segment) {
                    tracing::warn!(shard = self.shard, segment, error = %e, "cannot drop a shipped segment");
                }
                self.uploads.committed(segment, ends);
                self.publish_backlog();
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
                self.tasks.spawn_local("handoff", async move {
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
                });
            }
        }
    }
}
