//! `Produce`: validation, routing and lease checks, the upload backlog
//! limit, the append, and what each ack level waits for before the answer.

use std::sync::atomic::Ordering;

use std::time::Instant;

use streamhouse_proto as pb;
use streamhouse_proto::batch::{self, BatchBuilder, CheckedBatch, Codec, ProducerInfo};

use crate::auth::acl::Operation;
use crate::auth::{Access, Need};
use crate::runtime::clock::now_ms;

use crate::shard::budget::ReplyBudget;
use crate::shard::context::ShardContext;
use crate::shard::grpc::{Code, Status};
use crate::shard::leases::LeaseProblem;
use crate::shard::status::{bad, lease_status, log_status};

use super::ShardRpc;

/// `ProducerService/Produce`.
pub(crate) struct Produce;

impl ShardRpc for Produce {
    const PATH: &'static str = pb::paths::PRODUCE;
    const REQUEST: &'static str = "ProduceRequest";
    type Request = pb::ProduceRequest;
    type Response = pb::ProduceResponse;

    fn partition(req: &pb::ProduceRequest) -> Option<(&str, u32)> {
        Some((&req.topic, req.partition))
    }

    fn needs(req: &pb::ProduceRequest) -> Vec<Need<'_>> {
        vec![Need::topic(Operation::Produce, &req.topic)]
    }

    async fn handle(
        cx: &ShardContext,
        mut req: pb::ProduceRequest,
        _reply: &mut ReplyBudget,
        _access: Option<&Access>,
    ) -> Result<pb::ProduceResponse, Status> {
        let ack = pb::AckLevel::try_from(req.ack)
            .map_err(|_| bad(format!("unknown ack level {}", req.ack)))?;
        if !req.batch.is_empty() && !req.records.is_empty() {
            return Err(bad("set either records or batch, not both"));
        }
        if req.batch.is_empty() && req.records.is_empty() {
            return Err(bad("empty batch: the request holds no records"));
        }
        let t = cx.route(&req.topic, req.partition, true).await?;
        // Tests make the shard's executor panic here (see `supervisor`).
        fail::fail_point!("shard-produce");
        let epoch = cx
            .leases
            .check(&t.key, req.partition, Instant::now())
            .map_err(|p| lease_status(&req.topic, req.partition, p))?;
        let backlog = cx.upload_backlog();
        if backlog > cx.config.max_upload_backlog_bytes {
            return Err(Status::new(
                Code::ResourceExhausted,
                format!(
                    "{backlog} bytes are waiting for upload to object storage (limit {}); \
                     is the object store reachable?",
                    cx.config.max_upload_backlog_bytes
                ),
            ));
        }
        let encoded_here = req.batch.is_empty();
        let mut encoded = if !encoded_here {
            // The whole records section is checked before anything is
            // acknowledged: a batch the agent accepts, every reader can
            // decode. Checked once; the log trusts the checked batch.
            let (max_batch, max_record) = (cx.config.max_request_bytes, cx.config.max_record_bytes);
            CheckedBatch::check(std::mem::take(&mut req.batch), max_batch, max_record).map_err(
                |e| match e {
                    batch::BatchError::TooLarge { .. }
                    | batch::BatchError::RecordTooLarge { .. } => {
                        Status::new(Code::ResourceExhausted, format!("batch too large: {e}"))
                    }
                    e => bad(format!("invalid batch: {e}")),
                },
            )?
        } else {
            cx.encode_records(&req, cx.append_clock.stamp(&t.key, req.partition, now_ms()))?
        };
        let most = t
            .entry
            .config
            .max_message_bytes(&cx.config.topic_defaults());
        if encoded.len() as u64 > most {
            return Err(Status::new(
                Code::ResourceExhausted,
                format!(
                    "batch too large: {} bytes; topic {} takes at most {most} \
                     (max.message.bytes)",
                    encoded.len(),
                    req.topic
                ),
            ));
        }
        // A batch that overtook an earlier one of its producer waits for it;
        // the lease may change meanwhile, so it is checked again after.
        {
            let h = *encoded.header();
            let waited = cx
                .log
                .wait_for_turn(
                    &t.key,
                    req.partition,
                    h.producer,
                    h.record_count,
                    req.oldest_sequence,
                )
                .await;
            if waited {
                if encoded_here {
                    // Stamped again: batches that went first while this
                    // one waited were stamped later.
                    let now = cx.append_clock.stamp(&t.key, req.partition, now_ms());
                    encoded = cx.encode_records(&req, now)?;
                }
                match cx.leases.check(&t.key, req.partition, Instant::now()) {
                    Ok(e) if e == epoch => {}
                    Ok(_) => {
                        return Err(Status::new(
                            Code::Unavailable,
                            format!(
                                "lease of {}/{} changed while the batch waited for its turn; retry",
                                req.topic, req.partition
                            ),
                        ))
                    }
                    Err(p) => return Err(lease_status(&req.topic, req.partition, p)),
                }
            }
        }
        let batch_len = encoded.len() as u64;
        // No await between the stamp and the append: records stamped later
        // get later offsets.
        let appended = cx
            .log
            .append_in_flight(&t.key, req.partition, encoded, req.oldest_sequence)
            .await
            .map_err(log_status)?;
        if !appended.duplicate {
            let m = &cx.metrics;
            m.produce_requests.fetch_add(1, Ordering::Relaxed);
            m.produce_records
                .fetch_add(u64::from(appended.record_count), Ordering::Relaxed);
            m.produce_bytes.fetch_add(batch_len, Ordering::Relaxed);
            m.batch_records.observe(u64::from(appended.record_count));
            if let Some(tr) = t.entry.traffic.get(req.partition as usize) {
                tr.produced_records
                    .fetch_add(u64::from(appended.record_count), Ordering::Relaxed);
                tr.produced_bytes.fetch_add(batch_len, Ordering::Relaxed);
            }
        }
        t.entry.high_watermarks[req.partition as usize].fetch_max(
            appended.base_offset + u64::from(appended.record_count),
            Ordering::Relaxed,
        );
        // Tests hold a written batch here to stop the agent before its ack.
        fail::fail_point!("shard-produce-written");
        if ack == pb::AckLevel::AckDurable {
            cx.leases
                .may_acknowledge(&t.key, req.partition, epoch, Instant::now())
                .map_err(|p| {
                    Status::new(
                        Code::Unavailable,
                        format!(
                            "the lease of {}/{} lapsed while the batch was written ({}): it \
                             may not be kept; retry with the partition's leader (an idempotent \
                             producer's retry is never stored twice)",
                            req.topic,
                            req.partition,
                            match p {
                                LeaseProblem::Lost(why) => why,
                                LeaseProblem::NotHeld => "no longer held".into(),
                                LeaseProblem::Moving => "moving".into(),
                            }
                        ),
                    )
                })?;
        }
        if ack == pb::AckLevel::AckObject {
            if let Some(segment) = appended.segment {
                if segment == cx.log.active_segment() {
                    cx.log.hurry_seal();
                }
                cx.wait_committed(segment).await?;
            }
            // Committed chunks leave fenced partitions out: with the lease
            // still held at the same epoch the batch was committed; else
            // (moving, handed over, lost) it was if its partition's
            // committed end covers it.
            let end = appended.base_offset + u64::from(appended.record_count);
            let held = matches!(cx.leases.check(&t.key, req.partition, Instant::now()), Ok(e) if e == epoch);
            let committed = cx.uploads.covers(&t.key, req.partition, end);
            if !held && !committed {
                return Err(Status::new(
                    Code::Unavailable,
                    format!(
                        "{}/{} moved to another agent before the batch reached object storage: \
                         it is not stored; retry with the partition's new leader",
                        req.topic, req.partition
                    ),
                ));
            }
        }
        Ok(pb::ProduceResponse {
            base_offset: appended.base_offset,
            record_count: appended.record_count,
            duplicate: appended.duplicate,
            append_time: now_ms() as u64,
        })
    }
}

