//! Retention and the object sweep on the real S3 server with PostgreSQL
//! metadata (issue 19): objects holding only expired ranges (or a deleted
//! topic's) leave the bucket, objects shared with live data stay until
//! their last live range goes, and a reader fetching while they go gets
//! correct records or OUT_OF_RANGE, never wrong bytes or an error.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use streamhouse_client::{Admin, Consumer, Producer, ProducerRecord};

use super::*;

/// Topic names referenced by each chunk object, from the chunk index.
async fn topics_by_chunk(meta: &str) -> BTreeMap<String, BTreeSet<String>> {
    let (client, conn) = tokio_postgres::connect(meta, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let rows = client
        .query("SELECT DISTINCT chunk_key, topic FROM chunk_ranges", &[])
        .await
        .unwrap();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in rows {
        let topic: String = r.get(1);
        let name = topic
            .rsplit_once('#')
            .map_or(topic.clone(), |(n, _)| n.into());
        out.entry(r.get(0)).or_default().insert(name);
    }
    out
}

/// Sends `n` records `{topic}-{i}` to partition 0 of each of `topics`,
/// alternating, stamped `timestamp_ms` when given.
async fn send_to(addr: &str, topics: &[&str], n: usize, timestamp_ms: Option<i64>) {
    let producer = Producer::builder([addr.to_owned()]).build().await.unwrap();
    for i in 0..n {
        for t in topics {
            let mut r = ProducerRecord::new(*t, format!("{t}-{i}")).partition(0);
            if let Some(ts) = timestamp_ms {
                r = r.timestamp(ts);
            }
            producer.send(r).await.expect("produce");
        }
    }
    producer.close().await.unwrap();
}

/// Reads `topic` from offset 0 again and again until `stop`: every answer
/// is records whose values are `{topic}-{offset - first}` at their offsets,
/// or OUT_OF_RANGE. Returns how many answers were OUT_OF_RANGE.
fn reader(
    agent: &Agent,
    topic: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    let url = agent.url(0);
    tokio::spawn(async move {
        let ch = tonic::transport::Channel::from_shared(url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut f = pb::fetch_service_client::FetchServiceClient::new(ch);
        let mut refused = 0;
        while !stop.load(Ordering::Relaxed) {
            match f.fetch(fetch_req(topic, 0, 0)).await {
                Ok(r) => {
                    for rec in r.into_inner().records {
                        let want = format!("{topic}-{}", rec.offset % 20);
                        assert_eq!(&rec.value[..], want.as_bytes(), "offset {}", rec.offset);
                    }
                }
                Err(s) if s.code() == Code::OutOfRange => refused += 1,
                Err(s) => panic!("a read while objects go: {s:?}"),
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        refused
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_leave_the_bucket_once_no_live_range_references_them() {
    let (endpoint, _) = s3_server();
    let prefix = unique("retention");
    let meta = super::pg::fresh_database("retention").await;
    let mut args = s3_args(&endpoint, &prefix, &meta);
    args.extend(
        [
            "--segment-age-ms=300",
            "--retention-check-ms=200",
            "--object-delete-grace-ms=500",
            // Shared objects are to stay whole here (compaction would move
            // the live ranges out of them: compaction.rs).
            "--compaction-target-bytes=0",
        ]
        .map(String::from),
    );
    let agent = Agent::start(1, &as_strs(&args));
    let addr = agent.addr(0);
    let admin = Admin::connect(addr.clone()).await.unwrap();
    for t in ["long", "gone"] {
        admin.create_topic(t, 1).await.unwrap();
    }
    // Kept for ever until DeleteRecords below; "short" keeps 10 minutes.
    admin
        .alter_configs("long", [("retention.ms", "-1")], &[])
        .await
        .unwrap();
    admin
        .create_topic_with_configs("short", 1, [("retention.ms", "600000")])
        .await
        .unwrap();
    let hour_ago = streamhouse_agent::runtime::clock::now_ms() - 3_600_000;
    // Objects shared by both topics, then objects of expired records
    // only, then a topic about to be deleted.
    send_to(&addr, &["short", "long"], 20, Some(hour_ago)).await;
    await_committed_end(&meta, "long", 0, 20).await;
    await_committed_end(&meta, "short", 0, 20).await;
    send_to(&addr, &["short"], 20, Some(hour_ago)).await;
    send_to(&addr, &["gone"], 10, None).await;
    await_committed_end(&meta, "gone", 0, 10).await;
    await_committed_end(&meta, "short", 0, 40).await;
    let before = topics_by_chunk(&meta).await;
    let keep: BTreeSet<String> = before
        .iter()
        .filter(|(_, t)| t.contains("long"))
        .map(|(k, _)| format!("{prefix}/{k}"))
        .collect();
    let go: BTreeSet<String> = before
        .iter()
        .filter(|(_, t)| !t.contains("long"))
        .map(|(k, _)| format!("{prefix}/{k}"))
        .collect();
    assert!(!keep.is_empty() && !go.is_empty(), "{before:?}");
    let stop = Arc::new(AtomicBool::new(false));
    let reading = reader(&agent, "short", stop.clone());

    admin.delete_topic("gone").await.unwrap();
    wait_until(
        "expired and deleted objects to leave",
        Duration::from_secs(30),
        || async {
            let now: BTreeSet<String> = bucket_keys(&prefix).await.into_iter().collect();
            now.is_disjoint(&go)
        },
    )
    .await;
    let now: BTreeSet<String> = bucket_keys(&prefix).await.into_iter().collect();
    assert!(
        keep.is_subset(&now),
        "shared objects went: {keep:?} not in {now:?}"
    );
    stop.store(true, Ordering::Relaxed);
    assert!(
        reading.await.unwrap() > 0,
        "the reader never saw the log start move"
    );
    let c = Consumer::connect([addr.clone()]).await.unwrap();
    assert_eq!(c.watermarks("short", 0).await.unwrap(), (40, 40));
    let mut f = agent
        .fetcher_for(&agent.describe_topic("long").await, 0)
        .await;
    let long = fetch_all(&mut f, "long", 0).await;
    assert_eq!(long.len(), 20, "every record of the topic that keeps them");

    // The shared objects' last live ranges go: so do they.
    assert_eq!(admin.delete_records("long", 0, None).await.unwrap(), 20);
    wait_until(
        "the shared objects to leave",
        Duration::from_secs(30),
        || async {
            let now: BTreeSet<String> = bucket_keys(&prefix).await.into_iter().collect();
            now.is_disjoint(&keep)
        },
    )
    .await;
}
