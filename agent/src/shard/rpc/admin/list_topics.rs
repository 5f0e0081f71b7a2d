//! `AdminService/ListTopics`: every topic with its partitions' leaders. Changes nothing.

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

    async fn handle(
        cx: &ShardContext,
        _req: pb::ListTopicsRequest,
        _reply: &mut ReplyBudget,
    ) -> Result<pb::ListTopicsResponse, Status> {
        Ok(pb::ListTopicsResponse {
            topics: cx.describe_all(&[], &cx.cluster(&[]).await?),
        })
    }
}
