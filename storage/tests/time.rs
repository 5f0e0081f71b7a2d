//! Seek by time in the shard log (the time index: one largest timestamp per
//! batch), on a real directory, before and after recovery.

mod common;

use bytes::Bytes;
use common::run;
use streamhouse_proto::batch::{encode, Codec, ProducerInfo, Record};
use streamhouse_storage::log::TimeMatch;
use streamhouse_storage::{LogConfig, ShardLog};

/// A batch of records stamped `stamps` (ms).
fn batch(stamps: &[i64]) -> Vec<u8> {
    let recs: Vec<Record> = stamps
        .iter()
        .map(|&timestamp| Record {
            key: None,
            value: Bytes::from_static(b"v"),
            timestamp,
            headers: vec![],
        })
        .collect();
    encode(&recs, Codec::None, ProducerInfo::default())
}

#[test]
fn the_first_record_at_or_after_a_time_is_found_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    // Offsets 0-2, 3-5, 6-8; timestamps out of order across batches, as
    // producers may send them.
    let expect = |log: ShardLog| async move {
        let at = |t| {
            let log = log.clone();
            async move { log.offset_for_time("t", 0, 0, t).await.unwrap() }
        };
        let m = |offset, timestamp_ms| {
            Some(TimeMatch {
                offset,
                timestamp_ms,
            })
        };
        assert_eq!(at(0).await, m(0, 100));
        assert_eq!(at(150).await, m(1, 200), "inside the first batch");
        assert_eq!(at(350).await, m(4, 400), "the second batch is later");
        assert_eq!(
            at(260).await,
            m(2, 300),
            "the earliest offset, not the earliest time"
        );
        assert_eq!(at(701).await, None);
        assert_eq!(
            log.offset_for_time("t", 0, 5, 0).await.unwrap(),
            m(5, 500),
            "from an offset inside a batch"
        );
        assert!(log.offset_for_time("nope", 0, 0, 0).await.is_err());
        log.close().await;
    };
    run(move || async move {
        let (log, _) = ShardLog::open(LogConfig::new(&path)).await.unwrap();
        log.add_partition("t", 0);
        for stamps in [[100, 200, 300], [250, 400, 500], [150, 600, 700]] {
            log.append("t", 0, batch(&stamps)).await.unwrap();
        }
        expect(log).await;
    });
    let path = dir.path().to_path_buf();
    run(move || async move {
        let (log, _) = ShardLog::open(LogConfig::new(&path)).await.unwrap();
        expect(log).await;
    });
}
