//! The snapshot `GET /debug/state` on the admin port answers, for
//! operators: the agent's id and version, each shard's address, upload
//! backlog and lag, connections and log trouble, and every partition lease
//! held (topic, partition, epoch, shard, how long it is still served).
//! Reads the control plane's lease table and the metrics; changes nothing.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::{json, Value};
use std::time::Instant;

use super::state::Shared;

/// Builds the snapshot as JSON.
pub(crate) fn snapshot(shared: &Arc<Shared>) -> Value {
    let now = Instant::now();
    let wall_ms = crate::runtime::clock::now_ms();
    let shards: Vec<Value> = shared
        .metrics
        .shards
        .iter()
        .enumerate()
        .map(|(i, m)| {
            json!({
                "shard": i,
                "address": shared.config.shard_address(i),
                "connections_open": m.connections_open.load(Ordering::Relaxed),
                "upload_backlog_bytes": m.upload_backlog_bytes.load(Ordering::Relaxed),
                "upload_lag_ms": m.upload_lag_ms(wall_ms),
                "log_trouble": m.log.lock().as_ref().and_then(|l| l.trouble()),
            })
        })
        .collect();
    let mut leases = shared.leases.all();
    leases
        .sort_by(|a, b| (a.0.topic.name(), a.0.partition).cmp(&(b.0.topic.name(), b.0.partition)));
    let leases: Vec<Value> = leases
        .into_iter()
        .map(|(p, held)| {
            let key = p.topic.to_string();
            json!({
                "topic": p.topic.name(),
                "key": key,
                "partition": p.partition,
                "epoch": held.epoch,
                "shard": shared.shard_of(&key, p.partition),
                "served_for_ms": held.valid_until.saturating_duration_since(now).as_millis() as u64,
            })
        })
        .collect();
    json!({
        "agent_id": shared.config.agent_id,
        "shards": shards,
        "leases_held": leases.len(),
        "leases": leases,
    })
}
