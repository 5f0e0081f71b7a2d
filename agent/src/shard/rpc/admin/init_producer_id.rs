//! `AdminService/InitProducerId`: a new idempotent producer id, or the next epoch of a
//! known one (fencing its older sessions), from the metadata store.

use streamhouse_proto as pb;

use crate::auth::{Access, Need};
use crate::control::inbox::ToControl;
use crate::shard::budget::ReplyBudget;
use crate::shard::context::ShardContext;
use crate::shard::grpc::Status;
use crate::shard::status::control_status;

use super::super::ShardRpc;

pub(crate) struct InitProducerId;

impl ShardRpc for InitProducerId {
    const PATH: &'static str = pb::paths::INIT_PRODUCER_ID;
    const REQUEST: &'static str = "InitProducerIdRequest";
    type Request = pb::InitProducerIdRequest;
    type Response = pb::InitProducerIdResponse;

    fn needs(_req: &pb::InitProducerIdRequest) -> Vec<Need<'_>> {
        Vec::new()
    }

    /// Cancelling it after the control thread took it may leave an id or
    /// epoch taken and never used (ids are not reused).
    async fn handle(
        cx: &ShardContext,
        req: pb::InitProducerIdRequest,
        _reply: &mut ReplyBudget,
        _access: Option<&Access>,
    ) -> Result<pb::InitProducerIdResponse, Status> {
        let (producer_id, producer_epoch) = if req.producer_id == 0 {
            let id = cx
                .control
                .call(|reply| ToControl::ProducerId { reply })
                .await
                .map_err(control_status)?;
            (id, 0)
        } else {
            let epoch = cx
                .control
                .call(|reply| ToControl::BumpProducerEpoch {
                    producer_id: req.producer_id,
                    claimed: req.producer_epoch,
                    reply,
                })
                .await
                .map_err(control_status)?;
            (req.producer_id, epoch)
        };
        Ok(pb::InitProducerIdResponse {
            producer_id,
            producer_epoch,
        })
    }
}
