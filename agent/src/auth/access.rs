//! [`Access`]: who a request comes from with the access rules it is
//! checked against (the shard's copy taken when it was authenticated), and
//! [`Need`], one check a request needs. A refusal is `PERMISSION_DENIED`
//! naming the principal, the operation and the resource. Owns no state.

use std::fmt;
use std::sync::Arc;

use super::acl::{decide, Decision, Operation, ResourceType};
use super::book::{Principal, Snapshot};
use crate::grpc_status::{Code, Status};

/// One check: an operation on a resource (the cluster's name is empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need<'a> {
    pub op: Operation,
    pub kind: ResourceType,
    pub name: &'a str,
}

impl<'a> Need<'a> {
    pub fn topic(op: Operation, name: &'a str) -> Need<'a> {
        Need {
            op,
            kind: ResourceType::Topic,
            name,
        }
    }

    pub fn group(op: Operation, name: &'a str) -> Need<'a> {
        Need {
            op,
            kind: ResourceType::Group,
            name,
        }
    }
}

/// See the module documentation.
#[derive(Clone)]
pub struct Access {
    pub principal: Principal,
    pub rules: Arc<Snapshot>,
}

impl fmt::Debug for Access {
    // The snapshot holds token hashes: never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Access")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

impl Access {
    /// Whether the principal may do `need` (creating a topic: also when
    /// allowed to create on the cluster).
    pub fn may(&self, need: Need<'_>) -> bool {
        self.decision(need) == Decision::Allowed
    }

    fn decision(&self, need: Need<'_>) -> Decision {
        let rules = &self.rules.acls;
        let d = decide(rules, &self.principal, need.op, need.kind, need.name);
        if d == Decision::NotAllowed
            && need.op == Operation::Create
            && need.kind == ResourceType::Topic
            && decide(
                rules,
                &self.principal,
                Operation::Create,
                ResourceType::Cluster,
                "",
            ) == Decision::Allowed
        {
            return Decision::Allowed;
        }
        d
    }

    /// `PERMISSION_DENIED` unless the principal may do every one of
    /// `needs`.
    pub fn check(&self, needs: &[Need<'_>]) -> Result<(), Status> {
        for need in needs {
            let why = match self.decision(*need) {
                Decision::Allowed => continue,
                Decision::Denied => "an access rule denies it",
                Decision::NotAllowed => "no access rule allows it",
            };
            let resource = match need.kind {
                ResourceType::Cluster => "the cluster".to_owned(),
                kind => format!("{kind} {}", need.name),
            };
            return Err(Status::new(
                Code::PermissionDenied,
                format!(
                    "{} may not {} {resource}: {why}",
                    self.principal.name, need.op
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::acl::{AclRule, PatternType, Permission};

    fn access(rules: Vec<AclRule>) -> Access {
        Access {
            principal: Principal {
                name: Arc::from("app"),
                superuser: false,
            },
            rules: Arc::new(Snapshot {
                version: 1,
                tokens: Default::default(),
                acls: rules,
            }),
        }
    }

    fn rule(kind: ResourceType, name: &str, op: Operation, permission: Permission) -> AclRule {
        AclRule {
            principal: "app".into(),
            resource: kind,
            pattern: PatternType::Literal,
            name: name.into(),
            operation: op,
            permission,
        }
    }

    #[test]
    fn refusals_name_the_principal_operation_and_resource() {
        let a = access(vec![
            rule(
                ResourceType::Topic,
                "a",
                Operation::Consume,
                Permission::Allow,
            ),
            rule(ResourceType::Topic, "b", Operation::All, Permission::Deny),
        ]);
        a.check(&[Need::topic(Operation::Consume, "a")]).unwrap();
        let e = a
            .check(&[Need::topic(Operation::Produce, "a")])
            .unwrap_err();
        assert_eq!(e.code, Code::PermissionDenied);
        assert_eq!(
            e.message,
            "app may not produce topic a: no access rule allows it"
        );
        let e = a
            .check(&[Need::topic(Operation::Describe, "b")])
            .unwrap_err();
        assert_eq!(
            e.message,
            "app may not describe topic b: an access rule denies it"
        );
        assert!(!format!("{a:?}").contains("rules"));
    }

    #[test]
    fn creating_on_the_cluster_allows_creating_any_topic() {
        let a = access(vec![rule(
            ResourceType::Cluster,
            "",
            Operation::Create,
            Permission::Allow,
        )]);
        assert!(a.may(Need::topic(Operation::Create, "new")));
        assert!(!a.may(Need::topic(Operation::Delete, "new")));
        let b = access(vec![]);
        assert!(!b.may(Need::topic(Operation::Create, "new")));
    }
}
