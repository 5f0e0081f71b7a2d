//! `DeleteRecords` on the shard that leads the partition: checks the
//! offset against the high watermark, has the control thread move the log
//! start in the metadata store under the lease, and applies it here at
//! once. The records go from object storage with retention's sweep.

use std::time::Instant;

use streamhouse_proto as pb;

use crate::auth::acl::Operation;
use crate::auth::{Access, Need};
use crate::control::inbox::ToControl;
use crate::ids::TopicKey;

use crate::shard::budget::ReplyBudget;
use crate::shard::context::ShardContext;
use crate::shard::grpc::{Code, Status};
use crate::shard::status::{control_status, lease_status};

use super::ShardRpc;

/// `AdminService/DeleteRecords`.
pub(crate) struct DeleteRecords;

impl ShardRpc for DeleteRecords {
    const PATH: &'static str = pb::paths::DELETE_RECORDS;
    const REQUEST: &'static str = "DeleteRecordsRequest";
    type Request = pb::DeleteRecordsRequest;
    type Response = pb::DeleteRecordsResponse;

    fn partition(req: &pb::DeleteRecordsRequest) -> Option<(&str, u32)> {
        Some((&req.topic, req.partition))
    }

    fn needs(req: &pb::DeleteRecordsRequest) -> Vec<Need<'_>> {
        vec![Need::topic(Operation::Delete, &req.topic)]
    }

    /// Cancelling it after the control thread took the request does not
    /// withdraw it: the log start may have moved.
    async fn handle(
        cx: &ShardContext,
        req: pb::DeleteRecordsRequest,
        _reply: &mut ReplyBudget,
        _access: Option<&Access>,
    ) -> Result<pb::DeleteRecordsResponse, Status> {
        let t = cx.route(&req.topic, req.partition, false).await?;
        cx.leases
            .check(&t.key, req.partition, Instant::now())
            .map_err(|p| lease_status(&req.topic, req.partition, p))?;
        let high = cx.log.high_watermark(&t.key, req.partition).unwrap_or(0);
        let to = match req.offset {
            -1 => high,
            o if o < 0 => {
                return Err(Status::new(
                    Code::InvalidArgument,
                    format!("offset {o}: use -1 (the high watermark) or an offset"),
                ))
            }
            o if o as u64 > high => {
                return Err(Status::new(
                    Code::OutOfRange,
                    format!(
                        "offset {o} of {}/{} is past the high watermark {high}",
                        req.topic, req.partition
                    ),
                ))
            }
            o => o as u64,
        };
        let start = cx
            .control
            .call(|reply| ToControl::DeleteRecords {
                topic: TopicKey::from_stored(&t.key),
                partition: req.partition,
                to,
                reply,
            })
            .await
            .map_err(control_status)?;
        cx.log_starts.advance(&t.key, req.partition, start);
        Ok(pb::DeleteRecordsResponse {
            low_watermark: start,
        })
    }
}
