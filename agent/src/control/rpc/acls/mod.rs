//! The access-rule RPCs (`AdminService/AddAcl`, `RemoveAcl`, `ListAcls`),
//! one unit per file, and the checked conversion between a rule on the
//! wire ([`pb::AclBinding`]) and [`AclRule`]: every field named in the
//! error when it is wrong. Only superusers call them (with `--auth
//! required`).

use streamhouse_proto as pb;

use crate::auth::acl::{AclRule, ResourceType, ANYONE};
use crate::control::security::{check_user_name, MAX_RESOURCE_NAME};
use crate::messages::ControlError;

pub(crate) mod add_acl;
pub(crate) mod list_acls;
pub(crate) mod remove_acl;

/// The rule `b` states, checked.
pub(crate) fn rule_of(b: Option<pb::AclBinding>) -> Result<AclRule, ControlError> {
    let b = b.ok_or_else(|| ControlError::Invalid("the request holds no acl".into()))?;
    let rule = AclRule {
        principal: b.principal.clone(),
        resource: field("resource_type", &b.resource_type)?,
        pattern: field("pattern_type", &b.pattern_type)?,
        name: b.resource_name.clone(),
        operation: field("operation", &b.operation)?,
        permission: field("permission", &b.permission)?,
    };
    if rule.principal != ANYONE {
        check_user_name(&rule.principal).map_err(|_| {
            ControlError::Invalid(format!(
                "principal {:?}: a user or certificate name, or * for everyone",
                rule.principal
            ))
        })?;
    }
    if rule.name.len() > MAX_RESOURCE_NAME {
        return Err(ControlError::Invalid(format!(
            "resource_name: at most {MAX_RESOURCE_NAME} bytes"
        )));
    }
    match rule.resource {
        ResourceType::Cluster if !rule.name.is_empty() => Err(ControlError::Invalid(
            "resource_name: the cluster has no name (leave it empty)".into(),
        )),
        ResourceType::Topic | ResourceType::Group
            if rule.name.is_empty() && rule.pattern == crate::auth::acl::PatternType::Literal =>
        {
            Err(ControlError::Invalid(
                "resource_name: empty (use * for every name, or a prefix)".into(),
            ))
        }
        _ => Ok(rule),
    }
}

/// A field's value, or an error naming the field.
fn field<T: std::str::FromStr<Err = String>>(name: &str, value: &str) -> Result<T, ControlError> {
    value
        .parse()
        .map_err(|e| ControlError::Invalid(format!("{name}: {e}")))
}

/// `rule` on the wire.
pub(crate) fn binding_of(rule: &AclRule) -> pb::AclBinding {
    pb::AclBinding {
        principal: rule.principal.clone(),
        resource_type: rule.resource.as_str().into(),
        pattern_type: rule.pattern.as_str().into(),
        resource_name: rule.name.clone(),
        operation: rule.operation.as_str().into(),
        permission: rule.permission.as_str().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(
        principal: &str,
        kind: &str,
        pattern: &str,
        name: &str,
        op: &str,
    ) -> Option<pb::AclBinding> {
        Some(pb::AclBinding {
            principal: principal.into(),
            resource_type: kind.into(),
            pattern_type: pattern.into(),
            resource_name: name.into(),
            operation: op.into(),
            permission: "allow".into(),
        })
    }

    #[test]
    fn rules_are_checked_field_by_field() {
        let r = rule_of(b("app", "topic", "prefix", "logs.", "consume")).unwrap();
        assert_eq!(
            binding_of(&r),
            b("app", "topic", "prefix", "logs.", "consume").unwrap()
        );
        rule_of(b("*", "cluster", "literal", "", "create")).unwrap();
        rule_of(b("app", "group", "prefix", "", "all")).unwrap();
        for (bad, says) in [
            (
                b("app", "table", "literal", "t", "consume"),
                "resource_type",
            ),
            (b("app", "topic", "glob", "t", "consume"), "pattern_type"),
            (b("app", "topic", "literal", "t", "write"), "operation"),
            (b("a b", "topic", "literal", "t", "consume"), "principal"),
            (
                b("app", "cluster", "literal", "x", "create"),
                "the cluster has no name",
            ),
            (b("app", "topic", "literal", "", "consume"), "empty"),
            (None, "no acl"),
        ] {
            let e = rule_of(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
    }
}
