//! `Fetch`: reads from the local log (waiting at the high watermark up to
//! `max_wait_ms`), or from chunk objects below the local log start; checks
//! the consumer's last epoch against the partition's epoch history first
//! and names the records' epochs in the answer. Every read first reserves
//! the most its reply can hold from the reply budgets (twice `max_bytes`:
//! the records, then the encoded reply; three times from object storage,
//! the stored batches too), and holds nothing while it waits for data.

use std::sync::atomic::Ordering;
use std::time::Duration;

use std::time::Instant;

use streamhouse_proto as pb;
use streamhouse_proto::batch::{self};

use crate::auth::acl::Operation;
use crate::auth::{Access, Need};
use crate::cluster::leader_epochs::{EpochEnd, EpochHistory};
use crate::control::inbox::ToControl;
use crate::ids::TopicKey;

use crate::shard::budget::ReplyBudget;
use crate::shard::context::ShardContext;
use crate::shard::grpc::{over_budget, Code, Status};
use crate::shard::leases::LeaseProblem;
use crate::shard::status::{control_status, lease_status, log_status};
use crate::shard::topic_cache::LocalTopic;

use super::ShardRpc;

/// Default and largest `max_bytes` of a fetch.
const DEFAULT_FETCH_BYTES: usize = 1 << 20;
const MAX_FETCH_BYTES: usize = 64 << 20;
/// Longest `max_wait_ms` honoured by a fetch.
const MAX_FETCH_WAIT: Duration = Duration::from_secs(30);

/// `FetchService/Fetch`.
pub(crate) struct Fetch;

impl ShardRpc for Fetch {
    const PATH: &'static str = pb::paths::FETCH;
    const REQUEST: &'static str = "FetchRequest";
    type Request = pb::FetchRequest;
    type Response = pb::FetchResponse;

    fn partition(req: &pb::FetchRequest) -> Option<(&str, u32)> {
        Some((&req.topic, req.partition))
    }

    fn needs(req: &pb::FetchRequest) -> Vec<Need<'_>> {
        vec![Need::topic(Operation::Consume, &req.topic)]
    }

    /// Cancelling it drops the read and returns what it reserved.
    async fn handle(
        cx: &ShardContext,
        req: pb::FetchRequest,
        reply: &mut ReplyBudget,
        _access: Option<&Access>,
    ) -> Result<pb::FetchResponse, Status> {
        cx.metrics.fetch_requests.fetch_add(1, Ordering::Relaxed);
        let t = cx.route(&req.topic, req.partition, false).await?;
        let partition = req.partition as usize;
        let mut answer = cx.fetch_routed(&t, req, reply).await?;
        answer.log_start_offset = cx.log_starts.get(&t.key, partition as u32);
        if let Some(tr) = t.entry.traffic.get(partition) {
            let bytes: usize = answer
                .records
                .iter()
                .map(|r| r.value.len() + r.key.as_ref().map_or(0, |k| k.len()))
                .sum();
            tr.fetched_records
                .fetch_add(answer.records.len() as u64, Ordering::Relaxed);
            tr.fetched_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        }
        Ok(answer)
    }
}

