//! The stored producer state of a partition holds at most
//! `MAX_STORED_PRODUCERS` rows, exactly, on both metadata stores: also
//! when one range brings more new producers than that (before: all of a
//! range's producers share its end offset and ties were all kept, so this
//! test found 10,025 rows).

mod common;

use streamhouse_agent::metastore::{
    ChunkCommit, ChunkRange, MetaStore, RememberedBatch, MAX_STORED_PRODUCERS,
};
use streamhouse_proto::batch::ProducerInfo;

async fn cap_holds_exactly(url: &str) {
    let m = MetaStore::open(url).await.unwrap();
    let key = m
        .create_topic(&common::unique("crowd"), 1)
        .await
        .unwrap()
        .key();
    let now = streamhouse_agent::runtime::clock::now_ms();
    let g = m
        .acquire_lease(&key, 0, "agent-a", (now, 600_000), None)
        .await
        .unwrap();
    let over = MAX_STORED_PRODUCERS + 25;
    for round in 0..2i64 {
        let end = round as u64;
        let producers: Vec<RememberedBatch> = (0..over)
            .map(|i| RememberedBatch {
                producer: ProducerInfo {
                    producer_id: round * 1_000_000 + i,
                    producer_epoch: 0,
                    base_sequence: 0,
                },
                record_count: 1,
                base_offset: end,
            })
            .collect();
        let chunk = ChunkCommit {
            key: common::unique("chunks/crowd"),
            size: 10,
            ranges: vec![ChunkRange {
                topic: key.clone(),
                partition: 0,
                base_offset: end,
                end_offset: end + 1,
                pos: 0,
                len: 10,
                bytes: 10,
                epoch: g.epoch,
                max_timestamp: 0,
                producers,
            }],
        };
        assert!(m.commit_chunk("agent-a", &chunk, now).await.unwrap());
        let kept = m.producer_state(&key, 0).await.unwrap();
        assert_eq!(kept.len() as i64, MAX_STORED_PRODUCERS, "round {round}");
        // The newest range's producers are the ones kept.
        assert!(kept
            .iter()
            .all(|b| b.producer.producer_id >= round * 1_000_000));
    }
}

#[tokio::test]
async fn sqlite_caps_producer_state_exactly() {
    let dir = tempfile::tempdir_in(common::target_tmp()).unwrap();
    cap_holds_exactly(&common::sqlite_url(dir.path())).await;
}

#[tokio::test]
async fn postgres_caps_producer_state_exactly() {
    cap_holds_exactly(&common::postgres_url()).await;
}
