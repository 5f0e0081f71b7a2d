//! `ListUsers`: every user, by name, with how many tokens each holds.
//! Changes nothing.

use std::sync::Arc;

use streamhouse_proto as pb;

use crate::auth::Need;
use crate::control::rpc::{Caller, ControlRpc};
use crate::control::security::require_superuser;
use crate::control::state::Shared;
use crate::messages::ControlError;

pub(crate) struct ListUsers;

impl ControlRpc for ListUsers {
    const PATH: &'static str = pb::paths::LIST_USERS;
    const REQUEST: &'static str = "ListUsersRequest";
    type Request = pb::ListUsersRequest;
    type Response = pb::ListUsersResponse;

    fn needs(_req: &pb::ListUsersRequest) -> Vec<Need<'_>> {
        Vec::new()
    }

    async fn handle(
        shared: Arc<Shared>,
        _req: pb::ListUsersRequest,
        caller: Caller,
    ) -> Result<pb::ListUsersResponse, ControlError> {
        require_superuser(&shared, &caller, "list users")?;
        let rows = shared.security_rows().await?;
        Ok(pb::ListUsersResponse {
            users: rows
                .users
                .into_iter()
                .map(|u| pb::User {
                    name: u.name,
                    created_ms: u.created_ms,
                    tokens: u.tokens,
                })
                .collect(),
        })
    }
}
