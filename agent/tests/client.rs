//! The client library (Producer, Consumer, Admin) against the real agent.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use streamhouse_client::{Acks, Admin, BatchRecord, Consumer, Error, Producer, ProducerRecord};

/// Established TCP connections to `port`, counted on the connecting side
/// (from /proc/net/tcp: remote port = port, state 01 = ESTABLISHED). Not
/// on the agent's side: another test's outgoing connection may use the
/// agent's port number as its own local port, and would be counted.
fn connections_to(port: u16) -> usize {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default()
        + &std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3
                && f[3] == "01"
                && f[2]
                    .rsplit(':')
                    .next()
                    .and_then(|h| u16::from_str_radix(h, 16).ok())
                    == Some(port)
        })
        .count()
}

async fn read_partition(
    bootstrap: &str,
    topic: &str,
    partition: u32,
    want: usize,
) -> Vec<streamhouse_client::ConsumerRecord> {
    let mut c = Consumer::connect([bootstrap.to_owned()]).await.unwrap();
    c.assign([(topic.to_owned(), partition)]).await.unwrap();
    let mut out = Vec::new();
    let mut empty = 0;
    while out.len() < want && empty < 20 {
        let recs = c.poll(Duration::from_millis(100)).await.unwrap();
        if recs.is_empty() {
            empty += 1;
        }
        out.extend(recs);
    }
    out
}

#[tokio::test]
async fn hundred_record_batches_end_to_end() {
    let agent = Agent::start(2, &[]);
    let admin = Admin::connect(&agent.addr(0)).await.unwrap();
    admin.create_topic("b100", 4).await.unwrap();
    let producer = Producer::builder([agent.addr(0)])
        .batch_max_records(100)
        .linger(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let mut futs = Vec::new();
    for i in 0..10_000u32 {
        futs.push(producer.send(ProducerRecord::new("b100", format!("v{i}")).partition(i % 4)));
    }
    let mut per_partition: HashMap<u32, Vec<u64>> = HashMap::new();
    for f in futs {
        let m = f.await.unwrap();
        per_partition.entry(m.partition).or_default().push(m.offset);
    }
    for (p, offs) in &per_partition {
        assert_eq!(
            offs,
            &(0..2500).collect::<Vec<u64>>(),
            "partition {p}: offsets in send order"
        );
    }
    let m = producer.metrics();
    assert_eq!(m.records_acked, 10_000);
    assert_eq!(m.batches, 100, "exactly 100 batches of 100");
    producer.close().await.unwrap();
    let recs = read_partition(&agent.addr(0), "b100", 3, 2500).await;
    let values: Vec<String> = recs
        .iter()
        .map(|r| String::from_utf8_lossy(&r.value).into_owned())
        .collect();
    let want: Vec<String> = (0..10_000u32)
        .filter(|i| i % 4 == 3)
        .map(|i| format!("v{i}"))
        .collect();
    assert_eq!(values, want);
}

/// Sends 300 `send_batch` calls of 20 records to one partition with up to
/// `in_flight` requests at once; checks every record is stored once, in
/// call order, and returns the agent's average batches per group commit.
async fn batches_per_group_commit(in_flight: usize) -> f64 {
    let admin_port = free_ports(1);
    let listen = format!("127.0.0.1:{admin_port}");
    let agent = Agent::start(1, &["--admin-listen", &listen]);
    let admin = Admin::connect(&agent.addr(0)).await.unwrap();
    admin.create_topic("pipe", 1).await.unwrap();
    let producer = Producer::builder([agent.addr(0)])
        .max_in_flight_per_partition(in_flight)
        .build()
        .await
        .unwrap();
    let calls: Vec<_> = (0..300u32)
        .map(|c| producer.send_batch("pipe", 0, (0..20).map(|i| format!("{c}-{i}"))))
        .collect();
    for (c, f) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(f.unwrap().base_offset, c as u64 * 20, "call {c}");
    }
    producer.close().await.unwrap();
    let recs = read_partition(&agent.addr(0), "pipe", 0, 6000).await;
    let want: Vec<String> = (0..300)
        .flat_map(|c| (0..20).map(move |i| format!("{c}-{i}")))
        .collect();
    let got: Vec<String> = recs
        .iter()
        .map(|r| String::from_utf8_lossy(&r.value).into_owned())
        .collect();
    assert_eq!(
        got, want,
        "{in_flight} in flight: stored once, in call order"
    );
    let (_, m) = get(admin_port, "/metrics").await;
    sample(&m, "streamhouse_group_commit_batches_sum{shard=\"0\"}")
        / sample(&m, "streamhouse_group_commit_batches_count{shard=\"0\"}")
}

#[tokio::test]
async fn several_requests_in_flight_per_partition_share_group_commits_in_order() {
    // One request at a time: each sync carries exactly one batch.
    assert_eq!(batches_per_group_commit(1).await, 1.0);
    // Five at a time: the agent gets batches while a sync runs and commits
    // them together.
    let five = batches_per_group_commit(5).await;
    assert!(five > 1.2, "{five} batches per group commit");
}

