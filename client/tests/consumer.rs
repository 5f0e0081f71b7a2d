//! The Consumer against a real agent: nothing fetched is ever dropped, and
//! errors reach the caller.

#[path = "../../agent/tests/common/mod.rs"]
mod common;
#[path = "../../agent/tests/common/raw.rs"]
mod raw;

use std::time::Duration;

use streamhouse_client::{Admin, Consumer, Producer, Result};

async fn produce(bootstrap: &str, topic: &str, partition: u32, n: usize) {
    let producer = Producer::builder([bootstrap]).build().await.unwrap();
    producer
        .send_batch(
            topic,
            partition,
            (0..n).map(|i| format!("{topic}-{partition}-{i}")),
        )
        .await
        .unwrap();
    producer.close().await.unwrap();
}

/// Issue 15, defect 1: a poll over two partitions where the second one
/// answers an error (here `OUT_OF_RANGE`: its position is past the end)
/// used to advance the first partition's position and then return the
/// error, so the records already fetched from the first were lost.
#[tokio::test]
async fn an_error_on_one_partition_drops_no_records_of_another() {
    let agent = common::Agent::start(1, &[]);
    let b = agent.addr(0);
    Admin::connect(&b)
        .await
        .unwrap()
        .create_topic("two", 2)
        .await
        .unwrap();
    produce(&b, "two", 0, 10).await;
    let mut consumer = Consumer::connect([b.clone()]).await.unwrap();
    consumer.assign([("two", 0), ("two", 1)]).await.unwrap();
    consumer.seek("two", 1, 100);
    let mut got = Vec::new();
    let mut error = None;
    for _ in 0..5 {
        match consumer.poll(Duration::from_millis(200)).await {
            Ok(records) => got.extend(records),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let values: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8_lossy(&r.value).into_owned())
        .collect();
    let want: Vec<String> = (0..10).map(|i| format!("two-0-{i}")).collect();
    assert_eq!(values, want, "every record of partition 0 is returned once");
    assert_eq!(consumer.position("two", 0), Some(10));
    let e = error.expect("the error of partition 1 is reported");
    assert_eq!(e.code(), Some(tonic::Code::OutOfRange), "{e}");
    assert!(
        e.to_string().contains("two/1"),
        "the error names the partition: {e}"
    );
    // The failing partition did not move; once sought back it reads.
    assert_eq!(consumer.position("two", 1), Some(100));
    consumer.seek("two", 1, 0);
    produce(&b, "two", 1, 3).await;
    let r: Result<Vec<_>> = consumer.poll(Duration::from_millis(500)).await;
    let r = r.unwrap();
    assert_eq!(r.len(), 3, "{r:?}");
    assert!(r.iter().all(|r| r.partition == 1));
}

/// Issue 15, defect 5: the consumer and the producer now share one retry
/// table. A fetch refused for a moment because the shard's request buffers
/// are full (`RESOURCE_EXHAUSTED` with `grpc-retry-pushback-ms`) is retried
/// after the pause, as the producer always did; the consumer used to
/// return the refusal as an error. One raw stream holds the whole (small)
/// shard budget until its body times out.
#[tokio::test]
async fn a_fetch_refused_for_full_buffers_is_retried_after_the_pushback() {
    let agent = common::Agent::start(
        1,
        &[
            "--max-request-bytes",
            "1048576",
            "--max-buffered-bytes-per-connection",
            "1048581",
            "--max-buffered-bytes-per-shard",
            "1048581",
            "--request-body-timeout-ms",
            "1500",
        ],
    );
    let b = agent.addr(0);
    Admin::connect(&b)
        .await
        .unwrap()
        .create_topic("held", 1)
        .await
        .unwrap();
    produce(&b, "held", 0, 3).await;
    let mut consumer = Consumer::connect([b.clone()]).await.unwrap();
    consumer.assign([("held", 0)]).await.unwrap();
    let mut h2c = raw::connect(&b).await;
    let req = raw::request(&b, streamhouse_client::proto::paths::PRODUCE, &[]);
    let (resp, mut send) = h2c.send_request(req, false).unwrap();
    let mut prefix = vec![0u8];
    prefix.extend_from_slice(&(1_048_576u32).to_be_bytes());
    send.send_data(prefix.into(), false).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let got = consumer
        .poll(Duration::from_secs(5))
        .await
        .expect("the fetch is retried until the buffer has room");
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "it had to wait"
    );
    let held = raw::read_reply(resp).await;
    assert_eq!(held.grpc_status.as_deref(), Some("4"), "{held:?}");
}
