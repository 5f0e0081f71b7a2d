//! Connection pool and producer back-pressure against a real agent process.

#[path = "../../agent/tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use streamhouse_client::net::pool::{ConnectionPool, PoolConfig};
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
            // Still pending: taken into the buffer (dropping the future
            // does not withdraw a record the producer took), or waiting
            // for room (dropping it withdraws that record).
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

/// A listener whose accept queue is full: a further connect hangs (its SYN
/// is dropped) until the connecting side gives up. Keep the returned
/// streams and listener alive while it should stay full.
fn full_listener() -> (std::net::TcpListener, Vec<std::net::TcpStream>, String) {
    use std::os::fd::AsRawFd;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // Listening again changes the backlog: 0 takes one pending connection.
    assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
    let addr = l.local_addr().unwrap().to_string();
    let held = vec![std::net::TcpStream::connect(&addr).unwrap()];
    (l, held, addr)
}

/// Issue 15, defect 4: a `get` dropped while its connection is being
/// opened used to leave the pool counting it as "connecting" for ever: two
/// such drops (the limit here) and the address had no capacity again, and
/// every later `get` to it waited for ever.
#[tokio::test]
async fn a_get_dropped_mid_connect_gives_its_slot_back() {
    let (_l, _held, addr) = full_listener();
    let pool = ConnectionPool::new(PoolConfig {
        connect_timeout: Duration::from_millis(700),
        ..config()
    });
    for _ in 0..2 {
        let r = tokio::time::timeout(Duration::from_millis(100), pool.get(&addr)).await;
        assert!(r.is_err(), "the connect should still be pending: {r:?}");
    }
    assert!(
        pool.has_capacity(&addr),
        "the dropped connects still count against the limit"
    );
    let r = tokio::time::timeout(Duration::from_secs(5), pool.get(&addr))
        .await
        .expect("a later get waits for ever");
    let e = r.unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e}");
}

/// A `flush` dropped before it finished used to leave the producer
/// flushing for ever: every later batch closed at once instead of after
/// its linger.
#[tokio::test]
async fn a_flush_dropped_mid_way_leaves_linger_alone() {
    let agent = common::Agent::start(1, &[]);
    Admin::connect(&agent.addr(0))
        .await
        .unwrap()
        .create_topic("lg", 1)
        .await
        .unwrap();
    let producer = Producer::builder([agent.addr(0)])
        .linger(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    // Warm up (metadata, connection).
    producer
        .send(ProducerRecord::new("lg", "warm"))
        .await
        .unwrap();
    // A stopped agent keeps the flush waiting until it is dropped.
    agent.signal(libc::SIGSTOP);
    let first = producer.send(ProducerRecord::new("lg", "first"));
    let flushed = tokio::time::timeout(Duration::from_millis(200), producer.flush()).await;
    assert!(flushed.is_err(), "the flush is still waiting");
    agent.signal(libc::SIGCONT);
    first.await.unwrap();
    let started = Instant::now();
    producer
        .send(ProducerRecord::new("lg", "second"))
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "the second record waited for its linger: {:?}",
        started.elapsed()
    );
    producer.close().await.unwrap();
}
