//! The SQLite metadata store alone: an index written by an older version,
//! and calls that wait for another process's lock off the caller's
//! runtime.

use super::*;

/// A hole in the chunk index (which commits no longer make, but an index
/// written by an older version may hold) is reported, never skipped over.
#[tokio::test]
async fn a_hole_in_the_chunk_index_is_reported_not_read_past() {
    let dir = tempfile::tempdir_in(common::target_tmp()).unwrap();
    let path = dir.path().join("meta.db");
    let m = MetaStore::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let key = m.create_topic("holes", 1).await.unwrap().key();
    m.acquire_lease(&key, 0, "agent-a", (1_000, 500), None)
        .await
        .unwrap();
    let first = ChunkCommit {
        key: "chunks/a".into(),
        size: 100,
        ranges: vec![range(&key, 0, 0, 10, 1)],
    };
    assert!(m.commit_chunk("agent-a", &first, 1_000).await.unwrap());
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute(
        "INSERT INTO chunk_ranges (topic, part, base_offset, end_offset, chunk_key, pos, len, epoch)
         VALUES (?1, 0, 20, 30, 'chunks/b', 0, 100, 1)",
        [key.as_str()],
    )
    .unwrap();
    assert_eq!(
        m.find_range(&key, 0, 9).await.unwrap().unwrap().chunk_key,
        "chunks/a"
    );
    match m.find_range(&key, 0, 12).await {
        Err(MetaError::Gap {
            offset: 12,
            next: 20,
            ..
        }) => {}
        other => panic!("expected a gap at 12, got {other:?}"),
    }
    assert!(m.find_range(&key, 0, 30).await.unwrap().is_none());
}

/// A SQLite call that waits (here for another process's write lock) runs
/// off its caller's runtime: the control thread's other tasks go on. On
/// the caller's own thread, the wait would stall the ticker below, which
/// is what releases the lock: the call would fail busy after its timeout.
#[test]
fn a_waiting_sqlite_call_does_not_stall_its_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir_in(common::target_tmp()).unwrap();
        let path = dir.path().join("meta.db");
        let m = MetaStore::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let other = rusqlite::Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let started = std::time::Instant::now();
        let ticks = std::cell::Cell::new(0u32);
        let ticker = async {
            for _ in 0..10 {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                ticks.set(ticks.get() + 1);
            }
            other.execute_batch("COMMIT").unwrap();
        };
        let name = unique("t");
        let (created, ()) = tokio::join!(m.create_topic(&name, 1), ticker);
        assert!(created.is_ok(), "{created:?}");
        assert_eq!(ticks.get(), 10);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "the call waited for the lock, not for its busy timeout"
        );
    });
}
