//! The RPCs a shard serves, one unit per RPC: a type implementing
//! [`ShardRpc`] (its method path, request and response messages and its
//! handler, run on the shard's executor), one file each in this folder,
//! or a [`ControlRpc`](crate::control::rpc::ControlRpc) unit of the control
//! thread that the shard decodes and forwards. `table.rs` lists every unit
//! once; [`dispatch`] finds a path there and runs its entry: the request is
//! read (bounded by `--max-request-bytes`) and decoded once, checked once
//! against the caller's access rules (what its unit `needs`; with `--auth
//! required`), handled once, and the response encoded once. Owns no state
//! and no policy of its own.
//!
//! Adding an RPC: a file here (or under `control/rpc/` for the control
//! thread) with its unit, saying what it needs of the access rules, and
//! one line in `table.rs`.

use std::future::Future;

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use prost::Message;

use crate::auth::{Access, Need};
use crate::control::inbox::ToControl;
use crate::control::rpc::{Caller, ControlRpc, RpcCall};

use super::budget::ReplyBudget;
use super::context::ShardContext;
use super::grpc::{decode, encode_reply, read_message, Body, Code, Status};
use super::status::control_status;

mod admin;
mod delete_records;
mod fetch;
mod health;
mod list_offsets;
mod produce;
mod table;

/// One RPC answered on the shard's executor.
pub(crate) trait ShardRpc {
    /// The gRPC method path, e.g. `/streamhouse.ProducerService/Produce`.
    const PATH: &'static str;
    /// The request message's name, for decoding errors.
    const REQUEST: &'static str;
    /// Whether the RPC is answered while the agent drains (default no:
    /// `UNAVAILABLE`).
    const WHILE_DRAINING: bool = false;
    /// Whether the RPC is answered without authentication when the agent
    /// requires it (default no: `UNAUTHENTICATED`).
    const ANONYMOUS: bool = false;
    type Request: Message + Default;
    type Response: Message;

    /// The partition a request is for, named on the request's span.
    fn partition(_req: &Self::Request) -> Option<(&str, u32)> {
        None
    }

    /// The checks a request needs against the access rules (`--auth
    /// required`), run after decoding and before [`ShardRpc::handle`]. An
    /// RPC answering for many resources (ListTopics, Metadata) needs none
    /// and leaves out what its caller may not describe.
    fn needs(req: &Self::Request) -> Vec<Need<'_>>;

    /// Answers one request; `reply` is the budget a large answer reserves
    /// its bytes from (Fetch); `access` is who asks (`None` with `--auth
    /// off`). Cancelling it (the client's stream reset, or its deadline)
    /// drops it where it waits; a batch handed to the log is still
    /// written.
    fn handle(
        cx: &ShardContext,
        req: Self::Request,
        reply: &mut ReplyBudget,
        access: Option<&Access>,
    ) -> impl Future<Output = Result<Self::Response, Status>>;
}

/// What runs a request of one route: reads and decodes its body, answers
/// the framed response.
type Entry =
    for<'a> fn(&'a ShardContext, &'a mut Body) -> LocalBoxFuture<'a, Result<Bytes, Status>>;

/// One entry of the route table.
pub(crate) struct Route {
    /// The gRPC method path.
    pub path: &'static str,
    /// Answered while the agent drains.
    pub while_draining: bool,
    /// Answered without authentication (the health check).
    pub anonymous: bool,
    entry: Entry,
}

impl Route {
    /// The route of a unit answered on the shard.
    pub(crate) const fn shard<R: ShardRpc>() -> Route {
        Route {
            path: R::PATH,
            while_draining: R::WHILE_DRAINING,
            anonymous: R::ANONYMOUS,
            entry: on_shard::<R>,
        }
    }

    /// The route of a unit answered on the control thread.
    pub(crate) const fn control<R: ControlRpc>() -> Route {
        Route {
            path: R::PATH,
            while_draining: false,
            anonymous: false,
            entry: on_control::<R>,
        }
    }
}

fn on_shard<'a, R: ShardRpc>(
    cx: &'a ShardContext,
    body: &'a mut Body,
) -> LocalBoxFuture<'a, Result<Bytes, Status>> {
    Box::pin(async move {
        let bytes = read_message(body, cx.config.max_request_bytes).await?;
        let req: R::Request = decode(bytes, R::REQUEST)?;
        if let Some((topic, partition)) = R::partition(&req) {
            record_partition(topic, partition);
        }
        if let Some(access) = &body.access {
            access.check(&R::needs(&req))?;
        }
        let answer = R::handle(cx, req, &mut body.reply, body.access.as_ref()).await?;
        Ok(encode_reply(&answer))
    })
}

fn on_control<'a, R: ControlRpc>(
    cx: &'a ShardContext,
    body: &'a mut Body,
) -> LocalBoxFuture<'a, Result<Bytes, Status>> {
    Box::pin(async move {
        let bytes = read_message(body, cx.config.max_request_bytes).await?;
        let req: R::Request = decode(bytes, R::REQUEST)?;
        if let Some(access) = &body.access {
            access.check(&R::needs(&req))?;
        }
        cx.control
            .call(|reply| ToControl::Rpc {
                call: RpcCall::new::<R>(
                    req,
                    Caller {
                        peer: body.peer,
                        access: body.access.clone(),
                    },
                ),
                reply,
            })
            .await
            .map_err(control_status)
    })
}

/// The route of `path`, if the shard serves it.
pub(crate) fn route(path: &str) -> Option<&'static Route> {
    table::ROUTES.iter().find(|r| r.path == path)
}

/// Answers one unary call of `route`. Cancelling it (the client's stream
/// reset, or its deadline) drops the handler where it waits; a batch
/// handed to the log is still written.
pub(crate) async fn dispatch(
    cx: &ShardContext,
    route: &Route,
    body: &mut Body,
) -> Result<Bytes, Status> {
    (route.entry)(cx, body).await
}

/// `UNIMPLEMENTED` for a path no route serves.
pub(crate) fn unknown_method(path: &str) -> Status {
    Status::new(Code::Unimplemented, format!("unknown method {path}"))
}

/// Names the partition a request is for on the current request span.
fn record_partition(topic: &str, partition: u32) {
    let span = tracing::Span::current();
    span.record("topic", topic);
    span.record("partition", partition);
}
