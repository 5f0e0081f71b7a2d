//! The consumer-group RPCs on a shard: each decoded request goes to the
//! control thread (`control/groups.rs`), which answers from the metadata
//! store; this module only forwards and encodes.

use bytes::Bytes;
use streamhouse_proto as pb;

use crate::messages::{GroupAnswer, GroupCall, ToControl};

use super::context::ShardContext;
use super::grpc::{decode, encode_reply, read_message, Body, Code, Status};
use super::status::control_status;

/// The `GroupService` method paths this agent serves.
const PATHS: [&str; 7] = [
    pb::paths::FIND_COORDINATOR,
    pb::paths::GROUP_HEARTBEAT,
    pb::paths::COMMIT_OFFSETS,
    pb::paths::FETCH_OFFSETS,
    pb::paths::LIST_GROUPS,
    pb::paths::DESCRIBE_GROUP,
    pb::paths::DELETE_GROUP,
];

/// Whether `path` is a `GroupService` method.
pub(super) fn is_group_path(path: &str) -> bool {
    path.starts_with("/streamhouse.GroupService/")
}

impl ShardContext {
    /// One `GroupService` call (`path` one of its methods). Cancelling it
    /// may leave a heartbeat's or commit's change saved or not.
    pub(super) async fn group_call(&self, path: &str, body: &mut Body) -> Result<Bytes, Status> {
        if !PATHS.contains(&path) {
            return Err(Status::new(
                Code::Unimplemented,
                format!("unknown method {path}"),
            ));
        }
        let bytes = read_message(body, self.config.max_request_bytes).await?;
        let call = match path {
            pb::paths::FIND_COORDINATOR => {
                GroupCall::FindCoordinator(decode(bytes, "FindCoordinatorRequest")?)
            }
            pb::paths::GROUP_HEARTBEAT => {
                GroupCall::Heartbeat(decode(bytes, "GroupHeartbeatRequest")?)
            }
            pb::paths::COMMIT_OFFSETS => GroupCall::Commit(decode(bytes, "CommitOffsetsRequest")?),
            pb::paths::FETCH_OFFSETS => {
                GroupCall::FetchOffsets(decode(bytes, "FetchOffsetsRequest")?)
            }
            pb::paths::DESCRIBE_GROUP => {
                GroupCall::Describe(decode(bytes, "DescribeGroupRequest")?)
            }
            pb::paths::DELETE_GROUP => GroupCall::Delete(decode(bytes, "DeleteGroupRequest")?),
            _ => {
                let _: pb::ListGroupsRequest = decode(bytes, "ListGroupsRequest")?;
                GroupCall::List
            }
        };
        let answer = self
            .control
            .call(|reply| ToControl::Group { call, reply })
            .await
            .map_err(control_status)?;
        Ok(match answer {
            GroupAnswer::FindCoordinator(r) => encode_reply(&r),
            GroupAnswer::Heartbeat(r) => encode_reply(&r),
            GroupAnswer::Commit(r) => encode_reply(&r),
            GroupAnswer::FetchOffsets(r) => encode_reply(&r),
            GroupAnswer::List(r) => encode_reply(&r),
            GroupAnswer::Describe(r) => encode_reply(&r),
            GroupAnswer::Delete(r) => encode_reply(&r),
        })
    }
}
