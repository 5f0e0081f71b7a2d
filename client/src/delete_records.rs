//! Deleting a partition's oldest records through [`Admin`]
//! (`DeleteRecords`, Kafka's delete-records): the call goes to the shard
//! that leads the partition, found in the cluster metadata. Owns the call
//! only.

use streamhouse_proto as pb;
use streamhouse_proto::admin_service_client::AdminServiceClient;

use crate::admin::Admin;
use crate::error::{Error, Result};
use crate::net::pool::bounded;

impl Admin {
    /// Deletes the records of `topic`/`partition` before `before` (`None`:
    /// every record written so far, up to the high watermark): the
    /// partition's log start moves there, never back, and reads below it
    /// answer `OutOfRange`. Returns the log start now. `OutOfRange` when
    /// `before` is past the high watermark; `Unavailable` while the
    /// partition has no leader.
    ///
    /// # Errors
    /// [`Error::Status`] with [`Code::OutOfRange`](crate::Code::OutOfRange)
    /// when `before` is past the high watermark,
    /// [`Code::NotFound`](crate::Code::NotFound) for an unknown topic or
    /// partition; [`Error::Transport`] when the leader cannot be reached.
    ///
    /// # Cancellation
    /// A request already sent is not withdrawn: after a dropped future the
    /// log start may or may not have moved.
    pub async fn delete_records(
        &self,
        topic: &str,
        partition: u32,
        before: Option<u64>,
    ) -> Result<u64> {
        let described = self.describe_topic(topic).await?;
        let leader = described
            .partitions
            .iter()
            .find(|p| p.partition == partition)
            .ok_or_else(|| Error::Status {
                code: crate::Code::NotFound,
                message: format!("partition {partition} of {topic} does not exist"),
                retry_after: None,
            })?
            .leader_address
            .clone();
        if leader.is_empty() {
            return Err(Error::Status {
                code: crate::Code::Unavailable,
                message: format!("{topic}/{partition} has no leader right now; try again"),
                retry_after: None,
            });
        }
        let offset = match before {
            Some(o) => i64::try_from(o).map_err(|_| {
                Error::Config(format!("offset {o} is past the largest offset (2^63 - 1)"))
            })?,
            None => -1,
        };
        let mut c = AdminServiceClient::new(self.pool_get(&leader).await?);
        let req = pb::DeleteRecordsRequest {
            topic: topic.into(),
            partition,
            offset,
        };
        let r = bounded(self.call_timeout(), "DeleteRecords", c.delete_records(req)).await?;
        Ok(r.into_inner().low_watermark)
    }
}
