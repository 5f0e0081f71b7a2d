//! `DeleteRecords` on the shard that leads the partition: checks the
//! offset against the high watermark, has the control thread move the log
//! start in the metadata store under the lease, and applies it here at
//! once. The records go from object storage with retention's sweep.

use std::time::Instant;

use bytes::Bytes;
use streamhouse_proto as pb;

use crate::ids::TopicKey;
use crate::messages::ToControl;

use super::context::ShardContext;
use super::grpc::{encode_reply, Code, Status};
use super::status::{control_status, lease_status};

impl ShardContext {
    /// Cancelling it after the control thread took the request does not
    /// withdraw it: the log start may have moved.
    pub(super) async fn delete_records(
        &self,
        req: pb::DeleteRecordsRequest,
    ) -> Result<Bytes, Status> {
        let t = self.route(&req.topic, req.partition, false).await?;
        self.leases
            .check(&t.key, req.partition, Instant::now())
            .map_err(|p| lease_status(&req.topic, req.partition, p))?;
        let high = self.log.high_watermark(&t.key, req.partition).unwrap_or(0);
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
        let start = self
            .control
            .call(|reply| ToControl::DeleteRecords {
                topic: TopicKey::from_stored(&t.key),
                partition: req.partition,
                to,
                reply,
            })
            .await
            .map_err(control_status)?;
        self.log_starts.advance(&t.key, req.partition, start);
        Ok(encode_reply(&pb::DeleteRecordsResponse {
            low_watermark: start,
        }))
    }
}
