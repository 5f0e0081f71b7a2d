//! The leader-epoch history in the metadata store, against SQLite and
//! PostgreSQL.

use super::*;

/// Leader epochs: each newly granted epoch is recorded at the committed
/// end in the granting transaction; re-acquiring one's own lease records
/// nothing; the history goes with the topic.
async fn epochs_suite(url: &str) {
    let m = MetaStore::open(url).await.expect("open");
    let name = unique("epochs");
    let key = m.create_topic(&name, 1).await.unwrap().key();
    let starts = |h: &streamhouse_agent::cluster::leader_epochs::EpochHistory| -> Vec<(u64, u64)> {
        (1..=5)
            .filter_map(|e| match h.end_of(e - 1) {
                streamhouse_agent::cluster::leader_epochs::EpochEnd::Ended {
                    end_offset, ..
                } if h.epoch_of(end_offset) == Some(e) => Some((e, end_offset)),
                _ => None,
            })
            .collect()
    };
    assert!(m.leader_epochs(&key, 0).await.unwrap().is_empty());
    let g = m
        .acquire_lease(&key, 0, "agent-a", (1_000, 500), None)
        .await
        .unwrap();
    assert_eq!(g.epoch, 1);
    let commit = |base, end, epoch| ChunkCommit {
        key: unique("chunks/e"),
        size: 100,
        ranges: vec![range(&key, 0, base, end, epoch)],
    };
    assert!(m
        .commit_chunk("agent-a", &commit(0, 100, 1), 1_000)
        .await
        .unwrap());
    // Taken over: epoch 2 begins at the committed end.
    let g = common::take_over(&m, &key, 0, "agent-b").await;
    assert_eq!(g.epoch, 2);
    // Its own lease again (after a restart): same epoch, same start.
    assert!(m
        .commit_chunk("agent-b", &commit(100, 150, 2), 2_000)
        .await
        .unwrap());
    let again = m
        .acquire_lease(&key, 0, "agent-b", (2_100, 500), None)
        .await
        .unwrap();
    assert_eq!(again.epoch, 2);
    let g = common::take_over(&m, &key, 0, "agent-a").await;
    assert_eq!(g.epoch, 3);
    let h = m.leader_epochs(&key, 0).await.unwrap();
    assert_eq!(h.latest(), Some(3));
    assert_eq!(starts(&h), vec![(1, 0), (2, 100), (3, 150)]);
    assert_eq!(h.epoch_of(0), Some(1));
    assert_eq!(h.epoch_of(99), Some(1));
    assert_eq!(h.epoch_of(149), Some(2));
    assert_eq!(h.epoch_of(150), Some(3));
    m.delete_topic(&name).await.unwrap();
    assert!(m.leader_epochs(&key, 0).await.unwrap().is_empty());
}

#[tokio::test]
async fn sqlite_records_where_each_leader_epoch_began() {
    let dir = tempfile::tempdir_in(common::target_tmp()).unwrap();
    epochs_suite(&common::sqlite_url(dir.path())).await;
}

#[tokio::test]
async fn postgres_records_where_each_leader_epoch_began() {
    epochs_suite(&common::postgres_url()).await;
}
