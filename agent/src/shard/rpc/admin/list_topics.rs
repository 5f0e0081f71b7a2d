//! `AdminService/ListTopics`: every topic with its partitions' leaders. Changes nothing.

use crate::auth::acl::Operation;
use crate::auth::{Access, Need};
use crate::shard::budget::ReplyBudget;
use crate::shard::context::ShardContext;
use crate::shard::grpc::Status;
use streamhouse_proto as pb;

use super::super::ShardRpc;

pub(crate) struct ListTopics;

impl ShardRpc for ListTopics {
    const PATH: &'static str = pb::paths::LIST_TOPICS;
    const REQUEST: &'static str = "ListTopicsRequest";
    type Request = pb::ListTopicsRequest;
    type Response = pb::ListTopicsResponse;

    fn needs(_req: &pb::ListTopicsRequest) -> Vec<Need<'_>> {
        Vec::new()
    }

    /// Only the topics the caller may describe.
    async fn handle(
        cx: &ShardContext,
        _req: pb::ListTopicsRequest,
        _reply: &mut ReplyBudget,
        access: Option<&Access>,
    ) -> Result<pb::ListTopicsResponse, Status> {
        let mut topics = cx.describe_all(&[], &cx.cluster(&[]).await?);
        if let Some(a) = access {
            topics.retain(|t| a.may(Need::topic(Operation::Describe, &t.name)));
        }
        Ok(pb::ListTopicsResponse { topics })
    }
}
