//! `ListTokens`: every token's id, user, description and creation time (of
//! one user, or of all); never a token or its hash. Changes nothing.

use std::sync::Arc;

use streamhouse_proto as pb;

use crate::auth::Need;
use crate::control::rpc::{Caller, ControlRpc};
use crate::control::security::require_superuser;
use crate::control::state::Shared;
use crate::messages::ControlError;

pub(crate) struct ListTokens;

impl ControlRpc for ListTokens {
    const PATH: &'static str = pb::paths::LIST_TOKENS;
    const REQUEST: &'static str = "ListTokensRequest";
    type Request = pb::ListTokensRequest;
    type Response = pb::ListTokensResponse;

    fn needs(_req: &pb::ListTokensRequest) -> Vec<Need<'_>> {
        Vec::new()
    }

    async fn handle(
        shared: Arc<Shared>,
        req: pb::ListTokensRequest,
        caller: Caller,
    ) -> Result<pb::ListTokensResponse, ControlError> {
        require_superuser(&shared, &caller, "list tokens")?;
        let rows = shared.security_rows().await?;
        Ok(pb::ListTokensResponse {
            tokens: rows
                .tokens
                .into_iter()
                .filter(|t| req.user.is_empty() || t.user == req.user)
                .map(|t| pb::TokenInfo {
                    id: t.id,
                    user: t.user,
                    description: t.description,
                    created_ms: t.created_ms,
                })
                .collect(),
        })
    }
}
