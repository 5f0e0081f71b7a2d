//! `DeleteGroup`: deletes a group without members, with its offsets.

use std::sync::Arc;

use streamhouse_proto as pb;

use crate::auth::acl::Operation;
use crate::auth::Need;
use crate::control::rpc::{Caller, ControlRpc};
use crate::control::state::Shared;
use crate::messages::ControlError;

pub(crate) struct DeleteGroup;

impl ControlRpc for DeleteGroup {
    const PATH: &'static str = pb::paths::DELETE_GROUP;
    const REQUEST: &'static str = "DeleteGroupRequest";
    type Request = pb::DeleteGroupRequest;
    type Response = pb::DeleteGroupResponse;

    fn needs(req: &pb::DeleteGroupRequest) -> Vec<Need<'_>> {
        vec![Need::group(Operation::Delete, &req.group_id)]
    }

    /// Cancelling it may leave the group deleted or not.
    async fn handle(
        shared: Arc<Shared>,
        req: pb::DeleteGroupRequest,
        _caller: Caller,
    ) -> Result<pb::DeleteGroupResponse, ControlError> {
        shared.groups.delete(&shared.group_cx(), req).await
    }
}
