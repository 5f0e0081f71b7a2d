//! Shard log behaviour on a real directory with real io_uring I/O.

mod common;

use common::run;
use std::time::Duration;

use bytes::Bytes;
use streamhouse_proto::batch::{encode, CheckedBatch, Codec, ProducerInfo, Record};
use streamhouse_storage::{LogConfig, LogError, ShardLog};

fn checked(b: Vec<u8>) -> CheckedBatch {
    CheckedBatch::validated(Bytes::from(b)).expect("a valid batch")
}

fn batch(n: usize, tag: &str, producer: ProducerInfo) -> Vec<u8> {
    let recs: Vec<Record> = (0..n)
        .map(|i| Record {
            key: Some(Bytes::from(format!("k{i}"))),
            value: Bytes::from(format!("{tag}-{i}")),
            timestamp: 1_700_000_000_000 + i as i64,
            headers: vec![],
        })
        .collect();
    encode(&recs, Codec::None, producer)
}

/// The log's settings for a test run with buffered or O_DIRECT WAL writes.
fn config(path: &std::path::Path, direct_io: bool) -> LogConfig {
    let mut c = LogConfig::new(path);
    c.direct_io = direct_io;
    c
}

/// Runs a test body twice: with buffered WAL writes (the default) and with
/// O_DIRECT, as `NAME::buffered` and `NAME::direct_io`.
macro_rules! in_both_write_modes {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            #[test]
            fn buffered() {
                super::$name(false)
            }
            #[test]
            fn direct_io() {
                super::$name(true)
            }
        })*
    };
}

in_both_write_modes!(
    append_read_and_recover_offsets_exactly,
    idempotent_retries_return_original_offsets_across_restart,
    a_batch_that_overtook_its_predecessor_waits_for_it,
    segments_roll_by_size_and_age_and_stay_readable,
    dropping_a_shipped_segment_keeps_batches_still_being_synced_readable,
    torn_tail_is_truncated_and_mid_file_corruption_is_reported,
    reading_before_the_log_start_is_out_of_range,
    a_stored_batch_whose_records_lie_is_data_loss_for_it_alone,
    a_reset_forgets_local_batches_even_when_the_offsets_match,
    synced_writes_missing_from_a_sealed_segment_are_corruption,
);

fn append_read_and_recover_offsets_exactly(direct_io: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let (log, _) = ShardLog::open(config(&path, direct_io)).await.unwrap();
        log.add_partition("t", 0);
        log.add_partition("t", 1);
        let mut futs = Vec::new();
        for i in 0..50 {
            let l = log.clone();
            let p = (i % 2) as u32;
            futs.push(glommio::spawn_local(async move {
                l.append("t", p, batch(10, &format!("b{i}"), ProducerInfo::default()))
                    .await
            }));
        }
        let mut bases = [vec![], vec![]];
        for (i, f) in futs.into_iter().enumerate() {
            let a = f.await.unwrap();
            bases[i % 2].push(a.base_offset);
        }
        for b in &mut bases {
            b.sort();
            assert_eq!(*b, (0..25).map(|i| i * 10).collect::<Vec<u64>>());
        }
        let r = log.read("t", 1, 0, usize::MAX).await.unwrap();
        assert_eq!(r.records.len(), 250);
        assert!(r
            .records
            .iter()
            .enumerate()
            .all(|(i, r)| r.offset == i as u64));
        assert_eq!(r.high_watermark, 250);
        let r = log.read("t", 0, 245, 1).await.unwrap();
        assert_eq!(r.records[0].offset, 245);
        assert!(log
            .read("t", 0, 250, 1000)
            .await
            .unwrap()
            .records
            .is_empty());
        assert!(matches!(
            log.read("nope", 0, 0, 1).await,
            Err(LogError::UnknownPartition { .. })
        ));
        log.close().await;
    });
    let path = dir.path().to_path_buf();
    run(move || async move {
        let (log, report) = ShardLog::open(config(&path, direct_io)).await.unwrap();
        assert_eq!(report.batches, 50);
        assert_eq!(log.high_watermark("t", 0), Some(250));
        let a = log
            .append("t", 0, batch(3, "after", ProducerInfo::default()))
            .await
            .unwrap();
        assert_eq!(a.base_offset, 250);
        let r = log.read("t", 0, 0, usize::MAX).await.unwrap();
        assert_eq!(r.records.len(), 253);
        assert_eq!(&r.records[252].value[..], b"after-2");
    });
}

