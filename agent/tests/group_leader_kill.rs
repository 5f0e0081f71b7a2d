//! The consumer-group guarantee across a leader's death, against real agent
//! processes: members consuming while the agent that leads some of their
//! partitions is SIGKILLed process every record that is in the log at the
//! end at least once (at ack `durable` and at ack `object`; on SQLite and
//! on PostgreSQL), and report the records they read that the log no longer
//! holds as truncations.

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use streamhouse_client::{
    Acks, Admin, AutoOffsetReset, Consumer, Producer, ProducerRecord, Truncations,
};

const TOPIC: &str = "kills";
const PARTITIONS: u32 = 4;
/// Records each of the two producers sends; the leader dies once a third
/// of all are acknowledged.
const RECORDS: u64 = 1500;

/// What the members processed: (partition, offset, value).
type Processed = Arc<Mutex<BTreeSet<(u32, u64, String)>>>;

/// A member that processes records until `stop`, then commits, leaves and
/// answers the truncations it detected.
fn member(
    bootstrap: Vec<String>,
    processed: Processed,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Truncations> {
    tokio::spawn(async move {
        let mut m = Consumer::builder(bootstrap)
            .group("survivors")
            .subscribe([TOPIC])
            .session_timeout(Duration::from_secs(6))
            .auto_commit_interval(Duration::from_millis(200))
            .auto_offset_reset(AutoOffsetReset::Earliest)
            .build()
            .await
            .unwrap();
        while !stop.load(Ordering::Relaxed) {
            match m.poll(Duration::from_millis(100)).await {
                Ok(rs) => {
                    let mut p = processed.lock().unwrap();
                    for r in rs {
                        let v = String::from_utf8_lossy(&r.value).into_owned();
                        p.insert((r.partition, r.offset, v));
                    }
                }
                Err(e) => eprintln!("member poll: {e}"),
            }
        }
        let t = m.truncations();
        let _ = m.close().await;
        t
    })
}

/// Sends `RECORDS` records named `tag`N in chunks of 50 (each chunk's
/// acknowledgements awaited), counting the acknowledged ones in `acked`.
/// Two producers at once: after the leader's death their retries reach the
/// new leader in another order than the first time, so offsets a member
/// read can hold other records in the end.
fn produce(
    producer: Producer,
    tag: &'static str,
    acked: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for chunk in 0..RECORDS / 50 {
            let acks: Vec<_> = (chunk * 50..(chunk + 1) * 50)
                .map(|i| {
                    let p = (i % u64::from(PARTITIONS)) as u32;
                    producer.send(ProducerRecord::new(TOPIC, format!("{tag}{i}")).partition(p))
                })
                .collect();
            for a in futures::future::join_all(acks).await {
                a.expect("every record is acknowledged in the end");
                acked.fetch_add(1, Ordering::Relaxed);
            }
        }
        producer.close().await.unwrap();
    })
}

/// Every (offset, value) of every partition, read from `bootstrap`.
async fn whole_log(bootstrap: &[String]) -> BTreeSet<(u32, u64, String)> {
    let mut c = Consumer::connect(bootstrap.to_vec()).await.unwrap();
    let parts: Vec<(&str, u32)> = (0..PARTITIONS).map(|p| (TOPIC, p)).collect();
    c.assign(parts).await.unwrap();
    let mut highs = BTreeMap::new();
    for p in 0..PARTITIONS {
        highs.insert(p, c.watermarks(TOPIC, p).await.unwrap().1);
    }
    let total: u64 = highs.values().sum();
    let mut out = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while (out.len() as u64) < total {
        for r in c.poll(Duration::from_millis(100)).await.unwrap() {
            let v = String::from_utf8_lossy(&r.value).into_owned();
            out.insert((r.partition, r.offset, v));
        }
        assert!(Instant::now() < deadline, "{} of {total}", out.len());
    }
    out
}

