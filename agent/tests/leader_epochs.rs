//! Leader epochs against real agent processes: a consumer that read records
//! a leader acknowledged but never shipped, then lost with it (SIGKILL),
//! goes back to where the new leader continued, reads every record the log
//! holds and counts what vanished.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use streamhouse_client::{
    Acks, Admin, AutoOffsetReset, Consumer, GroupConsumer, Producer, ProducerRecord, ReadLevel,
};

async fn send_all(producer: &Producer, topic: &str, partition: u32, values: &[String]) {
    let acks: Vec<_> = values
        .iter()
        .map(|v| producer.send(ProducerRecord::new(topic, v.clone()).partition(partition)))
        .collect();
    for a in futures::future::join_all(acks).await {
        a.expect("acknowledged");
    }
}

/// Every (offset, value) the partition holds now, read from its leader.
async fn log_now(bootstrap: &[String], topic: &str, partition: u32) -> BTreeMap<u64, String> {
    let mut c = Consumer::connect(bootstrap.to_vec()).await.unwrap();
    c.assign([(topic, partition)]).await.unwrap();
    let (_, high) = c.watermarks(topic, partition).await.unwrap();
    let mut out = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while (out.len() as u64) < high {
        for r in c.poll(Duration::from_millis(100)).await.unwrap() {
            out.insert(r.offset, String::from_utf8_lossy(&r.value).into_owned());
        }
        assert!(Instant::now() < deadline, "{} of {high}", out.len());
    }
    out
}

