//! Access control lists: the rules (a principal, a resource pattern, an
//! operation, allow or deny), their text forms, and [`decide`], which
//! answers whether a principal may do an operation on a resource. Deny
//! wins over allow; without a matching allow the answer is no; a
//! superuser is allowed everything. Pure: the rules come from the
//! credential book. Owns no storage.

use std::fmt;
use std::str::FromStr;

use super::book::Principal;
use crate::metastore::security::AclRow;

/// Any authenticated principal, in a rule's principal field.
pub const ANYONE: &str = "*";

/// What a rule guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    /// The cluster itself (creating topics; its name is empty).
    Cluster,
    Topic,
    Group,
}

/// How a rule's resource name matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PatternType {
    /// The name exactly (`*` alone: every name).
    Literal,
    /// Every name starting with it.
    Prefix,
}

/// What a caller does to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    /// Append records (topic).
    Produce,
    /// Read records (topic), or be a member of and commit for (group).
    Consume,
    /// See it exists and its settings, offsets and members. Allowed by an
    /// allow of any other operation on the same resource.
    Describe,
    /// Create it (a topic, or on the cluster: any topic).
    Create,
    /// Delete it, or records of it.
    Delete,
    /// Change its configuration or partition count.
    Alter,
    /// Every operation (in rules only).
    All,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    Allow,
    Deny,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclRule {
    /// A user or certificate name, or [`ANYONE`].
    pub principal: String,
    pub resource: ResourceType,
    pub pattern: PatternType,
    /// The resource name or prefix (empty for the cluster).
    pub name: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// Whether a request may go on, and if not which check refused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// No allow matched.
    NotAllowed,
    /// A deny matched.
    Denied,
}

impl AclRule {
    /// A stored rule; an error names what does not parse.
    pub fn from_row(row: &AclRow) -> Result<AclRule, String> {
        Ok(AclRule {
            principal: row.principal.clone(),
            resource: row.resource_type.parse()?,
            pattern: row.pattern_type.parse()?,
            name: row.resource_name.clone(),
            operation: row.operation.parse()?,
            permission: row.permission.parse()?,
        })
    }

    /// The rule as the store keeps it.
    pub fn to_row(&self) -> AclRow {
        AclRow {
            principal: self.principal.clone(),
            resource_type: self.resource.as_str().into(),
            pattern_type: self.pattern.as_str().into(),
            resource_name: self.name.clone(),
            operation: self.operation.as_str().into(),
            permission: self.permission.as_str().into(),
        }
    }

    fn matches_name(&self, name: &str) -> bool {
        match self.pattern {
            PatternType::Literal => self.name == name || self.name == "*",
            PatternType::Prefix => name.starts_with(&self.name),
        }
    }

    fn applies(&self, principal: &str, resource: ResourceType, name: &str) -> bool {
        (self.principal == principal || self.principal == ANYONE)
            && self.resource == resource
            && (resource == ResourceType::Cluster || self.matches_name(name))
    }
}

/// Whether `principal` may do `op` on the resource `kind`/`name` under
/// `rules`.
pub fn decide(
    rules: &[AclRule],
    principal: &Principal,
    op: Operation,
    kind: ResourceType,
    name: &str,
) -> Decision {
    if principal.superuser {
        return Decision::Allowed;
    }
    let mut allowed = false;
    for r in rules
        .iter()
        .filter(|r| r.applies(&principal.name, kind, name))
    {
        let same_op = r.operation == op || r.operation == Operation::All;
        match r.permission {
            Permission::Deny if same_op => return Decision::Denied,
            Permission::Deny => {}
            // Any allow on the resource lets the caller describe it.
            Permission::Allow => allowed |= same_op || op == Operation::Describe,
        }
    }
    if allowed {
        Decision::Allowed
    } else {
        Decision::NotAllowed
    }
}