impl ShardContext {
    /// [`ShardContext::fetch`] of a partition of `t`. Cancelling it drops
    /// the read and returns what it reserved.
    async fn fetch_routed(
        &self,
        t: &LocalTopic,
        req: pb::FetchRequest,
        reply: &mut ReplyBudget,
    ) -> Result<pb::FetchResponse, Status> {
        // A partition being handed over still serves reads: its data is here
        // until the lease is released.
        let lease_epoch = match self.leases.check(&t.key, req.partition, Instant::now()) {
            Ok(epoch) => epoch,
            Err(LeaseProblem::Moving) => self.leases.epoch(&t.key, req.partition).unwrap_or(0),
            Err(p) => return Err(lease_status(&req.topic, req.partition, p)),
        };
        let log_start = self.log_starts.get(&t.key, req.partition);
        if req.offset < log_start {
            return Err(Status::new(
                Code::OutOfRange,
                format!(
                    "offset {} of {}/{} is before the log start {log_start}: retention or \
                     DeleteRecords removed the records before it",
                    req.offset, req.topic, req.partition
                ),
            ));
        }
        let history = self.leases.history(&t.key, req.partition);
        if let Some(diverging) = self.diverging(&req, lease_epoch, &history)? {
            return Ok(pb::FetchResponse {
                high_watermark: self.log.high_watermark(&t.key, req.partition).unwrap_or(0),
                diverging: Some(diverging),
                ..Default::default()
            });
        }
        let max_bytes = match req.max_bytes as usize {
            0 => DEFAULT_FETCH_BYTES,
            n => n.min(MAX_FETCH_BYTES),
        }
        .min(reply.ceiling() / 2)
        .max(1);
        let local_start = self.log.log_start(&t.key, req.partition).unwrap_or(0);
        if req.offset < local_start {
            let max_bytes = max_bytes.min(reply.ceiling() / 3).max(1);
            reply.reserve(3 * max_bytes).map_err(over_budget)?;
            let mut r = self
                .fetch_remote(t, &req, max_bytes, local_start, reply)
                .await?;
            r.epochs = epochs_of(&history, &r.records);
            return Ok(r);
        }
        reply.reserve(2 * max_bytes).map_err(over_budget)?;
        let mut r = self.read_local(t, &req, max_bytes, reply).await?;
        // At the high watermark a fetch waits for data; past it, no record
        // was ever acknowledged there, and waiting would hide records
        // written at the offsets in between.
        if req.offset > r.high_watermark {
            return Err(Status::new(
                Code::OutOfRange,
                format!(
                    "offset {} of {}/{} is past the high watermark {}",
                    req.offset, req.topic, req.partition, r.high_watermark
                ),
            ));
        }
        let object_level = req.read_level == pb::ReadLevel::Object as i32;
        if object_level {
            return self
                .fetch_committed(t, &req, r, local_start, (max_bytes, reply), &history)
                .await;
        }
        if r.records.is_empty() && req.max_wait_ms > 0 && req.offset >= r.high_watermark {
            let wait = Duration::from_millis(u64::from(req.max_wait_ms)).min(MAX_FETCH_WAIT);
            reply.release();
            self.log
                .wait_for_data(&t.key, req.partition, req.offset, wait)
                .await;
            reply.reserve(2 * max_bytes).map_err(over_budget)?;
            r = self.read_local(t, &req, max_bytes, reply).await?;
        }
        let records: Vec<pb::FetchedRecord> = r.records.into_iter().map(fetched).collect();
        Ok(pb::FetchResponse {
            epochs: epochs_of(&history, &records),
            records,
            high_watermark: r.high_watermark,
            ..Default::default()
        })
    }

    /// Reads the local log from `req.offset` within `max_bytes`, twice
    /// which `reply` holds. A first batch that alone decodes to more is
    /// read whole once `reply` holds twice its size (when that passes a
    /// budget, once nothing else is held from them: such a batch is read
    /// alone), else the fetch is refused with RESOURCE_EXHAUSTED. Nothing
    /// is decoded before the bytes are held.
    async fn read_local(
        &self,
        t: &LocalTopic,
        req: &pb::FetchRequest,
        max_bytes: usize,
        reply: &mut ReplyBudget,
    ) -> Result<streamhouse_storage::ReadResult, Status> {
        let r = self
            .log
            .read_bounded(&t.key, req.partition, req.offset, max_bytes, max_bytes)
            .await
            .map_err(log_status)?;
        let Some(needs) = r.first_batch_needs else {
            return Ok(r);
        };
        reply
            .reserve_up_to_alone(needs.saturating_mul(2))
            .map_err(over_budget)?;
        self.log
            .read_bounded(&t.key, req.partition, req.offset, max_bytes, usize::MAX)
            .await
            .map_err(log_status)
    }

    /// A fetch at read level `object`: only records below the committed end
    /// (what no leader change can take back), waiting up to `max_wait_ms`
    /// for this shard's next commit when there are none; the answer's high
    /// watermark is the committed end.
    async fn fetch_committed(
        &self,
        t: &LocalTopic,
        req: &pb::FetchRequest,
        mut r: streamhouse_storage::ReadResult,
        local_start: u64,
        (max_bytes, reply): (usize, &mut ReplyBudget),
        history: &EpochHistory,
    ) -> Result<pb::FetchResponse, Status> {
        let end = |s: &Self| {
            s.uploads
                .committed_end(&t.key, req.partition)
                .unwrap_or(local_start)
        };
        if req.offset >= end(self) && req.max_wait_ms > 0 {
            let wait = Duration::from_millis(u64::from(req.max_wait_ms)).min(MAX_FETCH_WAIT);
            r.records = Vec::new();
            reply.release();
            self.uploads.wait_next_commit(wait).await;
            reply.reserve(2 * max_bytes).map_err(over_budget)?;
            if req.offset < end(self) {
                r = self.read_local(t, req, max_bytes, reply).await?;
            }
        }
        let committed = end(self);
        let records: Vec<pb::FetchedRecord> = r
            .records
            .into_iter()
            .filter(|rec| rec.offset < committed)
            .map(fetched)
            .collect();
        Ok(pb::FetchResponse {
            epochs: epochs_of(history, &records),
            records,
            high_watermark: committed.min(r.high_watermark),
            ..Default::default()
        })
    }

