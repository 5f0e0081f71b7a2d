//! Batches whose header or records lie, on the way in (refused, nothing
//! appended) and once stored (data loss for themselves only), and fetches
//! bounded by their decompressed size.

use super::*;

/// A batch with any header and records section, with a valid CRC: what a
/// careless or hostile producer can send.
fn crafted(codec: u8, flags: u16, record_count: u32, records_len: u32, records: &[u8]) -> Vec<u8> {
    use streamhouse_proto::batch::{BATCH_MAGIC, HEADER_LEN};
    let mut b = vec![0u8; HEADER_LEN];
    b.extend_from_slice(records);
    let len = b.len() as u32;
    b[0..4].copy_from_slice(&BATCH_MAGIC.to_le_bytes());
    b[4..8].copy_from_slice(&len.to_le_bytes());
    b[20] = 1;
    b[21] = codec;
    b[22..24].copy_from_slice(&flags.to_le_bytes());
    b[24..28].copy_from_slice(&record_count.to_le_bytes());
    b[58..62].copy_from_slice(&records_len.to_le_bytes());
    let crc = crc32c::crc32c(&b[12..]);
    b[8..12].copy_from_slice(&crc.to_le_bytes());
    b
}

/// One record as the batch format encodes it, with any offset delta and
/// any declared lengths.
fn raw_record(
    off_delta: u8,
    key_tag: &[u8],
    value_len: &[u8],
    value: &[u8],
    tail: &[u8],
) -> Vec<u8> {
    let mut body = vec![0u8, off_delta];
    body.extend_from_slice(key_tag);
    body.extend_from_slice(value_len);
    body.extend_from_slice(value);
    body.extend_from_slice(tail);
    let mut out = vec![body.len() as u8];
    out.extend_from_slice(&body);
    out
}

