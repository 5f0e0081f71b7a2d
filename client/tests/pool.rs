//! Connection pool and producer back-pressure against a real agent process.

#[path = "../../agent/tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use streamhouse_client::pool::{ConnectionPool, PoolConfig};
use streamhouse_client::{Admin, Error, Producer, ProducerRecord};

fn config() -> PoolConfig {
    PoolConfig {
        max_connections_per_agent: 2,
        max_in_flight: 1,
        idle_timeout: Duration::from_millis(300),
        health_check_after: Duration::from_millis(100),
        connect_timeout: Duration::from_secs(2),
        ..PoolConfig::default()
    }
}

#[tokio::test]
async fn reuses_grows_to_its_limit_and_expires_idle_connections() {
    let agent = common::Agent::start(1, &[]);
    let addr = agent.addr(0);
    let pool = ConnectionPool::new(config());
    let a = pool.get(&addr).await.unwrap();
    let first = a.id();
    drop(a);
    // Reused while fresh.
    let a = pool.get(&addr).await.unwrap();
    assert_eq!(a.id(), first);
    // Busy (max_in_flight 1): a second request opens a second connection,
    // a third shares the least-loaded one (the limit is 2).
    let b = pool.get(&addr).await.unwrap();
    assert_ne!(b.id(), first);
    let c = pool.get(&addr).await.unwrap();
    assert!(c.id() == a.id() || c.id() == b.id());
    assert_eq!(pool.connection_count(&addr), 2);
    assert!(!pool.has_capacity(&addr));
    drop((a, b, c));
    assert!(pool.has_capacity(&addr));
    // Idle longer than idle_timeout: closed and replaced.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let d = pool.get(&addr).await.unwrap();
    assert!(d.id() > first + 1, "a new connection after idle expiry");
    assert_eq!(pool.connection_count(&addr), 1);
}

#[tokio::test]
async fn an_idle_connection_to_a_dead_agent_fails_its_health_check() {
    let mut agent = common::Agent::start(1, &[]);
    let addr = agent.addr(0);
    let pool = ConnectionPool::new(PoolConfig {
        idle_timeout: Duration::from_secs(60),
        ..config()
    });
    let first = pool.get(&addr).await.unwrap().id();
    agent.kill9();
    tokio::time::sleep(Duration::from_millis(150)).await;
    // Idle past health_check_after: checked, found dead, dropped; the fresh
    // connection attempt fails clearly.
    match pool.get(&addr).await {
        Err(Error::Transport { address, .. }) => assert_eq!(address, addr),
        other => panic!("expected a transport error, got {other:?}"),
    }
    agent.spawn();
    let again = pool.get(&addr).await.unwrap();
    assert_ne!(again.id(), first);
}

#[tokio::test]
async fn a_full_buffer_fails_send_after_max_block() {
    let agent = common::Agent::start(1, &[]);
    Admin::connect(&agent.addr(0))
        .await
        .unwrap()
        .create_topic("bp", 1)
        .await
        .unwrap();
    let producer = Producer::builder([agent.addr(0)])
        .buffer_memory(64 << 10)
        .batch_max_bytes(16 << 10)
        .max_block(Duration::from_millis(300))
        .request_timeout(Duration::from_secs(20))
        .build()
        .await
        .unwrap();
    // A stopped agent acknowledges nothing, so the buffer fills.
    agent.signal(libc::SIGSTOP);
    let value = vec![b'v'; 1000];
    let mut queued = 0;
    let started = Instant::now();
    let mut refused = None;
    for _ in 0..200 {
        let f = producer.send(ProducerRecord::new("bp", value.clone()));
        match tokio::time::timeout(Duration::from_millis(1), f).await {
            Ok(Err(e)) => {
                refused = Some(e);
                break;
            }
            Ok(Ok(m)) => panic!("acknowledged by a stopped agent: {m:?}"),
            // Still pending: queued in the buffer (dropping the future does
            // not withdraw the record).
            Err(_) => queued += 1,
        }
    }
    assert!(queued >= 50, "{queued} records fit in 64 KiB");
    // The first refusal can take up to max_block: wait for it if needed.
    let e = match refused {
        Some(e) => e,
        None => producer
            .send(ProducerRecord::new("bp", value.clone()))
            .await
            .unwrap_err(),
    };
    assert_eq!(e, Error::BufferFull(Duration::from_millis(300)));
    assert!(e.to_string().contains("buffer is full"), "{e}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    agent.signal(libc::SIGCONT);
    // What was accepted is delivered once the agent runs again.
    let m = producer
        .send(ProducerRecord::new("bp", "after"))
        .await
        .unwrap();
    assert!(
        m.offset >= 50,
        "earlier records were stored first: {}",
        m.offset
    );
    producer.close().await.unwrap();
}
