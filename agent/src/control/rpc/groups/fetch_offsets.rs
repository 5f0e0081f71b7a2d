//! `FetchOffsets`: a group's committed offsets, from the metadata store. Changes
//! nothing.

use std::sync::Arc;

use streamhouse_proto as pb;

use crate::auth::acl::Operation;
use crate::auth::Need;
use crate::control::rpc::{Caller, ControlRpc};
use crate::control::state::Shared;
use crate::messages::ControlError;

pub(crate) struct FetchOffsets;

impl ControlRpc for FetchOffsets {
    const PATH: &'static str = pb::paths::FETCH_OFFSETS;
    const REQUEST: &'static str = "FetchOffsetsRequest";
    type Request = pb::FetchOffsetsRequest;
    type Response = pb::FetchOffsetsResponse;

    fn needs(req: &pb::FetchOffsetsRequest) -> Vec<Need<'_>> {
        vec![Need::group(Operation::Describe, &req.group_id)]
    }

    async fn handle(
        shared: Arc<Shared>,
        req: pb::FetchOffsetsRequest,
        _caller: Caller,
    ) -> Result<pb::FetchOffsetsResponse, ControlError> {
        shared.groups.fetch_offsets(&shared.group_cx(), req).await
    }
}