#[tokio::test]
async fn the_readme_agent_on_embedded_defaults_serves_every_partition() {
    // No --shards (one per CPU) and the default relative data dir.
    let agent = Agent::start_with_defaults();
    let admin = Admin::connect(&agent.addr(0)).await.unwrap();
    admin.create_topic("defaults", 8).await.unwrap();
    let producer = Producer::builder([agent.addr(0)]).build().await.unwrap();
    let sends: Vec<_> = (0..8u32)
        .map(|p| producer.send(ProducerRecord::new("defaults", format!("p{p}")).partition(p)))
        .collect();
    for (p, f) in futures::future::join_all(sends)
        .await
        .into_iter()
        .enumerate()
    {
        let m = f.unwrap_or_else(|e| panic!("partition {p}: {e}"));
        assert_eq!((m.partition, m.offset), (p as u32, 0));
    }
    producer.close().await.unwrap();
    assert!(agent.data_dir.join("streamhouse-data/metadata.db").exists());
}

#[tokio::test]
async fn send_batch_keeps_order_with_send_and_reports_its_offsets() {
    let agent = Agent::start(2, &[]);
    let admin = Admin::connect(&agent.addr(0)).await.unwrap();
    admin.create_topic("sb", 2).await.unwrap();
    let producer = Producer::builder([agent.addr(0)])
        .linger(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    // Single records still lingering in the open batch, then a batch call,
    // then single records again: stored exactly in call order.
    let mut singles = Vec::new();
    for i in 0..10 {
        singles.push(producer.send(ProducerRecord::new("sb", format!("a{i}")).partition(1)));
    }
    let batch = producer.send_batch(
        "sb",
        1,
        (0..1000).map(|i| BatchRecord::new(format!("b{i}")).key(format!("k{i}"))),
    );
    for i in 0..10 {
        singles.push(producer.send(ProducerRecord::new("sb", format!("c{i}")).partition(1)));
    }
    let second = producer.send_batch("sb", 1, vec!["d0", "d1"]);
    let m = batch.await.unwrap();
    assert_eq!((&*m.topic, m.partition), ("sb", 1));
    assert_eq!((m.base_offset, m.record_count), (10, 1000));
    assert_eq!(second.await.unwrap().base_offset, 1020);
    let offsets: Vec<u64> = futures::future::join_all(singles)
        .await
        .into_iter()
        .map(|r| r.unwrap().offset)
        .collect();
    let want: Vec<u64> = (0..10).chain(1010..1020).collect();
    assert_eq!(offsets, want);
    // Bad calls fail alone, with a clear error.
    let e = producer.send_batch("sb", 7, vec!["x"]).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::UnknownPartition {
                partition: 7,
                partitions: 2,
                ..
            }
        ),
        "{e}"
    );
    let e = producer
        .send_batch("sb", 0, Vec::<BatchRecord>::new())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("at least one record"), "{e}");
    let e = producer
        .send_batch("no-such-topic", 0, vec!["x"])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::UnknownTopic(_)), "{e}");
    assert_eq!(producer.metrics().records_acked, 1022);
    producer.close().await.unwrap();
    let recs = read_partition(&agent.addr(0), "sb", 1, 1022).await;
    let values: Vec<String> = recs
        .iter()
        .map(|r| String::from_utf8_lossy(&r.value).into_owned())
        .collect();
    let want: Vec<String> = (0..10)
        .map(|i| format!("a{i}"))
        .chain((0..1000).map(|i| format!("b{i}")))
        .chain((0..10).map(|i| format!("c{i}")))
        .chain(["d0".to_owned(), "d1".to_owned()])
        .collect();
    assert_eq!(values, want);
    assert_eq!(recs[10].key.as_deref(), Some(&b"k0"[..]));
}

#[tokio::test]
async fn one_million_records_round_trip_in_order() {
    let agent = Agent::start(2, &[]);
    let admin = Admin::connect(&agent.addr(0)).await.unwrap();
    admin.create_topic("million", 2).await.unwrap();
    let producer = Producer::builder([agent.addr(0)]).build().await.unwrap();
    let n = 1_000_000u32;
    let mut futs = Vec::with_capacity(n as usize);
    for i in 0..n {
        let mut v = format!("{i:010}").into_bytes();
        v.resize(100, b'.');
        futs.push(producer.send(ProducerRecord::new("million", v).partition(i % 2)));
    }
    for f in futs {
        f.await.unwrap();
    }
    producer.close().await.unwrap();
    for p in 0..2u32 {
        let recs = read_partition(&agent.addr(0), "million", p, (n / 2) as usize).await;
        assert_eq!(recs.len(), (n / 2) as usize);
        for (j, r) in recs.iter().enumerate() {
            assert_eq!(r.offset, j as u64);
            let i = j as u32 * 2 + p;
            assert_eq!(&r.value[..10], format!("{i:010}").as_bytes());
        }
    }
}

