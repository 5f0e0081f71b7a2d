//! Agents whose wall clock steps (libfaketime; see common/clock.rs): what
//! the agent decides by time must not bend. A running agent keeps serving
//! its partitions across steps of its wall clock (its leases are timed on
//! the monotonic clock), consumer-group members keep their sessions, and
//! timestamps the agent assigns (records sent without one) never decrease
//! within a partition.

#[path = "common/clock.rs"]
mod clock;
mod common;
#[path = "common/group_rpc.rs"]
mod group_rpc;

use std::time::{Duration, Instant};

use clock::FakeClock;
use common::*;
use group_rpc::*;
use streamhouse_proto as pb;

/// Sends `values` (no timestamps: the agent stamps them) to `topic`/0.
async fn send(
    client: &mut pb::producer_service_client::ProducerServiceClient<tonic::transport::Channel>,
    topic: &str,
    prefix: &str,
) {
    let values: Vec<String> = (0..10).map(|i| format!("{prefix}{i}")).collect();
    client
        .produce(produce_req(topic, 0, &values))
        .await
        .expect("produce");
}

/// A step back of an hour, ahead of an hour, back to the real time: every
/// produce is answered (before: the step ahead made the agent take its own
/// leases for expired, "lease expired ... without renewal"), and the
/// records the agent stamped keep non-decreasing timestamps (before: the
/// step back gave later records timestamps an hour earlier).
#[tokio::test]
async fn assigned_timestamps_never_go_back_when_the_clock_does() {
    let clock = FakeClock::new("+0");
    let agent = Agent::start_with_env(1, &[], clock.env());
    let meta = agent.create_topic("stamped", 1).await;
    let mut producer = agent.producer_for(&meta, 0).await;
    send(&mut producer, "stamped", "a").await;
    for (offset, prefix) in [("-3600", "b"), ("+3600", "c"), ("+0", "d")] {
        clock.set(offset);
        tokio::time::sleep(clock::SETTLES).await;
        send(&mut producer, "stamped", prefix).await;
    }
    let mut fetcher = agent.fetcher_for(&meta, 0).await;
    let records = fetch_all(&mut fetcher, "stamped", 0).await;
    assert_eq!(records.len(), 40);
    let stamps: Vec<(String, i64)> = records
        .iter()
        .map(|r| (String::from_utf8_lossy(&r.value).into_owned(), r.timestamp))
        .collect();
    for w in stamps.windows(2) {
        assert!(
            w[1].1 >= w[0].1,
            "{} stamped {} ms after {} at {}: {stamps:?}",
            w[1].0,
            w[1].1 - w[0].1,
            w[0].0,
            w[0].1
        );
    }
    // The step ahead was taken (the clock is not ignored).
    assert!(stamps[20].1 >= stamps[0].1 + 3_500_000, "{stamps:?}");
}