    /// Whether the record before `req.offset`, read under epoch
    /// `last_fetched_epoch`, is gone: that epoch's records end before
    /// `req.offset` in today's log (a later leader continued from an
    /// earlier offset). A consumer that saw a newer epoch than this
    /// shard's lease is talking to a stale leader: `NOT_FOUND`, so it
    /// looks the leader up again.
    fn diverging(
        &self,
        req: &pb::FetchRequest,
        lease_epoch: u64,
        history: &EpochHistory,
    ) -> Result<Option<pb::DivergingEpoch>, Status> {
        let Some(last) = req.last_fetched_epoch.filter(|e| *e > 0) else {
            return Ok(None);
        };
        if last > lease_epoch {
            return Err(Status::new(
                Code::NotFound,
                format!(
                    "{}/{} was read at leader epoch {last}; this agent leads it at epoch {lease_epoch}: look the leader up again",
                    req.topic, req.partition
                ),
            ));
        }
        match history.end_of(last) {
            EpochEnd::Ended {
                end_offset,
                epoch_before,
            } if req.offset > end_offset => Ok(Some(pb::DivergingEpoch {
                epoch: epoch_before.unwrap_or(0),
                end_offset,
            })),
            _ => Ok(None),
        }
    }

    /// A fetch below the local log start: batches from chunk objects.
    pub(super) async fn fetch_remote(
        &self,
        t: &LocalTopic,
        req: &pb::FetchRequest,
        max_bytes: usize,
        local_start: u64,
        reply: &mut ReplyBudget,
    ) -> Result<pb::FetchResponse, Status> {
        let batches = self
            .control
            .call(|reply| ToControl::ReadRemote {
                topic: TopicKey::from_stored(&t.key),
                partition: req.partition,
                offset: req.offset,
                max_bytes,
                reply,
            })
            .await
            .map_err(control_status)?;
        let mut records = Vec::new();
        // As for local reads: `max_bytes` bounds the decompressed records,
        // and a batch that cannot be decoded ends the answer (or is the
        // answer, as DATA_LOSS, when nothing comes before it).
        let mut inflated = 0usize;
        // End of the batches read whole: past records key compaction
        // removed, the consumer's next offset.
        let mut read_to = req.offset;
        for b in batches {
            // A first batch that alone decodes to more than `max_bytes`
            // is decoded once the reply holds twice its size more (or, past
            // a budget, is read alone), as for local reads.
            let header = batch::parse_header(&b);
            if let Ok(h) = &header {
                if records.is_empty() && h.decoded_bytes() > max_bytes {
                    let more = h.decoded_bytes().saturating_mul(2);
                    reply
                        .reserve_up_to_alone((3 * max_bytes).saturating_add(more))
                        .map_err(over_budget)?;
                }
            }
            let decoded = header.and_then(|h| {
                if !records.is_empty() && inflated + h.decoded_bytes() > max_bytes {
                    return Ok(None);
                }
                batch::decode(&b).map(Some)
            });
            let (h, recs) = match decoded {
                Ok(Some(v)) => v,
                Ok(None) => break,
                Err(_) if !records.is_empty() => break,
                Err(e) => {
                    return Err(Status::new(
                        Code::DataLoss,
                        format!(
                            "batch of {}/{} in object storage cannot be decoded: {e}",
                            req.topic, req.partition
                        ),
                    ))
                }
            };
            inflated += h.decoded_bytes();
            read_to = read_to.max(h.base_offset + u64::from(h.record_count));
            records.extend(
                recs.into_iter()
                    .filter(|r| r.offset >= req.offset && r.offset < local_start)
                    .map(fetched),
            );
        }
        let read_to = read_to.min(local_start);
        let past_records = records.last().map_or(req.offset, |r| r.offset + 1);
        Ok(pb::FetchResponse {
            records,
            high_watermark: self.log.high_watermark(&t.key, req.partition).unwrap_or(0),
            next_offset: if read_to > past_records { read_to } else { 0 },
            ..Default::default()
        })
    }
}

/// The epochs of `records` (in offset order) as the answer names them.
fn epochs_of(history: &EpochHistory, records: &[pb::FetchedRecord]) -> Vec<pb::EpochStart> {
    let (Some(first), Some(last)) = (records.first(), records.last()) else {
        return Vec::new();
    };
    history
        .spans(first.offset, last.offset)
        .into_iter()
        .map(|e| pb::EpochStart {
            start_offset: e.start_offset,
            epoch: e.epoch,
        })
        .collect()
}

fn fetched(r: batch::DecodedRecord) -> pb::FetchedRecord {
    pb::FetchedRecord {
        offset: r.offset,
        key: r.key,
        value: r.value,
        timestamp: r.timestamp,
        headers: r
            .headers
            .into_iter()
            .map(|(key, value)| pb::Header { key, value })
            .collect(),
    }
}
