//! Criterion benches of the storage engine: batch encode/decode, CRC32C,
//! and WAL appends (serial: one fsync each; concurrent: group commit).

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use glommio::LocalExecutorBuilder;
use streamhouse_proto::batch::{self, BatchBuilder, Codec, ProducerInfo};
use streamhouse_storage::{LogConfig, ShardLog};

fn encoded(records: usize, size: usize, codec: Codec) -> Vec<u8> {
    let value = vec![b'x'; size];
    let mut b = BatchBuilder::with_capacity(codec, ProducerInfo::default(), records * (size + 8));
    for i in 0..records {
        b.push(None, &value, 1_700_000_000_000 + i as i64, &[]);
    }
    b.finish()
}

fn batch_codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch");
    for codec in [Codec::None, Codec::Lz4, Codec::Zstd] {
        g.throughput(Throughput::Elements(1000));
        g.bench_with_input(
            BenchmarkId::new("encode_1000x100B", format!("{codec:?}")),
            &codec,
            |b, codec| b.iter(|| encoded(1000, 100, *codec)),
        );
        let bytes = Bytes::from(encoded(1000, 100, codec));
        g.bench_with_input(
            BenchmarkId::new("decode_1000x100B", format!("{codec:?}")),
            &bytes,
            |b, bytes| b.iter(|| batch::decode(bytes).map(|(_, r)| r.len())),
        );
    }
    let raw = encoded(1000, 100, Codec::None);
    g.throughput(Throughput::Bytes(raw.len() as u64));
    g.bench_function("validate_crc_1000x100B", |b| {
        b.iter(|| batch::validate(&raw).map(|h| h.record_count))
    });
    // What Produce now checks before acknowledging a batch: the header and
    // CRC (validate) plus every record of the section.
    g.bench_function("check_records_1000x100B", |b| {
        b.iter(|| batch::check_records(&raw, 8 << 20, 8 << 20).map(|h| h.record_count))
    });
    let mut patched = raw.clone();
    g.bench_function("set_base_offset", |b| {
        b.iter(|| batch::set_base_offset(&mut patched, 12_345))
    });
    // What the log does instead: copy into its pending buffer and move
    // the CRC from the offset's change (no pass over the body).
    let checked = batch::CheckedBatch::validated(Bytes::from(raw.clone())).expect("valid");
    let mut out = Vec::with_capacity(raw.len());
    g.bench_function("append_rebased", |b| {
        b.iter(|| {
            out.clear();
            checked.append_rebased(&mut out, 12_345);
            out.len()
        })
    });
    g.finish();
}

fn crc(c: &mut Criterion) {
    let mut g = c.benchmark_group("crc32c");
    for size in [4 << 10, 1 << 20] {
        let data = vec![7u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &data, |b, d| {
            b.iter(|| crc32c::crc32c(d))
        });
    }
    g.finish();
}

/// Appends `iters` batches to a fresh log with `concurrency` appends in
/// flight, buffered or O_DIRECT; returns the time they took (durable acks
/// included).
fn wal_appends(iters: u64, concurrency: usize, batch: &'static [u8], direct_io: bool) -> Duration {
    let dir = tempfile::tempdir_in(".").expect("temp dir on the bench disk");
    let path = dir.path().to_path_buf();
    LocalExecutorBuilder::default()
        .spawn(move || async move {
            let mut config = LogConfig::new(&path);
            config.direct_io = direct_io;
            let (log, _) = ShardLog::open(config).await.expect("open log");
            log.add_partition("bench", 0);
            let start = Instant::now();
            let mut left = iters;
            while left > 0 {
                let n = left.min(concurrency as u64);
                let tasks: Vec<_> = (0..n)
                    .map(|_| {
                        let l = log.clone();
                        glommio::spawn_local(
                            async move { l.append("bench", 0, batch.to_vec()).await },
                        )
                    })
                    .collect();
                for t in tasks {
                    t.await.expect("append");
                }
                left -= n;
            }
            let took = start.elapsed();
            log.close().await;
            took
        })
        .expect("executor")
        .join()
        .expect("join")
}

fn wal(c: &mut Criterion) {
    let batch: &'static [u8] = Box::leak(encoded(1000, 100, Codec::None).into_boxed_slice());
    let mut g = c.benchmark_group("wal_append_1000x100B");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    for (mode, direct_io) in [("buffered", false), ("direct_io", true)] {
        for concurrency in [1usize, 16, 64] {
            g.throughput(Throughput::Elements(1000));
            g.bench_with_input(
                BenchmarkId::new(format!("{mode}/in_flight"), concurrency),
                &concurrency,
                |b, c| b.iter_custom(|iters| wal_appends(iters, *c, batch, direct_io)),
            );
        }
    }
    g.finish();
}

/// What an agent does to one produced batch between the request and the
/// log's pending buffer: check it (one header parse, one CRC pass, the
/// records walked), frame it and copy it into the pending buffer with its
/// offset set (the CRC moved from the change). Before, the same step
/// parsed the header three times, ran three CRC passes, allocated the
/// frame header and copied the batch twice (docs/BENCHMARKS.md).
fn produce_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("produce_path");
    for (records, codec) in [(1000, Codec::None), (100, Codec::None), (1000, Codec::Lz4)] {
        let request = Bytes::from(encoded(records, 100, codec));
        g.throughput(Throughput::Elements(records as u64));
        let mut pending: Vec<u8> = Vec::with_capacity(64 << 20);
        g.bench_with_input(
            BenchmarkId::new(
                format!("check_and_queue_{records}x100B"),
                format!("{codec:?}"),
            ),
            &request,
            |b, request| {
                b.iter(|| {
                    if pending.len() > 32 << 20 {
                        pending.clear();
                    }
                    let checked = batch::CheckedBatch::check(request.clone(), 8 << 20, 1 << 20)
                        .expect("valid");
                    let len = checked.len();
                    streamhouse_storage::segment::put_frame_header(&mut pending, "bench", 0, len);
                    checked.append_rebased(&mut pending, 12_345);
                    checked.header().record_count
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, batch_codec, crc, wal, produce_path);
criterion_main!(benches);
