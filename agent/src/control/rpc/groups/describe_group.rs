//! `DescribeGroup`: one group's members, assignment, offsets and lag. Changes
//! nothing.

use std::sync::Arc;

use streamhouse_proto as pb;

use crate::auth::acl::Operation;
use crate::auth::Need;
use crate::control::rpc::{Caller, ControlRpc};
use crate::control::state::Shared;
use crate::messages::ControlError;

pub(crate) struct DescribeGroup;

impl ControlRpc for DescribeGroup {
    const PATH: &'static str = pb::paths::DESCRIBE_GROUP;
    const REQUEST: &'static str = "DescribeGroupRequest";
    type Request = pb::DescribeGroupRequest;
    type Response = pb::DescribeGroupResponse;

    fn needs(req: &pb::DescribeGroupRequest) -> Vec<Need<'_>> {
        vec![Need::group(Operation::Describe, &req.group_id)]
    }

    async fn handle(
        shared: Arc<Shared>,
        req: pb::DescribeGroupRequest,
        _caller: Caller,
    ) -> Result<pb::DescribeGroupResponse, ControlError> {
        shared.groups.describe(&shared.group_cx(), req).await
    }
}
