//! Loads the memory tests put on an agent's fetch path: partitions whose
//! batches inflate (lz4 of zeros, or a million empty records), many
//! fetches at once on a connection each, and the tally of their answers.

#![allow(dead_code)]

use streamhouse_proto as pb;
use streamhouse_proto::batch::{encode, Codec, ProducerInfo, Record};
use tokio::task::JoinHandle;

use crate::common::Agent;

/// 7 records of 1 MiB of zeros, lz4: 7 MiB of records in a few KiB.
pub fn zeros_batch() -> bytes::Bytes {
    let records: Vec<Record> = (0..7)
        .map(|_| Record {
            value: vec![0u8; 1 << 20].into(),
            ..Default::default()
        })
        .collect();
    encode(&records, Codec::Lz4, ProducerInfo::default()).into()
}

/// A million empty records, lz4: about 7 MB of records in a few KiB, over
/// a hundred MB once decoded for a reply.
pub fn empties_batch() -> bytes::Bytes {
    let records: Vec<Record> = (0..1_000_000).map(|_| Record::default()).collect();
    encode(&records, Codec::Lz4, ProducerInfo::default()).into()
}

/// Produces `batch` `times` to partition 0 of `meta`'s topic.
pub async fn produce_batches(
    agent: &Agent,
    meta: &pb::TopicMetadata,
    batch: bytes::Bytes,
    times: usize,
) {
    let mut p = agent.producer_for(meta, 0).await;
    for _ in 0..times {
        p.produce(pb::ProduceRequest {
            topic: meta.name.clone(),
            partition: 0,
            batch: batch.clone(),
            ..Default::default()
        })
        .await
        .expect("produce");
    }
}

pub type FetchAnswer = Result<tonic::Response<pb::FetchResponse>, tonic::Status>;

/// Starts `n` fetches of partition 0 of `meta`'s topic from offset 0 with
/// `max_bytes`, each on a connection of its own (so the shard's budget is
/// what must hold).
pub async fn spawn_fetches(
    agent: &Agent,
    meta: &pb::TopicMetadata,
    max_bytes: u32,
    n: usize,
) -> Vec<JoinHandle<FetchAnswer>> {
    let mut fetches = Vec::with_capacity(n);
    for _ in 0..n {
        let mut f = agent.fetcher_for(meta, 0).await;
        let topic = meta.name.clone();
        fetches.push(tokio::spawn(async move {
            f.fetch(pb::FetchRequest {
                topic,
                partition: 0,
                offset: 0,
                max_bytes,
                ..Default::default()
            })
            .await
        }));
    }
    fetches
}

/// How a batch of fetches was answered.
#[derive(Debug, Default)]
pub struct Tally {
    /// Answered with records.
    pub answered: usize,
    /// RESOURCE_EXHAUSTED, each with a retry pushback.
    pub refused: usize,
    /// Anything else, as code and message.
    pub failed: Vec<String>,
}

/// Waits for every fetch; an answer without records, or a refusal without
/// a pushback, fails the test.
pub async fn tally(fetches: Vec<JoinHandle<FetchAnswer>>) -> Tally {
    let mut t = Tally::default();
    for f in fetches {
        match f.await.expect("fetch task") {
            Ok(r) => {
                assert!(!r.into_inner().records.is_empty(), "an empty answer");
                t.answered += 1;
            }
            Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                assert!(
                    s.metadata().get("grpc-retry-pushback-ms").is_some(),
                    "{s:?}"
                );
                t.refused += 1;
            }
            Err(s) => t.failed.push(format!("{:?}: {}", s.code(), s.message())),
        }
    }
    t
}
