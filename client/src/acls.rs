//! Access rules through [`Admin`]: add, remove and list them (agents with
//! `--auth required`; only a superuser may). A rule is the client's own
//! [`AclRule`]; its fields take the agents' names (`"topic"`,
//! `"prefix"`, `"consume"`, `"allow"`, ...), and a wrong one comes back as
//! `InvalidArgument` naming the field. Owns nothing but the calls.

use streamhouse_proto as pb;

use crate::admin::Admin;
use crate::error::Result;

/// One access rule: whether `principal` may do `operation` on the
/// resources `resource_type`/`pattern_type`/`resource_name` match. Deny
/// wins over allow; without a matching allow a call is refused.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AclRule {
    /// A user or client-certificate name, or `*` for every authenticated
    /// principal.
    pub principal: String,
    /// `cluster`, `topic` or `group`.
    pub resource_type: String,
    /// `literal` (the name exactly; `*` matches every name) or `prefix`.
    pub pattern_type: String,
    /// The name or prefix; empty for the cluster.
    pub resource_name: String,
    /// `produce`, `consume`, `describe`, `create`, `delete`, `alter` or
    /// `all`.
    pub operation: String,
    /// `allow` or `deny`.
    pub permission: String,
}

impl AclRule {
    /// Allows `principal` to do `operation` on the topic `name`.
    pub fn allow_topic(principal: &str, name: &str, operation: &str) -> AclRule {
        AclRule {
            principal: principal.into(),
            resource_type: "topic".into(),
            pattern_type: "literal".into(),
            resource_name: name.into(),
            operation: operation.into(),
            permission: "allow".into(),
        }
    }

    /// Allows `principal` to do `operation` on the group `name`.
    pub fn allow_group(principal: &str, name: &str, operation: &str) -> AclRule {
        AclRule {
            resource_type: "group".into(),
            ..AclRule::allow_topic(principal, name, operation)
        }
    }

    fn to_pb(&self) -> pb::AclBinding {
        pb::AclBinding {
            principal: self.principal.clone(),
            resource_type: self.resource_type.clone(),
            pattern_type: self.pattern_type.clone(),
            resource_name: self.resource_name.clone(),
            operation: self.operation.clone(),
            permission: self.permission.clone(),
        }
    }
}

impl Admin {
    /// Stores `rule`; every agent applies it within its
    /// `--auth-refresh-ms` (the one answering at once).
    ///
    /// # Errors
    /// [`Error::Status`](crate::Error::Status) with `AlreadyExists`,
    /// `InvalidArgument` naming a wrong field, `ResourceExhausted` past
    /// 10,000 rules, `PermissionDenied`/`Unauthenticated` for a caller that
    /// is not a superuser; [`Error::Transport`](crate::Error::Transport)
    /// when no agent answers.
    ///
    /// # Cancellation
    /// Dropped after an agent took it, the rule may exist.
    pub async fn add_acl(&self, rule: &AclRule) -> Result<()> {
        let req = pb::AddAclRequest {
            acl: Some(rule.to_pb()),
        };
        self.call("add acl", |mut c| async move { c.add_acl(req).await })
            .await?;
        Ok(())
    }

    /// Removes the rule equal to `rule` in every field.
    ///
    /// # Errors
    /// `NotFound` when none is; otherwise as [`Admin::add_acl`].
    ///
    /// # Cancellation
    /// Dropped after an agent took it, the rule may be gone.
    pub async fn remove_acl(&self, rule: &AclRule) -> Result<()> {
        let req = pb::RemoveAclRequest {
            acl: Some(rule.to_pb()),
        };
        self.call("remove acl", |mut c| async move { c.remove_acl(req).await })
            .await?;
        Ok(())
    }

    /// Every rule, or `principal`'s.
    ///
    /// # Errors
    /// As [`Admin::add_acl`].
    ///
    /// # Cancellation
    /// Read-only: dropping the future has no effect.
    pub async fn list_acls(&self, principal: Option<&str>) -> Result<Vec<AclRule>> {
        let req = pb::ListAclsRequest {
            principal: principal.unwrap_or_default().into(),
        };
        let r = self
            .call("list acls", |mut c| async move { c.list_acls(req).await })
            .await?;
        Ok(r.acls
            .into_iter()
            .map(|b| AclRule {
                principal: b.principal,
                resource_type: b.resource_type,
                pattern_type: b.pattern_type,
                resource_name: b.resource_name,
                operation: b.operation,
                permission: b.permission,
            })
            .collect())
    }
}
