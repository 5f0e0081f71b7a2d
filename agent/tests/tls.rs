//! TLS on the shard ports (issue 20): the project's client works over TLS
//! and mutual TLS; a plaintext client, a client trusting another CA, a
//! certificate for another name and an expired certificate are refused;
//! SIGHUP swaps the certificate for new connections while open ones go on;
//! with `--auth required` a client certificate's name is the principal.

#[path = "common/certs.rs"]
mod certs;
mod common;

use std::path::Path;
use std::time::Duration;

use certs::{write_leaf, Ca};
use streamhouse_client::net::{PoolConfig, TlsConfig};
use streamhouse_client::{Admin, Consumer, Producer};

fn pool(tls: TlsConfig) -> PoolConfig {
    PoolConfig {
        tls: Some(tls),
        connect_timeout: Duration::from_secs(3),
        call_timeout: Duration::from_secs(5),
        ..PoolConfig::default()
    }
}

/// A TLS agent with a certificate of `ca` for localhost and 127.0.0.1.
fn tls_agent(dir: &Path, ca: &Ca, extra: &[&str]) -> common::Agent {
    let (cert, key) = write_leaf(dir, "server", &ca.issue(&["localhost", "127.0.0.1"], false));
    let mut args = vec![
        "--tls-cert".to_string(),
        cert.display().to_string(),
        "--tls-key".to_string(),
        key.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::Agent::start(1, &args)
}

/// A TLS agent asking for client certificates of a second CA (mutual
/// TLS), with `extra` flags: (the server's CA, the clients' CA, agent).
fn mtls_agent(dir: &Path, extra: &[&str]) -> (Ca, Ca, common::Agent) {
    let ca = Ca::new("StreamHouse test CA");
    let clients = Ca::new("client CA");
    let ca_file = dir.join("clients.pem");
    std::fs::write(&ca_file, clients.pem()).unwrap();
    let mut flags = vec!["--tls-client-ca", ca_file.to_str().unwrap()];
    flags.extend_from_slice(extra);
    let agent = tls_agent(dir, &ca, &flags);
    (ca, clients, agent)
}

/// Creates a topic, produces and reads back one record over `pool`.
async fn round_trip(
    bootstrap: &str,
    pool: PoolConfig,
    topic: &str,
) -> streamhouse_client::Result<()> {
    let admin = Admin::with_pool(bootstrap, pool.clone()).await?;
    admin.create_topic(topic, 1).await?;
    let producer = Producer::builder(bootstrap)
        .pool(pool.clone())
        .build()
        .await?;
    producer
        .send(streamhouse_client::ProducerRecord::new(topic, "over tls").partition(0))
        .await?;
    producer.close().await?;
    let mut consumer = Consumer::builder(bootstrap).pool(pool).build().await?;
    consumer.assign([(topic, 0)]).await?;
    let r = consumer.next_record().await?;
    assert_eq!(&r.value[..], b"over tls");
    Ok(())
}

#[tokio::test]
async fn the_client_works_over_tls_and_every_wrong_peer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("StreamHouse test CA");
    let agent = tls_agent(dir.path(), &ca, &[]);
    let b = agent.addr(0);

    round_trip(&b, pool(TlsConfig::new().ca_pem(ca.pem())), "secure")
        .await
        .unwrap();

    // A plaintext client is told the port requires TLS.
    // (The HTTP/2 connection may be taken for open until the first call.)
    let e = match Admin::with_pool(&b, PoolConfig::default()).await {
        Err(e) => e,
        Ok(a) => a.list_topics().await.expect_err("plaintext refused"),
    };
    assert!(e.to_string().contains("requires TLS"), "{e}");

    // A client trusting another CA refuses the agent's certificate.
    let other = Ca::new("another CA");
    let e = Admin::with_pool(&b, pool(TlsConfig::new().ca_pem(other.pem())))
        .await
        .err()
        .expect("unknown CA refused");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");

    // The agent's certificate does not name the host the client expects.
    let e = Admin::with_pool(
        &b,
        pool(
            TlsConfig::new()
                .ca_pem(ca.pem())
                .server_name("db.example.com"),
        ),
    )
    .await
    .err()
    .expect("wrong name refused");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
}

#[tokio::test]
async fn an_expired_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("StreamHouse test CA");
    let (cert, key) = write_leaf(dir.path(), "old", &ca.issue(&["127.0.0.1"], true));
    let agent = common::Agent::start(
        1,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let e = Admin::with_pool(agent.addr(0), pool(TlsConfig::new().ca_pem(ca.pem())))
        .await
        .err()
        .expect("expired refused");
    assert!(e.to_string().to_lowercase().contains("expired"), "{e}");
}

