//! `FindCoordinator`: which live agent coordinates a group (rendezvous hashing of its id
//! over the live agents) and the address of its shard for it. Changes
//! nothing.

use std::sync::Arc;

use streamhouse_proto as pb;

use crate::auth::acl::Operation;
use crate::auth::Need;
use crate::control::rpc::{Caller, ControlRpc};
use crate::control::state::Shared;
use crate::messages::ControlError;

pub(crate) struct FindCoordinator;

impl ControlRpc for FindCoordinator {
    const PATH: &'static str = pb::paths::FIND_COORDINATOR;
    const REQUEST: &'static str = "FindCoordinatorRequest";
    type Request = pb::FindCoordinatorRequest;
    type Response = pb::FindCoordinatorResponse;

    fn needs(req: &pb::FindCoordinatorRequest) -> Vec<Need<'_>> {
        vec![Need::group(Operation::Describe, &req.group_id)]
    }

    async fn handle(
        shared: Arc<Shared>,
        req: pb::FindCoordinatorRequest,
        _caller: Caller,
    ) -> Result<pb::FindCoordinatorResponse, ControlError> {
        shared.find_coordinator(&req.group_id).await
    }
}
