//! Retention (issue 19): a partition's log start moves past the committed
//! ranges its topic's `retention.ms` and `retention.bytes` let go, and by
//! hand with DeleteRecords; fetches below it answer OUT_OF_RANGE naming
//! it, Fetch and ListOffsets answer it, consumers resetting to the
//! earliest offset follow it, and it holds across a restart. (Objects
//! leaving the bucket: objects.rs's retention tests on the S3 server.)

mod common;

use std::time::{Duration, Instant};

use common::*;
use streamhouse_client::{Admin, AutoOffsetReset, Consumer, Producer, ProducerRecord};
use streamhouse_proto as pb;
use tonic::Code;

/// Sends `n` records `{prefix}{i}` to partition 0, stamped `timestamp_ms`
/// when given.
async fn send(addr: &str, topic: &str, prefix: &str, n: usize, timestamp_ms: Option<i64>) {
    let producer = Producer::builder([addr.to_owned()]).build().await.unwrap();
    for i in 0..n {
        let mut r = ProducerRecord::new(topic, format!("{prefix}{i}")).partition(0);
        if let Some(ts) = timestamp_ms {
            r = r.timestamp(ts);
        }
        producer.send(r).await.expect("produce");
    }
    producer.close().await.unwrap();
}

/// Waits until the partition's log start (ListOffsets earliest) is
/// `want`, and returns the fetch answer at offset 0.
async fn await_log_start(agent: &Agent, topic: &str, want: u64) -> tonic::Status {
    let consumer = Consumer::connect([agent.addr(0)]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (low, _) = consumer.watermarks(topic, 0).await.unwrap();
        if low == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "log start of {topic} is {low}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut f = pb::fetch_service_client::FetchServiceClient::new(agent.channel(0).await);
    f.fetch(fetch_req(topic, 0, 0))
        .await
        .expect_err("offset 0 is before the log start")
}

/// Waits until `end` records of `topic` are in object storage.
async fn await_committed(agent: &Agent, topic: &str, end: u64) {
    let url = format!("sqlite://{}", agent.data_dir.join("metadata.db").display());
    await_committed_end(&url, topic, 0, end).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn records_past_retention_ms_become_out_of_range_and_the_rest_stay() {
    let mut agent = Agent::start(1, &["--segment-age-ms=100", "--retention-check-ms=200"]);
    let addr = agent.addr(0);
    let admin = Admin::connect(addr.clone()).await.unwrap();
    admin
        .create_topic_with_configs("aging", 1, [("retention.ms", "600000")])
        .await
        .unwrap();
    let hour_ago = streamhouse_agent::runtime::clock::now_ms() - 3_600_000;
    send(&addr, "aging", "old-", 20, Some(hour_ago)).await;
    await_committed(&agent, "aging", 20).await;
    send(&addr, "aging", "new-", 10, None).await;

    let refused = await_log_start(&agent, "aging", 20).await;
    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
    assert!(
        refused.message().contains("before the log start 20"),
        "{refused:?}"
    );
    // From the log start on, every record is there (one fetch answers
    // one committed range at most: read on to the end).
    let mut f = pb::fetch_service_client::FetchServiceClient::new(agent.channel(0).await);
    let mut values = Vec::new();
    let mut offset = 20;
    while offset < 30 {
        let r = f
            .fetch(pb::FetchRequest {
                max_bytes: 1 << 20,
                ..fetch_req("aging", 0, offset)
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.log_start_offset, 20);
        let last = r.records.last().expect("records up to the end").offset;
        values.extend(
            r.records
                .iter()
                .map(|r| String::from_utf8_lossy(&r.value).into_owned()),
        );
        offset = last + 1;
    }
    assert_eq!(
        values,
        (0..10).map(|i| format!("new-{i}")).collect::<Vec<_>>()
    );

    // A consumer positioned before it starts again at the log start.
    let mut consumer = Consumer::builder([addr.clone()])
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .build()
        .await
        .unwrap();
    consumer.assign([("aging", 0)]).await.unwrap();
    consumer.seek("aging", 0, 3);
    let first = consumer.next_record().await.unwrap();
    assert_eq!((first.offset, first.value.as_ref()), (20, &b"new-0"[..]));

    // The log start holds across a restart.
    agent.signal(libc::SIGTERM);
    assert_eq!(agent.wait_exit(Duration::from_secs(30)), Some(0));
    agent.spawn();
    let refused = await_log_start(&agent, "aging", 20).await;
    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_bytes_keeps_the_newest_ranges_within_the_limit() {
    let agent = Agent::start(1, &["--segment-age-ms=100", "--retention-check-ms=200"]);
    let addr = agent.addr(0);
    let admin = Admin::connect(addr.clone()).await.unwrap();
    admin.create_topic("sized", 1).await.unwrap();
    // Three rounds of 10 records, each committed before the next is
    // written, then a limit that only the newest round fits in.
    for (round, end) in [("a-", 10), ("b-", 20), ("c-", 30)] {
        send(&addr, "sized", round, 10, None).await;
        await_committed(&agent, "sized", end).await;
    }
    // The limit: the bytes of the ranges from offset 20 on (round c, in
    // segments of its own) and half the range before.
    let db = rusqlite::Connection::open(agent.data_dir.join("metadata.db")).unwrap();
    let ranges: Vec<(i64, i64)> = db
        .prepare("SELECT base_offset, len FROM chunk_ranges ORDER BY base_offset")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let kept: i64 = ranges.iter().filter(|r| r.0 >= 20).map(|r| r.1).sum();
    let before = ranges
        .iter()
        .rev()
        .find(|r| r.0 < 20)
        .expect("a range before 20");
    let limit = kept + before.1 / 2;
    admin
        .alter_configs("sized", [("retention.bytes", limit.to_string())], &[])
        .await
        .unwrap();
    let refused = await_log_start(&agent, "sized", 20).await;
    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_records_moves_the_log_start_by_hand() {
    let agent = Agent::start(2, &["--segment-age-ms=100"]);
    let admin = Admin::connect(agent.addr(0)).await.unwrap();
    admin.create_topic("trimmed", 1).await.unwrap();
    let leader = admin.describe_topic("trimmed").await.unwrap().partitions[0]
        .leader_address
        .clone();
    send(&leader, "trimmed", "r-", 30, None).await;
    await_committed(&agent, "trimmed", 30).await;

    // From a shard that does not lead the partition: the client finds the
    // leader.
    let other = if leader == agent.addr(0) { 1 } else { 0 };
    let admin = Admin::connect(agent.addr(other)).await.unwrap();
    assert_eq!(
        admin.delete_records("trimmed", 0, Some(12)).await.unwrap(),
        12
    );
    // Never back.
    assert_eq!(
        admin.delete_records("trimmed", 0, Some(5)).await.unwrap(),
        12
    );
    let e = admin
        .delete_records("trimmed", 0, Some(31))
        .await
        .expect_err("past the high watermark");
    assert_eq!(e.code(), Some(streamhouse_client::Code::OutOfRange), "{e}");
    let consumer = Consumer::connect([leader.clone()]).await.unwrap();
    assert_eq!(consumer.watermarks("trimmed", 0).await.unwrap(), (12, 30));

    // Everything written so far, and writes go on after it.
    assert_eq!(admin.delete_records("trimmed", 0, None).await.unwrap(), 30);
    send(&leader, "trimmed", "s-", 5, None).await;
    assert_eq!(consumer.watermarks("trimmed", 0).await.unwrap(), (30, 35));
    await_committed(&agent, "trimmed", 35).await;
}

/// Paths of the chunk object files under the agent's local object store.
fn chunk_files(agent: &Agent) -> Vec<std::path::PathBuf> {
    files_under(&agent.data_dir.join("objects"))
}

/// Chunk rows no range references (objects the sweep has not finished).
fn dead_rows(agent: &Agent) -> i64 {
    let db = rusqlite::Connection::open(agent.data_dir.join("metadata.db")).unwrap();
    db.query_row(
        "SELECT count(*) FROM chunks WHERE NOT EXISTS (
             SELECT 1 FROM chunk_ranges WHERE chunk_ranges.chunk_key = chunks.key)",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// SIGKILL between a sweep's deletion of an object and the forgetting of
/// its row: after a restart the sweep finishes the job (no row or object
/// is left for ever) and the partition serves as before.
#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_killed_midway_is_finished_after_a_restart() {
    let mut agent = Agent::start_with_failpoints(
        1,
        &[
            "--segment-age-ms=100",
            "--retention-check-ms=200",
            "--object-delete-grace-ms=300",
        ],
        "sweep-forget=pause",
    );
    let addr = agent.addr(0);
    let admin = Admin::connect(addr.clone()).await.unwrap();
    admin.create_topic("swept", 1).await.unwrap();
    for (round, end) in [("a-", 10), ("b-", 20), ("c-", 30)] {
        send(&addr, "swept", round, 10, None).await;
        await_committed(&agent, "swept", end).await;
    }
    let before = chunk_files(&agent).len();
    assert!(before >= 3, "{before} chunk objects");
    assert_eq!(admin.delete_records("swept", 0, None).await.unwrap(), 30);
    // The sweep deletes one object and stops before forgetting its row.
    let deadline = Instant::now() + Duration::from_secs(30);
    while chunk_files(&agent).len() == before {
        assert!(
            Instant::now() < deadline,
            "the sweep never deleted an object"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(chunk_files(&agent).len(), before - 1);
    assert!(
        dead_rows(&agent) >= 3,
        "every row waits: {}",
        dead_rows(&agent)
    );
    agent.kill9();

    agent.spawn();
    let deadline = Instant::now() + Duration::from_secs(30);
    while dead_rows(&agent) > 0 || !chunk_files(&agent).is_empty() {
        assert!(
            Instant::now() < deadline,
            "left behind: {} rows, {:?}",
            dead_rows(&agent),
            chunk_files(&agent)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    send(&agent.addr(0), "swept", "d-", 5, None).await;
    let consumer = Consumer::connect([agent.addr(0)]).await.unwrap();
    assert_eq!(consumer.watermarks("swept", 0).await.unwrap(), (30, 35));
}

/// `/metrics` shows what each partition keeps in object storage and where
/// it starts (per partition with `--metrics-per-partition`), as of the last
/// retention pass.
#[tokio::test(flavor = "multi_thread")]
async fn stored_bytes_and_log_starts_are_on_metrics() {
    let admin_port = free_ports(1);
    let admin_listen = format!("--admin-listen=127.0.0.1:{admin_port}");
    let agent = Agent::start(
        1,
        &[
            "--segment-age-ms=100",
            "--retention-check-ms=200",
            "--metrics-per-partition",
            &admin_listen,
        ],
    );
    let addr = agent.addr(0);
    let admin = Admin::connect(addr.clone()).await.unwrap();
    admin.create_topic("measured", 1).await.unwrap();
    send(&addr, "measured", "m-", 10, None).await;
    await_committed(&agent, "measured", 10).await;
    let stored = r#"streamhouse_topic_stored_bytes{topic="measured",partition="0"}"#;
    let start = r#"streamhouse_partition_log_start_offset{topic="measured",partition="0"}"#;
    let until = |what: &'static str, ok: fn(f64, f64) -> bool| async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, text) = get(admin_port, "/metrics").await;
            if ok(sample(&text, stored), sample(&text, start)) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}:\n{text}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let objects = r#"streamhouse_topic_stored_objects{topic="measured",partition="0"}"#;
    until("stored bytes never shown", |bytes, start| {
        bytes > 0.0 && start == 0.0
    })
    .await;
    let (_, text) = get(admin_port, "/metrics").await;
    assert!(sample(&text, objects) >= 1.0, "{text}");
    assert_eq!(admin.delete_records("measured", 0, None).await.unwrap(), 10);
    until("the deletion never shown", |bytes, start| {
        bytes == 0.0 && start == 10.0
    })
    .await;
    let (_, text) = get(admin_port, "/metrics").await;
    assert_eq!(sample(&text, objects), 0.0, "{text}");
}

/// Two partitions of one shard written in turns share each segment, their
/// batches interleaved: each partition's stored bytes (what
/// `retention.bytes` and `streamhouse_topic_stored_bytes` count) are its
/// own frames, so together they are no more than the chunk objects hold.
#[tokio::test(flavor = "multi_thread")]
async fn stored_bytes_count_a_partitions_own_frames_not_its_neighbours() {
    let agent = Agent::start(1, &["--segment-age-ms=3000"]);
    let addr = agent.addr(0);
    let admin = Admin::connect(addr.clone()).await.unwrap();
    admin.create_topic("turns", 2).await.unwrap();
    let producer = Producer::builder([addr.clone()]).build().await.unwrap();
    for i in 0..60u32 {
        let r = ProducerRecord::new("turns", format!("turn-{i:04}-{}", "x".repeat(200)));
        producer.send(r.partition(i % 2)).await.expect("produce");
    }
    producer.close().await.unwrap();
    let url = format!("sqlite://{}", agent.data_dir.join("metadata.db").display());
    await_committed_end(&url, "turns", 0, 30).await;
    await_committed_end(&url, "turns", 1, 30).await;
    let m = streamhouse_agent::metastore::MetaStore::open(&url)
        .await
        .unwrap();
    let key = m.topics().await.unwrap()[0].key();
    let stored = m.stored(&key, 0).await.unwrap().bytes + m.stored(&key, 1).await.unwrap().bytes;
    let objects: u64 = chunk_files(&agent)
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert!(
        stored > 60 * 200 && stored <= objects,
        "the partitions count {stored} bytes stored; the objects hold {objects}"
    );
}