/// Issue 13, items 2 and 3: every way a batch with a valid CRC can lie
/// about its records. Before, each was acknowledged (the first made the
/// next Fetch abort the process allocating 446 GB; the others made every
/// Fetch of the partition answer DATA_LOSS, blaming the disk).
#[tokio::test]
async fn batches_whose_records_lie_are_refused_and_nothing_is_appended() {
    let agent = Agent::start(1, &["--max-record-bytes", "1024"]);
    let meta = agent.create_topic("lies", 1).await;
    let mut p = agent.producer_for(&meta, 0).await;
    let good = raw_record(0, &[0], &[3], b"abc", &[0]);
    let two = [good.clone(), raw_record(1, &[0], &[3], b"def", &[0])].concat();
    let n = |v: &[u8]| v.len() as u32;
    let lz4_garbage = vec![0xffu8; 64];
    let zstd_garbage = [0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff, 0xff, 0xff, 1, 2, 3].to_vec();
    let real_lz4 = lz4_flex::compress(&good);
    let cases: Vec<(&str, Vec<u8>, tonic::Code)> = vec![
        (
            "record_count 0xFFFFFFFF",
            crafted(0, 0, u32::MAX, n(&good), &good),
            tonic::Code::InvalidArgument,
        ),
        (
            "header only",
            crafted(0, 0, 1, 0, &[]),
            tonic::Code::InvalidArgument,
        ),
        (
            "count lower than the records",
            crafted(0, 0, 1, n(&two), &two),
            tonic::Code::InvalidArgument,
        ),
        (
            "count higher than the records",
            crafted(0, 0, 2, n(&good), &good),
            tonic::Code::InvalidArgument,
        ),
        (
            "garbage records",
            crafted(0, 0, 1, 16, &[0xff; 16]),
            tonic::Code::InvalidArgument,
        ),
        (
            "absurd record length",
            crafted(0, 0, 1, 8, &[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0]),
            tonic::Code::InvalidArgument,
        ),
        (
            "absurd key length",
            {
                let r = raw_record(0, &[0xff, 0xff, 0xff, 0xff, 0x0f], &[3], b"abc", &[0]);
                crafted(0, 0, 1, n(&r), &r)
            },
            tonic::Code::InvalidArgument,
        ),
        (
            "absurd value length",
            {
                let r = raw_record(0, &[0], &[0xff, 0xff, 0xff, 0x7f], b"abc", &[0]);
                crafted(0, 0, 1, n(&r), &r)
            },
            tonic::Code::InvalidArgument,
        ),
        (
            "absurd header count",
            {
                let r = raw_record(0, &[0], &[3], b"abc", &[0xff, 0xff, 0xff, 0xff, 0x0f]);
                crafted(0, 0, 1, n(&r), &r)
            },
            tonic::Code::InvalidArgument,
        ),
        (
            "record longer than its fields",
            {
                let r = raw_record(0, &[0], &[3], b"abc", &[0, 7, 7]);
                crafted(0, 0, 1, n(&r), &r)
            },
            tonic::Code::InvalidArgument,
        ),
        (
            "offset deltas not dense",
            {
                let r = [good.clone(), good.clone()].concat();
                crafted(0, 0, 2, n(&r), &r)
            },
            tonic::Code::InvalidArgument,
        ),
        (
            "records_len lies (uncompressed)",
            crafted(0, 0, 1, n(&good) + 10, &good),
            tonic::Code::InvalidArgument,
        ),
        (
            "records_len lies (lz4)",
            crafted(1, 0, 1, n(&good) + 10, &real_lz4),
            tonic::Code::InvalidArgument,
        ),
        (
            "lz4 garbage",
            crafted(1, 0, 1, 1000, &lz4_garbage),
            tonic::Code::InvalidArgument,
        ),
        (
            "zstd garbage",
            crafted(2, 0, 1, 1000, &zstd_garbage),
            tonic::Code::InvalidArgument,
        ),
        (
            "records_len past the limit",
            crafted(1, 0, 1, u32::MAX, &real_lz4),
            tonic::Code::ResourceExhausted,
        ),
        (
            "reserved flag set",
            crafted(0, 1, 1, n(&good), &good),
            tonic::Code::InvalidArgument,
        ),
        (
            "a record over --max-record-bytes",
            {
                use streamhouse_proto::batch::{encode, Codec, ProducerInfo, Record};
                let big = Record {
                    value: vec![1u8; 2000].into(),
                    ..Default::default()
                };
                encode(&[big], Codec::None, ProducerInfo::default())
            },
            tonic::Code::ResourceExhausted,
        ),
    ];
    for (what, batch, code) in cases {
        let r = p
            .produce(pb::ProduceRequest {
                topic: "lies".into(),
                partition: 0,
                batch: batch.into(),
                ..Default::default()
            })
            .await;
        match r {
            Err(s) => assert_eq!(s.code(), code, "{what}: {}", s.message()),
            Ok(r) => panic!(
                "{what}: acknowledged at offset {}",
                r.into_inner().base_offset
            ),
        }
    }
    // Nothing was appended: the next good batch is offset 0, and it reads back.
    let ok = p
        .produce(pb::ProduceRequest {
            topic: "lies".into(),
            partition: 0,
            batch: crafted(0, 0, 1, n(&good), &good).into(),
            ..Default::default()
        })
        .await
        .expect("a good batch")
        .into_inner();
    assert_eq!(ok.base_offset, 0);
    let mut f = agent.fetcher_for(&meta, 0).await;
    let got = fetch_all(&mut f, "lies", 0).await;
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].value[..], b"abc");
}

