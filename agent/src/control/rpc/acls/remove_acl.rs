//! `RemoveAcl`: deletes the access rule equal in every field; every agent
//! applies it within its `--auth-refresh-ms` (this one at once).
//! `NOT_FOUND` when no rule is equal.

use std::sync::Arc;

use streamhouse_proto as pb;

use crate::auth::Need;
use crate::control::rpc::{Caller, ControlRpc};
use crate::control::security::require_superuser;
use crate::control::state::Shared;
use crate::messages::ControlError;
use crate::metastore::security::SecurityChange;

pub(crate) struct RemoveAcl;

impl ControlRpc for RemoveAcl {
    const PATH: &'static str = pb::paths::REMOVE_ACL;
    const REQUEST: &'static str = "RemoveAclRequest";
    type Request = pb::RemoveAclRequest;
    type Response = pb::RemoveAclResponse;

    fn needs(_req: &pb::RemoveAclRequest) -> Vec<Need<'_>> {
        Vec::new()
    }

    /// Cancelled after the store took it, the rule may be gone.
    async fn handle(
        shared: Arc<Shared>,
        req: pb::RemoveAclRequest,
        caller: Caller,
    ) -> Result<pb::RemoveAclResponse, ControlError> {
        require_superuser(&shared, &caller, "remove access rules")?;
        let rule = super::rule_of(req.acl)?;
        shared
            .change_security(
                SecurityChange::RemoveAcl {
                    rule: rule.to_row(),
                },
                "this access rule",
            )
            .await?;
        Ok(pb::RemoveAclResponse {})
    }
}
