//! `AdminService/DescribeTopic`: one topic's partitions with their leaders. Changes
//! nothing.

use crate::auth::acl::Operation;
use crate::auth::{Access, Need};
use crate::shard::budget::ReplyBudget;
use crate::shard::context::ShardContext;
use crate::shard::grpc::Status;
use streamhouse_proto as pb;

use super::super::ShardRpc;

pub(crate) struct DescribeTopic;

impl ShardRpc for DescribeTopic {
    const PATH: &'static str = pb::paths::DESCRIBE_TOPIC;
    const REQUEST: &'static str = "DescribeTopicRequest";
    type Request = pb::DescribeTopicRequest;
    type Response = pb::TopicMetadata;

    fn needs(req: &pb::DescribeTopicRequest) -> Vec<Need<'_>> {
        vec![Need::topic(Operation::Describe, &req.name)]
    }

    async fn handle(
        cx: &ShardContext,
        req: pb::DescribeTopicRequest,
        _reply: &mut ReplyBudget,
        _access: Option<&Access>,
    ) -> Result<pb::TopicMetadata, Status> {
        cx.describe(&req.name).await
    }
}
