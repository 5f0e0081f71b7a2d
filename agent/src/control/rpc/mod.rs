//! The RPCs that run on the control thread: one unit per RPC (a type
//! implementing [`ControlRpc`]: its method path, request and response
//! messages and handler), in one file each. A shard decodes the request
//! (bounded as every request is), wraps it with its unit's handler in an
//! [`RpcCall`] and sends it through the control thread's inbox; the
//! control thread runs it and answers the encoded response. The shard's
//! route table (`shard::rpc::table`) lists these units beside its own.
//! Owns no state; each handler reaches the control thread's state through
//! [`Shared`].

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use prost::Message;
use streamhouse_proto::framing::frame_message;

use crate::messages::ControlError;

use super::state::Shared;

pub(crate) mod acls;
pub(crate) mod groups;
pub(crate) mod users;

/// One RPC answered on the control thread.
pub(crate) trait ControlRpc: 'static {
    /// The gRPC method path, e.g. `/streamhouse.GroupService/Heartbeat`.
    const PATH: &'static str;
    /// The request message's name, for decoding errors.
    const REQUEST: &'static str;
    type Request: Message + Default + Send + 'static;
    type Response: Message;

    /// The checks a request needs against the access rules (`--auth
    /// required`), run by the shard before it forwards the request. An
    /// RPC answering for many groups (ListGroups) needs none and leaves out
    /// what its caller may not describe; the user, token and access-rule
    /// RPCs need none and check for a superuser themselves.
    fn needs(req: &Self::Request) -> Vec<crate::auth::Need<'_>>;

    /// Answers one request on the control thread. Cancelling it (the
    /// agent stopping) may leave its change saved or not, as each unit
    /// says.
    fn handle(
        shared: Arc<Shared>,
        req: Self::Request,
        caller: Caller,
    ) -> impl Future<Output = Result<Self::Response, ControlError>> + Send;
}

/// Who sent a request, as the shard that read it knows.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The client's IP address (`None` when its socket could not say).
    pub peer: Option<std::net::IpAddr>,
    /// Who it authenticated as and the rules it is checked against
    /// (`None` with `--auth off`: no check).
    pub access: Option<crate::auth::Access>,
}

/// A decoded request with its unit's handler, as a shard sends it to the
/// control thread: type-erased, so the inbox and the shard name no
/// control-thread state.
pub struct RpcCall(Box<dyn FnOnce(Arc<Shared>) -> BoxFuture<'static, RpcAnswer> + Send>);

/// A control-thread RPC's answer: the response message framed for gRPC
/// (prefix and message, as the shard sends it), or why there is none.
pub type RpcAnswer = Result<Bytes, ControlError>;

impl RpcCall {
    /// `req` for the unit `R`, sent by `caller`.
    pub(crate) fn new<R: ControlRpc>(req: R::Request, caller: Caller) -> RpcCall {
        RpcCall(Box::new(move |shared| {
            Box::pin(async move {
                R::handle(shared, req, caller)
                    .await
                    .map(|r| frame_message(&r))
            })
        }))
    }

    /// Runs the call on the control thread.
    pub(super) fn run(self, shared: Arc<Shared>) -> BoxFuture<'static, RpcAnswer> {
        (self.0)(shared)
    }
}
