//! `RevokeToken`: deletes a token. This agent refuses it at once, open
//! connections included; other agents within `--auth-refresh-ms`.
//! `NOT_FOUND` for an unknown id.

use std::sync::Arc;

use streamhouse_proto as pb;

use crate::auth::Need;
use crate::control::rpc::{Caller, ControlRpc};
use crate::control::security::require_superuser;
use crate::control::state::Shared;
use crate::messages::ControlError;
use crate::metastore::security::SecurityChange;

pub(crate) struct RevokeToken;

impl ControlRpc for RevokeToken {
    const PATH: &'static str = pb::paths::REVOKE_TOKEN;
    const REQUEST: &'static str = "RevokeTokenRequest";
    type Request = pb::RevokeTokenRequest;
    type Response = pb::RevokeTokenResponse;

    fn needs(_req: &pb::RevokeTokenRequest) -> Vec<Need<'_>> {
        Vec::new()
    }

    /// Cancelled after the store took it, the token may be revoked.
    async fn handle(
        shared: Arc<Shared>,
        req: pb::RevokeTokenRequest,
        caller: Caller,
    ) -> Result<pb::RevokeTokenResponse, ControlError> {
        require_superuser(&shared, &caller, "revoke tokens")?;
        let what = format!("token {}", req.id);
        shared
            .change_security(SecurityChange::RevokeToken { id: req.id }, &what)
            .await?;
        Ok(pb::RevokeTokenResponse {})
    }
}
