//! `AdminService/Metadata`: live agents and the leaders of the topics asked for (all
//! when none). Changes nothing.

use crate::auth::acl::Operation;
use crate::auth::{Access, Need};
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

    /// The topics it names; without any, the answer holds only those the
    /// caller may describe.
    fn needs(req: &pb::MetadataRequest) -> Vec<Need<'_>> {
        req.topics
            .iter()
            .map(|t| Need::topic(Operation::Describe, t))
            .collect()
    }

    async fn handle(
        cx: &ShardContext,
        req: pb::MetadataRequest,
        _reply: &mut ReplyBudget,
        access: Option<&Access>,
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
        let mut topics = cx.describe_all(&req.topics, &view);
        if let Some(a) = access {
            topics.retain(|t| a.may(Need::topic(Operation::Describe, &t.name)));
        }
        Ok(pb::MetadataResponse {
            agents: ShardContext::agents_metadata(&view),
            topics,
        })
    }
}
