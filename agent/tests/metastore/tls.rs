//! The metadata store over TLS, against the suite's PostgreSQL
//! (scripts/postgres.sh): the role `streamhouse_tls` may connect over TLS
//! only, `streamhouse_cert` only with a client certificate; the server's
//! certificate, for localhost and 127.0.0.1, was made by the CA in
//! `STREAMHOUSE_TEST_POSTGRES_TLS_DIR`.

use std::path::PathBuf;

use streamhouse_agent::metastore::{MetaError, MetaStore};

use crate::common::{postgres_url, unique};

fn tls_dir() -> PathBuf {
    std::env::var_os("STREAMHOUSE_TEST_POSTGRES_TLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "STREAMHOUSE_TEST_POSTGRES_TLS_DIR is not set: run the suite with scripts/test.sh"
            )
        })
}

/// A file of the TLS directory, as a URL value.
fn file(name: &str) -> String {
    tls_dir().join(name).display().to_string()
}

/// The suite's database as `user` at `host`, with the URL options `query`.
fn url_as(user: &str, host: &str, query: &str) -> String {
    let base = postgres_url();
    let (_, after_scheme) = base.split_once("://").unwrap();
    let (_, at_host) = after_scheme.split_once('@').unwrap();
    let (host_port, db) = at_host.split_once('/').unwrap();
    let port = host_port.rsplit_once(':').map_or("5432", |(_, p)| p);
    format!("postgres://{user}@{host}:{port}/{db}?{query}")
}

async fn refused(url: &str) -> String {
    match MetaStore::open(url).await {
        Err(MetaError::Backend(m)) => m,
        Err(e) => panic!("{url}: unexpected error {e}"),
        Ok(_) => panic!("{url}: connected"),
    }
}

/// Whether every session of `user` the server has open is encrypted, with
/// its TLS versions (asked as the superuser, over plaintext).
async fn sessions_of(user: &str) -> Vec<(bool, Option<String>)> {
    let (client, conn) = tokio_postgres::connect(&postgres_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .query(
            "SELECT s.ssl, s.version FROM pg_stat_ssl s \
             JOIN pg_stat_activity a ON a.pid = s.pid WHERE a.usename = $1",
            &[&user],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn a_role_that_must_use_tls_is_refused_in_plaintext_and_served_over_verified_tls() {
    let plain = refused(&url_as("streamhouse_tls", "127.0.0.1", "sslmode=disable")).await;
    assert!(plain.contains("no encryption"), "{plain}");

    let url = url_as(
        "streamhouse_tls",
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={}", file("ca.pem")),
    );
    let store = MetaStore::open(&url).await.expect("verified TLS");
    let topic = unique("tls-topic");
    store.create_topic(&topic, 2).await.unwrap();
    let sessions = sessions_of("streamhouse_tls").await;
    assert!(!sessions.is_empty());
    for (ssl, version) in sessions {
        assert!(ssl, "a plaintext session of streamhouse_tls");
        assert!(
            matches!(version.as_deref(), Some("TLSv1.3" | "TLSv1.2")),
            "{version:?}"
        );
    }
    // The default (prefer) takes TLS when the server offers it.
    let store = MetaStore::open(&url_as("streamhouse_tls", "127.0.0.1", ""))
        .await
        .expect("sslmode=prefer by default");
    assert!(store
        .topics()
        .await
        .unwrap()
        .iter()
        .any(|t| t.name == topic));
}

#[tokio::test]
async fn a_certificate_from_another_ca_or_for_another_name_is_refused() {
    // Neither `verify-full` nor `verify-ca` takes a certificate of another CA.
    for mode in ["verify-full", "verify-ca"] {
        let other_ca = refused(&url_as(
            "streamhouse_tls",
            "127.0.0.1",
            &format!("sslmode={mode}&sslrootcert={}", file("other-ca.pem")),
        ))
        .await;
        assert!(other_ca.contains("UnknownIssuer"), "{mode}: {other_ca}");
    }

    // The right server under a name its certificate does not have.
    let wrong_name = |mode: &str| {
        url_as(
            "streamhouse_tls",
            "db.wrong-name.invalid",
            &format!(
                "hostaddr=127.0.0.1&sslmode={mode}&sslrootcert={}",
                file("ca.pem")
            ),
        )
    };
    let name = refused(&wrong_name("verify-full")).await;
    assert!(name.contains("db.wrong-name.invalid"), "{name}");
    assert!(name.to_lowercase().contains("not valid for name"), "{name}");
    // verify-ca checks the chain only; require without a CA checks nothing.
    MetaStore::open(&wrong_name("verify-ca"))
        .await
        .expect("verify-ca ignores the name");
    MetaStore::open(&url_as(
        "streamhouse_tls",
        "db.wrong-name.invalid",
        "hostaddr=127.0.0.1&sslmode=require",
    ))
    .await
    .expect("require without sslrootcert");
}

#[tokio::test]
async fn a_client_certificate_logs_in_where_the_server_asks_for_one() {
    let verified = format!("sslmode=verify-full&sslrootcert={}", file("ca.pem"));
    let without = refused(&url_as("streamhouse_cert", "localhost", &verified)).await;
    assert!(without.contains("certificate"), "{without}");
    let with = format!(
        "{verified}&sslcert={}&sslkey={}",
        file("client.pem"),
        file("client.key")
    );
    let store = MetaStore::open(&url_as("streamhouse_cert", "localhost", &with))
        .await
        .expect("logged in with the client certificate");
    store.topics().await.unwrap();
}
