//! Key compaction (issue 19, `cleanup.policy=compact`): once committed,
//! only the latest record of each key is kept, at its own offset; records
//! without a key stay; a tombstone (empty value) stays for
//! `delete.retention.ms`, then goes; a consumer reading from the start
//! passes over the offsets removed (to the high watermark, never stuck);
//! retention by time does not apply to a topic that only compacts.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use streamhouse_client::{Admin, Consumer, Offset, Producer, ProducerRecord};
use streamhouse_proto as pb;

type Log = BTreeMap<u64, (Option<String>, String)>;

/// Five rounds: every key k0..k5 gets `r{round}`, one record without a
/// key, and in the last round k0's tombstone (empty value); then k1 twice
/// more, each in its own segment, and k5's tombstone. Returns every
/// record by offset.
async fn write(addr: &str, topic: &str, old_ms: i64) -> Log {
    let producer = Producer::builder([addr.to_owned()]).build().await.unwrap();
    let mut log = Log::new();
    for round in 0..5 {
        for k in 0..6 {
            let value = if round == 4 && k == 0 {
                String::new()
            } else {
                format!("r{round}")
            };
            let key = format!("k{k}");
            let r = ProducerRecord::new(topic, value.clone())
                .key(key.clone())
                .partition(0)
                .timestamp(old_ms);
            let m = producer.send(r).await.expect("produce");
            log.insert(m.offset, (Some(key), value));
        }
        let value = format!("no key {round}");
        let r = ProducerRecord::new(topic, value.clone())
            .partition(0)
            .timestamp(old_ms);
        let m = producer.send(r).await.expect("produce");
        log.insert(m.offset, (None, value));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // Two segments of k1 alone: the first one's record goes, and with it
    // every record of its range.
    for round in 5..7 {
        let value = format!("r{round}");
        let r = ProducerRecord::new(topic, value.clone())
            .key("k1")
            .partition(0)
            .timestamp(old_ms);
        let m = producer.send(r).await.expect("produce");
        log.insert(m.offset, (Some("k1".into()), value));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // Last, k5's tombstone: once it goes, nothing is left from the last
    // record kept to the high watermark.
    let r = ProducerRecord::new(topic, "")
        .key("k5")
        .partition(0)
        .timestamp(old_ms);
    let m = producer.send(r).await.expect("produce");
    log.insert(m.offset, (Some("k5".into()), String::new()));
    producer.close().await.unwrap();
    log
}

/// What compaction leaves of `log`: the latest record of each key and
/// every record without one; `tombstones` keeps the latest tombstones.
fn compacted(log: &Log, tombstones: bool) -> Log {
    let mut latest: BTreeMap<&str, u64> = BTreeMap::new();
    for (o, (k, _)) in log {
        if let Some(k) = k {
            latest.insert(k, *o);
        }
    }
    log.iter()
        .filter(|(o, (k, v))| match k {
            None => true,
            Some(k) => latest[k.as_str()] == **o && (tombstones || !v.is_empty()),
        })
        .map(|(o, kv)| (*o, kv.clone()))
        .collect()
}

/// Every record from offset 0, read with raw fetches that follow
/// `next_offset` past removed records.
async fn read_raw(agent: &Agent, topic: &str) -> Log {
    let mut f = pb::fetch_service_client::FetchServiceClient::new(agent.channel(0).await);
    let mut log = Log::new();
    let mut offset = 0;
    loop {
        let r = f
            .fetch(fetch_req(topic, 0, offset))
            .await
            .expect("fetch")
            .into_inner();
        let past = r.records.last().map(|x| x.offset + 1);
        for rec in r.records {
            let key = rec.key.map(|k| String::from_utf8(k.to_vec()).unwrap());
            log.insert(
                rec.offset,
                (key, String::from_utf8(rec.value.to_vec()).unwrap()),
            );
        }
        let next = past.unwrap_or(offset).max(r.next_offset);
        if next == offset {
            assert!(offset >= r.high_watermark, "stuck at {offset}");
            return log;
        }
        offset = next;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_latest_record_of_each_key_stays_at_its_offset() {
    let agent = Agent::start(
        1,
        &[
            "--segment-age-ms=100",
            "--retention-check-ms=200",
            "--object-delete-grace-ms=300",
        ],
    );
    let addr = agent.addr(0);
    let admin = Admin::connect(addr.clone()).await.unwrap();
    admin
        .create_topic_with_configs(
            "ledger",
            1,
            [
                ("cleanup.policy", "compact"),
                ("delete.retention.ms", "2000"),
            ],
        )
        .await
        .unwrap();
    // Stamped two days ago: retention.ms (7 days) keeps them anyway, and a
    // topic that only compacts would keep them past it too.
    let old = streamhouse_agent::runtime::clock::now_ms() - 2 * 86_400_000;
    let log = write(&addr, "ledger", old).await;
    let end = log.len() as u64;
    let url = format!("sqlite://{}", agent.data_dir.join("metadata.db").display());
    await_committed_end(&url, "ledger", 0, end).await;

    // The tombstone is older than delete.retention.ms by its timestamp: it
    // goes at the first cleaning too.
    let want = compacted(&log, false);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = read_raw(&agent, "ledger").await;
        if got == want {
            break;
        }
        assert!(Instant::now() < deadline, "never compacted: {got:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The project's consumer passes over the removed offsets to the end.
    let mut c = Consumer::builder([addr.clone()]).build().await.unwrap();
    c.assign([("ledger".to_owned(), 0)]).await.unwrap();
    c.seek_to("ledger", 0, Offset::Beginning).await.unwrap();
    let mut seen = Log::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.position("ledger", 0) < Some(end) {
        for r in c.poll(Duration::from_millis(200)).await.unwrap() {
            let key = r.key.map(|k| String::from_utf8(k.to_vec()).unwrap());
            seen.insert(
                r.offset,
                (key, String::from_utf8(r.value.to_vec()).unwrap()),
            );
        }
        assert!(
            Instant::now() < deadline,
            "the consumer stuck at {:?}",
            c.position("ledger", 0)
        );
    }
    assert_eq!(seen, want);
    let consumer = Consumer::connect([addr.clone()]).await.unwrap();
    assert_eq!(consumer.watermarks("ledger", 0).await.unwrap(), (0, end));
}

/// A young tombstone stays until `delete.retention.ms` passes, then goes
/// without any new record arriving.
#[tokio::test(flavor = "multi_thread")]
async fn a_tombstone_stays_for_delete_retention_ms_then_goes() {
    let agent = Agent::start(
        1,
        &[
            "--segment-age-ms=100",
            "--retention-check-ms=200",
            "--object-delete-grace-ms=300",
        ],
    );
    let addr = agent.addr(0);
    Admin::connect(addr.clone())
        .await
        .unwrap()
        .create_topic_with_configs(
            "expiring",
            1,
            [
                ("cleanup.policy", "compact"),
                ("delete.retention.ms", "4000"),
            ],
        )
        .await
        .unwrap();
    let stamped = Instant::now();
    let log = write(
        &addr,
        "expiring",
        streamhouse_agent::runtime::clock::now_ms(),
    )
    .await;
    let url = format!("sqlite://{}", agent.data_dir.join("metadata.db").display());
    await_committed_end(&url, "expiring", 0, log.len() as u64).await;
    let (young, gone) = (compacted(&log, true), compacted(&log, false));
    // Every record is stamped `stamped`: the tombstone may go 4 s after
    // that, never before.
    let mut saw_young = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = read_raw(&agent, "expiring").await;
        if got == gone {
            assert!(
                stamped.elapsed() >= Duration::from_secs(4),
                "the tombstone went early"
            );
            break;
        }
        saw_young |= got == young;
        assert!(
            Instant::now() < deadline,
            "the tombstone never went: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        saw_young,
        "the records were never compacted with the tombstone kept"
    );
}

/// A compacted topic's partition larger than a pass may read is not
/// cleaned (its bytes are pending, every record stays), but its small
/// objects are still gathered into objects of its own.
#[tokio::test(flavor = "multi_thread")]
async fn a_partition_too_large_to_clean_still_has_its_objects_gathered() {
    let admin_port = free_ports(1);
    let admin_listen = format!("--admin-listen=127.0.0.1:{admin_port}");
    let agent = Agent::start(
        1,
        &[
            "--segment-age-ms=100",
            "--retention-check-ms=200",
            "--object-delete-grace-ms=300",
            "--compaction-target-bytes=1024",
            "--compaction-bytes-per-pass=1024",
            &admin_listen,
        ],
    );
    let addr = agent.addr(0);
    Admin::connect(addr.clone())
        .await
        .unwrap()
        .create_topic_with_configs("large", 1, [("cleanup.policy", "compact")])
        .await
        .unwrap();
    let log = write(&addr, "large", streamhouse_agent::runtime::clock::now_ms()).await;
    let url = format!("sqlite://{}", agent.data_dir.join("metadata.db").display());
    await_committed_end(&url, "large", 0, log.len() as u64).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while files_under(&agent.data_dir.join("objects/compacted")).is_empty() {
        assert!(Instant::now() < deadline, "no object was ever gathered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, text) = get(admin_port, "/metrics").await;
    assert!(
        sample(&text, "streamhouse_compaction_pending_bytes") > 0.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, "streamhouse_records_compacted_away_total"),
        0.0
    );
    assert_eq!(read_raw(&agent, "large").await, log);
}
