//! `AddAcl`: stores an access rule; every agent applies it within its
//! `--auth-refresh-ms` (this one at once). `ALREADY_EXISTS` for a rule
//! stored already.

use std::sync::Arc;

use streamhouse_proto as pb;

use crate::auth::Need;
use crate::control::rpc::{Caller, ControlRpc};
use crate::control::security::require_superuser;
use crate::control::state::Shared;
use crate::messages::ControlError;
use crate::metastore::security::SecurityChange;

pub(crate) struct AddAcl;

impl ControlRpc for AddAcl {
    const PATH: &'static str = pb::paths::ADD_ACL;
    const REQUEST: &'static str = "AddAclRequest";
    type Request = pb::AddAclRequest;
    type Response = pb::AddAclResponse;

    fn needs(_req: &pb::AddAclRequest) -> Vec<Need<'_>> {
        Vec::new()
    }

    /// Cancelled after the store took it, the rule may exist.
    async fn handle(
        shared: Arc<Shared>,
        req: pb::AddAclRequest,
        caller: Caller,
    ) -> Result<pb::AddAclResponse, ControlError> {
        require_superuser(&shared, &caller, "add access rules")?;
        let rule = super::rule_of(req.acl)?;
        shared
            .change_security(
                SecurityChange::AddAcl {
                    rule: rule.to_row(),
                },
                "this access rule",
            )
            .await?;
        Ok(pb::AddAclResponse {})
    }
}
