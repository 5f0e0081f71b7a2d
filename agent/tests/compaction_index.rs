//! The chunk index's side of compaction, on SQLite and a real PostgreSQL:
//! ranges weighed with their objects' size and live bytes, the switch to a
//! rewritten object (all or nothing, fenced by the lease, refused when a
//! source changed or the object was claimed), and orphan claims.

mod common;

use common::unique;
use streamhouse_agent::metastore::compaction::{CompactedFrom, RangeSwitch, RewrittenRange};
use streamhouse_agent::metastore::{ChunkCommit, ChunkRange, MetaError, MetaStore};

fn range(topic: &str, partition: u32, base: u64, end: u64, bytes: u64) -> ChunkRange {
    ChunkRange {
        topic: topic.into(),
        partition,
        base_offset: base,
        end_offset: end,
        pos: base * 10,
        len: bytes + 5,
        bytes,
        epoch: 1,
        max_timestamp: end as i64,
        producers: Vec::new(),
    }
}

fn rewritten(base: u64, end: u64, pos: u64, len: u64) -> RewrittenRange {
    RewrittenRange {
        base_offset: base,
        end_offset: end,
        pos,
        len,
        epoch: 1,
        max_timestamp: Some(end as i64),
    }
}

async fn suite(url: &str) {
    let m = MetaStore::open(url).await.unwrap();
    let key = m.create_topic(&unique("packed"), 2).await.unwrap().key();
    for p in 0..2 {
        m.acquire_lease(&key, p, "agent-a", (1_000, 60_000), None)
            .await
            .unwrap();
    }
    // Three shared objects: partition 0's ranges [0,10) [10,20) [20,30),
    // partition 1's [0,10) beside the first.
    let chunks: Vec<String> = (0..3).map(|i| unique(&format!("chunks/{i}"))).collect();
    for (i, c) in chunks.iter().enumerate() {
        let b = i as u64 * 10;
        let mut ranges = vec![range(&key, 0, b, b + 10, 100)];
        if i == 0 {
            ranges.push(range(&key, 1, 0, 10, 300));
        }
        let commit = ChunkCommit {
            key: c.clone(),
            size: 1_000,
            ranges,
        };
        assert!(m.commit_chunk("agent-a", &commit, 1_000).await.unwrap());
    }
    let weighed = m.ranges_to_weigh(&key, 0, 0, 100).await.unwrap();
    let seen: Vec<(u64, &str, u64, u64, u64)> = weighed
        .iter()
        .map(|r| {
            (
                r.base_offset,
                r.chunk_key.as_str(),
                r.bytes,
                r.object_size,
                r.object_live,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (0, chunks[0].as_str(), 100, 1_000, 400),
            (10, chunks[1].as_str(), 100, 1_000, 100),
            (20, chunks[2].as_str(), 100, 1_000, 100),
        ]
    );
    assert_eq!(m.ranges_to_weigh(&key, 0, 10, 1).await.unwrap().len(), 1);

    let object = unique("compacted/x");
    let switch = |object: &str, from: Vec<CompactedFrom>, to: Vec<RewrittenRange>| RangeSwitch {
        topic: key.clone(),
        partition: 0,
        key: object.to_owned(),
        size: 200,
        from,
        to,
    };
    let two = switch(
        &object,
        weighed[..2].to_vec(),
        vec![rewritten(0, 20, 0, 200)],
    );
    // Fenced: not the lease's epoch.
    assert!(matches!(
        m.switch_ranges("agent-a", 2, &two).await,
        Err(MetaError::Fenced { .. })
    ));
    // Refused: the rows do not cover the sources.
    let short = switch(
        &object,
        weighed[..2].to_vec(),
        vec![rewritten(0, 15, 0, 200)],
    );
    assert!(matches!(
        m.switch_ranges("agent-a", 1, &short).await,
        Err(MetaError::Refused(_))
    ));
    assert!(m.switch_ranges("agent-a", 1, &two).await.unwrap());
    let loc = m.find_range(&key, 0, 15).await.unwrap().unwrap();
    assert_eq!(
        (
            loc.chunk_key.as_str(),
            loc.base_offset,
            loc.end_offset,
            loc.pos,
            loc.len
        ),
        (object.as_str(), 0, 20, 0, 200)
    );
    // The second object has no range left; the first keeps partition 1's.
    let dead = m.dead_chunks(10_000).await.unwrap();
    assert!(dead.contains(&chunks[1]) && !dead.contains(&chunks[0]));
    let stored = m.stored(&key, 0).await.unwrap();
    assert_eq!((stored.bytes, stored.objects), (300, 2));
    // The same switch again: its sources are gone, nothing changes.
    let again = switch(
        &unique("compacted/y"),
        weighed[..2].to_vec(),
        vec![rewritten(0, 20, 0, 200)],
    );
    assert!(!m.switch_ranges("agent-a", 1, &again).await.unwrap());
    assert!(!m.compacted_keys().await.unwrap().contains(&again.key));

    // An orphan claimed by the sweep cannot be switched to afterwards.
    let orphan = unique("compacted/orphan");
    assert!(m.claim_orphan(&orphan, 0).await.unwrap());
    assert!(!m.claim_orphan(&orphan, 0).await.unwrap());
    assert!(m
        .claim_orphan(&object, 0)
        .await
        .is_ok_and(|claimed| !claimed));
    let keys = m.compacted_keys().await.unwrap();
    assert!(keys.contains(&orphan) && keys.contains(&object));
    assert!(m.dead_chunks(10_000).await.unwrap().contains(&orphan));
    let late = switch(
        &orphan,
        weighed[2..].to_vec(),
        vec![rewritten(20, 30, 0, 100)],
    );
    assert!(!m.switch_ranges("agent-a", 1, &late).await.unwrap());
    assert_eq!(
        m.find_range(&key, 0, 25).await.unwrap().unwrap().chunk_key,
        chunks[2]
    );
}

#[tokio::test]
async fn sqlite_keeps_the_index_whole_through_compaction() {
    let dir = tempfile::tempdir_in(common::target_tmp()).unwrap();
    suite(&common::sqlite_url(dir.path())).await;
}

#[tokio::test]
async fn postgres_keeps_the_index_whole_through_compaction() {
    suite(&common::postgres_url()).await;
}
