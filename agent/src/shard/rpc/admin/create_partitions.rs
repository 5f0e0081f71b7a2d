//! `AdminService/CreatePartitions`: raises a topic's partition count through the control
//! thread, answered with the topic's metadata.

use streamhouse_proto as pb;

use crate::auth::acl::Operation;
use crate::auth::{Access, Need};
use crate::control::inbox::ToControl;
use crate::shard::budget::ReplyBudget;
use crate::shard::context::ShardContext;
use crate::shard::grpc::Status;
use crate::shard::status::control_status;

use super::super::ShardRpc;

pub(crate) struct CreatePartitions;

impl ShardRpc for CreatePartitions {
    const PATH: &'static str = pb::paths::CREATE_PARTITIONS;
    const REQUEST: &'static str = "CreatePartitionsRequest";
    type Request = pb::CreatePartitionsRequest;
    type Response = pb::CreatePartitionsResponse;

    fn needs(req: &pb::CreatePartitionsRequest) -> Vec<Need<'_>> {
        vec![Need::topic(Operation::Alter, &req.topic)]
    }

    /// Cancelling it after the control thread took it does not withdraw
    /// it: the partitions may be added.
    async fn handle(
        cx: &ShardContext,
        req: pb::CreatePartitionsRequest,
        _reply: &mut ReplyBudget,
        _access: Option<&Access>,
    ) -> Result<pb::CreatePartitionsResponse, Status> {
        cx.control
            .call(|reply| ToControl::CreatePartitions {
                name: req.topic.clone(),
                count: req.count,
                reply,
            })
            .await
            .map_err(control_status)?;
        cx.refresh_topics();
        let topic = cx.describe(&req.topic).await?;
        Ok(pb::CreatePartitionsResponse { topic: Some(topic) })
    }
}