/// Issue 13, item 6: Fetch `max_bytes` bounded only the stored (compressed)
/// bytes, so lz4 batches of ~33 KB that each inflate to 8 MiB made a 1 MiB
/// fetch answer hundreds of MiB. Now the decompressed records count: a
/// fetch answers at most `max_bytes` of them (at least one batch).
#[tokio::test]
async fn fetch_max_bytes_bounds_the_decompressed_records() {
    use streamhouse_proto::batch::{encode, Codec, ProducerInfo, Record};
    let agent = Agent::start(1, &[]);
    let meta = agent.create_topic("bombs", 1).await;
    let mut p = agent.producer_for(&meta, 0).await;
    let bomb = encode(
        &[Record {
            key: None,
            value: bytes::Bytes::from(vec![0u8; (8 << 20) - 1024]),
            timestamp: 1,
            headers: vec![],
        }],
        Codec::Lz4,
        ProducerInfo::default(),
    );
    assert!(bomb.len() < 64 << 10, "compressed to {} bytes", bomb.len());
    for _ in 0..12 {
        p.produce(pb::ProduceRequest {
            topic: "bombs".into(),
            partition: 0,
            batch: bomb.clone().into(),
            ..Default::default()
        })
        .await
        .expect("produce");
    }
    let mut f = agent.fetcher_for(&meta, 0).await;
    for (offset, max_bytes) in [(0, 1 << 20), (3, 1 << 20), (0, 20 << 20)] {
        let r = f
            .fetch(pb::FetchRequest {
                topic: "bombs".into(),
                partition: 0,
                offset,
                max_bytes,
                max_wait_ms: 0,
                ..Default::default()
            })
            .await
            .expect("fetch")
            .into_inner();
        let bytes: usize = r.records.iter().map(|r| r.value.len()).sum();
        let want = (max_bytes as usize / (8 << 20)).max(1);
        assert_eq!(
            r.records.len(),
            want,
            "max_bytes {max_bytes} answered {} records, {} MiB",
            r.records.len(),
            bytes >> 20
        );
        assert_eq!(r.records[0].offset, offset);
    }
}

/// Writes, into a stopped agent's WAL, what an agent that checked only a
/// batch's header and CRC accepted: a one-record batch claiming 3 records,
/// then a good batch. Returns the partition's log key.
fn store_a_lying_batch(shard_dir: std::path::PathBuf) -> String {
    use streamhouse_proto::batch::{encode, set_base_offset, Codec, ProducerInfo, Record};
    let rec = |v: &str| Record {
        value: bytes::Bytes::from(v.to_owned()),
        timestamp: 1,
        ..Default::default()
    };
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            let (log, _) =
                streamhouse_storage::ShardLog::open(streamhouse_storage::LogConfig::new(shard_dir))
                    .await
                    .expect("open the WAL");
            let (key, partition, _) = log.partitions().into_iter().next().expect("a partition");
            let mut lying = encode(&[rec("lie")], Codec::None, ProducerInfo::default());
            lying[24..28].copy_from_slice(&3u32.to_le_bytes());
            set_base_offset(&mut lying, 0);
            log.append(&key, partition, lying).await.expect("append");
            let after = encode(
                &[rec("after-0"), rec("after-1")],
                Codec::None,
                ProducerInfo::default(),
            );
            log.append(&key, partition, after).await.expect("append");
            log.close().await;
            key
        })
        .expect("executor")
        .join()
        .expect("join")
}

/// Reads of the partition `store_a_lying_batch` wrote: before, at and
/// after the lying batch (offsets 0-1, 2-4, 5-6).
async fn read_around_the_lying_batch(
    mut f: pb::fetch_service_client::FetchServiceClient<tonic::transport::Channel>,
    from: &str,
) {
    let fetch = |offset| fetch_req("stored", 0, offset);
    let r = f.fetch(fetch(0)).await.expect("fetch from 0").into_inner();
    let values: Vec<&[u8]> = r.records.iter().map(|r| &r.value[..]).collect();
    assert_eq!(values, [&b"before-0"[..], b"before-1"], "{from}");
    let bad = f.fetch(fetch(2)).await.expect_err("the lying batch");
    assert_eq!(bad.code(), tonic::Code::DataLoss, "{from}: {bad:?}");
    assert!(
        bad.message().contains("cannot be decoded"),
        "{from}: {bad:?}"
    );
    let r = f.fetch(fetch(5)).await.expect("fetch past it").into_inner();
    let values: Vec<&[u8]> = r.records.iter().map(|r| &r.value[..]).collect();
    assert_eq!(values, [&b"after-0"[..], b"after-1"], "{from}");
}