fn idempotent_retries_return_original_offsets_across_restart(direct_io: bool) {
    let dir = tempfile::tempdir().unwrap();
    let p = |seq| ProducerInfo {
        producer_id: 77,
        producer_epoch: 0,
        base_sequence: seq,
    };
    let path = dir.path().to_path_buf();
    run(move || async move {
        let (log, _) = ShardLog::open(config(&path, direct_io)).await.unwrap();
        log.add_partition("t", 0);
        assert_eq!(
            log.append("t", 0, batch(5, "a", p(0)))
                .await
                .unwrap()
                .base_offset,
            0
        );
        assert_eq!(
            log.append("t", 0, batch(5, "b", p(5)))
                .await
                .unwrap()
                .base_offset,
            5
        );
        let dup = log.append("t", 0, batch(5, "a", p(0))).await.unwrap();
        assert!(dup.duplicate);
        assert_eq!(dup.base_offset, 0);
        let gap = log.append("t", 0, batch(5, "c", p(20))).await;
        assert!(matches!(gap, Err(LogError::Sequence(_))), "{gap:?}");
        log.close().await;
    });
    let path = dir.path().to_path_buf();
    run(move || async move {
        let (log, _) = ShardLog::open(config(&path, direct_io)).await.unwrap();
        let dup = log.append("t", 0, batch(5, "b", p(5))).await.unwrap();
        assert!(dup.duplicate);
        assert_eq!(dup.base_offset, 5);
        assert_eq!(
            log.append("t", 0, batch(1, "d", p(10)))
                .await
                .unwrap()
                .base_offset,
            10
        );
    });
}

fn a_batch_that_overtook_its_predecessor_waits_for_it(direct_io: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let p = |seq| ProducerInfo {
        producer_id: 78,
        producer_epoch: 0,
        base_sequence: seq,
    };
    run(move || async move {
        let (log, _) = ShardLog::open(config(&path, direct_io)).await.unwrap();
        let log = std::rc::Rc::new(log);
        log.add_partition("t", 0);
        // Batches 0..5 and 5..10 are in flight; the second arrives first
        // at an agent that has never seen the producer.
        let second = glommio::spawn_local({
            let log = log.clone();
            async move {
                let waited = log.wait_for_turn("t", 0, p(5), 5, Some(0)).await;
                (
                    waited,
                    log.append_in_flight("t", 0, checked(batch(5, "b", p(5))), Some(0))
                        .await,
                )
            }
        });
        glommio::timer::sleep(Duration::from_millis(50)).await;
        // Without waiting its turn the second batch is refused.
        let early = log
            .append_in_flight("t", 0, checked(batch(5, "b", p(5))), Some(0))
            .await;
        assert!(matches!(early, Err(LogError::Sequence(_))), "{early:?}");
        assert!(!log.wait_for_turn("t", 0, p(0), 5, Some(0)).await);
        let first = log
            .append_in_flight("t", 0, checked(batch(5, "a", p(0))), Some(0))
            .await
            .unwrap();
        let (waited, second) = second.await;
        assert!(waited);
        let second = second.unwrap();
        assert_eq!((first.base_offset, second.base_offset), (0, 5));
        let read = log.read("t", 0, 0, 1 << 20).await.unwrap();
        let values: Vec<_> = read
            .records
            .iter()
            .map(|r| String::from_utf8(r.value.to_vec()).unwrap())
            .collect();
        assert_eq!(values[0], "a-0");
        assert_eq!(values[5], "b-0");
        // A batch whose predecessor never comes fails after the wait.
        let started = std::time::Instant::now();
        assert!(log.wait_for_turn("t", 0, p(20), 1, Some(10)).await);
        assert!(started.elapsed() >= streamhouse_storage::log::SEQUENCE_WAIT);
        let gap = log
            .append_in_flight("t", 0, checked(batch(1, "c", p(20))), Some(10))
            .await;
        assert!(matches!(gap, Err(LogError::Sequence(_))), "{gap:?}");
        log.close().await;
    });
}

