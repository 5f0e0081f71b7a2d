//! The ports themselves: accepting after a long idle, gRPC framing
//! mistakes, HTTP/1 on a shard port, the admin port's HTTP, and `/ready`
//! while a shard cannot take a connection or roll its segment.

use super::*;

/// A health check over a connection made now, within `within`.
async fn fresh_connection_answers(addr: &str, within: Duration) -> Result<(), String> {
    let attempt = async {
        let mut h2c = raw::connect(addr).await;
        let req = raw::request(addr, pb::paths::HEALTH_CHECK, &[]);
        let msg = prost::Message::encode_to_vec(&pb::health::HealthCheckRequest::default());
        raw::call(&mut h2c, req, raw::frame(0, &msg)).await
    };
    match tokio::time::timeout(within, attempt).await {
        Ok(r) if r.grpc_status.as_deref() == Some("0") => Ok(()),
        Ok(r) => Err(format!("health check answered {r:?}")),
        Err(_) => Err(format!("no answer from {addr} within {within:?}")),
    }
}

/// Issue 13, item 1: the accept loop used to re-poll its pending accept on
/// every shutdown-poll tick, and glommio's 16-bit waker count overflowed
/// after 32,767 ticks (661 s at the 20 ms default) without a new
/// connection: from then on no connection got SETTINGS and SIGTERM was
/// ignored. With a 1 ms poll the same number of ticks passes in ~35 s.
#[tokio::test(flavor = "multi_thread")]
async fn a_shard_without_new_connections_for_32768_poll_ticks_still_accepts_and_stops() {
    let mut agent = Agent::start(2, &["--shutdown-poll-ms", "1"]);
    // One connection held open per shard, as a pooled client does.
    let mut held = Vec::new();
    for shard in 0..2 {
        let mut h2c = raw::connect(&agent.addr(shard)).await;
        let req = raw::request(&agent.addr(shard), pb::paths::HEALTH_CHECK, &[]);
        let msg = prost::Message::encode_to_vec(&pb::health::HealthCheckRequest::default());
        let r = raw::call(&mut h2c, req, raw::frame(0, &msg)).await;
        assert_eq!(r.grpc_status.as_deref(), Some("0"));
        held.push(h2c);
    }
    tokio::time::sleep(Duration::from_secs(45)).await;
    for shard in 0..2 {
        fresh_connection_answers(&agent.addr(shard), Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("shard {shard} after 45 s idle: {e}"));
    }
    agent.signal(libc::SIGTERM);
    assert_eq!(
        agent.wait_exit(Duration::from_secs(20)),
        Some(0),
        "SIGTERM did not stop the agent"
    );
    drop(held);
}

/// Issue 13, item 8: gRPC framing mistakes get INVALID_ARGUMENT (a length
/// prefix shorter than the body used to be UNIMPLEMENTED "only unary
/// calls"; a reserved flag bit used to be "compressed"), and the refusal of
/// a compressed message says which encoding to use instead.
#[tokio::test]
async fn grpc_framing_mistakes_get_clear_statuses() {
    let agent = Agent::start(1, &[]);
    agent.create_topic("frames", 1).await;
    let addr = agent.addr(0);
    let h2c = raw::connect(&addr).await;
    let msg = prost::Message::encode_to_vec(&produce_req("frames", 0, &["x".into()]));
    let call = |body: Vec<u8>| {
        let req = raw::request(&addr, pb::paths::PRODUCE, &[]);
        let mut h2c = h2c.clone();
        async move { raw::call(&mut h2c, req, body).await }
    };
    // The prefix declares fewer bytes than the body holds.
    let mut short = raw::frame(0, &msg);
    short[4] -= 1;
    let r = call(short).await;
    assert_eq!(r.grpc_status.as_deref(), Some("3"), "{r:?}");
    // ... or more than it holds.
    let mut long = raw::frame(0, &msg);
    long[4] += 1;
    let r = call(long).await;
    assert_eq!(r.grpc_status.as_deref(), Some("3"), "{r:?}");
    // A reserved flag bit.
    let r = call(raw::frame(0x80, &msg)).await;
    assert_eq!(r.grpc_status.as_deref(), Some("3"), "{r:?}");
    // Compressed: UNIMPLEMENTED, saying what the agent accepts.
    let r = call(raw::frame(1, &msg)).await;
    assert_eq!(r.grpc_status.as_deref(), Some("12"), "{r:?}");
    assert_eq!(r.accept_encoding.as_deref(), Some("identity"), "{r:?}");
    // And a correct call on the same connection still works.
    let r = call(raw::frame(0, &msg)).await;
    assert_eq!(r.grpc_status.as_deref(), Some("0"), "{r:?}");
    drop(h2c);
}

/// Issue 13, item 8: an HTTP/1.1 request on a shard port used to get a
/// bare connection reset; now a plain-text 505 saying what the port speaks.
#[tokio::test]
async fn http1_on_a_shard_port_gets_a_clean_refusal() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let agent = Agent::start(1, &[]);
    let mut s = tokio::net::TcpStream::connect(agent.addr(0)).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut buf))
        .await
        .expect("an answer")
        .expect("a clean close, not a reset");
    assert!(buf.starts_with("HTTP/1.1 505 "), "{buf:?}");
    assert!(buf.contains("HTTP/2"), "{buf:?}");
}

