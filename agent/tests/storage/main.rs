//! Storage and control-plane faults an agent must survive with every
//! acknowledged record readable at its offsets, and answers that let
//! clients do the right thing meanwhile: a data dir restarted with another
//! shard count, segments whose ranges nobody committed, a WAL disk that
//! fills up, a metadata store that cannot be reached. Real agent processes,
//! a real loop-mounted filesystem, a real PostgreSQL.

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/pg.rs"]
mod pg;
#[path = "../common/smallfs.rs"]
mod smallfs;

mod disk;
mod metadata;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use streamhouse_proto as pb;

const TOPIC: &str = "layout";
const PARTITIONS: u32 = 4;

async fn describe(agent: &Agent) -> pb::TopicMetadata {
    agent
        .admin()
        .await
        .describe_topic(pb::DescribeTopicRequest { name: TOPIC.into() })
        .await
        .expect("describe")
        .into_inner()
}

/// Produces `batches` × 100 records to every partition (ack `durable`, the
/// default); returns what each partition acknowledged, by offset.
async fn produce(
    agent: &Agent,
    tag: &str,
    batches: usize,
    acked: &mut BTreeMap<u32, BTreeMap<u64, String>>,
) {
    let meta = describe(agent).await;
    for p in 0..PARTITIONS {
        let mut c = agent.producer_for(&meta, p).await;
        for b in 0..batches {
            let values: Vec<String> = (0..100).map(|i| format!("{tag}-p{p}-b{b}-r{i}")).collect();
            let r = c
                .produce(produce_req(TOPIC, p, &values))
                .await
                .expect("produce")
                .into_inner();
            for (i, v) in values.into_iter().enumerate() {
                acked
                    .entry(p)
                    .or_default()
                    .insert(r.base_offset + i as u64, v);
            }
        }
    }
}

/// Reads every partition back and checks it holds exactly `acked`, at the
/// acknowledged offsets, densely from 0.
async fn check(agent: &Agent, acked: &BTreeMap<u32, BTreeMap<u64, String>>, when: &str) {
    let meta = describe(agent).await;
    for (p, want) in acked {
        let mut f = agent.fetcher_for(&meta, *p).await;
        let got = fetch_all(&mut f, TOPIC, *p).await;
        assert_eq!(
            got.len(),
            want.len(),
            "{when}: partition {p} reads {} records, {} were acknowledged",
            got.len(),
            want.len()
        );
        for (r, (offset, value)) in got.iter().zip(want) {
            assert_eq!(r.offset, *offset, "{when}: partition {p}");
            assert_eq!(
                &r.value[..],
                value.as_bytes(),
                "{when}: {p}/{offset} differs"
            );
        }
    }
}

#[tokio::test]
async fn a_restart_with_another_shard_count_keeps_every_record_at_its_offset() {
    let mut agent = Agent::start(2, &[]);
    agent.create_topic(TOPIC, PARTITIONS).await;
    let mut acked = BTreeMap::new();
    produce(&agent, "two", 100, &mut acked).await;
    agent.kill9();

    // One shard now: the partitions the second shard wrote must not vanish,
    // and new writes continue after the acknowledged offsets.
    agent.shards = 1;
    agent.spawn();
    check(&agent, &acked, "after 2 -> 1 shards").await;
    produce(&agent, "one", 10, &mut acked).await;
    check(&agent, &acked, "after writing on 1 shard").await;
    agent.kill9();

    // And back to three shards.
    agent.shards = 3;
    agent.spawn();
    check(&agent, &acked, "after 1 -> 3 shards").await;
    produce(&agent, "three", 10, &mut acked).await;
    agent.kill9();
    agent.spawn();
    check(&agent, &acked, "after a restart on 3 shards").await;
    assert_eq!(
        std::fs::read_to_string(agent.data_dir.join("SHARDS"))
            .unwrap()
            .trim(),
        "3"
    );
    assert!(
        !agent.data_dir.join("shard-3").exists(),
        "no stray WAL directories"
    );
}

