//! Idempotence across owners: a new owner recognises retries of batches
//! committed before it, from stored producer state or the last range.

use super::*;

#[tokio::test]
async fn a_new_owner_recognises_retries_of_batches_committed_in_older_ranges() {
    takeover_then_retry(false).await;
}

#[tokio::test]
async fn without_stored_producer_state_a_new_owner_recognises_retries_of_the_last_range() {
    // Chunks committed before producer state was stored (schema v1) leave
    // none: the new owner reads the batches of each partition's last
    // committed range instead.
    takeover_then_retry(true).await;
}

/// Two producers commit a batch each (ack `object`, so in two ranges); the
/// agent stops; another, on an empty data dir, takes the partition; both
/// retry. With `forget_producer_state` the stored producer state is deleted
/// before the takeover; then only the last range's batch is checked.
async fn takeover_then_retry(forget_producer_state: bool) {
    let shared = tempfile::tempdir_in(target_tmp()).unwrap();
    let with_id = |id: &str| local_stores(shared.path(), &["--agent-id", id]);
    let mut first = Agent::start(1, &as_strs(&with_id("first")));
    let meta = first.create_topic("owners", 1).await;
    let mut admin = first.admin().await;
    let mut pids = Vec::new();
    for _ in 0..2 {
        pids.push(
            admin
                .init_producer_id(pb::InitProducerIdRequest::default())
                .await
                .unwrap()
                .into_inner(),
        );
    }
    // Two producers, one batch each; ack `object` puts each batch in its
    // own committed range, the second producer's in the last one.
    let req = |k: usize| {
        let values: Vec<String> = (0..4).map(|i| format!("owner-{k}-{i}")).collect();
        pb::ProduceRequest {
            producer_id: pids[k].producer_id,
            producer_epoch: pids[k].producer_epoch,
            base_sequence: 0,
            ack: pb::AckLevel::AckObject as i32,
            ..produce_req("owners", 0, &values)
        }
    };
    let mut c = first.producer_for(&meta, 0).await;
    let originals: Vec<u64> = [
        c.produce(req(0)).await.unwrap().into_inner().base_offset,
        c.produce(req(1)).await.unwrap().into_inner().base_offset,
    ]
    .to_vec();
    assert_eq!(originals, vec![0, 4]);
    // The first agent stops (releasing its lease); another one, on an empty
    // data dir, takes the partition from the metadata and object store.
    first.signal(libc::SIGTERM);
    assert_eq!(first.wait_exit(Duration::from_secs(20)), Some(0));
    if forget_producer_state {
        let db = rusqlite::Connection::open(shared.path().join("meta.db")).unwrap();
        let rows = db.execute("DELETE FROM producer_state", []).unwrap();
        assert_eq!(rows, 2, "one row per producer was stored");
    }
    let second = Agent::start(1, &as_strs(&with_id("second")));
    let mut c = second.producer_for(&meta, 0).await;
    // The producers retry their batch (as after a lost answer): each is
    // recognised and answered with its original offsets, not appended.
    let first_checked = usize::from(forget_producer_state);
    for (k, original) in originals.iter().enumerate().skip(first_checked) {
        let again = c.produce(req(k)).await.unwrap().into_inner();
        assert!(again.duplicate, "producer {k}'s retry was appended again");
        assert_eq!(again.base_offset, *original);
    }
    let mut f = second.fetcher_for(&meta, 0).await;
    assert_eq!(fetch_all(&mut f, "owners", 0).await.len(), 8);
}