/// Two agents on shared stores, the second started with its wall clock an
/// hour ahead. Before: it took for expired every lease of the live first
/// agent (and for dead the agent itself) and took all of them within
/// milliseconds, fencing it, and records acknowledged only in its WAL were
/// lost; killed, it left leases that ran for another hour. Now partitions
/// move only by hand-over (none is taken from a live agent), every
/// acknowledged record stays readable, and the skewed agent's partitions
/// come back within a few TTLs of its death.
#[tokio::test]
async fn an_agent_an_hour_ahead_takes_nothing_from_a_live_agent() {
    let dir = tempfile::tempdir_in(target_tmp()).unwrap();
    let admin_port = free_ports(1);
    let admin = format!("127.0.0.1:{admin_port}");
    let args = |id: &str| {
        let mut a = group_cluster_args(dir.path(), id);
        // Acknowledged records stay in the WAL only (no age-based upload).
        a.extend(["--segment-age-ms".to_string(), "600000".to_string()]);
        a
    };
    let mut a0_args = args("agent-0");
    a0_args.extend(["--admin-listen".to_string(), admin]);
    let a0 = Agent::start(1, &as_strs(&a0_args));
    let meta = a0.create_topic("skew", 6).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while a0.leaders("skew").await.iter().any(|l| l != "agent-0") {
        assert!(
            Instant::now() < deadline,
            "agent-0 never led every partition"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut acked: Vec<(u32, String)> = Vec::new();
    for p in 0..6u32 {
        let values: Vec<String> = (0..20).map(|i| format!("p{p}-{i}")).collect();
        let mut c = a0.producer_for(&meta, p).await;
        c.produce(produce_req("skew", p, &values)).await.unwrap();
        acked.extend(values.into_iter().map(|v| (p, v)));
    }

    let clock = FakeClock::new("+3600");
    let mut a1 = Agent::start_with_env(1, &as_strs(&args("agent-1")), clock.env());
    // Three lease TTLs: a theft happened within milliseconds before.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (_, m) = get(admin_port, "/metrics").await;
    assert_eq!(
        sample(&m, "streamhouse_leases_lost_total"),
        0.0,
        "a live agent's lease was taken"
    );
    let leaders = a0.leaders("skew").await;
    for p in 0..6u32 {
        let leader = match leaders[p as usize].as_str() {
            "agent-0" => &a0,
            "agent-1" => &a1,
            other => panic!("partition {p} led by {other:?}: {leaders:?}"),
        };
        let meta = leader.describe_topic("skew").await;
        let mut f = leader.fetcher_for(&meta, p).await;
        let have: Vec<String> = fetch_all(&mut f, "skew", p)
            .await
            .iter()
            .map(|r| String::from_utf8_lossy(&r.value).into_owned())
            .collect();
        for (_, v) in acked.iter().filter(|(q, _)| *q == p) {
            assert!(have.contains(v), "acknowledged {v} is gone: {have:?}");
        }
    }

    // The skewed agent dies: its partitions are led again within a few
    // TTLs (before: its leases ran an hour ahead).
    a1.kill9();
    let deadline = Instant::now() + Duration::from_secs(20);
    while a0.leaders("skew").await.iter().any(|l| l != "agent-0") {
        assert!(
            Instant::now() < deadline,
            "the dead agent's partitions were never taken back: {:?}",
            a0.leaders("skew").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two group members heartbeating while the coordinator's wall clock steps
/// an hour ahead and back: both stay members at the same generation
/// (before: each step ahead removed both, as if their sessions had run out
/// an hour ago, and they joined again as new members).
#[tokio::test]
async fn a_clock_step_expels_no_group_member() {
    let clock = FakeClock::new("+0");
    let flags = [
        "--group-heartbeat-ms",
        "200",
        "--group-min-session-timeout-ms",
        "500",
    ];
    let agent = Agent::start_with_env(1, &flags, clock.env());
    agent.create_topic("gt", 4).await;
    let mut c = groups_at(&agent.addr(0)).await;
    let (mut a, mut b) = (Member::default(), Member::default());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        heartbeat(&mut c, "steps", &mut a, "gt").await;
        heartbeat(&mut c, "steps", &mut b, "gt").await;
        if a.owned.len() == 2 && b.owned.len() == 2 && a.epoch == b.epoch {
            break;
        }
        assert!(Instant::now() < deadline, "never settled: {a:?} {b:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let settled = (a.clone(), b.clone());
    for (offset, beats) in [("+3600", 10), ("+0", 10)] {
        clock.set(offset);
        for _ in 0..beats {
            tokio::time::sleep(Duration::from_millis(200)).await;
            heartbeat(&mut c, "steps", &mut a, "gt").await;
            heartbeat(&mut c, "steps", &mut b, "gt").await;
        }
    }
    assert_eq!((a.id, a.epoch), (settled.0.id, settled.0.epoch));
    assert_eq!((b.id, b.epoch), (settled.1.id, settled.1.epoch));
}