fn segments_roll_by_size_and_age_and_stay_readable(direct_io: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let mut cfg = config(&path, direct_io);
        cfg.segment_bytes = 16 << 10;
        cfg.segment_age = Duration::from_millis(100);
        let (log, _) = ShardLog::open(cfg).await.unwrap();
        log.add_partition("t", 0);
        for i in 0..40 {
            log.append(
                "t",
                0,
                batch(200, &format!("x{i}"), ProducerInfo::default()),
            )
            .await
            .unwrap();
        }
        let sealed_by_size = log.sealed_segments().len();
        assert!(sealed_by_size >= 3, "{sealed_by_size}");
        glommio::timer::sleep(Duration::from_millis(300)).await;
        assert!(log.sealed_segments().len() > sealed_by_size, "age roll");
        let r = log.read("t", 0, 0, usize::MAX).await.unwrap();
        assert_eq!(r.records.len(), 8000);
        assert!(r
            .records
            .iter()
            .enumerate()
            .all(|(i, r)| r.offset == i as u64));
    });
}

fn dropping_a_shipped_segment_keeps_batches_still_being_synced_readable(direct_io: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let (log, _) = ShardLog::open(config(&path, direct_io)).await.unwrap();
        let log = std::rc::Rc::new(log);
        log.add_partition("t", 0);
        log.append("t", 0, batch(10, "shipped", ProducerInfo::default()))
            .await
            .unwrap();
        let shipped = log.active_segment();
        log.seal_now();
        while log.sealed_segments().is_empty() {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        // A batch is appended (offsets assigned) but not durable yet when
        // the shipped segment is dropped.
        let pending = glommio::spawn_local({
            let log = log.clone();
            async move {
                log.append("t", 0, batch(5, "pending", ProducerInfo::default()))
                    .await
            }
        });
        futures_lite::future::yield_now().await;
        log.drop_segment(shipped).unwrap();
        assert_eq!(log.log_start("t", 0), Some(10));
        let appended = pending.await.unwrap();
        assert_eq!(appended.base_offset, 10);
        assert_eq!(log.log_start("t", 0), Some(10), "still readable here");
        let r = log.read("t", 0, 10, usize::MAX).await.unwrap();
        assert_eq!(r.records.len(), 5);
        assert_eq!(&r.records[0].value[..], b"pending-0");
        log.close().await;
    });
}

