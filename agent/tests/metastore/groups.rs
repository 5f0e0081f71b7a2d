//! Consumer groups in the metadata store, against SQLite and PostgreSQL.

use super::*;

/// Consumer groups: state saved only over the version read, offsets only
/// while the group is at the version checked, both gone with the group,
/// and a topic's offsets gone with the topic.
async fn groups_suite(url: &str) {
    use streamhouse_agent::metastore::groups::OffsetCommit;
    let m = MetaStore::open(url).await.expect("open");
    let other = MetaStore::open(url).await.expect("open again");
    let group = unique("readers");
    assert!(m.load_group(&group).await.unwrap().is_none());
    assert_eq!(m.save_group(&group, "s1", None, 10).await.unwrap(), Some(1));
    assert_eq!(
        other.save_group(&group, "again", None, 11).await.unwrap(),
        None,
        "creating an existing group"
    );
    let g = m.load_group(&group).await.unwrap().expect("saved");
    assert_eq!((g.state.as_str(), g.version, g.updated_ms), ("s1", 1, 10));
    // Two writers read version 1: the first save wins, the second must
    // read again.
    assert_eq!(
        m.save_group(&group, "s2", Some(1), 20).await.unwrap(),
        Some(2)
    );
    assert_eq!(
        other.save_group(&group, "lost", Some(1), 21).await.unwrap(),
        None
    );
    assert_eq!(m.load_group(&group).await.unwrap().unwrap().state, "s2");
    assert!(m
        .list_groups()
        .await
        .unwrap()
        .iter()
        .any(|s| s.name == group));

    let t = m.create_topic(&unique("consumed"), 2).await.unwrap();
    let commit = |p, offset| OffsetCommit {
        topic: t.key(),
        partition: p,
        offset,
        metadata: format!("at {offset}"),
        leader_epoch: (p == 0).then_some(offset / 2),
    };
    assert!(
        !m.commit_offsets(&group, 1, &[commit(0, 5)], 30)
            .await
            .unwrap(),
        "stale version"
    );
    assert!(m.group_offsets(&group).await.unwrap().is_empty());
    assert!(m
        .commit_offsets(&group, 2, &[commit(0, 5), commit(1, 7)], 30)
        .await
        .unwrap());
    assert!(other
        .commit_offsets(&group, 2, &[commit(0, 9)], 40)
        .await
        .unwrap());
    let offs = m.group_offsets(&group).await.unwrap();
    let got: Vec<(u32, u64, &str, i64, Option<u64>)> = offs
        .iter()
        .map(|o| {
            (
                o.partition,
                o.offset,
                o.metadata.as_str(),
                o.commit_ms,
                o.leader_epoch,
            )
        })
        .collect();
    // The leader epoch is kept with the offset (and read back as unknown
    // when the committer did not know it).
    assert_eq!(
        got,
        vec![(0, 9, "at 9", 40, Some(4)), (1, 7, "at 7", 30, None)]
    );
    assert!(offs.iter().all(|o| o.topic == t.key()));
    // A commit counts as a change of the group (for its expiry).
    assert_eq!(m.load_group(&group).await.unwrap().unwrap().updated_ms, 40);
    let unchanged = |before| {
        let m = &m;
        async move { m.groups_unchanged_since(before, 100_000).await.unwrap() }
    };
    assert!(unchanged(41).await.contains(&group));
    assert!(!unchanged(40).await.contains(&group));
    let n = m.count_groups().await.unwrap();
    m.save_group(&unique("counted"), "s", None, 1)
        .await
        .unwrap();
    assert_eq!(m.count_groups().await.unwrap(), n + 1);

    // Deleting the topic deletes its offsets.
    m.delete_topic(&t.name).await.unwrap();
    assert!(m.group_offsets(&group).await.unwrap().is_empty());

    // A group is deleted only at the version read, with its offsets.
    let t2 = m.create_topic(&unique("consumed"), 1).await.unwrap();
    let c2 = OffsetCommit {
        topic: t2.key(),
        partition: 0,
        offset: 3,
        metadata: String::new(),
        leader_epoch: None,
    };
    assert!(m.commit_offsets(&group, 2, &[c2], 50).await.unwrap());
    assert!(!m.delete_group(&group, 1).await.unwrap());
    assert!(m.delete_group(&group, 2).await.unwrap());
    assert!(m.load_group(&group).await.unwrap().is_none());
    assert!(m.group_offsets(&group).await.unwrap().is_empty());
}

#[tokio::test]
async fn sqlite_keeps_consumer_groups() {
    let dir = tempfile::tempdir_in(common::target_tmp()).unwrap();
    groups_suite(&common::sqlite_url(dir.path())).await;
}

#[tokio::test]
async fn postgres_keeps_consumer_groups() {
    groups_suite(&common::postgres_url()).await;
}