impl ShardContext {
    /// The request's records as one batch; records without a timestamp
    /// get `now` (ms since the Unix epoch, from the partition's
    /// [`AppendClock`](super::append_clock::AppendClock)). Built here, so
    /// not checked again.
    pub(super) fn encode_records(
        &self,
        req: &pb::ProduceRequest,
        now: i64,
    ) -> Result<CheckedBatch, Status> {
        let epoch = i16::try_from(req.producer_epoch).map_err(|_| {
            bad(format!(
                "producer_epoch {} is out of range",
                req.producer_epoch
            ))
        })?;
        let producer = ProducerInfo {
            producer_id: req.producer_id,
            producer_epoch: epoch,
            base_sequence: req.base_sequence,
        };
        let mut b = BatchBuilder::with_capacity(Codec::None, producer, req.records.len() * 128);
        let mut headers = Vec::new();
        for (i, r) in req.records.iter().enumerate() {
            let size = r.key.as_ref().map_or(0, |k| k.len())
                + r.value.len()
                + r.headers
                    .iter()
                    .map(|h| h.key.len() + h.value.len())
                    .sum::<usize>();
            if size > self.config.max_record_bytes {
                return Err(Status::new(
                    Code::ResourceExhausted,
                    format!(
                        "record {i} is {size} bytes; the limit is {} bytes",
                        self.config.max_record_bytes
                    ),
                ));
            }
            let ts = match r.timestamp {
                0 => now,
                t => i64::try_from(t)
                    .map_err(|_| bad(format!("record {i} timestamp {t} is out of range")))?,
            };
            headers.clear();
            headers.extend(r.headers.iter().map(|h| (h.key.clone(), h.value.clone())));
            b.push(r.key.as_deref(), &r.value, ts, &headers);
        }
        b.finish_checked()
            .map_err(|e| bad(format!("invalid records: {e}")))
    }
}