fn torn_tail_is_truncated_and_mid_file_corruption_is_reported(direct_io: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let (log, _) = ShardLog::open(config(&path, direct_io)).await.unwrap();
        log.add_partition("t", 0);
        for i in 0..5 {
            log.append("t", 0, batch(4, &format!("y{i}"), ProducerInfo::default()))
                .await
                .unwrap();
        }
        log.close().await;
    });
    // Tear the only segment by appending half a frame after its data.
    let ids = streamhouse_storage::segment::list_segments(dir.path()).unwrap();
    assert_eq!(ids, vec![0]);
    let data_seg = streamhouse_storage::segment::segment_path(dir.path(), ids[0]);
    let mut bytes = std::fs::read(&data_seg).unwrap();
    let mut end = 0;
    while end + 8 <= bytes.len() && bytes[end..end + 4] == *b"SHW1" {
        end += u32::from_le_bytes(bytes[end + 4..end + 8].try_into().unwrap()) as usize;
    }
    bytes.truncate(end);
    let frame0_len = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    let torn = bytes[..frame0_len / 2].to_vec();
    bytes.extend_from_slice(&torn);
    std::fs::write(&data_seg, &bytes).unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let (log, report) = ShardLog::open(config(&path, direct_io)).await.unwrap();
        assert!(report.torn_bytes > 0);
        assert_eq!(log.high_watermark("t", 0), Some(20));
        log.close().await;
    });
    // Now flip a byte inside the second frame of the (sealed) data segment.
    let mut bytes = std::fs::read(&data_seg).unwrap();
    bytes[frame0_len + 60] ^= 0x40;
    std::fs::write(&data_seg, &bytes).unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        match ShardLog::open(config(&path, direct_io)).await {
            Err(LogError::Corrupt(c)) => {
                assert_eq!(c.position, frame0_len as u64);
                assert!(c.file.ends_with(format!("{:020}.wal", 0)));
            }
            Err(e) => panic!("wrong error {e}"),
            Ok(_) => panic!("corruption went unnoticed"),
        }
    });
}

fn reading_before_the_log_start_is_out_of_range(direct_io: bool) {
    // A log whose oldest batch starts at offset 100 (older ones were
    // removed): offsets below 100 are out of range, 100 is readable.
    let dir = tempfile::tempdir().unwrap();
    let mut b = batch(3, "late", ProducerInfo::default());
    streamhouse_proto::batch::set_base_offset(&mut b, 100);
    let mut frame = streamhouse_storage::segment::frame_header("t", 0, b.len());
    frame.extend_from_slice(&b);
    streamhouse_storage::segment::seal_frame_header(&mut frame, 1);
    std::fs::write(
        streamhouse_storage::segment::segment_path(dir.path(), 0),
        &frame,
    )
    .unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let (log, _) = ShardLog::open(config(&path, direct_io)).await.unwrap();
        match log.read("t", 0, 99, 1000).await {
            Err(LogError::OffsetOutOfRange {
                offset: 99,
                log_start: 100,
            }) => {}
            other => panic!("expected OffsetOutOfRange, got {other:?}"),
        }
        let r = log.read("t", 0, 100, 1000).await.unwrap();
        assert_eq!(r.records.len(), 3);
        assert_eq!((r.log_start, r.high_watermark), (100, 103));
        let a = log
            .append("t", 0, batch(1, "next", ProducerInfo::default()))
            .await
            .unwrap();
        assert_eq!(a.base_offset, 103);
    });
}

/// A batch stored by an agent that checked only its header and CRC (as
/// agents did before every Produce checked the records section): one
/// record, `record_count` 3. Reading it must never abort or allocate from
/// the count: a read starting before it answers what precedes it, a read
/// at it is `Undecodable` naming the next offset, a read past it works,
/// and recovery reopens the log.
fn a_stored_batch_whose_records_lie_is_data_loss_for_it_alone(direct_io: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let mut lying = batch(1, "lie", ProducerInfo::default());
        lying[24..28].copy_from_slice(&3u32.to_le_bytes());
        streamhouse_proto::batch::set_base_offset(&mut lying, 0);
        for reopen in [false, true] {
            let (log, _) = ShardLog::open(config(&path, direct_io)).await.unwrap();
            log.add_partition("t", 0);
            if !reopen {
                log.append("t", 0, batch(2, "before", ProducerInfo::default()))
                    .await
                    .unwrap();
                log.append("t", 0, lying.clone()).await.unwrap();
                log.append("t", 0, batch(2, "after", ProducerInfo::default()))
                    .await
                    .unwrap();
            }
            let r = log.read("t", 0, 0, 1 << 20).await.unwrap();
            let values: Vec<&[u8]> = r.records.iter().map(|r| &r.value[..]).collect();
            assert_eq!(
                values,
                [&b"before-0"[..], b"before-1"],
                "reopened: {reopen}"
            );
            match log.read("t", 0, 2, 1 << 20).await {
                Err(LogError::Undecodable {
                    offset,
                    next_offset,
                    ..
                }) => assert_eq!((offset, next_offset), (2, 5)),
                other => panic!("reading the lying batch: {other:?}"),
            }
            let r = log.read("t", 0, 5, 1 << 20).await.unwrap();
            assert_eq!(r.records.len(), 2);
            assert_eq!(r.records[0].offset, 5);
            log.close().await;
        }
    });
}

