//! Seek by time: the chunk index as a time index (SQLite and PostgreSQL),
//! and ListOffsets on a real agent answering from object storage and its
//! local log, with its bounds.

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::time::Duration;

use common::{only_in_objects, Agent};
use streamhouse_agent::metastore::{ChunkCommit, ChunkRange, MetaStore, RangeLocation, TimeQuery};
use streamhouse_proto as pb;
use tonic::Code;

fn range(topic: &str, base: u64, end: u64, max_timestamp: i64) -> ChunkRange {
    ChunkRange {
        topic: topic.into(),
        partition: 0,
        base_offset: base,
        end_offset: end,
        pos: 0,
        len: 10,
        bytes: 10,
        epoch: 1,
        max_timestamp,
        producers: Vec::new(),
    }
}

fn bases(v: Vec<RangeLocation>) -> Vec<u64> {
    v.into_iter().map(|l| l.base_offset).collect()
}

/// Ranges [0,10) up to t=1000, [10,20) up to 900 (timestamps need not
/// grow), [20,30) up to 3000; `forget` erases the third's timestamp as an
/// index written before schema 7 has none.
async fn time_ranges_suite(url: &str, forget: impl AsyncFnOnce(&str)) {
    let m = MetaStore::open(url).await.unwrap();
    let key = m.create_topic("times", 1).await.unwrap().key();
    m.acquire_lease(&key, 0, "agent-a", (1_000, 60_000), None)
        .await
        .unwrap();
    for (i, (base, end, ts)) in [(0, 10, 1_000), (10, 20, 900), (20, 30, 3_000)]
        .into_iter()
        .enumerate()
    {
        let c = ChunkCommit {
            key: format!("chunks/{i}"),
            size: 10,
            ranges: vec![range(&key, base, end, ts)],
        };
        assert!(m.commit_chunk("agent-a", &c, 1_000).await.unwrap());
    }
    let q = |timestamp_ms, from, below, limit| TimeQuery {
        timestamp_ms,
        from,
        below,
        limit,
    };
    let at = async |t: TimeQuery| bases(m.time_ranges(&key, 0, &t).await.unwrap());
    assert_eq!(at(q(500, 0, 100, 8)).await, [0, 10, 20]);
    assert_eq!(at(q(950, 0, 100, 8)).await, [0, 20]);
    assert_eq!(at(q(1_001, 0, 100, 8)).await, [20]);
    assert_eq!(at(q(3_001, 0, 100, 8)).await, Vec::<u64>::new());
    assert_eq!(at(q(500, 0, 20, 8)).await, [0, 10], "below excludes");
    assert_eq!(at(q(500, 10, 100, 8)).await, [10, 20], "from excludes");
    assert_eq!(at(q(500, 0, 100, 2)).await, [0, 10], "limit");
    forget(key.as_str()).await;
    assert_eq!(
        at(q(5_000, 0, 100, 8)).await,
        [20],
        "a range without a recorded time is always a candidate"
    );
}

#[tokio::test]
async fn sqlite_finds_ranges_by_time() {
    let dir = tempfile::tempdir_in(common::target_tmp()).unwrap();
    let path = dir.path().join("meta.db");
    let url = format!("sqlite://{}", path.display());
    time_ranges_suite(&url, async |topic: &str| {
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute(
                "UPDATE chunk_ranges SET max_timestamp = NULL WHERE topic = ?1 AND base_offset = 20",
                [topic],
            )
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn postgres_finds_ranges_by_time() {
    let url = pg::fresh_database("times").await;
    time_ranges_suite(&url, async |topic: &str| {
        pg::execute(
            &url,
            &format!(
                "UPDATE chunk_ranges SET max_timestamp = NULL WHERE topic = '{topic}' AND base_offset = 20"
            ),
        )
        .await;
    })
    .await;
}

fn timed(value: String, timestamp: u64) -> pb::produce_request::Record {
    pb::produce_request::Record {
        timestamp,
        ..common::record(value.into_bytes())
    }
}

fn query(partition: u32, timestamp_ms: i64) -> pb::list_offsets_request::Query {
    pb::list_offsets_request::Query {
        partition,
        timestamp_ms,
    }
}

/// Offsets 0..10 at times 1000..1009 (moved to object storage), 10..20 at
/// 5000..5009, then 20..25 at 2000..2004 (a producer's clock went back):
/// every answer is the first record in offset order at or after the time.
#[tokio::test]
async fn list_offsets_answers_from_object_storage_and_the_local_log() {
    let agent = Agent::start(1, &["--segment-age-ms", "100"]);
    agent.create_topic("times", 2).await;
    let meta = agent.describe_topic("times").await;
    let mut producer = agent.producer_for(&meta, 0).await;
    let batch = |from: u64, n: u64, t0: u64| pb::ProduceRequest {
        topic: "times".into(),
        partition: 0,
        records: (0..n)
            .map(|i| timed(format!("rec-{:04}", from + i), t0 + i))
            .collect(),
        ..Default::default()
    };
    producer.produce(batch(0, 10, 1_000)).await.unwrap();
    only_in_objects(&agent.data_dir, 0, b"rec-0009").await;
    producer.produce(batch(10, 10, 5_000)).await.unwrap();
    only_in_objects(&agent.data_dir, 0, b"rec-0019").await;
    producer.produce(batch(20, 5, 2_000)).await.unwrap();

    let mut groups = pb::group_service_client::GroupServiceClient::new(agent.channel(0).await);
    let ask = |queries: Vec<pb::list_offsets_request::Query>| pb::ListOffsetsRequest {
        topic: "times".into(),
        queries,
    };
    let r = groups
        .list_offsets(ask(vec![
            query(0, -2),
            query(0, -1),
            query(0, 0),
            query(0, 1_005),
            query(0, 1_010),
            query(0, 2_003),
            query(0, 5_009),
            query(0, 5_010),
            query(1, 1_000),
        ]))
        .await
        .unwrap()
        .into_inner();
    let got: Vec<(u32, u64, i64)> = r
        .answers
        .iter()
        .map(|a| (a.partition, a.offset, a.timestamp_ms))
        .collect();
    assert_eq!(
        got,
        [
            (0, 0, -1),
            (0, 25, -1),
            (0, 0, 1_000),
            (0, 5, 1_005),
            (0, 10, 5_000),
            (0, 10, 5_000),
            (0, 19, 5_009),
            (0, 25, -1),
            (1, 0, -1),
        ]
    );

    // The same through the client, and a seek by time.
    let mut consumer = streamhouse_client::Consumer::connect([agent.addr(0)])
        .await
        .unwrap();
    let found = consumer
        .offsets_for_times("times", &[(0, 1_003), (0, 2_001)])
        .await
        .unwrap();
    assert_eq!(found[&0].offset, 10, "the last query of a partition wins");
    consumer.assign([("times", 0)]).await.unwrap();
    let at = consumer
        .seek_to("times", 0, streamhouse_client::Offset::Timestamp(1_007))
        .await
        .unwrap();
    assert_eq!(at, 7);
    let first = consumer.poll(Duration::from_secs(5)).await.unwrap();
    assert_eq!(first.first().map(|r| r.offset), Some(7));

    // Bounds: more than 1,000 queries, a negative time other than -1/-2,
    // an unknown partition.
    let e = groups
        .list_offsets(ask((0..1_001).map(|_| query(0, -1)).collect()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("at most 1000"), "{e:?}");
    let e = groups
        .list_offsets(ask(vec![query(0, -3)]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let e = groups
        .list_offsets(ask(vec![query(7, -1)]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
}
