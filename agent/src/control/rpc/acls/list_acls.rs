//! `ListAcls`: every stored access rule (or one principal's), in key
//! order. Changes nothing.

use std::sync::Arc;

use streamhouse_proto as pb;

use crate::auth::acl::AclRule;
use crate::auth::Need;
use crate::control::rpc::{Caller, ControlRpc};
use crate::control::security::require_superuser;
use crate::control::state::Shared;
use crate::messages::ControlError;

pub(crate) struct ListAcls;

impl ControlRpc for ListAcls {
    const PATH: &'static str = pb::paths::LIST_ACLS;
    const REQUEST: &'static str = "ListAclsRequest";
    type Request = pb::ListAclsRequest;
    type Response = pb::ListAclsResponse;

    fn needs(_req: &pb::ListAclsRequest) -> Vec<Need<'_>> {
        Vec::new()
    }

    async fn handle(
        shared: Arc<Shared>,
        req: pb::ListAclsRequest,
        caller: Caller,
    ) -> Result<pb::ListAclsResponse, ControlError> {
        require_superuser(&shared, &caller, "list access rules")?;
        let rows = shared.security_rows().await?;
        Ok(pb::ListAclsResponse {
            acls: rows
                .acls
                .iter()
                .filter(|r| req.principal.is_empty() || r.principal == req.principal)
                .filter_map(|r| AclRule::from_row(r).ok())
                .map(|r| super::binding_of(&r))
                .collect(),
        })
    }
}