/// After a lease changed hands, a log that ends exactly where object
/// storage does still holds batches written under the older lease, and
/// another leader may have committed different batches at those offsets:
/// a reset must forget them all, so reads below go to object storage.
/// (Before, equal offsets skipped the reset and the stale local batches
/// were served.)
fn a_reset_forgets_local_batches_even_when_the_offsets_match(direct_io: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let (log, _) = ShardLog::open(config(&path, direct_io)).await.unwrap();
        log.add_partition("t", 0);
        log.append("t", 0, batch(10, "old-lease", ProducerInfo::default()))
            .await
            .unwrap();
        assert!(log.reset_to("t", 0, 10));
        assert_eq!(log.log_start("t", 0), Some(10));
        assert!(matches!(
            log.read("t", 0, 0, 1 << 20).await,
            Err(LogError::OffsetOutOfRange { log_start: 10, .. })
        ));
        let a = log
            .append("t", 0, batch(2, "new-lease", ProducerInfo::default()))
            .await
            .unwrap();
        assert_eq!(a.base_offset, 10);
        log.close().await;
    });
}

/// Positions and lengths of the frames at the start of a segment's bytes.
fn frames(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() && (bytes[at..at + 4] == *b"SHW1" || bytes[at..at + 4] == *b"SHR1")
    {
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        out.push((at, len));
        at += len;
    }
    out
}

/// The last write of a sealed segment reads back as zeros (a disk that
/// lost an allocation): it was synced before the next segment was
/// written, so recovery reports it instead of taking the segment as ending
/// early. The write held the only batch of partition 1, so no offset check
/// of partition 1 could notice.
fn synced_writes_missing_from_a_sealed_segment_are_corruption(direct_io: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let (log, _) = ShardLog::open(config(&path, direct_io)).await.unwrap();
        log.add_partition("t", 0);
        log.add_partition("t", 1);
        for i in 0..3 {
            log.append("t", 0, batch(4, &format!("a{i}"), ProducerInfo::default()))
                .await
                .unwrap();
        }
        log.append("t", 1, batch(4, "only", ProducerInfo::default()))
            .await
            .unwrap();
        log.seal_now();
        while log.sealed_segments().is_empty() {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        log.append("t", 0, batch(4, "later", ProducerInfo::default()))
            .await
            .unwrap();
        log.close().await;
    });
    let seg0 = streamhouse_storage::segment::segment_path(dir.path(), 0);
    let mut bytes = std::fs::read(&seg0).unwrap();
    let found = frames(&bytes);
    assert_eq!(found.len(), 4, "{found:?}");
    let (at, len) = found[3];
    bytes[at..at + len].fill(0);
    std::fs::write(&seg0, &bytes).unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        match ShardLog::open(config(&path, direct_io)).await {
            Err(LogError::Corrupt(c)) => {
                assert!(c.file.ends_with(format!("{:020}.wal", 0)), "{c}");
                assert_eq!(c.position, at as u64, "{c}");
                assert!(c.reason.contains("missing"), "{c}");
            }
            Err(e) => panic!("wrong error {e}"),
            Ok((log, _)) => panic!(
                "an acknowledged batch vanished unnoticed: partition 1 reads up to {:?}",
                log.high_watermark("t", 1)
            ),
        }
    });
}
