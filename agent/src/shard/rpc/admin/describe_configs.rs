//! `AdminService/DescribeConfigs`: every configuration key of a topic with the value in
//! effect and where it comes from. Changes nothing.

use crate::auth::acl::Operation;
use crate::auth::{Access, Need};
use crate::shard::budget::ReplyBudget;
use crate::shard::context::ShardContext;
use crate::shard::grpc::{Code, Status};
use streamhouse_proto as pb;

use super::super::ShardRpc;

pub(crate) struct DescribeConfigs;

impl ShardRpc for DescribeConfigs {
    const PATH: &'static str = pb::paths::DESCRIBE_CONFIGS;
    const REQUEST: &'static str = "DescribeConfigsRequest";
    type Request = pb::DescribeConfigsRequest;
    type Response = pb::DescribeConfigsResponse;

    fn needs(req: &pb::DescribeConfigsRequest) -> Vec<Need<'_>> {
        vec![Need::topic(Operation::Describe, &req.topic)]
    }

    async fn handle(
        cx: &ShardContext,
        req: pb::DescribeConfigsRequest,
        _reply: &mut ReplyBudget,
        _access: Option<&Access>,
    ) -> Result<pb::DescribeConfigsResponse, Status> {
        if cx.catalog.get(&req.topic).is_none() {
            cx.sync_topics().await?;
        }
        let t = cx
            .catalog
            .get(&req.topic)
            .ok_or_else(|| Status::new(Code::NotFound, format!("unknown topic {}", req.topic)))?;
        Ok(cx.configs_of(&req.topic, &t.config))
    }
}