#[tokio::test]
async fn mutual_tls_takes_only_clients_the_ca_signed() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, clients, agent) = mtls_agent(dir.path(), &[]);
    let b = agent.addr(0);

    let (cert, key) = clients.issue(&["alice"], false);
    round_trip(
        &b,
        pool(TlsConfig::new().ca_pem(ca.pem()).identity_pem(cert, key)),
        "mtls",
    )
    .await
    .unwrap();

    // No client certificate, or one another CA signed: refused.
    for tls in [TlsConfig::new().ca_pem(ca.pem()), {
        let (c, k) = Ca::new("stranger").issue(&["mallory"], false);
        TlsConfig::new().ca_pem(ca.pem()).identity_pem(c, k)
    }] {
        let admin = Admin::with_pool(&b, pool(tls)).await;
        let refused = match admin {
            Err(_) => true,
            // TLS 1.3 reports the client certificate's refusal after the
            // handshake: the first call fails.
            Ok(a) => a.list_topics().await.is_err(),
        };
        assert!(refused, "a client without a certificate of the CA got in");
    }
}

/// With `--auth required`, a client certificate's name is the principal:
/// one listed in `--superusers` manages users, another may not
/// (PERMISSION_DENIED) but works with topics; a token, when sent, counts
/// instead of the certificate.
#[tokio::test]
async fn a_client_certificate_names_the_principal() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, clients, agent) =
        mtls_agent(dir.path(), &["--auth", "required", "--superusers", "ops"]);
    let b = agent.addr(0);
    let as_cert = |name: &str| {
        let (cert, key) = clients.issue(&[name], false);
        pool(TlsConfig::new().ca_pem(ca.pem()).identity_pem(cert, key))
    };
    let ops = Admin::with_pool(&b, as_cert("ops")).await.unwrap();
    ops.create_user("svc").await.unwrap();
    let token = ops.create_token("svc", "").await.unwrap();

    let app = Admin::with_pool(&b, as_cert("app")).await.unwrap();
    let denied = app.create_topic("by-cert", 1).await.unwrap_err();
    assert_eq!(
        denied.code(),
        Some(streamhouse_client::Code::PermissionDenied),
        "{denied}"
    );
    ops.add_acl(&streamhouse_client::AclRule::allow_topic(
        "app", "by-cert", "create",
    ))
    .await
    .unwrap();
    app.create_topic("by-cert", 1).await.unwrap();
    let denied = app.create_user("x").await.unwrap_err();
    assert_eq!(
        denied.code(),
        Some(streamhouse_client::Code::PermissionDenied),
        "{denied}"
    );
    assert!(
        denied.to_string().contains("app may not create users"),
        "{denied}"
    );

    // A bad token is refused even over a good certificate.
    let mut bad = as_cert("ops");
    bad.token = Some(streamhouse_client::Token::new("shk_0123456789abcdef_nope"));
    let refused = match Admin::with_pool(&b, bad).await {
        Ok(a) => a.list_topics().await.unwrap_err(),
        Err(e) => e,
    };
    assert_eq!(
        refused.code(),
        Some(streamhouse_client::Code::Unauthenticated),
        "{refused}"
    );
    // A good one works over another client's certificate, as its user.
    let mut with_token = as_cert("app");
    with_token.token = Some(token.token.clone());
    let svc = Admin::with_pool(&b, with_token).await.unwrap();
    svc.list_topics().await.unwrap();
    assert_eq!(
        svc.list_users().await.unwrap_err().code(),
        Some(streamhouse_client::Code::PermissionDenied)
    );
}

