//! Compaction on the real S3 server with PostgreSQL metadata (issue 19):
//! small objects shared by two partitions become objects of one partition
//! each under `compacted/`, the shared ones leave the bucket, and a reader
//! fetching all along, and after DeleteRecords, gets every record as sent
//! (or OUT_OF_RANGE below the log start), never wrong bytes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use streamhouse_client::{Admin, Producer, ProducerRecord};

use super::*;

/// 16 rounds of 4 records to each of 2 partitions in turns, a segment a
/// round; every record's value by (partition, offset).
async fn write_rounds(addr: &str, topic: &str) -> BTreeMap<(u32, u64), Vec<u8>> {
    let producer = Producer::builder([addr.to_owned()]).build().await.unwrap();
    let mut sent = BTreeMap::new();
    for round in 0..16 {
        for i in 0..4 {
            for p in 0..2 {
                let value = format!("{topic}-{p}-{round}-{i}-{}", "s3".repeat(60)).into_bytes();
                let m = producer
                    .send(ProducerRecord::new(topic, value.clone()).partition(p))
                    .await
                    .expect("produce");
                sent.insert((p, m.offset), value);
            }
        }
        tokio::time::sleep(Duration::from_millis(350)).await;
    }
    producer.close().await.unwrap();
    sent
}

/// Every readable record of both partitions from `from[p]` on.
async fn read_from(
    f: &mut pb::fetch_service_client::FetchServiceClient<tonic::transport::Channel>,
    topic: &str,
    from: [u64; 2],
) -> Result<BTreeMap<(u32, u64), Vec<u8>>, tonic::Status> {
    let mut got = BTreeMap::new();
    for p in 0..2u32 {
        let mut offset = from[p as usize];
        loop {
            let r = f
                .fetch(pb::FetchRequest {
                    max_bytes: 1 << 20,
                    ..fetch_req(topic, p, offset)
                })
                .await?
                .into_inner();
            let Some(last) = r.records.last() else { break };
            offset = last.offset + 1;
            for rec in r.records {
                got.insert((p, rec.offset), rec.value.to_vec());
            }
        }
    }
    Ok(got)
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_small_objects_are_compacted_on_s3_and_read_the_same() {
    let (endpoint, _) = s3_server();
    let prefix = unique("compaction");
    let meta = super::pg::fresh_database("compaction").await;
    let mut args = s3_args(&endpoint, &prefix, &meta);
    args.extend(
        [
            "--segment-age-ms=300",
            "--retention-check-ms=300",
            "--object-delete-grace-ms=500",
            "--compaction-target-bytes=65536",
        ]
        .map(String::from),
    );
    let agent = Agent::start(1, &as_strs(&args));
    let addr = agent.addr(0);
    let admin = Admin::connect(addr.clone()).await.unwrap();
    admin.create_topic("dense", 2).await.unwrap();
    let sent = write_rounds(&addr, "dense").await;
    await_committed_end(&meta, "dense", 0, 64).await;
    await_committed_end(&meta, "dense", 1, 64).await;
    let shared = bucket_keys(&format!("{prefix}/chunks/")).await;
    assert!(shared.len() >= 8, "{shared:?}");

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let reading = {
        let (stop, reads, sent) = (stop.clone(), reads.clone(), sent.clone());
        let mut f = pb::fetch_service_client::FetchServiceClient::new(agent.channel(0).await);
        tokio::spawn(async move {
            // At least one read, however soon compaction is done.
            loop {
                let got = read_from(&mut f, "dense", [0, 0]).await.expect("a read");
                assert_eq!(got, sent, "a read while objects are compacted");
                reads.fetch_add(1, Ordering::Relaxed);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
        })
    };
    wait_until(
        "the shared objects to be compacted away",
        Duration::from_secs(60),
        || async {
            let compacted = bucket_keys(&format!("{prefix}/compacted/")).await;
            let left = bucket_keys(&format!("{prefix}/chunks/")).await;
            compacted.len() >= 2 && left.len() <= 7
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    reading.await.expect("every read as sent");
    assert!(reads.load(Ordering::Relaxed) > 0);
    for key in bucket_keys(&format!("{prefix}/compacted/")).await {
        let data = object(&key).await;
        let mut parts = std::collections::BTreeSet::new();
        let mut pos = 0;
        while pos < data.len() {
            let f = streamhouse_storage::segment::parse_frame(&data, pos).expect("a valid frame");
            parts.insert((f.topic, f.partition));
            pos += f.len as usize;
        }
        assert_eq!(parts.len(), 1, "{key} holds {parts:?}");
    }

    // DeleteRecords inside a compacted object: below it OUT_OF_RANGE,
    // from it on every record as sent.
    assert_eq!(
        admin.delete_records("dense", 0, Some(30)).await.unwrap(),
        30
    );
    let mut f = pb::fetch_service_client::FetchServiceClient::new(agent.channel(0).await);
    let below = f.fetch(fetch_req("dense", 0, 3)).await.unwrap_err();
    assert_eq!(below.code(), Code::OutOfRange, "{below:?}");
    let got = read_from(&mut f, "dense", [30, 0]).await.unwrap();
    let want: BTreeMap<_, _> = sent
        .into_iter()
        .filter(|((p, o), _)| *p == 1 || *o >= 30)
        .collect();
    // The log start falls inside a range: records of that range before it
    // may still be served (whole ranges go); none is wrong.
    for (k, v) in &want {
        assert_eq!(got.get(k), Some(v), "{k:?}");
    }
}