/// Issue 13, item 8, and issue 21: the admin port answers HEAD, ignores
/// query strings, keeps connections alive, answers 405 to other methods,
/// and closes a connection whose request head does not arrive in time.
#[tokio::test]
async fn the_admin_port_answers_head_ignores_queries_and_times_out_slow_heads() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_agent, admin) = start_with_admin(1, &["--admin-read-timeout-ms", "500"]);
    let (code, _) = admin_until(admin, "/health?verbose=1", 200).await;
    assert_eq!(code, 200);
    let (code, body) = admin_until(admin, "/ready?x=y", 200).await;
    assert_eq!(code, 200, "{body}");
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", admin))
        .await
        .unwrap();
    s.write_all(b"HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut head = String::new();
    s.read_to_string(&mut head).await.unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head:?}");
    assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head:?}");
    // A client that connects and sends half a request head is cut off.
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", admin))
        .await
        .unwrap();
    slow.write_all(b"GET /health HT").await.unwrap();
    let mut rest = String::new();
    let r = tokio::time::timeout(Duration::from_secs(5), slow.read_to_string(&mut rest)).await;
    assert!(r.is_ok(), "the admin port kept a stalled request open");
    assert!(
        rest.is_empty() || rest.starts_with("HTTP/1.1 408 "),
        "{rest:?}"
    );
    // A kept-alive connection answers several requests, then is closed
    // once no further request head arrives within the read timeout.
    let mut kept = tokio::net::TcpStream::connect(("127.0.0.1", admin))
        .await
        .unwrap();
    let mut answers = String::new();
    for _ in 0..3 {
        kept.write_all(b"GET /health?a=b HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = kept.read(&mut buf).await.unwrap();
        answers.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert_eq!(answers.matches("HTTP/1.1 200 OK").count(), 3, "{answers}");
    let idle = tokio::time::timeout(Duration::from_secs(5), kept.read_to_string(&mut rest)).await;
    assert!(
        idle.is_ok(),
        "an idle kept-alive admin connection stayed open"
    );
    // Other methods: 405 naming the allowed ones.
    let mut post = tokio::net::TcpStream::connect(("127.0.0.1", admin))
        .await
        .unwrap();
    post.write_all(
        b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = String::new();
    post.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 405 "), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("allow: get, head"),
        "{answer}"
    );
}

/// Issue 13, items 1, 5 and 8: `/ready` answers 503 while a shard cannot
/// take a new connection (here: at its connection limit; the wedge of item
/// 1 was another way) and 200 again once it can. Before, `/ready` looked
/// at leases and the metadata store only and stayed 200 while no shard
/// answered.
#[tokio::test(flavor = "multi_thread")]
async fn ready_is_503_while_a_shard_cannot_take_a_connection() {
    let (agent, admin) = start_with_admin(1, &["--max-connections-per-shard", "2"]);
    assert_eq!(admin_until(admin, "/ready", 200).await.0, 200);
    let held = [
        raw::connect(&agent.addr(0)).await,
        raw::connect(&agent.addr(0)).await,
    ];
    let (code, body) = admin_until(admin, "/ready", 503).await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("shard 0 does not accept connections"),
        "{body}"
    );
    assert!(body.contains("connection limit"), "{body}");
    drop(held);
    let (code, body) = admin_until(admin, "/ready", 200).await;
    assert_eq!(code, 200, "{body}");
}

/// Issue 13, item 5 (the other half): a segment roll that cannot create
/// its file (here: the shard directory made immutable) used to fail the
/// log for good. Now appends stay on the active segment, `/ready` says why
/// it is degraded, and once files can be created again the roll succeeds
/// and `/ready` is 200 again.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_segment_roll_is_retried_and_ready_says_why() {
    let (agent, admin) = start_with_admin(1, &["--segment-bytes", "65536"]);
    let meta = agent.create_topic("roll", 1).await;
    let mut p = agent.producer_for(&meta, 0).await;
    assert_eq!(admin_until(admin, "/ready", 200).await.0, 200);
    let dir = agent.data_dir.join("shard-0");
    let chattr = |flag: &str| {
        let st = std::process::Command::new("chattr")
            .arg(flag)
            .arg(&dir)
            .status()
            .expect("chattr");
        assert!(st.success(), "chattr {flag} failed");
    };
    chattr("+i");
    let mut written = 0;
    for round in 0..30 {
        let r = p.produce(hundred_byte_records("roll", 0, 50)).await;
        if let Err(s) = r {
            chattr("-i");
            panic!("round {round} while the directory is immutable: {s:?}");
        }
        written += 50;
    }
    let (code, body) = admin_until(admin, "/ready", 503).await;
    chattr("-i");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("shard 0 cannot write"), "{body}");
    // The roll is retried: more writes go through and readiness returns.
    for _ in 0..20 {
        p.produce(hundred_byte_records("roll", 0, 50))
            .await
            .expect("produce after the directory is writable again");
        written += 50;
    }
    let (code, body) = admin_until(admin, "/ready", 200).await;
    assert_eq!(code, 200, "{body}");
    let mut f = agent.fetcher_for(&meta, 0).await;
    assert_eq!(fetch_all(&mut f, "roll", 0).await.len(), written);
}
