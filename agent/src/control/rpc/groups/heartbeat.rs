//! `GroupHeartbeat`: a member joins, stays, leaves or acknowledges its
//! assignment (`crate::groups::live`), on the agent that coordinates the
//! group.

use std::sync::Arc;

use streamhouse_proto as pb;

use crate::auth::acl::Operation;
use crate::auth::Need;
use crate::control::rpc::{Caller, ControlRpc};
use crate::control::state::Shared;
use crate::messages::ControlError;

pub(crate) struct GroupHeartbeat;

impl ControlRpc for GroupHeartbeat {
    const PATH: &'static str = pb::paths::GROUP_HEARTBEAT;
    const REQUEST: &'static str = "GroupHeartbeatRequest";
    type Request = pb::GroupHeartbeatRequest;
    type Response = pb::GroupHeartbeatResponse;

    fn needs(req: &pb::GroupHeartbeatRequest) -> Vec<Need<'_>> {
        vec![Need::group(Operation::Consume, &req.group_id)]
    }

    /// Cancelling it may leave the member's change saved or not.
    async fn handle(
        shared: Arc<Shared>,
        req: pb::GroupHeartbeatRequest,
        caller: Caller,
    ) -> Result<pb::GroupHeartbeatResponse, ControlError> {
        shared.coordinated_here(&req.group_id)?;
        shared
            .groups
            .heartbeat(&shared.group_cx(), req, caller.peer)
            .await
    }
}
