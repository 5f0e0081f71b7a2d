//! `DeleteUser`: a user and every token it holds. `NOT_FOUND` when it
//! does not exist.

use std::sync::Arc;

use streamhouse_proto as pb;

use crate::auth::Need;
use crate::control::rpc::{Caller, ControlRpc};
use crate::control::security::require_superuser;
use crate::control::state::Shared;
use crate::messages::ControlError;
use crate::metastore::security::SecurityChange;

pub(crate) struct DeleteUser;

impl ControlRpc for DeleteUser {
    const PATH: &'static str = pb::paths::DELETE_USER;
    const REQUEST: &'static str = "DeleteUserRequest";
    type Request = pb::DeleteUserRequest;
    type Response = pb::DeleteUserResponse;

    fn needs(_req: &pb::DeleteUserRequest) -> Vec<Need<'_>> {
        Vec::new()
    }

    /// Cancelled after the store took it, the user may be gone.
    async fn handle(
        shared: Arc<Shared>,
        req: pb::DeleteUserRequest,
        caller: Caller,
    ) -> Result<pb::DeleteUserResponse, ControlError> {
        require_superuser(&shared, &caller, "delete users")?;
        let what = format!("user {}", req.name);
        shared
            .change_security(SecurityChange::DeleteUser { name: req.name }, &what)
            .await?;
        Ok(pb::DeleteUserResponse {})
    }
}
