//! Users and API tokens in the metadata store, against SQLite and
//! PostgreSQL: every change bumps the version, refusals change nothing,
//! a deleted user's tokens go with it, a token of a user deleted
//! meanwhile is never listed, and access rules are stored and removed
//! once.

use super::*;
use streamhouse_agent::metastore::security::{AclRow, ChangeOutcome, SecurityChange, TokenRow};

fn token(id: &str, user: &str) -> SecurityChange {
    SecurityChange::CreateToken {
        token: TokenRow {
            id: id.into(),
            user: user.into(),
            hash: format!("hash-of-{id}"),
            description: "d".into(),
            created_ms: 5,
        },
    }
}

async fn security_suite(url: &str) {
    let m = MetaStore::open(url).await.expect("open");
    let user = unique("user");
    let v0 = m.security_version().await.unwrap();
    let create = SecurityChange::CreateUser {
        name: user.clone(),
        now_ms: 7,
    };
    assert_eq!(
        m.change_security(&create).await.unwrap(),
        ChangeOutcome::Done
    );
    let v1 = m.security_version().await.unwrap();
    assert!(v1 > v0);
    assert_eq!(
        m.change_security(&create).await.unwrap(),
        ChangeOutcome::Exists
    );
    assert_eq!(
        m.security_version().await.unwrap(),
        v1,
        "a refusal changed the version"
    );

    let (t1, t2) = (unique("t1"), unique("t2"));
    assert_eq!(
        m.change_security(&token(&t1, &user)).await.unwrap(),
        ChangeOutcome::Done
    );
    assert_eq!(
        m.change_security(&token(&t2, &user)).await.unwrap(),
        ChangeOutcome::Done
    );
    assert_eq!(
        m.change_security(&token(&unique("t3"), &unique("nobody")))
            .await
            .unwrap(),
        ChangeOutcome::Missing
    );
    let rows = m.security().await.unwrap();
    assert_eq!(rows.version, m.security_version().await.unwrap());
    let u = rows.users.iter().find(|u| u.name == user).expect("listed");
    assert_eq!((u.created_ms, u.tokens), (7, 2));
    let t = rows
        .tokens
        .iter()
        .find(|t| t.id == t1)
        .expect("token listed");
    assert_eq!(
        (t.user.as_str(), t.hash.as_str()),
        (user.as_str(), format!("hash-of-{t1}").as_str())
    );

    let revoke = SecurityChange::RevokeToken { id: t1.clone() };
    assert_eq!(
        m.change_security(&revoke).await.unwrap(),
        ChangeOutcome::Done
    );
    assert_eq!(
        m.change_security(&revoke).await.unwrap(),
        ChangeOutcome::Missing
    );
    let delete = SecurityChange::DeleteUser { name: user.clone() };
    assert_eq!(
        m.change_security(&delete).await.unwrap(),
        ChangeOutcome::Done
    );
    assert_eq!(
        m.change_security(&delete).await.unwrap(),
        ChangeOutcome::Missing
    );
    let rows = m.security().await.unwrap();
    assert!(rows.users.iter().all(|u| u.name != user));
    assert!(
        rows.tokens.iter().all(|t| t.id != t1 && t.id != t2),
        "tokens outlived their user"
    );

    // Access rules: stored once, removed once, each change counted.
    let rule = AclRow {
        principal: user.clone(),
        resource_type: "topic".into(),
        pattern_type: "prefix".into(),
        resource_name: "orders.".into(),
        operation: "consume".into(),
        permission: "allow".into(),
    };
    let add = SecurityChange::AddAcl { rule: rule.clone() };
    let before = m.security_version().await.unwrap();
    assert_eq!(m.change_security(&add).await.unwrap(), ChangeOutcome::Done);
    assert_eq!(
        m.change_security(&add).await.unwrap(),
        ChangeOutcome::Exists
    );
    assert_eq!(m.security_version().await.unwrap(), before + 1);
    assert!(m.security().await.unwrap().acls.contains(&rule));
    let remove = SecurityChange::RemoveAcl { rule: rule.clone() };
    assert_eq!(
        m.change_security(&remove).await.unwrap(),
        ChangeOutcome::Done
    );
    assert_eq!(
        m.change_security(&remove).await.unwrap(),
        ChangeOutcome::Missing
    );
    assert!(!m.security().await.unwrap().acls.contains(&rule));
}

#[tokio::test]
async fn sqlite_keeps_users_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    security_suite(&common::sqlite_url(dir.path())).await;
}

#[tokio::test]
async fn postgres_keeps_users_and_tokens() {
    security_suite(&common::postgres_url()).await;
}
