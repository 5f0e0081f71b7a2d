//! Concurrent fetches of a partition that inflates a thousandfold (lz4 of
//! zeros) stay within the reply budgets (issue 42, defect 4). Each fetch
//! was capped at 64 MiB, but nothing bounded how many ran at once: before,
//! 24 fetches took an agent from 291 MB to 1.91 GB. Now each reserves twice
//! its `max_bytes` from `--max-reply-bytes-per-shard` and per connection
//! before reading, holds it until HTTP/2 took its reply, and a fetch that
//! does not fit gets RESOURCE_EXHAUSTED with a retry pushback.

mod common;
#[path = "common/procstat.rs"]
mod procstat;

use common::*;
use procstat::status_kb;
use streamhouse_proto as pb;
use streamhouse_proto::batch::{encode, Codec, ProducerInfo, Record};

#[tokio::test]
async fn concurrent_inflating_fetches_stay_within_the_reply_budget() {
    const FETCHES: usize = 48;
    let agent = Agent::start(1, &[]);
    let meta = agent.create_topic("bomb", 1).await;
    let mut producer = agent.producer_for(&meta, 0).await;
    // 24 batches of 7 records of 1 MiB of zeros: 168 MiB of records in
    // well under 1 MiB stored.
    for _ in 0..24 {
        let records: Vec<Record> = (0..7)
            .map(|_| Record {
                value: vec![0u8; 1 << 20].into(),
                ..Default::default()
            })
            .collect();
        let batch = encode(&records, Codec::Lz4, ProducerInfo::default());
        producer
            .produce(pb::ProduceRequest {
                topic: "bomb".into(),
                partition: 0,
                batch: batch.into(),
                ..Default::default()
            })
            .await
            .expect("produce");
    }
    let before = status_kb(agent.pid(), "VmRSS:");
    let mut fetches = Vec::new();
    for _ in 0..FETCHES {
        // A connection each: the shard's budget is what must hold.
        let mut f = agent.fetcher_for(&meta, 0).await;
        fetches.push(tokio::spawn(async move {
            f.fetch(pb::FetchRequest {
                topic: "bomb".into(),
                partition: 0,
                offset: 0,
                max_bytes: 64 << 20,
                ..Default::default()
            })
            .await
        }));
    }
    let (mut answered, mut refused, mut failed) = (0, 0, Vec::new());
    for f in fetches {
        match f.await.unwrap() {
            Ok(r) => {
                assert!(!r.into_inner().records.is_empty());
                answered += 1;
            }
            Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                assert!(
                    s.metadata().get("grpc-retry-pushback-ms").is_some(),
                    "{s:?}"
                );
                refused += 1;
            }
            Err(s) => failed.push(format!("{:?}: {}", s.code(), s.message())),
        }
    }
    let peak = status_kb(agent.pid(), "VmHWM:");
    eprintln!(
        "{answered} answered, {refused} refused, {} failed; RSS {} MiB before, peak {} MiB",
        failed.len(),
        before / 1024,
        peak / 1024
    );
    assert!(
        failed.is_empty(),
        "{} fetches failed: {failed:?}",
        failed.len()
    );
    assert!(answered >= 1);
    // The default reply budget is 256 MiB per shard; allocator slack on
    // top. Before: several GiB.
    assert!(
        peak < before + 512 * 1024,
        "peak RSS {} MiB, {} MiB before the fetches",
        peak / 1024,
        before / 1024
    );
}
