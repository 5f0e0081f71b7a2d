//! `AdminService/CreateTopic`: created through the control thread (names, counts and
//! configuration checked there), answered with its metadata.

use streamhouse_proto as pb;

use crate::auth::acl::Operation;
use crate::auth::{Access, Need};
use crate::control::inbox::ToControl;
use crate::shard::budget::ReplyBudget;
use crate::shard::context::ShardContext;
use crate::shard::grpc::Status;
use crate::shard::status::control_status;

use super::super::ShardRpc;

pub(crate) struct CreateTopic;

impl ShardRpc for CreateTopic {
    const PATH: &'static str = pb::paths::CREATE_TOPIC;
    const REQUEST: &'static str = "CreateTopicRequest";
    type Request = pb::CreateTopicRequest;
    type Response = pb::CreateTopicResponse;

    fn needs(req: &pb::CreateTopicRequest) -> Vec<Need<'_>> {
        vec![Need::topic(Operation::Create, &req.name)]
    }

    /// Cancelling it after the control thread took it does not withdraw
    /// it: the topic may be created.
    async fn handle(
        cx: &ShardContext,
        req: pb::CreateTopicRequest,
        _reply: &mut ReplyBudget,
        _access: Option<&Access>,
    ) -> Result<pb::CreateTopicResponse, Status> {
        cx.control
            .call(|reply| ToControl::CreateTopic {
                name: req.name.clone(),
                partitions: req.partitions,
                config: req.configs.into_iter().collect(),
                reply,
            })
            .await
            .map_err(control_status)?;
        let topic = cx.describe(&req.name).await?;
        Ok(pb::CreateTopicResponse { topic: Some(topic) })
    }
}
