//! `CreateToken`: a new API token for an existing user, answered once; the
//! store keeps only its salted hash. `NOT_FOUND` for an unknown user,
//! `RESOURCE_EXHAUSTED` past the tokens a user may hold.

use std::sync::Arc;

use streamhouse_proto as pb;

use crate::auth::Need;
use crate::control::rpc::{Caller, ControlRpc};
use crate::control::security::require_superuser;
use crate::control::state::Shared;
use crate::messages::ControlError;

pub(crate) struct CreateToken;

impl ControlRpc for CreateToken {
    const PATH: &'static str = pb::paths::CREATE_TOKEN;
    const REQUEST: &'static str = "CreateTokenRequest";
    type Request = pb::CreateTokenRequest;
    type Response = pb::CreateTokenResponse;

    fn needs(_req: &pb::CreateTokenRequest) -> Vec<Need<'_>> {
        Vec::new()
    }

    /// Cancelled after the store took it, the token exists but nobody saw
    /// it: revoke it (ListTokens shows its id).
    async fn handle(
        shared: Arc<Shared>,
        req: pb::CreateTokenRequest,
        caller: Caller,
    ) -> Result<pb::CreateTokenResponse, ControlError> {
        require_superuser(&shared, &caller, "create tokens")?;
        let (token, id) = shared.create_token(req.user, req.description).await?;
        Ok(pb::CreateTokenResponse { token, id })
    }
}