macro_rules! names {
    ($t:ty, $what:literal, $($v:ident = $s:literal),+) => {
        impl $t {
            /// Its name in rules, the CLI and the store.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
        }
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s.to_ascii_lowercase().as_str() {
                    $($s => Ok(Self::$v),)+
                    _ => Err(format!(
                        concat!("unknown ", $what, " {:?} (one of: {})"),
                        s,
                        [$($s),+].join(", ")
                    )),
                }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

names!(
    ResourceType,
    "resource type",
    Cluster = "cluster",
    Topic = "topic",
    Group = "group"
);
names!(
    PatternType,
    "pattern type",
    Literal = "literal",
    Prefix = "prefix"
);
names!(
    Operation,
    "operation",
    Produce = "produce",
    Consume = "consume",
    Describe = "describe",
    Create = "create",
    Delete = "delete",
    Alter = "alter",
    All = "all"
);
names!(Permission, "permission", Allow = "allow", Deny = "deny");

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn rule(
        p: &str,
        kind: ResourceType,
        pat: PatternType,
        name: &str,
        op: Operation,
        perm: Permission,
    ) -> AclRule {
        AclRule {
            principal: p.into(),
            resource: kind,
            pattern: pat,
            name: name.into(),
            operation: op,
            permission: perm,
        }
    }

    fn who(name: &str, superuser: bool) -> Principal {
        Principal {
            name: Arc::from(name),
            superuser,
        }
    }

    use Operation::*;
    use PatternType::*;
    use Permission::*;
    use ResourceType::*;

    #[test]
    fn allow_deny_and_implied_describe() {
        let rules = vec![
            rule("app", Topic, Literal, "orders", Consume, Allow),
            rule("app", Topic, Prefix, "logs.", All, Allow),
            rule("app", Topic, Literal, "logs.secret", Consume, Deny),
            rule("*", Group, Prefix, "app-", Consume, Allow),
            rule("ops", Cluster, Literal, "", Create, Allow),
        ];
        let app = who("app", false);
        let d = |op, kind, name: &str| decide(&rules, &app, op, kind, name);
        assert_eq!(d(Consume, Topic, "orders"), Decision::Allowed);
        assert_eq!(
            d(Describe, Topic, "orders"),
            Decision::Allowed,
            "implied by consume"
        );
        assert_eq!(d(Produce, Topic, "orders"), Decision::NotAllowed);
        assert_eq!(d(Describe, Topic, "payments"), Decision::NotAllowed);
        assert_eq!(d(Produce, Topic, "logs.web"), Decision::Allowed);
        assert_eq!(
            d(Consume, Topic, "logs.secret"),
            Decision::Denied,
            "deny wins"
        );
        assert_eq!(d(Produce, Topic, "logs.secret"), Decision::Allowed);
        assert_eq!(
            d(Consume, Group, "app-1"),
            Decision::Allowed,
            "any principal"
        );
        assert_eq!(d(Consume, Group, "other"), Decision::NotAllowed);
        assert_eq!(d(Create, Cluster, ""), Decision::NotAllowed);
        assert_eq!(
            decide(&rules, &who("ops", false), Create, Cluster, ""),
            Decision::Allowed
        );
        assert_eq!(
            decide(&[], &who("root", true), Delete, Topic, "x"),
            Decision::Allowed
        );
        // A literal name matches itself only; `*` every name.
        let star = vec![rule("app", Topic, Literal, "*", Describe, Allow)];
        assert_eq!(
            decide(&star, &app, Describe, Topic, "any"),
            Decision::Allowed
        );
        assert_eq!(
            decide(&star, &app, Produce, Topic, "any"),
            Decision::NotAllowed
        );
        let deny_all = vec![
            rule("app", Topic, Literal, "t", Produce, Allow),
            rule("*", Topic, Prefix, "", All, Deny),
        ];
        assert_eq!(
            decide(&deny_all, &app, Produce, Topic, "t"),
            Decision::Denied
        );
    }

    #[test]
    fn names_round_trip_and_bad_ones_are_named() {
        for op in [Produce, Consume, Describe, Create, Delete, Alter, All] {
            assert_eq!(op.as_str().parse::<Operation>().unwrap(), op);
        }
        assert_eq!("TOPIC".parse::<ResourceType>().unwrap(), Topic);
        let e = "write".parse::<Operation>().unwrap_err();
        assert!(
            e.contains("unknown operation \"write\"") && e.contains("produce"),
            "{e}"
        );
    }
}
