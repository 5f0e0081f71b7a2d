//! Agents whose wall clock steps (libfaketime; see common/clock.rs): what
//! the agent decides by time must not bend. A running agent keeps serving
//! its partitions across steps of its wall clock (its leases are timed on
//! the monotonic clock), and timestamps the agent assigns (records sent
//! without one) never decrease within a partition.

#[path = "common/clock.rs"]
mod clock;
mod common;

use clock::FakeClock;
use common::*;
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
    let stamps: Vec<(String, u64)> = records
        .iter()
        .map(|r| (String::from_utf8_lossy(&r.value).into_owned(), r.timestamp))
        .collect();
    for w in stamps.windows(2) {
        assert!(
            w[1].1 >= w[0].1,
            "{} stamped {} ms after {} at {}: {stamps:?}",
            w[1].0,
            w[1].1 as i64 - w[0].1 as i64,
            w[0].0,
            w[0].1
        );
    }
    // The step ahead was taken (the clock is not ignored).
    assert!(stamps[20].1 >= stamps[0].1 + 3_500_000, "{stamps:?}");
}
