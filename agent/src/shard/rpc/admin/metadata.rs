//! `AdminService/Metadata`: live agents and the leaders of the topics asked for (all
//! when none). Changes nothing.

use crate::shard::budget::ReplyBudget;
use crate::shard::context::ShardContext;
use crate::shard::grpc::{Code, Status};
use streamhouse_proto as pb;

use super::super::ShardRpc;

pub(crate) struct Metadata;

impl ShardRpc for Metadata {
    const PATH: &'static str = pb::paths::METADATA;
    const REQUEST: &'static str = "MetadataRequest";
    type Request = pb::MetadataRequest;
    type Response = pb::MetadataResponse;

    async fn handle(
        cx: &ShardContext,
        req: pb::MetadataRequest,
        _reply: &mut ReplyBudget,
    ) -> Result<pb::MetadataResponse, Status> {
        for t in &req.topics {
            if cx.catalog.get(t).is_none() {
                cx.sync_topics().await?;
                if cx.catalog.get(t).is_none() {
                    return Err(Status::new(Code::NotFound, format!("unknown topic {t}")));
                }
            }
        }
        let view = cx.cluster(&req.topics).await?;
        Ok(pb::MetadataResponse {
            agents: ShardContext::agents_metadata(&view),
            topics: cx.describe_all(&req.topics, &view),
        })
    }
}
