//! Authentication (issue 20): with `--auth required` a call without a
//! credential, with a malformed, unknown, wrong or revoked token gets
//! UNAUTHENTICATED (the health check stays open); the bootstrap token and
//! a superuser's token manage users and tokens, another user's token may
//! not (PERMISSION_DENIED) but produces and reads; a revoked token stops
//! working on an open connection at once and on another agent sharing the
//! store within `--auth-refresh-ms`; tokens never appear in the agent's
//! debug log. On SQLite and on PostgreSQL.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{local_stores, Agent};
use streamhouse_client::net::PoolConfig;
use streamhouse_client::{Admin, Code, Consumer, Producer, ProducerRecord, Token};

/// The bootstrap token every test agent gets.
const BOOTSTRAP: &str = "bootstrap-token-for-the-auth-tests-0123456789";

fn pool(token: Option<&str>) -> PoolConfig {
    PoolConfig {
        token: token.map(Token::new),
        connect_timeout: Duration::from_secs(3),
        call_timeout: Duration::from_secs(5),
        ..PoolConfig::default()
    }
}

/// Flags of an agent requiring authentication, its bootstrap token in a
/// file under `dir`, `admin` a superuser.
fn auth_flags(dir: &Path, extra: &[&str]) -> Vec<String> {
    let file = dir.join("bootstrap.token");
    std::fs::write(&file, format!("{BOOTSTRAP}\n")).unwrap();
    let mut flags = vec![
        "--auth".to_string(),
        "required".into(),
        "--superusers".into(),
        "admin".into(),
        "--bootstrap-token-file".into(),
        file.display().to_string(),
    ];
    flags.extend(extra.iter().map(|s| s.to_string()));
    flags
}

fn code<T: std::fmt::Debug>(r: streamhouse_client::Result<T>) -> Code {
    match r {
        Err(e) => e
            .code()
            .unwrap_or_else(|| panic!("not a status error: {e}")),
        Ok(v) => panic!("succeeded: {v:?}"),
    }
}

/// Polls `check` every 50 ms until it holds; fails after `limit`.
async fn within<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn admin(bootstrap: &str, token: Option<&str>) -> Admin {
    Admin::with_pool(bootstrap, pool(token)).await.unwrap()
}

#[tokio::test]
async fn tokens_users_and_revocation_on_sqlite() {
    let dir = tempfile::tempdir_in(common::target_tmp()).unwrap();
    tokens_users_and_revocation(dir.path(), None).await;
}

#[tokio::test]
async fn tokens_users_and_revocation_on_postgres() {
    let dir = tempfile::tempdir_in(common::target_tmp()).unwrap();
    let url = common::postgres_url();
    tokens_users_and_revocation(dir.path(), Some(&url)).await;
}