async fn every_record_in_the_log_is_processed_across_a_leader_kill(
    acks: Acks,
    metadata: Option<&str>,
) {
    let stores = tempfile::tempdir_in(target_tmp()).unwrap();
    // Segments sealed every second: some of what members read has reached
    // object storage when the leader dies, the newest records have not.
    let mut agents = two_agents_on(stores.path(), "1000", metadata);
    let bootstrap = vec![agents[0].addr(0), agents[1].addr(0)];
    let admin = Admin::connect(&agents[0].addr(0)).await.unwrap();
    admin.create_topic(TOPIC, PARTITIONS).await.unwrap();
    agents[0]
        .first_partition_led_by(TOPIC, "agent-0", "agent-1")
        .await;
    let processed: Processed = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let members: Vec<_> = (0..2)
        .map(|_| member(bootstrap.clone(), processed.clone(), stop.clone()))
        .collect();
    let acked = Arc::new(AtomicU64::new(0));
    let mut sending = Vec::new();
    for tag in ["a", "b"] {
        let producer = Producer::builder(bootstrap.clone())
            .acks(acks)
            .retries(200)
            .delivery_timeout(Duration::from_secs(60))
            .build()
            .await
            .unwrap();
        sending.push(produce(producer, tag, acked.clone()));
    }
    // The leader of some partitions dies in the middle of the run, while
    // members read what it has written.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.load(Ordering::Relaxed) < 2 * RECORDS / 3 {
        assert!(Instant::now() < deadline, "the producer stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    agents[0].kill9();
    for s in sending {
        tokio::time::timeout(Duration::from_secs(90), s)
            .await
            .expect("the producers finish")
            .unwrap();
    }
    let log = whole_log(&[agents[1].addr(0)]).await;
    // Members catch up with everything the log holds.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let missing = log.difference(&processed.lock().unwrap()).count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of the {} records in the log were never processed by any member",
            log.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut reported = Truncations::default();
    for m in members {
        let t = m.await.unwrap();
        reported.events += t.events;
        reported.records += t.records;
    }
    // Records read that the log does not hold (at that offset) vanished
    // with the leader; each was reported.
    let vanished: BTreeSet<(u32, u64)> = processed
        .lock()
        .unwrap()
        .difference(&log)
        .map(|(p, o, _)| (*p, *o))
        .collect();
    eprintln!(
        "{acks:?}: log {} records, processed {}, vanished {}, reported {reported:?}",
        log.len(),
        processed.lock().unwrap().len(),
        vanished.len()
    );
    assert!(
        reported.records >= vanished.len() as u64,
        "{} records read were taken back, {reported:?} reported",
        vanished.len()
    );
    assert_eq!(
        reported.events > 0,
        !vanished.is_empty(),
        "truncations reported exactly when records vanished: {reported:?}"
    );
}

#[tokio::test]
async fn at_ack_durable_every_record_in_the_log_is_processed_across_a_leader_kill() {
    every_record_in_the_log_is_processed_across_a_leader_kill(Acks::Durable, None).await;
}

/// The same with the agents' metadata (leases, chunk index, groups and
/// their offsets) in PostgreSQL.
#[tokio::test]
async fn on_postgres_every_record_in_the_log_is_processed_across_a_leader_kill() {
    let url = pg::fresh_database("leaderkill").await;
    every_record_in_the_log_is_processed_across_a_leader_kill(Acks::Durable, Some(&url)).await;
}

#[tokio::test]
async fn at_ack_object_every_record_in_the_log_is_processed_across_a_leader_kill() {
    every_record_in_the_log_is_processed_across_a_leader_kill(Acks::Object, None).await;
}

/// A committed offset the log no longer reaches (committed without an
/// epoch, past records a dead leader never shipped) starts where
/// `auto_offset_reset` says instead of failing every poll with
/// `OUT_OF_RANGE`.
#[tokio::test]
async fn a_committed_offset_past_the_logs_end_starts_where_auto_offset_reset_says() {
    let stores = tempfile::tempdir_in(target_tmp()).unwrap();
    let (mut agents, bootstrap, p) =
        two_agents_and_a_partition_of_agent_0(stores.path(), "past").await;
    let admin = Admin::connect(&agents[0].addr(0)).await.unwrap();
    let send = |producer: &Producer, n: u32| {
        let acks: Vec<_> = (0..n)
            .map(|i| producer.send(ProducerRecord::new("past", format!("v{i}")).partition(p)))
            .collect();
        futures::future::join_all(acks)
    };
    let producer = patient_producer(&bootstrap, Acks::Durable).await;
    for a in send(&producer, 300).await {
        a.unwrap();
    }
    // Committed at 300 with no epoch, then the leader dies with the 300
    // records; the survivor holds 100 others.
    // (The other partitions are committed at 0.)
    let at: BTreeMap<streamhouse_client::TopicPartition, u64> = (0..4)
        .map(|q| (("past", q).into(), if q == p { 300 } else { 0 }))
        .collect();
    admin.set_group_offsets("late", &at).await.unwrap();
    agents[0].kill9();
    for a in send(&producer, 100).await {
        a.unwrap();
    }
    producer.close().await.unwrap();
    let survivor = vec![agents[1].addr(0)];
    let start = |reset| {
        Consumer::builder(survivor.clone())
            .group("late")
            .subscribe(["past"])
            .session_timeout(Duration::from_secs(6))
            .auto_offset_reset(reset)
            .build()
    };
    // With `error` the poll says so (and names the high watermark).
    let mut strict = start(AutoOffsetReset::Error).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let e = loop {
        match strict.poll(Duration::from_millis(100)).await {
            Err(e) => break e,
            Ok(rs) => assert!(rs.is_empty(), "read {} records", rs.len()),
        }
        assert!(Instant::now() < deadline, "no out-of-range error");
    };
    assert!(e.to_string().contains("OutOfRange"), "{e}");
    strict.close().await.unwrap();
    // With `earliest` the member reads the 100 records the log holds.
    let mut m = start(AutoOffsetReset::Earliest).await.unwrap();
    let mut got = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < 100 {
        match m.poll(Duration::from_millis(100)).await {
            Ok(rs) => got.extend(rs.into_iter().map(|r| r.offset)),
            Err(e) => panic!("the member fails instead of starting again: {e}"),
        }
        assert!(Instant::now() < deadline, "{} of 100", got.len());
    }
    assert_eq!(got, (0..100).collect());
    m.close().await.unwrap();
}
