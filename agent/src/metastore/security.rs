//! Users and API tokens in the metadata store: the rows, the changes, and
//! each change as a [`Plan`] of statements with the check each one makes,
//! which both backends run in one transaction (`sqlite::security`,
//! `postgres::security`). Owns the rules (limits, what "exists" means);
//! never sees a token itself, only its hash.

use super::sql::security as q;

/// Most users a cluster may have: 10,000.
pub const MAX_USERS: i64 = 10_000;
/// Most tokens one user may hold: 100.
pub const MAX_TOKENS_PER_USER: i64 = 100;
/// Most access rules a cluster may have: 10,000.
pub const MAX_ACLS: i64 = 10_000;

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub name: String,
    /// ms since the Unix epoch.
    pub created_ms: i64,
    /// Tokens it holds.
    pub tokens: u32,
}

/// A stored token (its hash, never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// The token's public id.
    pub id: String,
    pub user: String,
    /// Salted argon2id hash of the token's secret, PHC string format.
    pub hash: String,
    pub description: String,
    /// ms since the Unix epoch.
    pub created_ms: i64,
}

/// A stored access rule, in its text forms (`auth::acl` reads them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclRow {
    pub principal: String,
    pub resource_type: String,
    pub pattern_type: String,
    pub resource_name: String,
    pub operation: String,
    pub permission: String,
}

impl AclRow {
    fn args(&self) -> Vec<Arg> {
        [
            &self.principal,
            &self.resource_type,
            &self.pattern_type,
            &self.resource_name,
            &self.operation,
            &self.permission,
        ]
        .into_iter()
        .map(|s| Arg::Text(s.clone()))
        .collect()
    }
}

/// Every user, token and access rule, at one version.
#[derive(Debug, Clone, Default)]
pub struct SecurityRows {
    /// Grows with every change.
    pub version: i64,
    pub users: Vec<UserRow>,
    pub tokens: Vec<TokenRow>,
    pub acls: Vec<AclRow>,
}

/// A change of users or tokens.
#[derive(Debug, Clone)]
pub enum SecurityChange {
    CreateUser {
        name: String,
        now_ms: i64,
    },
    /// Its tokens go with it.
    DeleteUser {
        name: String,
    },
    CreateToken {
        token: TokenRow,
    },
    RevokeToken {
        id: String,
    },
    AddAcl {
        rule: AclRow,
    },
    RemoveAcl {
        rule: AclRow,
    },
}

/// How a change ended (a refused one changed nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOutcome {
    Done,
    /// The user already exists.
    Exists,
    /// The user (or token) does not exist.
    Missing,
    /// A limit is reached; the message names it.
    Limit(String),
}

/// A statement argument.
#[derive(Debug, Clone)]
pub enum Arg {
    Text(String),
    Int(i64),
}

/// What a step checks; a failed check rolls the change back with its
/// outcome.
#[derive(Debug, Clone)]
pub enum Check {
    /// Nothing: run the statement.
    Run,
    /// The statement must affect a row.
    Affects(ChangeOutcome),
    /// The query must return a row.
    Returns(ChangeOutcome),
    /// The query's single count must be below the limit.
    Below(i64, ChangeOutcome),
}

/// One statement of a plan.
#[derive(Debug, Clone)]
pub struct Step {
    pub sql: &'static str,
    pub args: Vec<Arg>,
    pub check: Check,
}

/// A change as statements run in order in one transaction.
pub type Plan = Vec<Step>;

fn step(sql: &'static str, args: Vec<Arg>, check: Check) -> Step {
    Step { sql, args, check }
}

