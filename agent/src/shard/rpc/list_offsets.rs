//! ListOffsets on a shard: a partition's earliest and latest offsets and the
//! first offset whose record is at or after a time, for partitions this
//! shard leads. Time lookups search the committed ranges in object storage
//! (the chunk index's time index, through the control thread) below the
//! local log start, then the local log's time index. Reads only.

use std::time::Instant;

use streamhouse_proto as pb;
use streamhouse_storage::TimeMatch;

use crate::auth::acl::Operation;
use crate::auth::{Access, Need};
use crate::control::inbox::ToControl;
use crate::ids::TopicKey;

use crate::shard::budget::ReplyBudget;
use crate::shard::context::ShardContext;
use crate::shard::grpc::{Code, Status};
use crate::shard::leases::LeaseProblem;
use crate::shard::status::{control_status, lease_status, log_status};

use super::ShardRpc;

/// Queries one ListOffsets may carry (each time query reads a bounded
/// number of batches and ranges; see `control::remote::MAX_RANGES_READ`).
pub const MAX_QUERIES: usize = 1_000;
/// `timestamp_ms` asking for the log start.
pub const EARLIEST: i64 = -2;
/// `timestamp_ms` asking for the high watermark.
pub const LATEST: i64 = -1;

/// `GroupService/ListOffsets` (answered by the partitions' leaders).
pub(crate) struct ListOffsets;

impl ShardRpc for ListOffsets {
    const PATH: &'static str = pb::paths::LIST_OFFSETS;
    const REQUEST: &'static str = "ListOffsetsRequest";
    type Request = pb::ListOffsetsRequest;
    type Response = pb::ListOffsetsResponse;

    fn needs(req: &pb::ListOffsetsRequest) -> Vec<Need<'_>> {
        vec![Need::topic(Operation::Describe, &req.topic)]
    }

    /// Answers every query of `req` in order, or fails as a whole with the
    /// first partition's problem (unknown, not led here, a store that
    /// cannot be read). Cancelling it leaves nothing behind.
    async fn handle(
        cx: &ShardContext,
        req: pb::ListOffsetsRequest,
        _reply: &mut ReplyBudget,
        _access: Option<&Access>,
    ) -> Result<pb::ListOffsetsResponse, Status> {
        if req.queries.len() > MAX_QUERIES {
            return Err(Status::new(
                Code::InvalidArgument,
                format!(
                    "ListOffsets names {} partitions; at most {MAX_QUERIES} per request",
                    req.queries.len()
                ),
            ));
        }
        let mut answers = Vec::with_capacity(req.queries.len());
        for q in &req.queries {
            let t = cx.route(&req.topic, q.partition, false).await?;
            match cx.leases.check(&t.key, q.partition, Instant::now()) {
                Ok(_) | Err(LeaseProblem::Moving) => {}
                Err(p) => return Err(lease_status(&req.topic, q.partition, p)),
            }
            let high = cx.log.high_watermark(&t.key, q.partition).unwrap_or(0);
            let start = cx.log_starts.get(&t.key, q.partition).min(high);
            let (offset, timestamp_ms) = match q.timestamp_ms {
                EARLIEST => (start, -1),
                LATEST => (high, -1),
                ts if ts < 0 => {
                    return Err(Status::new(
                        Code::InvalidArgument,
                        format!(
                            "timestamp {ts} of {}/{}: use -2 (earliest), -1 (latest) or a time \
                             in ms since the Unix epoch",
                            req.topic, q.partition
                        ),
                    ))
                }
                ts => match cx.offset_for_time(&t.key, q.partition, ts).await? {
                    // Its record was deleted: the first still readable.
                    Some(m) if m.offset < start => (start, -1),
                    Some(m) => (m.offset, m.timestamp_ms),
                    None => (high, -1),
                },
            };
            answers.push(pb::list_offsets_response::Answer {
                partition: q.partition,
                offset,
                timestamp_ms,
            });
        }
        Ok(pb::ListOffsetsResponse { answers })
    }
}

impl ShardContext {
    /// The first record at or after `timestamp_ms`: in object storage below
    /// the local log start, else in the local log; `None` when no record
    /// reaches that time.
    async fn offset_for_time(
        &self,
        key: &str,
        partition: u32,
        timestamp_ms: i64,
    ) -> Result<Option<TimeMatch>, Status> {
        let local_start = self.log.log_start(key, partition).unwrap_or(0);
        if local_start > 0 {
            let remote = self
                .control
                .call(|reply| ToControl::RemoteOffsetForTime {
                    topic: TopicKey::from_stored(key),
                    partition,
                    timestamp_ms,
                    below: local_start,
                    reply,
                })
                .await
                .map_err(control_status)?;
            if remote.is_some() {
                return Ok(remote);
            }
        }
        self.log
            .offset_for_time(key, partition, local_start, timestamp_ms)
            .await
            .map_err(log_status)
    }
}
