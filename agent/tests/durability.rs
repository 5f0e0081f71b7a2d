//! Durability of acknowledged records: SIGKILL mid-stream and restart, and
//! corruption detection on read. Real agent processes, real disk.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::*;
use tonic::Code;

#[tokio::test]
async fn every_acknowledged_record_survives_sigkill() {
    let mut agent = Agent::start(2, &[]);
    let meta = agent.create_topic("crash", 4).await;
    let mut tasks = Vec::new();
    // Two concurrent senders per partition, so group commits cover several
    // requests; each remembers exactly what was acknowledged.
    for p in 0..4u32 {
        for s in 0..2u32 {
            let mut c = agent.producer_for(&meta, p).await;
            tasks.push(tokio::spawn(async move {
                let mut acked: Vec<(u64, Vec<String>)> = Vec::new();
                for i in 0.. {
                    let values: Vec<String> = (0..20)
                        .map(|j| format!("p{p}-s{s}-b{i}-r{j}-{}", "x".repeat(j * 3)))
                        .collect();
                    match c.produce(produce_req("crash", p, &values)).await {
                        Ok(r) => acked.push((r.into_inner().base_offset, values)),
                        Err(_) => break,
                    }
                }
                (p, acked)
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    agent.kill9();
    let mut acked: BTreeMap<u32, BTreeMap<u64, String>> = BTreeMap::new();
    for t in tasks {
        let (p, batches) = t.await.unwrap();
        for (base, values) in batches {
            for (i, v) in values.into_iter().enumerate() {
                assert!(acked
                    .entry(p)
                    .or_default()
                    .insert(base + i as u64, v)
                    .is_none());
            }
        }
    }
    assert!(
        acked.values().all(|m| m.len() > 100),
        "the run produced too little"
    );
    agent.spawn();
    for (p, want) in acked {
        let mut f = agent.fetcher_for(&meta, p).await;
        let got = fetch_all(&mut f, "crash", p).await;
        let mut seen = HashSet::new();
        for (i, r) in got.iter().enumerate() {
            assert_eq!(r.offset, i as u64, "offsets are dense");
            assert!(seen.insert(r.value.clone()), "record appears twice");
        }
        for (offset, value) in &want {
            let r = got
                .get(*offset as usize)
                .unwrap_or_else(|| panic!("acknowledged {p}/{offset} lost"));
            assert_eq!(&r.value[..], value.as_bytes(), "{p}/{offset} differs");
        }
    }
    // The restarted agent keeps appending after the recovered offsets.
    let mut c = agent.producer_for(&meta, 0).await;
    let r = c
        .produce(produce_req("crash", 0, &["after".into()]))
        .await
        .unwrap()
        .into_inner();
    let mut f = agent.fetcher_for(&meta, 0).await;
    assert_eq!(
        fetch_all(&mut f, "crash", 0).await.len() as u64,
        r.base_offset + 1
    );
}

#[tokio::test]
async fn a_flipped_byte_in_a_chunk_object_is_reported_on_read() {
    let agent = Agent::start(1, &["--segment-age-ms", "100"]);
    let meta = agent.create_topic("rot", 1).await;
    let mut c = agent.producer_for(&meta, 0).await;
    let values: Vec<String> = (0..50).map(|i| format!("value-{i:04}")).collect();
    c.produce(produce_req("rot", 0, &values)).await.unwrap();
    // The age roll seals the segment; the uploader moves it to the local
    // object store and the shard deletes its copy.
    let object = flip_in_object(&agent.data_dir, 0, b"value-0025", b'V').await;
    let mut fc = agent.fetcher_for(&meta, 0).await;
    let e = fc.fetch(fetch_req("rot", 0, 0)).await.unwrap_err();
    assert_eq!(e.code(), Code::DataLoss, "{e:?}");
    let name = object.file_name().unwrap().to_str().unwrap();
    assert!(e.message().contains(name), "{}", e.message());
    assert!(e.message().contains("CRC"), "{}", e.message());
}