impl SecurityChange {
    /// The statements of this change, the version bump first.
    pub fn plan(&self) -> Plan {
        let mut plan = vec![step(q::BUMP, vec![], Check::Run)];
        match self {
            SecurityChange::CreateUser { name, now_ms } => {
                plan.push(step(
                    q::COUNT_USERS,
                    vec![],
                    Check::Below(
                        MAX_USERS,
                        ChangeOutcome::Limit(format!("a cluster has at most {MAX_USERS} users")),
                    ),
                ));
                plan.push(step(
                    q::INSERT_USER,
                    vec![Arg::Text(name.clone()), Arg::Int(*now_ms)],
                    Check::Affects(ChangeOutcome::Exists),
                ));
            }
            SecurityChange::DeleteUser { name } => {
                plan.push(step(
                    q::DELETE_USER,
                    vec![Arg::Text(name.clone())],
                    Check::Affects(ChangeOutcome::Missing),
                ));
                plan.push(step(
                    q::DELETE_USER_TOKENS,
                    vec![Arg::Text(name.clone())],
                    Check::Run,
                ));
            }
            SecurityChange::CreateToken { token } => {
                let user = Arg::Text(token.user.clone());
                plan.push(step(
                    q::USER_EXISTS,
                    vec![user.clone()],
                    Check::Returns(ChangeOutcome::Missing),
                ));
                plan.push(step(
                    q::COUNT_TOKENS,
                    vec![user.clone()],
                    Check::Below(
                        MAX_TOKENS_PER_USER,
                        ChangeOutcome::Limit(format!(
                            "a user holds at most {MAX_TOKENS_PER_USER} tokens (revoke one first)"
                        )),
                    ),
                ));
                plan.push(step(
                    q::INSERT_TOKEN,
                    vec![
                        Arg::Text(token.id.clone()),
                        user,
                        Arg::Text(token.hash.clone()),
                        Arg::Text(token.description.clone()),
                        Arg::Int(token.created_ms),
                    ],
                    Check::Run,
                ));
            }
            SecurityChange::RevokeToken { id } => plan.push(step(
                q::DELETE_TOKEN,
                vec![Arg::Text(id.clone())],
                Check::Affects(ChangeOutcome::Missing),
            )),
            SecurityChange::AddAcl { rule } => {
                plan.push(step(
                    q::COUNT_ACLS,
                    vec![],
                    Check::Below(
                        MAX_ACLS,
                        ChangeOutcome::Limit(format!(
                            "a cluster has at most {MAX_ACLS} access rules"
                        )),
                    ),
                ));
                plan.push(step(
                    q::INSERT_ACL,
                    rule.args(),
                    Check::Affects(ChangeOutcome::Exists),
                ));
            }
            SecurityChange::RemoveAcl { rule } => plan.push(step(
                q::DELETE_ACL,
                rule.args(),
                Check::Affects(ChangeOutcome::Missing),
            )),
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create_token() -> SecurityChange {
        SecurityChange::CreateToken {
            token: TokenRow {
                id: "i".into(),
                user: "a".into(),
                hash: "h".into(),
                description: String::new(),
                created_ms: 1,
            },
        }
    }

    fn acl() -> AclRow {
        AclRow {
            principal: "a".into(),
            resource_type: "topic".into(),
            pattern_type: "literal".into(),
            resource_name: "t".into(),
            operation: "consume".into(),
            permission: "allow".into(),
        }
    }

    #[test]
    fn every_change_bumps_the_version_first_and_checks_before_writing() {
        let changes = [
            SecurityChange::CreateUser {
                name: "a".into(),
                now_ms: 1,
            },
            SecurityChange::DeleteUser { name: "a".into() },
            create_token(),
            SecurityChange::RevokeToken { id: "i".into() },
            SecurityChange::AddAcl { rule: acl() },
            SecurityChange::RemoveAcl { rule: acl() },
        ];
        for c in changes {
            let plan = c.plan();
            assert_eq!(plan[0].sql, q::BUMP, "{c:?}");
            assert!(plan.len() >= 2, "{c:?}");
        }
        let plan = create_token().plan();
        // The user must exist and be under its limit before the insert.
        assert!(matches!(
            plan[1].check,
            Check::Returns(ChangeOutcome::Missing)
        ));
        assert!(matches!(
            plan[2].check,
            Check::Below(MAX_TOKENS_PER_USER, _)
        ));
        assert_eq!(plan[3].sql, q::INSERT_TOKEN);
    }
}
