//! The producer's memory stays bounded while an agent is slow: `send`
//! against a paused agent (SIGSTOP) never makes the producer hold more than
//! `buffer_memory` of records (issue 15, defect 3: the intake queue in
//! front of the buffer was unbounded, so records sent while the buffer was
//! full piled up in the producer without limit).

#[path = "../../agent/tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use streamhouse_client::{Admin, Error, Producer, ProducerRecord};

/// Resident memory of this process, bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_to_a_paused_agent_keep_the_producer_within_buffer_memory() {
    let agent = common::Agent::start(1, &[]);
    Admin::connect(&agent.addr(0))
        .await
        .unwrap()
        .create_topic("mem", 1)
        .await
        .unwrap();
    let producer = Producer::builder([agent.addr(0)])
        .buffer_memory(1 << 20)
        .batch_max_bytes(256 << 10)
        .max_block(Duration::from_millis(1500))
        .request_timeout(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    producer
        .send(ProducerRecord::new("mem", "warm").partition(0))
        .await
        .unwrap();
    agent.signal(libc::SIGSTOP);
    // 400 MB of records, each future dropped at once (fire and forget).
    let before = rss();
    for i in 0..4000u32 {
        let mut value = vec![b'x'; 100_000];
        value[..4].copy_from_slice(&i.to_be_bytes());
        drop(producer.send(ProducerRecord::new("mem", value).partition(0)));
        if i % 64 == 63 {
            tokio::task::yield_now().await;
        }
    }
    let grown = rss().saturating_sub(before);
    eprintln!(
        "RSS grew by {} MB after 400 MB of sends to a paused agent",
        grown >> 20
    );
    assert!(
        grown < 64 << 20,
        "the producer holds {} MB with buffer_memory 1 MiB",
        grown >> 20
    );
    let m = producer.metrics();
    assert!(m.buffer_bytes_in_use <= 1 << 20, "{m:?}");

    // A send whose future is kept waits for room up to max_block, then
    // fails with BufferFull.
    let started = Instant::now();
    let e = producer
        .send(ProducerRecord::new("mem", vec![b'y'; 100_000]).partition(0))
        .await
        .unwrap_err();
    assert_eq!(e, Error::BufferFull(Duration::from_millis(1500)));
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );

    // send_with_callback waits for room in the future it returns; dropped
    // while it waits, the record is withdrawn and the callback never runs.
    let called = Arc::new(AtomicBool::new(false));
    let c = called.clone();
    let admitted = tokio::time::timeout(
        Duration::from_millis(200),
        producer.send_with_callback(
            ProducerRecord::new("mem", vec![b'z'; 100_000]).partition(0),
            move |_| c.store(true, Ordering::SeqCst),
        ),
    )
    .await;
    assert!(admitted.is_err(), "the buffer is full: the record waits");

    // A record whose future is kept (and not polled) is taken by the
    // producer as soon as there is room: the flush below waits for it.
    let kept = producer.send(ProducerRecord::new("mem", "kept").partition(0));

    // Once the agent runs again, what the producer took is delivered, in
    // order, and every record sent is accounted for.
    agent.signal(libc::SIGCONT);
    let last = producer.send(ProducerRecord::new("mem", "after").partition(0));
    tokio::time::timeout(Duration::from_secs(30), producer.flush())
        .await
        .expect("the kept record is delivered without being polled")
        .unwrap();
    let kept = kept.await.unwrap();
    let last = last.await.unwrap();
    assert_eq!(kept.offset + 1, last.offset);
    assert!(
        !called.load(Ordering::SeqCst),
        "a withdrawn record's callback ran"
    );
    let m = producer.metrics();
    assert_eq!(
        m.records_sent,
        m.records_acked + m.records_failed + m.records_withdrawn,
        "{m:?}"
    );
    assert!(m.records_withdrawn > 3000, "{m:?}");
    assert_eq!(last.offset, m.records_acked - 1, "{m:?}");
    producer.close().await.unwrap();
}

/// A record over the agent's `--max-record-bytes` makes the agent refuse
/// the whole batch it is in, so the records sent beside it failed with it.
/// With `max_record_bytes` set to the agent's limit, the producer refuses
/// that record alone, at once, and its neighbours are stored.
#[tokio::test]
async fn a_record_over_the_limit_fails_alone() {
    let agent = common::Agent::start(1, &["--max-record-bytes", "65536"]);
    Admin::connect(&agent.addr(0))
        .await
        .unwrap()
        .create_topic("big", 1)
        .await
        .unwrap();
    let producer = Producer::builder([agent.addr(0)])
        .max_record_bytes(65536)
        .linger(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    let mut sends = Vec::new();
    for i in 0..7 {
        let value = if i == 3 {
            vec![b'b'; 100_000]
        } else {
            format!("small {i}").into_bytes()
        };
        sends.push(producer.send(ProducerRecord::new("big", value).partition(0)));
    }
    let mut stored = 0;
    for (i, f) in sends.into_iter().enumerate() {
        match f.await {
            Ok(_) => stored += 1,
            Err(e) => {
                assert_eq!(i, 3, "{e}");
                assert_eq!(
                    e,
                    Error::RecordTooLarge {
                        size: 100_000,
                        limit: 65536
                    }
                );
            }
        }
    }
    assert_eq!(stored, 6, "the neighbours of the large record are stored");
    let m = producer.metrics();
    assert_eq!(
        (m.records_sent, m.records_acked, m.records_failed),
        (7, 6, 1)
    );
    producer.close().await.unwrap();
}
