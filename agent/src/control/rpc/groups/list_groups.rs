//! `ListGroups`: every consumer group the metadata store knows, with its state.
//! Changes nothing.

use std::sync::Arc;

use streamhouse_proto as pb;

use crate::auth::acl::Operation;
use crate::auth::Need;
use crate::control::rpc::{Caller, ControlRpc};
use crate::control::state::Shared;
use crate::messages::ControlError;

pub(crate) struct ListGroups;

impl ControlRpc for ListGroups {
    const PATH: &'static str = pb::paths::LIST_GROUPS;
    const REQUEST: &'static str = "ListGroupsRequest";
    type Request = pb::ListGroupsRequest;
    type Response = pb::ListGroupsResponse;

    fn needs(_req: &pb::ListGroupsRequest) -> Vec<Need<'_>> {
        Vec::new()
    }

    async fn handle(
        shared: Arc<Shared>,
        _req: pb::ListGroupsRequest,
        caller: Caller,
    ) -> Result<pb::ListGroupsResponse, ControlError> {
        let mut answer = shared.groups.list(&shared.group_cx()).await?;
        if let Some(a) = &caller.access {
            answer
                .groups
                .retain(|g| a.may(Need::group(Operation::Describe, &g.group_id)));
        }
        Ok(answer)
    }
}
