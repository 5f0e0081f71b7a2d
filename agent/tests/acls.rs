//! Access rules (issue 20): with `--auth required` a principal with only
//! a consume rule on topic A reads A but gets PERMISSION_DENIED producing
//! to A and describing B, and sees only A in topic lists and metadata; a
//! deny wins over an allow; adding and removing rules reaches every shard;
//! group rules guard groups; only superusers manage rules, and a wrong
//! field is named. Against the agent's own store.

mod common;

use std::time::{Duration, Instant};

use common::Agent;
use streamhouse_client::net::PoolConfig;
use streamhouse_client::{AclRule, Admin, Code, Consumer, Producer, ProducerRecord, Token};

const BOOTSTRAP: &str = "bootstrap-token-for-the-acl-tests-0123456789";

fn pool(token: &str) -> PoolConfig {
    PoolConfig {
        token: Some(Token::new(token)),
        connect_timeout: Duration::from_secs(3),
        call_timeout: Duration::from_secs(5),
        ..PoolConfig::default()
    }
}

fn code<T: std::fmt::Debug>(r: streamhouse_client::Result<T>) -> (Code, String) {
    match r {
        Err(e) => (e.code().unwrap_or_else(|| panic!("{e}")), e.to_string()),
        Ok(v) => panic!("allowed: {v:?}"),
    }
}

/// Reads one record of every partition of `topic` as `token`: the
/// first error, if any (each partition may be on another shard).
async fn read_each_partition(
    bootstrap: &str,
    token: &str,
    topic: &str,
    partitions: u32,
) -> Result<(), (Code, String)> {
    for p in 0..partitions {
        let mut c = Consumer::builder(bootstrap)
            .pool(pool(token))
            .build()
            .await
            .map_err(|e| (e.code().unwrap_or(Code::Unknown), e.to_string()))?;
        c.assign([(topic, p)])
            .await
            .map_err(|e| (e.code().unwrap_or(Code::Unknown), e.to_string()))?;
        c.poll(Duration::from_millis(200))
            .await
            .map_err(|e| (e.code().unwrap_or(Code::Unknown), e.to_string()))?;
    }
    Ok(())
}

/// Retries `check` until it holds: a rule change reaches a shard's copy
/// at its next call, another agent's within its refresh interval.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn consume_only_on_one_topic_and_deny_wins() {
    let dir = tempfile::tempdir_in(common::target_tmp()).unwrap();
    let boot = dir.path().join("boot.token");
    std::fs::write(&boot, BOOTSTRAP).unwrap();
    let agent = Agent::start(
        2,
        &[
            "--auth",
            "required",
            "--bootstrap-token-file",
            boot.to_str().unwrap(),
        ],
    );
    let b = agent.addr(0);
    let root = Admin::with_pool(b.as_str(), pool(BOOTSTRAP)).await.unwrap();
    root.create_topic("a", 4).await.unwrap();
    root.create_topic("b", 1).await.unwrap();
    let producer = Producer::builder(b.as_str())
        .pool(pool(BOOTSTRAP))
        .build()
        .await
        .unwrap();
    for p in 0..4 {
        producer
            .send(ProducerRecord::new("a", "x").partition(p))
            .await
            .unwrap();
    }
    root.create_user("reader").await.unwrap();
    let token = root.create_token("reader", "").await.unwrap().token;
    let token = token.expose().to_owned();
    let reader = Admin::with_pool(b.as_str(), pool(&token)).await.unwrap();

    // Nothing allowed yet.
    let (c, m) = code(reader.describe_topic("a").await);
    assert_eq!(c, Code::PermissionDenied, "{m}");
    assert!(
        m.contains("reader may not describe topic a: no access rule allows it"),
        "{m}"
    );
    assert!(reader.list_topics().await.unwrap().is_empty());

    let consume_a = AclRule::allow_topic("reader", "a", "consume");
    root.add_acl(&consume_a).await.unwrap();
    assert_eq!(code(root.add_acl(&consume_a).await).0, Code::AlreadyExists);
    // Every shard (the four partitions spread over both) reads it.
    read_each_partition(&b, &token, "a", 4).await.unwrap();
    reader.describe_topic("a").await.unwrap();
    let listed: Vec<String> = reader
        .list_topics()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(listed, ["a"]);
    let seen: Vec<String> = reader
        .metadata()
        .await
        .unwrap()
        .topics
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(seen, ["a"]);
    let (c, m) = code(reader.describe_topic("b").await);
    assert_eq!(c, Code::PermissionDenied, "{m}");
    let as_reader = Producer::builder(b.as_str())
        .pool(pool(&token))
        .build()
        .await
        .unwrap();
    let (c, m) = code(
        as_reader
            .send(ProducerRecord::new("a", "no").partition(0))
            .await,
    );
    assert_eq!(c, Code::PermissionDenied, "{m}");
    assert!(m.contains("reader may not produce topic a"), "{m}");
    let (c, _) = code(reader.delete_topic("a").await);
    assert_eq!(c, Code::PermissionDenied);
    let (c, _) = code(reader.create_topic("c", 1).await);
    assert_eq!(c, Code::PermissionDenied);

    // A deny for everyone wins, on every shard; removing it restores.
    let mut deny = AclRule::allow_topic("*", "a", "consume");
    deny.permission = "deny".into();
    root.add_acl(&deny).await.unwrap();
    for p in 0..4 {
        let mut c = Consumer::builder(b.as_str())
            .pool(pool(&token))
            .build()
            .await
            .unwrap();
        c.assign([("a", p)]).await.unwrap_or(());
        let (code, m) = code(c.poll(Duration::from_millis(200)).await);
        assert_eq!(code, Code::PermissionDenied, "partition {p}: {m}");
        assert!(m.contains("an access rule denies it"), "{m}");
    }
    root.remove_acl(&deny).await.unwrap();
    assert_eq!(code(root.remove_acl(&deny).await).0, Code::NotFound);
    eventually("the removed deny still applies", || async {
        read_each_partition(&b, &token, "a", 4).await.is_ok()
    })
    .await;

    // Groups: describe needs a rule on the group.
    let (c, _) = code(reader.describe_group("g1").await);
    assert_eq!(c, Code::PermissionDenied);
    let mut groups = AclRule::allow_group("reader", "g", "consume");
    groups.pattern_type = "prefix".into();
    root.add_acl(&groups).await.unwrap();
    assert_ne!(
        reader
            .describe_group("g1")
            .await
            .err()
            .and_then(|e| e.code()),
        Some(Code::PermissionDenied)
    );
    assert_eq!(
        code(reader.describe_group("other").await).0,
        Code::PermissionDenied
    );

    // Only superusers manage rules; a wrong field is named.
    assert_eq!(
        code(reader.add_acl(&consume_a).await).0,
        Code::PermissionDenied
    );
    assert_eq!(code(reader.list_acls(None).await).0, Code::PermissionDenied);
    let mut bad = consume_a.clone();
    bad.operation = "write".into();
    let (c, m) = code(root.add_acl(&bad).await);
    assert_eq!(c, Code::InvalidArgument);
    assert!(m.contains("operation: unknown operation \"write\""), "{m}");
    let mine = root.list_acls(Some("reader")).await.unwrap();
    assert_eq!(mine.len(), 2);
    assert!(mine.contains(&consume_a) && mine.contains(&groups));
}
