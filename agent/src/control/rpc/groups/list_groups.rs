//! `ListGroups`: every consumer group the metadata store knows, with its state.
//! Changes nothing.

use std::sync::Arc;

use streamhouse_proto as pb;

use crate::control::rpc::{Caller, ControlRpc};
use crate::control::state::Shared;
use crate::messages::ControlError;

pub(crate) struct ListGroups;

impl ControlRpc for ListGroups {
    const PATH: &'static str = pb::paths::LIST_GROUPS;
    const REQUEST: &'static str = "ListGroupsRequest";
    type Request = pb::ListGroupsRequest;
    type Response = pb::ListGroupsResponse;

    async fn handle(
        shared: Arc<Shared>,
        _req: pb::ListGroupsRequest,
        _caller: Caller,
    ) -> Result<pb::ListGroupsResponse, ControlError> {
        shared.groups.list(&shared.group_cx()).await
    }
}