/// Issue 13, item 3 (stored data): an agent whose log, or whose chunk
/// objects, already hold a batch whose records lie must never abort on it:
/// reads before it answer the records before it, a read at it is
/// DATA_LOSS naming the offset to read on from, reads after it work. On
/// today's main the read of a partition with such a batch aborted or
/// answered DATA_LOSS "corrupt WAL segment" for every read covering it.
#[tokio::test(flavor = "multi_thread")]
async fn stored_batches_whose_records_lie_are_data_loss_for_themselves_only() {
    let shared = tempfile::Builder::new()
        .prefix("sh-stored-")
        .tempdir_in(target_tmp())
        .unwrap();
    let meta_flag = format!("sqlite://{}", shared.path().join("meta.db").display());
    let objects_flag = format!("file://{}", shared.path().join("objects").display());
    let flags = [
        "--metadata",
        &meta_flag,
        "--object-store",
        &objects_flag,
        "--lease-ttl-ms",
        "1000",
    ];
    let mut a = Agent::start(1, &flags);
    let meta = a.create_topic("stored", 1).await;
    let mut p = a.producer_for(&meta, 0).await;
    p.produce(produce_req(
        "stored",
        0,
        &["before-0".into(), "before-1".into()],
    ))
    .await
    .unwrap();
    drop(p);
    a.kill9();
    store_a_lying_batch(a.data_dir.join("shard-0"));
    a.spawn();
    read_around_the_lying_batch(a.fetcher_for(&meta, 0).await, "after a restart").await;
    // SIGTERM ships the log to object storage; a second agent on an empty
    // data dir then reads the partition from the chunk objects.
    a.signal(libc::SIGTERM);
    assert_eq!(a.wait_exit(Duration::from_secs(30)), Some(0));
    let mut with_id = flags.to_vec();
    with_id.extend(["--agent-id", "agent-2"]);
    let b = Agent::start(1, &with_id);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut f = b.fetcher_for(&meta, 0).await;
        let r = f.fetch(fetch_req("stored", 0, 0)).await;
        if r.is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "agent-2 never served: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    read_around_the_lying_batch(
        b.fetcher_for(&meta, 0).await,
        "on another agent, from object storage",
    )
    .await;
}

/// Issue 13, item 8: a Fetch past the high watermark is OUT_OF_RANGE (as
/// the README says; before, it waited and answered nothing), while one at
/// the watermark long-polls.
#[tokio::test]
async fn a_fetch_past_the_high_watermark_is_out_of_range() {
    let agent = Agent::start(1, &[]);
    let meta = agent.create_topic("hw", 1).await;
    let mut p = agent.producer_for(&meta, 0).await;
    p.produce(produce_req("hw", 0, &["a".into(), "b".into()]))
        .await
        .unwrap();
    let mut f = agent.fetcher_for(&meta, 0).await;
    let fetch = |offset, max_wait_ms| pb::FetchRequest {
        topic: "hw".into(),
        partition: 0,
        offset,
        max_bytes: 0,
        max_wait_ms,
        ..Default::default()
    };
    let past = f.fetch(fetch(3, 0)).await.unwrap_err();
    assert_eq!(past.code(), tonic::Code::OutOfRange, "{past:?}");
    let started = std::time::Instant::now();
    let at = f
        .fetch(fetch(2, 300))
        .await
        .expect("a fetch at the watermark");
    assert!(at.into_inner().records.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(250), "it waited");
}

/// Issue 13, item 8: the topic names "." and ".." are refused (as Kafka
/// does); before, both were created.
#[tokio::test]
async fn reserved_topic_names_are_refused() {
    let agent = Agent::start(1, &[]);
    for name in [".", ".."] {
        let r = agent
            .admin()
            .await
            .create_topic(pb::CreateTopicRequest {
                name: name.into(),
                partitions: 1,
                ..Default::default()
            })
            .await;
        assert_eq!(
            r.map(|_| ()).unwrap_err().code(),
            tonic::Code::InvalidArgument,
            "topic {name:?}"
        );
    }
}
