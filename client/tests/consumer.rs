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
    assert_eq!(e.code(), Some(streamhouse_client::Code::OutOfRange), "{e}");
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
    let agent = common::Agent::start(1, &raw::SMALL_BUFFERS);
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
    let (resp, _send) = raw::hold_shard_buffers(&mut h2c, &b).await;
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

/// The library's conveniences: a consumer builder, start positions, a
/// stream of records that loses nothing when dropped, an Admin on a list of
/// addresses with the client's own types, and `Codec` from this crate.
#[tokio::test]
async fn builder_start_positions_and_a_stream_of_records() {
    use futures::StreamExt;
    use streamhouse_client::{Codec, Offset, ProducerRecord};
    let agent = common::Agent::start(1, &[]);
    let b = agent.addr(0);
    // The first address is dead: Admin goes on to the next.
    let admin = Admin::connect(["127.0.0.1:1".to_owned(), b.clone()])
        .await
        .unwrap();
    let t: streamhouse_client::TopicInfo = admin.create_topic("st", 2).await.unwrap();
    assert_eq!(t.partitions.len(), 2);
    let producer = Producer::builder([b.clone()])
        .compression(Codec::Lz4)
        .build()
        .await
        .unwrap();
    for i in 0..10 {
        producer
            .send(ProducerRecord::new("st", format!("v{i}")).partition(i % 2))
            .await
            .unwrap();
    }
    let info = admin.describe_topic("st").await.unwrap();
    assert_eq!(info.partitions[0].high_watermark, 5);
    assert_eq!(admin.metadata().await.unwrap().agents.len(), 1);

    let mut c = Consumer::builder([b.clone()])
        .stream_wait(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    c.assign([("st", 0), ("st", 1)]).await.unwrap();
    assert_eq!(c.watermarks("st", 0).await.unwrap(), (0, 5));
    assert_eq!(c.seek_to("st", 0, Offset::FromEnd(2)).await.unwrap(), 3);
    assert_eq!(c.seek_to("st", 1, Offset::At(4)).await.unwrap(), 4);
    let e = c.seek_to("st", 1, Offset::At(9)).await.unwrap_err();
    assert_eq!(e.code(), Some(streamhouse_client::Code::OutOfRange), "{e}");
    assert_eq!(c.position("st", 1), Some(4), "a failed seek moves nothing");

    // Take one record from the stream, then drop it: the records fetched
    // with it are still handed out afterwards.
    let first = {
        let mut s = std::pin::pin!(c.stream());
        s.next().await.unwrap().unwrap()
    };
    let mut got = vec![(first.partition, first.offset)];
    while got.len() < 3 {
        let r = c.next_record().await.unwrap();
        got.push((r.partition, r.offset));
    }
    got.sort();
    assert_eq!(got, [(0, 3), (0, 4), (1, 4)]);
    assert!(c.at_end());
    assert_eq!(c.high_watermark("st", 0), Some(5));

    // Follows: a record produced later comes out of the stream.
    let p2 = producer.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        p2.send(ProducerRecord::new("st", "later").partition(1))
            .await
            .unwrap();
    });
    let mut s = std::pin::pin!(c.stream());
    let r = tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((r.partition, r.offset, &r.value[..]), (1, 5, &b"later"[..]));
    producer.close().await.unwrap();
}

/// A record on one partition comes back at once, not after the other
/// partitions' fetches have waited out `max_wait`.
#[tokio::test]
async fn a_poll_returns_with_the_first_partition_that_has_records() {
    let agent = common::Agent::start(2, &[]);
    let b = agent.addr(0);
    let admin = Admin::connect(&b).await.unwrap();
    admin.create_topic("quick", 4).await.unwrap();
    let mut c = Consumer::connect([b.clone()]).await.unwrap();
    c.assign((0..4).map(|p| ("quick".to_string(), p)))
        .await
        .unwrap();
    // Everything fetched once: positions at the (empty) ends.
    assert!(c.poll(Duration::ZERO).await.unwrap().is_empty());
    let late = {
        let b = b.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            produce(&b, "quick", 2, 1).await;
        })
    };
    let started = std::time::Instant::now();
    let got = c.poll(Duration::from_secs(5)).await.unwrap();
    let took = started.elapsed();
    late.await.unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].partition, 2);
    assert!(took < Duration::from_secs(2), "the poll waited {took:?}");
}