async fn tokens_users_and_revocation(dir: &Path, postgres: Option<&str>) {
    let suffix = common::unique("u");
    let mut extra = vec!["--auth-refresh-ms", "200ms"];
    let id0 = format!("auth-a-{suffix}");
    let id1 = format!("auth-b-{suffix}");
    let mut stores = local_stores(dir, &[]);
    if let Some(url) = postgres {
        stores[3] = url.to_string();
    }
    extra.extend(stores.iter().map(String::as_str));
    let flags0 = auth_flags(dir, &[extra.as_slice(), &["--agent-id", &id0]].concat());
    let flags1 = auth_flags(dir, &[extra.as_slice(), &["--agent-id", &id1]].concat());
    let a = Agent::start(1, &flags0.iter().map(String::as_str).collect::<Vec<_>>());
    let b = Agent::start(1, &flags1.iter().map(String::as_str).collect::<Vec<_>>());
    let (a0, b0) = (a.addr(0), b.addr(0));

    // No credential: refused, the health check aside (the pool's own
    // health check passes, the call does not).
    let anonymous = Admin::with_pool(a0.as_str(), pool(None)).await;
    let anonymous = match anonymous {
        Ok(admin) => code(admin.list_topics().await),
        Err(e) => e.code().unwrap(),
    };
    assert_eq!(anonymous, Code::Unauthenticated);
    for bad in [
        "shk_0123456789abcdef_nosuchtoken",
        "not-a-token",
        "shk_zz_bad",
    ] {
        let r = Admin::with_pool(a0.as_str(), pool(Some(bad))).await;
        let c = match r {
            Ok(admin) => code(admin.list_topics().await),
            Err(e) => e.code().unwrap(),
        };
        assert_eq!(c, Code::Unauthenticated, "{bad}");
    }

    // The bootstrap token manages users and tokens.
    let root = admin(&a0, Some(BOOTSTRAP)).await;
    let user = format!("alice-{suffix}");
    root.create_user(&user).await.unwrap();
    assert_eq!(code(root.create_user(&user).await), Code::AlreadyExists);
    assert_eq!(
        code(root.create_user("no spaces").await),
        Code::InvalidArgument
    );
    let alice = root.create_token(&user, "the billing job").await.unwrap();
    assert!(!format!("{alice:?}").contains(&alice.token.expose()[21..]));
    let listed = root.list_tokens(Some(&user)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, alice.id);
    assert_eq!(listed[0].description, "the billing job");
    assert_eq!(code(root.create_token("nobody", "").await), Code::NotFound);

    // A user's token, with a rule allowing it the topics `auth-*`,
    // produces and reads, but may not manage users.
    let mut topics = streamhouse_client::AclRule::allow_topic(&user, "auth-", "all");
    topics.pattern_type = "prefix".into();
    root.add_acl(&topics).await.unwrap();
    let secret = alice.token.expose().to_owned();
    let as_alice = admin(&a0, Some(&secret)).await;
    let topic = format!("auth-{suffix}");
    as_alice.create_topic(&topic, 16).await.unwrap();
    // Two agents share the store: the new partitions' leases take a moment
    // to settle. The producer and consumer use one that agent `a` leads,
    // where a revocation applies at once.
    let led_by_a = std::cell::Cell::new(None);
    within(
        Duration::from_secs(10),
        "leaders of the new partitions",
        || async {
            let Ok(t) = as_alice.describe_topic(&topic).await else {
                return false;
            };
            let settled = t.partitions.iter().all(|p| !p.leader_address.is_empty());
            let on_a = t.partitions.iter().find(|p| p.leader_agent_id == id0);
            led_by_a.set(on_a.map(|p| p.partition));
            settled && on_a.is_some()
        },
    )
    .await;
    let pa = led_by_a.get().unwrap_or_default();
    let producer = Producer::builder(a0.as_str())
        .pool(pool(Some(&secret)))
        .build()
        .await
        .unwrap();
    producer
        .send(ProducerRecord::new(topic.as_str(), "v").partition(pa))
        .await
        .unwrap();
    let mut consumer = Consumer::builder(a0.as_str())
        .pool(pool(Some(&secret)))
        .build()
        .await
        .unwrap();
    consumer.assign([(topic.as_str(), pa)]).await.unwrap();
    assert_eq!(&consumer.next_record().await.unwrap().value[..], b"v");
    assert_eq!(
        code(as_alice.create_user("mallory").await),
        Code::PermissionDenied
    );
    assert_eq!(code(as_alice.list_users().await), Code::PermissionDenied);
    // The same id with another secret is refused.
    let forged = format!("shk_{}_{}", alice.id, "A".repeat(43));
    let r = Admin::with_pool(a0.as_str(), pool(Some(&forged))).await;
    let c = match r {
        Ok(admin) => code(admin.list_topics().await),
        Err(e) => e.code().unwrap(),
    };
    assert_eq!(c, Code::Unauthenticated);

    // The other agent learns the new token from the store within its
    // refresh interval.
    let on_b = admin(&b0, Some(&secret)).await;
    within(
        Duration::from_secs(5),
        "the token on the other agent",
        || async { on_b.list_topics().await.is_ok() },
    )
    .await;

    // Revoked: refused at once on the agent that revoked it, on the open
    // connections of the admin and the producer included ...
    root.revoke_token(&alice.id).await.unwrap();
    assert_eq!(code(as_alice.list_topics().await), Code::Unauthenticated);
    let sent = producer
        .send(ProducerRecord::new(topic.as_str(), "after").partition(pa))
        .await;
    assert_eq!(code(sent), Code::Unauthenticated);
    // ... and on the other agent within its refresh interval.
    let revoked_at = Instant::now();
    loop {
        match on_b.list_topics().await {
            Err(e) if e.code() == Some(Code::Unauthenticated) => break,
            other => {
                assert!(
                    revoked_at.elapsed() < Duration::from_secs(5),
                    "still accepted on the other agent: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    eprintln!(
        "revocation reached the other agent in {:?} (--auth-refresh-ms 200)",
        revoked_at.elapsed()
    );
    assert_eq!(code(root.revoke_token(&alice.id).await), Code::NotFound);

    // A deleted user's tokens go with it.
    let again = root.create_token(&user, "").await.unwrap();
    admin(&a0, Some(again.token.expose()))
        .await
        .list_topics()
        .await
        .unwrap();
    root.delete_user(&user).await.unwrap();
    let r = Admin::with_pool(a0.as_str(), pool(Some(again.token.expose()))).await;
    let c = match r {
        Ok(admin) => code(admin.list_topics().await),
        Err(e) => e.code().unwrap(),
    };
    assert_eq!(c, Code::Unauthenticated);
    assert!(root
        .list_users()
        .await
        .unwrap()
        .iter()
        .all(|u| u.name != user));
    drop(producer);
}

/// A superuser named in `--superusers` works with its own token; without
/// `--auth required` nothing is asked.
#[tokio::test]
async fn a_listed_superuser_manages_users_and_auth_off_asks_nothing() {
    let dir = tempfile::tempdir_in(common::target_tmp()).unwrap();
    let flags = auth_flags(dir.path(), &[]);
    let a = Agent::start(1, &flags.iter().map(String::as_str).collect::<Vec<_>>());
    let root = admin(&a.addr(0), Some(BOOTSTRAP)).await;
    root.create_user("admin").await.unwrap();
    let t = root.create_token("admin", "").await.unwrap();
    let as_admin = admin(&a.addr(0), Some(t.token.expose())).await;
    as_admin.create_user("bob").await.unwrap();
    let names: Vec<String> = as_admin
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["admin", "bob"]);

    let open = Agent::start(1, &[]);
    let anyone = admin(&open.addr(0), None).await;
    anyone.list_topics().await.unwrap();
    anyone.create_user("carol").await.unwrap();
    // A token sent to an agent that asks for none is not looked at.
    admin(&open.addr(0), Some("anything"))
        .await
        .list_topics()
        .await
        .unwrap();
}

/// Raw HTTP/2 requests with credentials tonic would not send: a non-bearer
/// scheme, an oversized header, a token with bytes no token has.
#[tokio::test]
async fn malformed_authorization_headers_are_unauthenticated() {
    let dir = tempfile::tempdir_in(common::target_tmp()).unwrap();
    let flags = auth_flags(dir.path(), &[]);
    let a = Agent::start(1, &flags.iter().map(String::as_str).collect::<Vec<_>>());
    let long = format!("Bearer {}", "a".repeat(4000));
    let addr = a.addr(0);
    let mut h2c = raw::connect(&addr).await;
    let empty = raw::frame(0, &[]);
    for value in [
        "Basic YWxpY2U6c2VjcmV0",
        "Bearer",
        long.as_str(),
        "Bearer shk_0123456789abcdef_bad!secret",
    ] {
        let req = raw::request(
            &addr,
            streamhouse_proto::paths::LIST_TOPICS,
            &[("authorization", value)],
        );
        let reply = raw::call(&mut h2c, req, empty.clone()).await;
        assert_eq!(
            reply.grpc_status.as_deref(),
            Some("16"),
            "{value:.40}: {:?}",
            reply.grpc_message
        );
    }
    let req = raw::request(&addr, streamhouse_proto::paths::HEALTH_CHECK, &[]);
    let reply = raw::call(&mut h2c, req, empty).await;
    assert_eq!(
        reply.grpc_status.as_deref(),
        Some("0"),
        "the health check needs no credential: {:?}",
        reply.grpc_message
    );
}

/// Neither a token nor the bootstrap token is written to the agent's log,
/// at debug level, through a run that creates, uses, refuses and revokes
/// them.
#[tokio::test]
async fn secrets_never_reach_the_log() {
    let dir = tempfile::tempdir_in(common::target_tmp()).unwrap();
    let log = dir.path().join("agent.log");
    let flags = auth_flags(dir.path(), &[]);
    let port = common::free_ports(1);
    let mut child = std::process::Command::new(common::agent_bin())
        .args(["--listen", &format!("127.0.0.1:{port}"), "--shards", "1"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(&flags)
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "agent did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let root = admin(&addr, Some(BOOTSTRAP)).await;
    root.create_user("dave").await.unwrap();
    let t = root.create_token("dave", "").await.unwrap();
    let secret = t.token.expose().to_owned();
    let dave = admin(&addr, Some(&secret)).await;
    let _ = dave.create_topic("logged", 1).await;
    let _ = dave.create_user("eve").await;
    let wrong = format!("shk_{}_{}", t.id, "B".repeat(43));
    if let Ok(a) = Admin::with_pool(addr.as_str(), pool(Some(&wrong))).await {
        let _ = a.list_topics().await;
    }
    root.revoke_token(&t.id).await.unwrap();
    let _ = dave.list_topics().await;
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("request answered"), "no debug log written");
    let secret_part = &secret[21..];
    for (what, needle) in [
        ("a token", secret_part),
        ("the bootstrap token", BOOTSTRAP),
        ("a wrong secret", &wrong[21..]),
    ] {
        assert!(!text.contains(needle), "{what} is in the log");
    }
}