#[tokio::test]
async fn sighup_swaps_the_certificate_and_open_connections_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let old_ca = Ca::new("old CA");
    let agent = tls_agent(dir.path(), &old_ca, &[]);
    let b = agent.addr(0);
    let old = Admin::with_pool(&b, pool(TlsConfig::new().ca_pem(old_ca.pem())))
        .await
        .unwrap();
    old.create_topic("before", 1).await.unwrap();

    // The new certificate (of another CA) over the same files, then SIGHUP.
    let new_ca = Ca::new("new CA");
    write_leaf(
        dir.path(),
        "server",
        &new_ca.issue(&["localhost", "127.0.0.1"], false),
    );
    agent.signal(libc::SIGHUP);
    let new = async {
        for _ in 0..100 {
            if let Ok(a) = Admin::with_pool(&b, pool(TlsConfig::new().ca_pem(new_ca.pem()))).await {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the new certificate was never served");
    }
    .await;
    new.create_topic("after", 1).await.unwrap();
    // The connection opened before goes on; a new one trusting only the
    // old CA is refused.
    assert_eq!(old.list_topics().await.unwrap().len(), 2);
    assert!(
        Admin::with_pool(&b, pool(TlsConfig::new().ca_pem(old_ca.pem())))
            .await
            .is_err()
    );
    // A reload that fails (a key that is not the certificate's) keeps
    // serving the certificate loaded before.
    let (_, other_key) = new_ca.issue(&["127.0.0.1"], false);
    std::fs::write(dir.path().join("server.key"), other_key).unwrap();
    agent.signal(libc::SIGHUP);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = Admin::with_pool(&b, pool(TlsConfig::new().ca_pem(new_ca.pem())))
        .await
        .unwrap();
    assert_eq!(again.list_topics().await.unwrap().len(), 2);
}

/// A gRPC health check by Python's grpcio (an independent client) over
/// TLS, with a client certificate when `identity` is given: the serving
/// status's name, or the error grpcio reports.
fn grpcio_health(address: &str, ca: &Path, identity: Option<(&Path, &Path)>) -> String {
    let python = std::env::var("STREAMHOUSE_TEST_GRPCIO_PYTHON").unwrap_or_else(|_| {
        panic!("STREAMHOUSE_TEST_GRPCIO_PYTHON is not set: run the suite with scripts/test.sh")
    });
    let script = r#"
import sys, grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
address, ca = sys.argv[1], open(sys.argv[2], 'rb').read()
key = open(sys.argv[4], 'rb').read() if len(sys.argv) > 4 else None
cert = open(sys.argv[3], 'rb').read() if len(sys.argv) > 4 else None
creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
with grpc.secure_channel(address, creds) as channel:
    try:
        r = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=''), timeout=10)
        print(health_pb2.HealthCheckResponse.ServingStatus.Name(r.status))
    except grpc.RpcError as e:
        print(e.code().name)
"#;
    let mut cmd = std::process::Command::new(python);
    cmd.arg("-c").arg(script).arg(address).arg(ca);
    if let Some((cert, key)) = identity {
        cmd.arg(cert).arg(key);
    }
    let out = cmd.output().expect("run grpcio");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn grpcio_checks_health_over_tls_and_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("StreamHouse test CA");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let plain = tls_agent(dir.path(), &ca, &[]);
    assert_eq!(grpcio_health(&plain.addr(0), &ca_file, None), "SERVING");
    // grpcio trusting another CA fails the handshake.
    let other = dir.path().join("other.pem");
    std::fs::write(&other, Ca::new("another CA").pem()).unwrap();
    assert_eq!(grpcio_health(&plain.addr(0), &other, None), "UNAVAILABLE");

    let clients = Ca::new("client CA");
    let clients_file = dir.path().join("clients.pem");
    std::fs::write(&clients_file, clients.pem()).unwrap();
    let mutual = tls_agent(
        dir.path(),
        &ca,
        &["--tls-client-ca", clients_file.to_str().unwrap()],
    );
    let (cert, key) = write_leaf(dir.path(), "py", &clients.issue(&["grpcio"], false));
    assert_eq!(
        grpcio_health(&mutual.addr(0), &ca_file, Some((&cert, &key))),
        "SERVING"
    );
    assert_eq!(
        grpcio_health(&mutual.addr(0), &ca_file, None),
        "UNAVAILABLE"
    );
}

/// The admin port serves HTTPS with the same certificate (no client
/// certificate asked, as health probes have none); plain HTTP is refused.
#[test]
fn the_admin_port_serves_https_with_the_same_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("StreamHouse test CA");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let clients = dir.path().join("clients.pem");
    std::fs::write(&clients, Ca::new("client CA").pem()).unwrap();
    let port = common::free_ports(1);
    let listen = format!("127.0.0.1:{port}");
    let _agent = tls_agent(
        dir.path(),
        &ca,
        &[
            "--admin-listen",
            &listen,
            "--tls-client-ca",
            clients.to_str().unwrap(),
        ],
    );
    let curl = |url: &str| {
        std::process::Command::new("curl")
            .args(["-s", "--max-time", "5", "--cacert"])
            .arg(&ca_file)
            .arg(url)
            .output()
            .expect("curl")
    };
    let mut out = curl(&format!("https://{listen}/health"));
    for _ in 0..100 {
        if out.status.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        out = curl(&format!("https://{listen}/health"));
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ok"),
        "{out:?}"
    );
    let plain = curl(&format!("http://{listen}/health"));
    assert!(
        !plain.status.success() || plain.stdout.is_empty(),
        "{plain:?}"
    );
}