#[tokio::test]
async fn connections_are_reused_and_bounded() {
    let agent = Agent::start(1, &[]);
    Admin::connect(&agent.addr(0))
        .await
        .unwrap()
        .create_topic("pool", 8)
        .await
        .unwrap();
    let before = connections_to(agent.port);
    let producer = Producer::builder([agent.addr(0)])
        .max_connections_per_agent(2)
        .max_in_flight(2)
        .batch_max_records(10)
        .build()
        .await
        .unwrap();
    for round in 0..5 {
        let futs: Vec<_> = (0..2000u32)
            .map(|i| {
                producer.send(ProducerRecord::new("pool", format!("{round}-{i}")).partition(i % 8))
            })
            .collect();
        for f in futs {
            f.await.unwrap();
        }
    }
    let during = connections_to(agent.port) - before;
    assert!(during <= 2, "{during} connections for a pool of 2");
    assert!(producer.metrics().connections_opened <= 2);
    assert_eq!(
        producer.connection_count(&agent.addr(0)),
        2,
        "busy pool grows to its limit"
    );
    producer.close().await.unwrap();
}

#[tokio::test]
async fn agent_restart_mid_send_loses_and_duplicates_nothing() {
    let mut agent = Agent::start(2, &[]);
    Admin::connect(&agent.addr(0))
        .await
        .unwrap()
        .create_topic("restart", 4)
        .await
        .unwrap();
    let producer = Producer::builder([agent.addr(0)])
        .retries(20)
        .backoff(streamhouse_client::backoff::BackoffConfig {
            base: Duration::from_millis(50),
            max: Duration::from_millis(500),
            jitter: 0.25,
        })
        .batch_max_records(50)
        .build()
        .await
        .unwrap();
    let sender = {
        let producer = producer.clone();
        tokio::spawn(async move {
            let mut futs = Vec::new();
            for i in 0..40_000u32 {
                futs.push((
                    i,
                    producer.send(ProducerRecord::new("restart", format!("r{i}")).partition(i % 4)),
                ));
                if i % 1000 == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            let mut acked = Vec::new();
            for (i, f) in futs {
                match f.await {
                    Ok(m) => acked.push((i, m)),
                    Err(e) => panic!("record {i} failed: {e}"),
                }
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    agent.kill9();
    tokio::time::sleep(Duration::from_millis(300)).await;
    agent.spawn();
    let acked = sender.await.unwrap();
    assert_eq!(acked.len(), 40_000);
    assert!(producer.metrics().retries > 0, "the restart forced retries");
    producer.close().await.unwrap();
    for p in 0..4u32 {
        let recs = read_partition(&agent.addr(0), "restart", p, 10_000).await;
        assert_eq!(recs.len(), 10_000, "partition {p}: exactly once");
        let want: Vec<String> = (0..40_000u32)
            .filter(|i| i % 4 == p)
            .map(|i| format!("r{i}"))
            .collect();
        let got: Vec<String> = recs
            .iter()
            .map(|r| String::from_utf8_lossy(&r.value).into_owned())
            .collect();
        assert_eq!(got, want, "partition {p}: in send order");
        for (i, m) in acked.iter().filter(|(_, m)| m.partition == p) {
            assert_eq!(recs[m.offset as usize].value, format!("r{i}").as_bytes());
        }
    }
}

#[tokio::test]
async fn keyed_records_follow_the_key_and_errors_are_clear() {
    let agent = Agent::start(2, &[]);
    Admin::connect(&agent.addr(0))
        .await
        .unwrap()
        .create_topic("keys", 6)
        .await
        .unwrap();
    let producer = Producer::builder([agent.addr(1)])
        .acks(Acks::Durable)
        .build()
        .await
        .unwrap();
    let a = producer
        .send(ProducerRecord::new("keys", "1").key("user-7"))
        .await
        .unwrap();
    let b = producer
        .send(ProducerRecord::new("keys", "2").key("user-7"))
        .await
        .unwrap();
    assert_eq!(a.partition, b.partition);
    assert_eq!(
        a.partition,
        streamhouse_client::partitioner::partition_for_key(b"user-7", 6)
    );
    assert_eq!(b.offset, a.offset + 1);
    let e = producer
        .send(ProducerRecord::new("keys", "x").partition(6))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::UnknownPartition { partitions: 6, .. }),
        "{e}"
    );
    let e = producer
        .send(ProducerRecord::new("missing-topic", "x"))
        .await
        .unwrap_err();
    assert_eq!(e, Error::UnknownTopic("missing-topic".into()));
    producer.close().await.unwrap();
    let e = producer
        .send(ProducerRecord::new("keys", "late"))
        .await
        .unwrap_err();
    assert_eq!(e, Error::Closed);
}
