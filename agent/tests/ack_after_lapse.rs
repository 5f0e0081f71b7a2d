//! An agent stopped while a batch is being written must not acknowledge it
//! once it runs again if its lease lapsed meanwhile: another agent has taken
//! the partition at its committed end, without the batch. Found by the chaos
//! run (seed 1, a SIGSTOP past the TTL with writes in flight). A fail point
//! (FAILPOINTS, in test builds of the agent) holds the written batch before
//! its answer, so the stop surely lands in between; the variable is set for
//! the first agent only, and this file holds one test.

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::time::{Duration, Instant};

use common::*;

const TOPIC: &str = "lapse";
const PARTITIONS: u32 = 8;

#[tokio::test]
async fn a_batch_written_across_a_pause_past_the_ttl_is_not_acknowledged() {
    // PostgreSQL: with a shared SQLite file, an agent stopped inside a
    // transaction would hold the whole database locked.
    let metadata = pg::fresh_database("lapse").await;
    let (endpoint, bucket) = s3_server();
    let store = format!(
        "s3://{bucket}/{}?endpoint={endpoint}&region=us-east-1",
        unique("lapse")
    );
    let args = |id: &'static str| -> Vec<String> {
        [
            "--metadata",
            &metadata,
            "--object-store",
            &store,
            "--lease-ttl-ms",
            "2000",
            "--heartbeat-ms",
            "200",
            "--agent-timeout-ms",
            "1000",
            // Nothing is shipped by age: the batch is only in the WAL.
            "--segment-age-ms",
            "60000",
            "--agent-id",
            id,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    // agent-0's first produce is held 1.5 s after it is written.
    let a0_args = args("agent-0");
    let a0 = Agent::start_with_failpoints(
        1,
        &a0_args.iter().map(String::as_str).collect::<Vec<_>>(),
        "shard-produce-written=1*sleep(1500)",
    );
    let a1_args = args("agent-1");
    let a1 = Agent::start(1, &a1_args.iter().map(String::as_str).collect::<Vec<_>>());
    a0.create_topic(TOPIC, PARTITIONS).await;
    let part = a1.first_partition_led_by(TOPIC, "agent-0", "agent-1").await;

    let produce = a0.produce_in_background(TOPIC, part, "held").await;
    // The batch is written and held; stop agent-0 past its TTL.
    tokio::time::sleep(Duration::from_millis(300)).await;
    a0.signal(libc::SIGSTOP);
    let deadline = Instant::now() + Duration::from_secs(20);
    while a1.leaders(TOPIC).await[part as usize] != "agent-1" {
        assert!(Instant::now() < deadline, "agent-1 never took {part}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a0.signal(libc::SIGCONT);
    let answer = produce.await.unwrap();

    // Whatever was acknowledged must be readable from the new leader.
    let meta1 = a1.describe_topic(TOPIC).await;
    let mut fetcher = a1.fetcher_for(&meta1, part).await;
    let stored = fetch_all(&mut fetcher, TOPIC, part).await;
    match answer {
        Ok(r) => {
            let r = r.into_inner();
            let at = stored.iter().find(|s| s.offset == r.base_offset);
            assert!(
                at.is_some_and(|s| &s.value[..] == b"held"),
                "acknowledged at offset {} but the partition's leader has {:?}",
                r.base_offset,
                stored.iter().map(|s| s.offset).collect::<Vec<_>>()
            );
        }
        Err(s) => {
            assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}");
            assert!(s.message().contains("lapsed"), "{}", s.message());
        }
    }
    drop((a0, a1));
}
