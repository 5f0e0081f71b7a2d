//! A WAL disk that fails under the agent although its filesystem reports
//! free space: ext4 on a loop device whose sparse image cannot grow (the
//! filesystem holding it is full), as a thin volume or a VM image on a full
//! host disk behaves. Writes to blocks never written before fail there,
//! overwrites of written blocks succeed. Every acknowledged batch must stay
//! readable, while the agent runs and after a restart. Real agent process,
//! real loop-mounted filesystems; needs root (skips otherwise).

mod common;
#[path = "common/smallfs.rs"]
mod smallfs;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;

const TOPIC: &str = "thin";

/// Every acknowledged record of partition 0 is read back at its offset.
async fn check(agent: &Agent, acked: &BTreeMap<u64, String>, when: &str) {
    let meta = agent.describe_topic(TOPIC).await;
    let mut f = agent.fetcher_for(&meta, 0).await;
    let mut offset = 0;
    let mut got = BTreeMap::new();
    loop {
        let r = f
            .fetch(streamhouse_proto::FetchRequest {
                topic: TOPIC.into(),
                partition: 0,
                offset,
                max_bytes: 4 << 20,
                max_wait_ms: 0,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| {
                panic!(
                    "{when}: fetch from {offset} (acknowledged up to {:?}): {:?} {}",
                    acked.keys().next_back(),
                    s.code(),
                    s.message()
                )
            })
            .into_inner();
        let Some(last) = r.records.last() else { break };
        offset = last.offset + 1;
        got.extend(r.records.into_iter().map(|r| (r.offset, r.value)));
    }
    for (offset, value) in acked {
        assert_eq!(
            got.get(offset).map(|v| &v[..]),
            Some(value.as_bytes()),
            "{when}: acknowledged record 0/{offset} is missing or differs ({} acknowledged, {} read)",
            acked.len(),
            got.len()
        );
    }
}

/// Every record read from partition 0 is what was acknowledged at its
/// offset; a read may be refused while the shard's WAL is failed (the
/// lease given up), but never with `DATA_LOSS`.
async fn check_while_failed(agent: &Agent, acked: &BTreeMap<u64, String>) {
    let meta = agent.describe_topic(TOPIC).await;
    let mut f = agent.fetcher_for(&meta, 0).await;
    let mut offset = 0;
    loop {
        let req = streamhouse_proto::FetchRequest {
            topic: TOPIC.into(),
            partition: 0,
            offset,
            max_bytes: 4 << 20,
            max_wait_ms: 0,
            ..Default::default()
        };
        match f.fetch(req).await {
            Ok(r) => {
                let records = r.into_inner().records;
                let Some(last) = records.last() else { return };
                offset = last.offset + 1;
                for r in records {
                    if let Some(v) = acked.get(&r.offset) {
                        assert_eq!(&r.value[..], v.as_bytes(), "0/{} differs", r.offset);
                    }
                }
            }
            Err(s) => {
                assert!(
                    matches!(s.code(), tonic::Code::NotFound | tonic::Code::Unavailable),
                    "a read from {offset} while the WAL is failed: {:?} {}",
                    s.code(),
                    s.message()
                );
                return;
            }
        }
    }
}

/// Waits until the shard's WAL directory holds one segment with data (the
/// active one): every older segment was shipped, committed and deleted.
async fn await_shipped(dir: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let wal = std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                // A shipped newest segment stays as an empty file.
                e.as_ref().is_ok_and(|e| {
                    e.file_name().to_string_lossy().ends_with(".wal")
                        && e.metadata().is_ok_and(|m| m.len() > 0)
                })
            })
            .count();
        if wal <= 1 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{wal} WAL segments were never shipped"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Produces one batch; records it in `acked` when acknowledged.
async fn produce_one(
    c: &mut streamhouse_proto::producer_service_client::ProducerServiceClient<
        tonic::transport::Channel,
    >,
    tag: &str,
    acked: &mut BTreeMap<u64, String>,
) -> Result<(), tonic::Status> {
    let values: Vec<String> = (0..100)
        .map(|i| format!("{tag}-r{i}-{}", "y".repeat(300)))
        .collect();
    let base = c
        .produce(produce_req(TOPIC, 0, &values))
        .await?
        .into_inner()
        .base_offset;
    for (i, v) in values.into_iter().enumerate() {
        acked.insert(base + i as u64, v);
    }
    Ok(())
}

/// The WAL's disk stops allocating while producers write: whatever was
/// acknowledged is never read back as `DATA_LOSS`; once the disk has space
/// again the shard comes back by itself and serves every acknowledged
/// record, also after it is killed and restarted on the checked and
/// remounted filesystem, and after everything was shipped to object
/// storage. Writes may be refused meanwhile; none that was acknowledged
/// may vanish.
#[tokio::test]
async fn acknowledged_batches_survive_a_disk_that_stops_allocating() {
    survive_a_disk_that_stops_allocating(&[]).await;
}

/// The same with the blocks allocated ahead of the writes.
#[tokio::test]
async fn with_preallocation_acknowledged_batches_survive_a_disk_that_stops_allocating() {
    survive_a_disk_that_stops_allocating(&["--wal-preallocate-bytes", "4194304"]).await;
}

/// One thin filesystem at a time: with two filling up at once, a loop
/// device once reported a sync as successful after its backing file had
/// lost the written pages (a write-back error reported to another flush),
/// a lie no check in the agent can see (README, known limitations).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn survive_a_disk_that_stops_allocating(extra: &[&str]) {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(fs) = smallfs::ThinFs::new(48, 512) else {
        return;
    };
    let stores = tempfile::tempdir_in(target_tmp()).unwrap();
    let mut args = local_stores(
        stores.path(),
        &[
            "--segment-bytes",
            "1048576",
            "--segment-age-ms",
            "1000",
            "--shutdown-grace-ms",
            "3000",
        ],
    );
    args.extend(extra.iter().map(|a| a.to_string()));
    let args = as_strs(&args);
    let data = fs.mount.join("data");
    let mut agent = Agent::start_in(&data, 1, &args);
    let meta = agent.create_topic(TOPIC, 1).await;
    let mut c = agent.producer_for(&meta, 0).await;
    let mut acked = BTreeMap::new();
    for b in 0..20 {
        produce_one(&mut c, &format!("before-b{b}"), &mut acked)
            .await
            .expect("produce before the disk fails");
    }
    let filler = fs.backing.fill();
    let mut refused = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    for b in 0.. {
        if Instant::now() > deadline || refused >= 20 {
            break;
        }
        if produce_one(&mut c, &format!("full-b{b}"), &mut acked)
            .await
            .is_err()
        {
            refused += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    eprintln!(
        "{} records acknowledged, {refused} writes refused",
        acked.len()
    );
    check_while_failed(&agent, &acked).await;

    fs.backing.free(&filler);
    let deadline = Instant::now() + Duration::from_secs(30);
    for b in 0..20 {
        loop {
            let meta = agent.describe_topic(TOPIC).await;
            let mut c = agent.producer_for(&meta, 0).await;
            match produce_one(&mut c, &format!("after-b{b}"), &mut acked).await {
                Ok(()) => break,
                Err(s) => assert!(
                    Instant::now() < deadline,
                    "still refused after the disk had space again: {:?} {}",
                    s.code(),
                    s.message()
                ),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    check(&agent, &acked, "after the disk had space again").await;
    agent.kill9();
    fs.remount();
    agent.spawn();
    check(&agent, &acked, "after a restart").await;
    await_shipped(&data.join("shard-0")).await;
    check(&agent, &acked, "once everything was shipped").await;
}
