//! Agents started together on a new metadata store all start (issue 42,
//! defect 7). Before: openers of one new SQLite file raced to switch it to
//! WAL mode, and SQLite answers that race "database is locked" without
//! waiting its busy timeout: about one agent start in five failed. Now a
//! busy store at start is tried again for a bounded time
//! (`MetaStore::open_at_start`), on PostgreSQL too (concurrent migrations).

mod common;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use streamhouse_agent::metastore::{MetaStore, SCHEMA_VERSION};

const WAIT: Duration = Duration::from_secs(30);

/// Opens `url` from `n` threads released at the same moment; each
/// result's schema version.
fn open_together(url: &str, n: usize) -> Vec<Result<i64, String>> {
    let gate = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let gate = gate.clone();
            let url = url.to_owned();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    gate.wait();
                    let m = MetaStore::open_at_start(&url, WAIT)
                        .await
                        .map_err(|e| e.to_string())?;
                    m.schema_version().await.map_err(|e| e.to_string())
                })
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn openers_of_a_new_sqlite_file_all_get_in() {
    let dir = tempfile::tempdir_in(common::target_tmp()).unwrap();
    let mut failed = Vec::new();
    for round in 0..40 {
        let url = format!(
            "sqlite://{}",
            dir.path().join(format!("m{round}.db")).display()
        );
        for r in open_together(&url, 4) {
            match r {
                Ok(v) => assert_eq!(v, SCHEMA_VERSION),
                Err(e) => failed.push(format!("round {round}: {e}")),
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of 160 opens failed: {failed:?}",
        failed.len()
    );
}

#[test]
fn agents_migrating_a_new_postgres_database_together_all_get_in() {
    let admin = common::postgres_url();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let name = format!("sh_start_{}", std::process::id());
    let (client, conn) = rt
        .block_on(tokio_postgres::connect(&admin, tokio_postgres::NoTls))
        .unwrap();
    rt.spawn(conn);
    let create = |sql: String| rt.block_on(client.batch_execute(&sql)).unwrap();
    create(format!("DROP DATABASE IF EXISTS {name}"));
    create(format!("CREATE DATABASE {name}"));
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap();
    let results = open_together(&format!("{base}/{name}"), 6);
    create(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    for r in results {
        assert_eq!(r, Ok(SCHEMA_VERSION));
    }
}