#[tokio::test]
async fn a_consumer_goes_back_to_where_a_new_leader_continued() {
    let stores = tempfile::tempdir_in(target_tmp()).unwrap();
    let (mut agents, bootstrap, p) =
        two_agents_and_a_partition_of_agent_0(stores.path(), "ep").await;
    let producer = patient_producer(&bootstrap, Acks::Durable).await;
    // agent-0 acknowledges 300 records it keeps only in its WAL.
    let old: Vec<String> = (0..300).map(|i| format!("old-{i}")).collect();
    send_all(&producer, "ep", p, &old).await;
    let mut consumer = Consumer::connect(bootstrap.clone()).await.unwrap();
    consumer.assign([("ep", p)]).await.unwrap();
    let mut read: BTreeMap<u64, String> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while read.len() < 300 {
        for r in consumer.poll(Duration::from_millis(100)).await.unwrap() {
            assert!(r.leader_epoch.is_some(), "records name their epoch");
            read.insert(r.offset, String::from_utf8_lossy(&r.value).into_owned());
        }
        assert!(Instant::now() < deadline);
    }
    let first_epoch = consumer.position_epoch("ep", p).expect("an epoch");
    // agent-0 dies with them; agent-1 continues from the committed end (0)
    // and acknowledges 500 other records at offsets 0..500.
    agents[0].kill9();
    let new: Vec<String> = (0..500).map(|i| format!("new-{i}")).collect();
    send_all(&producer, "ep", p, &new).await;
    producer.close().await.unwrap();
    let survivor = vec![agents[1].addr(0)];
    let log = log_now(&survivor, "ep", p).await;
    assert_eq!(log.len(), 500);
    assert!(log.values().all(|v| v.starts_with("new-")), "{log:?}");
    // The consumer reads on: every record of the log, the vanished ones
    // reported.
    let mut after: BTreeMap<u64, String> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while after.len() < log.len() {
        match consumer.poll(Duration::from_millis(100)).await {
            Ok(rs) => {
                for r in rs {
                    after.insert(r.offset, String::from_utf8_lossy(&r.value).into_owned());
                }
            }
            Err(e) => eprintln!("poll: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "read {} of the {} records in the log after the leader change (from offset {:?})",
            after.len(),
            log.len(),
            after.keys().next()
        );
    }
    assert_eq!(after, log, "every record in the log, as the log holds it");
    let t = consumer.truncations();
    assert_eq!((t.events, t.records), (1, 300), "{t:?}");
    assert!(consumer.position_epoch("ep", p).expect("epoch") > first_epoch);
}

/// A group member that starts from an offset committed after records a
/// dead leader never shipped reads every record the new leader wrote at
/// those offsets: the commit carries the epoch, the first fetch finds it
/// ended earlier.
#[tokio::test]
async fn a_member_starting_from_a_commit_goes_back_to_where_a_new_leader_continued() {
    let stores = tempfile::tempdir_in(target_tmp()).unwrap();
    let (mut agents, bootstrap, p) =
        two_agents_and_a_partition_of_agent_0(stores.path(), "gep").await;
    let admin = Admin::connect(&agents[0].addr(0)).await.unwrap();
    let producer = patient_producer(&bootstrap, Acks::Durable).await;
    let old: Vec<String> = (0..300).map(|i| format!("old-{i}")).collect();
    send_all(&producer, "gep", p, &old).await;
    // A member reads the 300 records agent-0 keeps only in its WAL and
    // commits past them.
    let mut first = group_member(&bootstrap, "gep-readers").await;
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(15);
    while read < 300 {
        read += first.poll(Duration::from_millis(100)).await.unwrap().len();
        assert!(Instant::now() < deadline, "read {read} of 300");
    }
    first.commit().await.unwrap();
    let committed = admin.group_offsets("gep-readers").await.unwrap();
    assert_eq!(
        committed.get(&streamhouse_client::TopicPartition::new("gep", p)),
        Some(&300)
    );
    first.close().await.unwrap();
    // agent-0 dies with them; agent-1 writes 500 others at offsets 0..500.
    agents[0].kill9();
    let new: Vec<String> = (0..500).map(|i| format!("new-{i}")).collect();
    send_all(&producer, "gep", p, &new).await;
    producer.close().await.unwrap();
    let survivor = vec![agents[1].addr(0)];
    let log = log_now(&survivor, "gep", p).await;
    assert_eq!(log.len(), 500);
    // A new member starts from the group's commit: it reads them all.
    let mut second = group_member(&survivor, "gep-readers").await;
    let mut after: BTreeMap<u64, String> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while after.len() < log.len() {
        match second.poll(Duration::from_millis(100)).await {
            Ok(rs) => after.extend(
                rs.into_iter()
                    .map(|r| (r.offset, String::from_utf8_lossy(&r.value).into_owned())),
            ),
            Err(e) => eprintln!("poll: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "the new member read {} of the {} records in the log (from offset {:?})",
            after.len(),
            log.len(),
            after.keys().next()
        );
    }
    assert_eq!(after, log);
    let t = second.truncations();
    assert_eq!((t.events, t.records), (1, 300), "{t:?}");
    second.close().await.unwrap();
}

async fn group_member(bootstrap: &[String], group: &str) -> GroupConsumer {
    Consumer::builder(bootstrap.to_vec())
        .group(group)
        .subscribe(["gep"])
        .session_timeout(Duration::from_secs(6))
        .auto_commit_interval(Duration::from_millis(200))
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .build()
        .await
        .unwrap()
}

/// A consumer at read level `object` sees only what reached object storage:
/// nothing a dying leader can take back, so it never truncates.
#[tokio::test]
async fn a_consumer_at_read_level_object_never_reads_a_record_that_vanishes() {
    let stores = tempfile::tempdir_in(target_tmp()).unwrap();
    let (mut agents, bootstrap, p) =
        two_agents_and_a_partition_of_agent_0(stores.path(), "obj").await;
    let durable = patient_producer(&bootstrap, Acks::Durable).await;
    let first: Vec<String> = (0..100).map(|i| format!("a-{i}")).collect();
    send_all(&durable, "obj", p, &first).await;
    let mut reader = Consumer::builder(bootstrap.clone())
        .read_level(ReadLevel::Object)
        .build()
        .await
        .unwrap();
    reader.assign([("obj", p)]).await.unwrap();
    let mut read = BTreeMap::new();
    // Durable only, nothing shipped: nothing to read at level object.
    assert_eq!(
        poll_for(&mut reader, &mut read, Duration::from_secs(1)).await,
        0
    );
    // An ack-object batch ships the segment: the 100 before it and itself.
    let object = patient_producer(&bootstrap, Acks::Object).await;
    send_all(&object, "obj", p, &["b-0".to_string()]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while poll_for(&mut reader, &mut read, Duration::from_millis(200)).await < 101 {
        assert!(Instant::now() < deadline, "committed records never read");
    }
    // 50 more durable-only records die with their leader, unread.
    let doomed: Vec<String> = (0..50).map(|i| format!("c-{i}")).collect();
    send_all(&durable, "obj", p, &doomed).await;
    assert_eq!(
        poll_for(&mut reader, &mut read, Duration::from_millis(500)).await,
        101
    );
    agents[0].kill9();
    let after: Vec<String> = (0..20).map(|i| format!("d-{i}")).collect();
    send_all(&object, "obj", p, &after).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while poll_for(&mut reader, &mut read, Duration::from_millis(200)).await < 121 {
        assert!(
            Instant::now() < deadline,
            "read {:?}",
            reader.position("obj", p)
        );
    }
    assert!(read.values().all(|v| !v.starts_with("c-")), "{read:?}");
    assert_eq!(reader.truncations().events, 0);
    durable.close().await.unwrap();
    object.close().await.unwrap();
}

/// Polls `reader` for `d`, recording (offset, value); how many are known.
async fn poll_for(reader: &mut Consumer, read: &mut BTreeMap<u64, String>, d: Duration) -> usize {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if let Ok(rs) = reader.poll(Duration::from_millis(100)).await {
            for r in rs {
                read.insert(r.offset, String::from_utf8_lossy(&r.value).into_owned());
            }
        }
    }
    read.len()
}
