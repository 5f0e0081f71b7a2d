//! `AdminService/AlterConfigs`: sets and deletes configuration keys of a topic, all or
//! none (checked and stored by the control thread).

use streamhouse_proto as pb;

use crate::auth::acl::Operation;
use crate::auth::{Access, Need};
use crate::control::inbox::ToControl;
use crate::shard::budget::ReplyBudget;
use crate::shard::context::ShardContext;
use crate::shard::grpc::Status;
use crate::shard::status::control_status;

use super::super::ShardRpc;

pub(crate) struct AlterConfigs;

impl ShardRpc for AlterConfigs {
    const PATH: &'static str = pb::paths::ALTER_CONFIGS;
    const REQUEST: &'static str = "AlterConfigsRequest";
    type Request = pb::AlterConfigsRequest;
    type Response = pb::AlterConfigsResponse;

    fn needs(req: &pb::AlterConfigsRequest) -> Vec<Need<'_>> {
        vec![Need::topic(Operation::Alter, &req.topic)]
    }

    /// Cancelling it after the control thread took it does not withdraw
    /// it: the change may be stored.
    async fn handle(
        cx: &ShardContext,
        req: pb::AlterConfigsRequest,
        _reply: &mut ReplyBudget,
        _access: Option<&Access>,
    ) -> Result<pb::AlterConfigsResponse, Status> {
        let config = cx
            .control
            .call(|reply| ToControl::AlterConfigs {
                name: req.topic.clone(),
                set: req.set.into_iter().collect(),
                delete: req.delete,
                reply,
            })
            .await
            .map_err(control_status)?;
        Ok(pb::AlterConfigsResponse {
            configs: Some(cx.configs_of(&req.topic, &config)),
        })
    }
}
