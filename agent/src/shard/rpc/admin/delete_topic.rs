//! `AdminService/DeleteTopic`: deletes a topic through the control thread.

use streamhouse_proto as pb;

use crate::auth::acl::Operation;
use crate::auth::{Access, Need};
use crate::control::inbox::ToControl;
use crate::shard::budget::ReplyBudget;
use crate::shard::context::ShardContext;
use crate::shard::grpc::Status;
use crate::shard::status::control_status;

use super::super::ShardRpc;

pub(crate) struct DeleteTopic;

impl ShardRpc for DeleteTopic {
    const PATH: &'static str = pb::paths::DELETE_TOPIC;
    const REQUEST: &'static str = "DeleteTopicRequest";
    type Request = pb::DeleteTopicRequest;
    type Response = pb::DeleteTopicResponse;

    fn needs(req: &pb::DeleteTopicRequest) -> Vec<Need<'_>> {
        vec![Need::topic(Operation::Delete, &req.name)]
    }

    /// Cancelling it after the control thread took it does not withdraw
    /// it: the topic may be deleted.
    async fn handle(
        cx: &ShardContext,
        req: pb::DeleteTopicRequest,
        _reply: &mut ReplyBudget,
        _access: Option<&Access>,
    ) -> Result<pb::DeleteTopicResponse, Status> {
        cx.control
            .call(|reply| ToControl::DeleteTopic {
                name: req.name.clone(),
                reply,
            })
            .await
            .map_err(control_status)?;
        cx.refresh_topics();
        Ok(pb::DeleteTopicResponse {})
    }
}