/// Reads a partition back, retrying while the agent answers errors (its
/// leases are not taken back yet), until `deadline`.
async fn read_back(agent: &Agent, p: u32, deadline: Instant) -> Vec<pb::FetchedRecord> {
    let meta = describe(agent).await;
    let mut f = agent.fetcher_for(&meta, p).await;
    let mut out = Vec::new();
    loop {
        let r = f
            .fetch(pb::FetchRequest {
                topic: TOPIC.into(),
                partition: p,
                offset: out.len() as u64,
                max_bytes: 4 << 20,
                max_wait_ms: 0,
                ..Default::default()
            })
            .await;
        match r {
            Ok(r) => {
                let r = r.into_inner();
                if r.records.is_empty() && out.len() as u64 >= r.high_watermark {
                    return out;
                }
                out.extend(r.records);
            }
            Err(s) => {
                assert!(
                    Instant::now() < deadline,
                    "partition {p}: still {:?} {:?} after {} records",
                    s.code(),
                    s.message(),
                    out.len()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// After a restart during which the metadata store answers the agent's
/// heartbeat but not its lease queries, the shard holds no lease state for
/// its partitions when it ships the recovered segments: those segments must
/// stay until their ranges are committed, not be deleted as empty.
#[tokio::test]
async fn a_recovered_segment_stays_until_its_ranges_are_committed() {
    let url = pg::fresh_database("unleased").await;
    let mut agent = Agent::start(1, &["--metadata", &url, "--lease-ttl-ms", "2000"]);
    agent.create_topic(TOPIC, PARTITIONS).await;
    let mut acked = BTreeMap::new();
    produce(&agent, "before", 10, &mut acked).await;
    agent.kill9();

    // The lease table is out of reach (as with a permission change or a
    // half-failed migration); topics and heartbeats still work.
    pg::execute(&url, "ALTER TABLE leases RENAME TO leases_away").await;
    agent.spawn();
    tokio::time::sleep(Duration::from_secs(4)).await;
    pg::execute(&url, "ALTER TABLE leases_away RENAME TO leases").await;

    let deadline = Instant::now() + Duration::from_secs(30);
    for (p, want) in &acked {
        let got = read_back(&agent, *p, deadline).await;
        let values: Vec<&[u8]> = got.iter().map(|r| &r.value[..]).collect();
        let wanted: Vec<&[u8]> = want.values().map(|v| v.as_bytes()).collect();
        assert_eq!(values, wanted, "partition {p} after the lease outage");
    }
    // The recovered segment goes once its ranges are committed, and they
    // are then in object storage, not only in the WAL.
    let first = agent
        .data_dir
        .join("shard-0")
        .join(format!("{:020}.wal", 0));
    while first.exists() {
        assert!(
            Instant::now() < deadline,
            "the recovered segment was never committed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    agent.kill9();
    std::fs::remove_dir_all(agent.data_dir.join("shard-0")).unwrap();
    agent.spawn();
    let deadline = Instant::now() + Duration::from_secs(30);
    for (p, want) in &acked {
        assert_eq!(
            read_back(&agent, *p, deadline).await.len(),
            want.len(),
            "partition {p} read from object storage"
        );
    }
}

/// Partition 0 holds exactly the acknowledged records at their offsets
/// (records a refused write left on disk may follow them, never precede).
async fn check_partition0(agent: &Agent, acked: &BTreeMap<u32, BTreeMap<u64, String>>, when: &str) {
    let meta = describe(agent).await;
    let mut f = agent.fetcher_for(&meta, 0).await;
    let got = fetch_all(&mut f, TOPIC, 0).await;
    let by_offset: BTreeMap<u64, &[u8]> = got.iter().map(|r| (r.offset, &r.value[..])).collect();
    for (offset, value) in &acked[&0] {
        assert_eq!(
            by_offset.get(offset).copied(),
            Some(value.as_bytes()),
            "{when}: acknowledged record 0/{offset} is missing or differs"
        );
    }
}
