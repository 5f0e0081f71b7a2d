//! `CommitOffsets`: a member commits offsets, on the agent that coordinates the
//! group; an offset past its partition's high watermark is refused.

use std::sync::Arc;

use streamhouse_proto as pb;

use crate::auth::acl::Operation;
use crate::auth::Need;
use crate::control::rpc::{Caller, ControlRpc};
use crate::control::state::Shared;
use crate::messages::ControlError;

pub(crate) struct CommitOffsets;

impl ControlRpc for CommitOffsets {
    const PATH: &'static str = pb::paths::COMMIT_OFFSETS;
    const REQUEST: &'static str = "CommitOffsetsRequest";
    type Request = pb::CommitOffsetsRequest;
    type Response = pb::CommitOffsetsResponse;

    fn needs(req: &pb::CommitOffsetsRequest) -> Vec<Need<'_>> {
        let mut needs = vec![Need::group(Operation::Consume, &req.group_id)];
        needs.extend(
            req.offsets
                .iter()
                .map(|o| Need::topic(Operation::Consume, &o.topic)),
        );
        needs
    }

    /// Cancelling it may leave the commit saved or not.
    async fn handle(
        shared: Arc<Shared>,
        req: pb::CommitOffsetsRequest,
        _caller: Caller,
    ) -> Result<pb::CommitOffsetsResponse, ControlError> {
        shared.coordinated_here(&req.group_id)?;
        shared.check_commit_ends(&req).await?;
        shared.groups.commit(&shared.group_cx(), req).await
    }
}
