//! A draining agent (SIGTERM) takes no new leases: it is about to give up
//! the ones it has, so a partition it took now would only bounce clients
//! to a shard that is closing and then move again. A fail point
//! (FAILPOINTS, in test builds of the agent) holds one produce on the
//! draining agent so the drain lasts long enough to watch; the variable is
//! set for that agent only, and this file holds one test.

mod common;

use std::time::{Duration, Instant};

use common::*;

const PARTITIONS: u32 = 8;

/// The agent id leading every partition of `topic`, as `agent` sees it.
async fn leaders(agent: &Agent, topic: &str) -> Vec<String> {
    agent
        .describe_topic(topic)
        .await
        .partitions
        .iter()
        .map(|p| p.leader_agent_id.clone())
        .collect()
}

#[tokio::test]
async fn a_draining_agent_takes_no_new_partitions() {
    let meta = tempfile::tempdir_in(target_tmp()).unwrap();
    let metadata = format!("sqlite://{}", meta.path().join("meta.db").display());
    let (endpoint, bucket) = s3_server();
    let store = format!(
        "s3://{bucket}/{}?endpoint={endpoint}&region=us-east-1",
        unique("drain")
    );
    let args = |id: &'static str| -> Vec<String> {
        [
            "--metadata",
            &metadata,
            "--object-store",
            &store,
            // Leases of a minute: nothing moves by expiry during the test.
            "--lease-ttl-ms",
            "60000",
            "--heartbeat-ms",
            "200",
            "--agent-timeout-ms",
            "1000",
            "--shutdown-grace-ms",
            "20000",
            "--agent-id",
            id,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    // agent-0's first produce is held 8 s: its drain waits for it.
    std::env::set_var("FAILPOINTS", "shard-produce=1*sleep(8000)");
    let a0_args = args("agent-0");
    let mut a0 = Agent::start(1, &a0_args.iter().map(String::as_str).collect::<Vec<_>>());
    std::env::remove_var("FAILPOINTS");
    let a1_args = args("agent-1");
    let a1 = Agent::start(1, &a1_args.iter().map(String::as_str).collect::<Vec<_>>());
    a1.create_topic("before", PARTITIONS).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let part = loop {
        let l = leaders(&a1, "before").await;
        if l.iter().all(|x| !x.is_empty()) && l.iter().any(|x| x == "agent-1") {
            if let Some(p) = l.iter().position(|x| x == "agent-0") {
                break p as u32;
            }
        }
        assert!(Instant::now() < deadline, "partitions never spread: {l:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let meta0 = a0.describe_topic("before").await;
    let mut client = a0.producer_for(&meta0, part).await;
    let held = tokio::spawn(async move {
        let mut req = tonic::Request::new(produce_req("before", part, &["held".to_string()]));
        req.set_timeout(Duration::from_secs(30));
        client.produce(req).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    a0.signal(libc::SIGTERM);
    let drain_started = Instant::now();
    // A topic created while agent-0 drains: agent-0 still heartbeats, so
    // some of its partitions are agent-0's share.
    tokio::time::sleep(Duration::from_millis(300)).await;
    a1.create_topic("during", PARTITIONS).await;
    let mut seen = Vec::new();
    while drain_started.elapsed() < Duration::from_secs(6) {
        let l = leaders(&a1, "during").await;
        assert!(
            !l.iter().any(|x| x == "agent-0"),
            "agent-0 took partitions of a new topic while draining: {l:?}"
        );
        seen = l;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        a0.wait_exit(Duration::from_secs(30)),
        Some(0),
        "agent-0 did not drain cleanly"
    );
    // The held produce was answered before agent-0 stopped.
    let answer = held.await.unwrap();
    assert!(answer.is_ok(), "the held produce failed: {answer:?}");
    // Once agent-0 is gone, agent-1 leads everything, without waiting
    // for a lease to expire.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let before = leaders(&a1, "before").await;
        let during = leaders(&a1, "during").await;
        if before.iter().chain(&during).all(|x| x == "agent-1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "agent-1 did not take over: before {before:?}, during {during:?} (while draining: {seen:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(a1);
}
