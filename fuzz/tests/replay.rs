//! Replays every committed input of every target: the seed corpus
//! (`corpus/<target>/`) and each crash ever found (`regressions/<target>/`,
//! one file per crash, named for what it broke). A crash that comes back
//! fails here, on the stable toolchain, without AFL++.
//! `cargo test -- --ignored write_seed_corpus` rewrites the seed corpus.

use std::path::Path;

use bytes::Bytes;
use prost::Message;
use streamhouse_fuzz::targets::ALL;
use streamhouse_proto as pb;
use streamhouse_proto::batch::{self, Codec, ProducerInfo, Record};
use streamhouse_storage::segment;

fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<(String, Vec<u8>)> = rd
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| {
            let p = e.path();
            let data = std::fs::read(&p).unwrap_or_else(|err| panic!("{}: {err}", p.display()));
            (p.display().to_string(), data)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn every_committed_input_passes_every_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for (name, run) in ALL {
        let corpus = inputs(&root.join("corpus").join(name));
        assert!(!corpus.is_empty(), "target {name} has no seed corpus");
        for (file, data) in corpus
            .iter()
            .chain(inputs(&root.join("regressions").join(name)).iter())
        {
            let r = std::panic::catch_unwind(|| run(data));
            assert!(r.is_ok(), "{name}: {file} fails");
            seen += 1;
        }
    }
    assert!(seen >= ALL.len());
}

fn batch_bytes(n: usize, codec: Codec) -> Vec<u8> {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            key: (i % 2 == 0).then(|| Bytes::from(format!("k{i}"))),
            value: Bytes::from(vec![b'v'; 10 + i]),
            timestamp: 1_700_000_000_000 + i as i64,
            headers: if i == 1 {
                vec![("h".into(), Bytes::from_static(b"x"))]
            } else {
                vec![]
            },
        })
        .collect();
    batch::encode(
        &records,
        codec,
        ProducerInfo {
            producer_id: 5,
            producer_epoch: 1,
            base_sequence: 0,
        },
    )
}

fn framed(topic: &str, partition: u32, gen: u64, b: &[u8]) -> Vec<u8> {
    let mut f = segment::frame_header(topic, partition, b.len());
    f.extend_from_slice(b);
    segment::seal_frame_header(&mut f, gen);
    f
}

#[test]
#[ignore = "rewrites the seed corpus; run by hand"]
fn write_seed_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let put = |target: &str, name: &str, data: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), data).unwrap();
    };
    for (codec, name) in [
        (Codec::None, "none"),
        (Codec::Lz4, "lz4"),
        (Codec::Zstd, "zstd"),
    ] {
        let b = batch_bytes(3, codec);
        put("batch", name, &[[0u8].as_slice(), &b].concat());
        put(
            "batch",
            &format!("{name}-fixed"),
            &[[1u8].as_slice(), &b].concat(),
        );
    }
    let b = batch_bytes(2, Codec::None);
    let mut seg = framed("t#1", 0, 1, &b);
    seg.extend_from_slice(&framed("t#1", 1, 2, &batch_bytes(1, Codec::Lz4)));
    let mut restart = segment::restart_frame("t#1", 0, 2);
    segment::seal_frame_header(&mut restart, 3);
    seg.extend_from_slice(&restart);
    put("wal_segment", "raw", &[[0u8].as_slice(), &seg].concat());
    put(
        "wal_segment",
        "raw-last-torn",
        &[[2u8].as_slice(), &seg[..seg.len() - 7]].concat(),
    );
    put(
        "wal_segment",
        "built",
        &[1u8, 3, 3, b't', b'#', b'1', 0, 1, 0, 0x80, 0, 1, 2, 3],
    );
    let produce = pb::ProduceRequest {
        topic: "t".into(),
        partition: 0,
        batch: Bytes::from(b.clone()),
        ..Default::default()
    };
    let fetch = pb::FetchRequest {
        topic: "t".into(),
        partition: 1,
        offset: 5,
        max_bytes: 1 << 20,
        max_wait_ms: 100,
        ..Default::default()
    };
    for (kind, msg) in [(0u8, produce.encode_to_vec()), (1, fetch.encode_to_vec())] {
        let mut body = vec![kind, 4];
        body.extend_from_slice(b"100m");
        body.push(0);
        body.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        body.extend_from_slice(&msg);
        put("grpc_request", &format!("rpc-{kind}"), &body);
    }
    put("metastore_text", "producers", b"\x001:0:10:100,1:10:5:110");
    put("metastore_text", "shards", b"\x010,2,3");
    put(
        "metastore_text",
        "addresses",
        b"\x02127.0.0.1:9092,127.0.0.1:9093",
    );
    let resp = pb::FetchResponse {
        records: (5..8)
            .map(|o| pb::FetchedRecord {
                offset: o,
                value: Bytes::from_static(b"value"),
                ..Default::default()
            })
            .collect(),
        high_watermark: 8,
        log_start_offset: 0,
        ..Default::default()
    };
    let mut f = 5u64.to_le_bytes().to_vec();
    f.extend_from_slice(&resp.encode_to_vec());
    put("fetch_response", "three-records", &f);
}
