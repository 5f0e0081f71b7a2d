//! Object compaction (issue 19): the ranges of a shard's partitions in many
//! small shared chunk objects are rewritten into objects of one partition
//! each, every record byte-equal at its offset (also for a reader fetching
//! all along, while the sweep deletes the old objects without grace), and
//! a SIGKILL between a compacted object's PUT and the index switch leaves
//! nothing behind for ever. (On the S3 server: objects.rs.)

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use streamhouse_client::{Admin, Producer, ProducerRecord};
use streamhouse_proto as pb;
use streamhouse_storage::segment;

/// Many small chunk objects: a segment sealed every 100 ms, retention and
/// compaction passes every 200 ms, objects of up to 64 KiB.
const FLAGS: &[&str] = &[
    "--segment-age-ms=100",
    "--retention-check-ms=200",
    "--compaction-target-bytes=65536",
    "--compaction-bytes-per-pass=1048576",
];

/// Writes `rounds` rounds of 5 records to each of `partitions`
/// partitions, in turns, a new segment each round; returns each record's
/// value by partition and offset.
async fn write_rounds(
    addr: &str,
    topic: &str,
    partitions: u32,
    rounds: usize,
) -> BTreeMap<(u32, u64), Vec<u8>> {
    let producer = Producer::builder([addr.to_owned()]).build().await.unwrap();
    let mut sent = BTreeMap::new();
    for round in 0..rounds {
        for i in 0..5 {
            for p in 0..partitions {
                let value = format!("{topic}-{p}-{round}-{i}-{}", "v".repeat(100)).into_bytes();
                let r = ProducerRecord::new(topic, value.clone()).partition(p);
                let m = producer.send(r).await.expect("produce");
                sent.insert((p, m.offset), value);
            }
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    producer.close().await.unwrap();
    sent
}

/// Every record of `partitions` partitions read back, by partition and
/// offset.
async fn read_back(agent: &Agent, topic: &str, partitions: u32) -> BTreeMap<(u32, u64), Vec<u8>> {
    let mut f = pb::fetch_service_client::FetchServiceClient::new(agent.channel(0).await);
    let mut got = BTreeMap::new();
    for p in 0..partitions {
        for r in fetch_all(&mut f, topic, p).await {
            got.insert((p, r.offset), r.value.to_vec());
        }
    }
    got
}

fn objects(agent: &Agent, folder: &str) -> Vec<PathBuf> {
    files_under(&agent.data_dir.join("objects").join(folder))
}

/// The (topic, partition) of every batch frame in an object.
fn partitions_in(object: &PathBuf) -> Vec<(String, u32)> {
    let data = std::fs::read(object).unwrap();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let f = segment::parse_frame(&data, pos).expect("a valid frame");
        out.push((f.topic, f.partition));
        pos += f.len as usize;
    }
    out.sort();
    out.dedup();
    out
}

fn sqlite(agent: &Agent) -> rusqlite::Connection {
    rusqlite::Connection::open(agent.data_dir.join("metadata.db")).unwrap()
}

/// Chunk rows of compacted objects.
fn compacted_rows(agent: &Agent) -> i64 {
    sqlite(agent)
        .query_row(
            "SELECT count(*) FROM chunks WHERE key LIKE 'compacted/%'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// Waits until `done` holds, up to 60 s; `what` names it in the failure.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two partitions written in turns into 24 small shared objects end up in
/// objects of one partition each; the shared ones leave the bucket; every
/// record reads back byte-equal at its offset, also for a reader fetching
/// everything over and over while it happens (the sweep deletes old
/// objects at once: no grace).
#[tokio::test(flavor = "multi_thread")]
async fn small_shared_objects_become_one_partitions_each_and_read_the_same() {
    let mut flags = FLAGS.to_vec();
    flags.push("--object-delete-grace-ms=0");
    let admin_port = free_ports(1);
    let admin_listen = format!("--admin-listen=127.0.0.1:{admin_port}");
    flags.push(&admin_listen);
    let agent = Arc::new(Agent::start(1, &flags));
    let addr = agent.addr(0);
    Admin::connect(addr.clone())
        .await
        .unwrap()
        .create_topic("packed", 2)
        .await
        .unwrap();
    let sent = write_rounds(&addr, "packed", 2, 24).await;
    assert_eq!(sent.len(), 240);
    let url = format!("sqlite://{}", agent.data_dir.join("metadata.db").display());
    await_committed_end(&url, "packed", 0, 120).await;
    await_committed_end(&url, "packed", 1, 120).await;

    // A reader fetching everything again and again meanwhile.
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let reader = {
        let (agent, stop, reads, sent) = (agent.clone(), stop.clone(), reads.clone(), sent.clone());
        tokio::spawn(async move {
            // At least one read, however soon compaction is done.
            loop {
                assert_eq!(
                    read_back(&agent, "packed", 2).await,
                    sent,
                    "a read differed"
                );
                reads.fetch_add(1, Ordering::Relaxed);
                if stop.load(Ordering::Acquire) {
                    break;
                }
            }
        })
    };
    // At most 7 shared objects are left over (fewer than a group needs);
    // the others were emptied by compaction and deleted.
    until("the shared objects were never compacted away", || {
        compacted_rows(&agent) >= 2 && objects(&agent, "chunks").len() <= 7
    })
    .await;
    stop.store(true, Ordering::Release);
    reader.await.expect("the reader saw every record as sent");
    assert!(reads.load(Ordering::Relaxed) > 0);
    for object in objects(&agent, "compacted") {
        assert_eq!(partitions_in(&object).len(), 1, "{object:?} is shared");
    }
    assert_eq!(read_back(&agent, "packed", 2).await, sent);
    let (_, text) = get(admin_port, "/metrics").await;
    assert!(
        sample(&text, "streamhouse_compactions_total") >= 2.0,
        "{text}"
    );
    assert!(sample(&text, "streamhouse_compacted_ranges_total") >= 16.0);
    assert_eq!(sample(&text, "streamhouse_compaction_failures_total"), 0.0);
}

/// SIGKILL after a compacted object is written and before the index
/// switches to it: after a restart the sweep claims and deletes that
/// object, compaction runs again, and every record reads back as sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_compaction_killed_before_its_switch_leaves_no_orphan() {
    let mut flags = FLAGS.to_vec();
    flags.push("--object-delete-grace-ms=300");
    let mut agent = Agent::start_with_failpoints(1, &flags, "compaction-switch=pause");
    let addr = agent.addr(0);
    Admin::connect(addr.clone())
        .await
        .unwrap()
        .create_topic("halted", 1)
        .await
        .unwrap();
    let sent = write_rounds(&addr, "halted", 1, 12).await;
    until("no compacted object was ever written", || {
        !objects(&agent, "compacted").is_empty()
    })
    .await;
    let orphan = objects(&agent, "compacted").remove(0);
    assert_eq!(compacted_rows(&agent), 0, "the switch is paused");
    agent.kill9();

    agent.spawn();
    until("the orphan was never deleted", || !orphan.exists()).await;
    until("compaction never ran again", || compacted_rows(&agent) >= 1).await;
    assert_eq!(read_back(&agent, "halted", 1).await, sent);
    // Every compacted object left is named by a chunk row.
    until("an unnamed compacted object stays", || {
        objects(&agent, "compacted").len() as i64 == compacted_rows(&agent)
    })
    .await;
}
