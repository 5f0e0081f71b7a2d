//! `CreateUser`: a new user (no token yet). `ALREADY_EXISTS` when it
//! exists.

use std::sync::Arc;

use streamhouse_proto as pb;

use crate::auth::Need;
use crate::control::rpc::{Caller, ControlRpc};
use crate::control::security::{check_user_name, require_superuser};
use crate::control::state::Shared;
use crate::messages::ControlError;
use crate::metastore::security::SecurityChange;
use crate::runtime::clock::now_ms;

pub(crate) struct CreateUser;

impl ControlRpc for CreateUser {
    const PATH: &'static str = pb::paths::CREATE_USER;
    const REQUEST: &'static str = "CreateUserRequest";
    type Request = pb::CreateUserRequest;
    type Response = pb::CreateUserResponse;

    fn needs(_req: &pb::CreateUserRequest) -> Vec<Need<'_>> {
        Vec::new()
    }

    /// Cancelled after the store took it, the user may exist.
    async fn handle(
        shared: Arc<Shared>,
        req: pb::CreateUserRequest,
        caller: Caller,
    ) -> Result<pb::CreateUserResponse, ControlError> {
        require_superuser(&shared, &caller, "create users")?;
        check_user_name(&req.name)?;
        let what = format!("user {}", req.name);
        let change = SecurityChange::CreateUser {
            name: req.name,
            now_ms: now_ms(),
        };
        shared.change_security(change, &what).await?;
        Ok(pb::CreateUserResponse {})
    }
}
