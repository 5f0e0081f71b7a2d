//! Deleting a topic whose records are not shipped yet (issue 42, defect 6).
//! Their ranges can no longer be committed, as intended: that is no
//! abandoned range (the alarm that records written under a lease another
//! agent took over are stranded) but a deleted topic's, counted apart and
//! logged at info. Before: one agent, no other agent anywhere, and
//! `ranges_abandoned_total` counted the deleted topic's ranges with an
//! ERROR "the lease no longer exists".

mod common;

use std::time::{Duration, Instant};

use common::*;
use streamhouse_proto as pb;

#[tokio::test]
async fn a_deleted_topics_unshipped_ranges_are_not_abandoned() {
    let admin_port = free_ports(1);
    let admin = format!("127.0.0.1:{admin_port}");
    // Each chunk commit waits 5 s after its object is stored: the topic
    // is deleted meanwhile.
    let agent = Agent::start_with_failpoints(
        1,
        &["--segment-age-ms", "1500", "--admin-listen", admin.as_str()],
        "uploader-commit=return(5000)",
    );
    // A topic that stays shares the chunk object with the deleted one.
    let kept = agent.create_topic("kept", 1).await;
    let meta = agent.create_topic("doomed", 3).await;
    for (m, p) in [(&kept, 0), (&meta, 0), (&meta, 1), (&meta, 2)] {
        let values: Vec<String> = (0..50).map(|i| format!("p{p}-{i}")).collect();
        let mut c = agent.producer_for(m, p).await;
        c.produce(produce_req(&m.name, p, &values))
            .await
            .expect("produce");
    }
    // Sealed at 1.5 s, stored at once, committed at 6.5 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    agent
        .admin()
        .await
        .delete_topic(pb::DeleteTopicRequest {
            name: "doomed".into(),
        })
        .await
        .expect("delete");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, m) = get(admin_port, "/metrics").await;
        let abandoned = sample(&m, "streamhouse_ranges_abandoned_total");
        assert_eq!(abandoned, 0.0, "a deleted topic's range counted abandoned");
        // (Absent before this counter existed: read as none.)
        let dropped = m
            .lines()
            .find_map(|l| l.strip_prefix("streamhouse_ranges_of_deleted_topics_total "))
            .map_or(0.0, |v| v.parse().unwrap_or(0.0));
        if dropped >= 1.0 {
            // The topic that stays was committed from the same chunk.
            assert_eq!(sample(&m, "streamhouse_chunks_committed_total"), 1.0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the deleted topic's ranges were never dropped:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
