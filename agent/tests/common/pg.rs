//! A fresh PostgreSQL database per test, on the server scripts/test.sh
//! starts (agent tests only: it needs the agent's PostgreSQL client).

use crate::common::{postgres_url, unique};

/// Creates an empty database and returns its URL.
pub async fn fresh_database(prefix: &str) -> String {
    let base = postgres_url();
    let db = unique(prefix).replace('-', "_");
    let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    format!("{}/{db}", base.rsplit_once('/').unwrap().0)
}

/// Runs `statements` on the database at `url` (for faults a test injects,
/// such as a table out of reach).
#[allow(dead_code)] // not every test file that includes this uses it
pub async fn execute(url: &str, statements: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client.batch_execute(statements).await.unwrap();
}
