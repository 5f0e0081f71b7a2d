//! `grpc.health.v1.Health/Check`: SERVING, or NOT_SERVING while the agent
//! drains (answered while draining, unlike every other RPC). The service
//! names "" (the whole agent) and "streamhouse" are known.

use streamhouse_proto as pb;

use pb::health::health_check_response::ServingStatus;
use pb::health::{HealthCheckRequest, HealthCheckResponse};

use crate::auth::{Access, Need};
use crate::shard::budget::ReplyBudget;
use crate::shard::context::ShardContext;
use crate::shard::grpc::{Code, Status};

use super::ShardRpc;

pub(crate) struct HealthCheck;

impl ShardRpc for HealthCheck {
    const PATH: &'static str = pb::paths::HEALTH_CHECK;
    const REQUEST: &'static str = "HealthCheckRequest";
    const WHILE_DRAINING: bool = true;
    /// Load balancers and orchestrators probe it without credentials.
    const ANONYMOUS: bool = true;
    type Request = HealthCheckRequest;
    type Response = HealthCheckResponse;

    fn needs(_req: &HealthCheckRequest) -> Vec<Need<'_>> {
        Vec::new()
    }

    async fn handle(
        cx: &ShardContext,
        req: HealthCheckRequest,
        _reply: &mut ReplyBudget,
        _access: Option<&Access>,
    ) -> Result<HealthCheckResponse, Status> {
        let status = match req.service.as_str() {
            "" | "streamhouse" if cx.is_draining() => ServingStatus::NotServing,
            "" | "streamhouse" => ServingStatus::Serving,
            other => {
                return Err(Status::new(
                    Code::NotFound,
                    format!("unknown service {other:?}"),
                ))
            }
        };
        Ok(HealthCheckResponse {
            status: status as i32,
        })
    }
}
