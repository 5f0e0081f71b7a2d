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
    let a0_args = args("agent-0");
    let mut a0 = Agent::start_with_failpoints(
        1,
        &a0_args.iter().map(String::as_str).collect::<Vec<_>>(),
        "shard-produce=1*sleep(8000)",
    );
    let a1_args = args("agent-1");
    let a1 = Agent::start(1, &a1_args.iter().map(String::as_str).collect::<Vec<_>>());
    a1.create_topic("before", PARTITIONS).await;
    let part = a1
        .first_partition_led_by("before", "agent-0", "agent-1")
        .await;

    let held = a0.produce_in_background("before", part, "held").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    a0.signal(libc::SIGTERM);
    let drain_started = Instant::now();
    // A topic created while agent-0 drains: agent-0 still heartbeats, so
    // some of its partitions are agent-0's share.
    tokio::time::sleep(Duration::from_millis(300)).await;
    a1.create_topic("during", PARTITIONS).await;
    let mut seen = Vec::new();
    while drain_started.elapsed() < Duration::from_secs(6) {
        let l = a1.leaders("during").await;
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
        let before = a1.leaders("before").await;
        let during = a1.leaders("during").await;
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
