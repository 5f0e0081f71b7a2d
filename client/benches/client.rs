//! Criterion benches of the client's hot path: the partitioner and the
//! per-partition accumulator (append and close of a 1000-record batch).

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;
use streamhouse_client::partitioner::{murmur2, partition_for_key};
use streamhouse_client::producer::accumulator::{record_size, BatchLimits, PartitionAccumulator};
use streamhouse_proto::batch::Codec;
use tokio::time::Instant;

fn partitioner(c: &mut Criterion) {
    let keys: Vec<Vec<u8>> = (0..1024)
        .map(|i| format!("user-{i:08}").into_bytes())
        .collect();
    let mut g = c.benchmark_group("partitioner");
    g.throughput(Throughput::Elements(keys.len() as u64));
    g.bench_function("murmur2_13B_keys", |b| {
        b.iter(|| keys.iter().map(|k| murmur2(k) as i64).sum::<i64>())
    });
    g.bench_function("partition_for_key_12", |b| {
        b.iter(|| keys.iter().map(|k| partition_for_key(k, 12)).sum::<u32>())
    });
    g.finish();
}

fn accumulator(c: &mut Criterion) {
    let value = Bytes::from(vec![b'x'; 100]);
    let limits = BatchLimits {
        max_records: 1000,
        max_bytes: 1 << 20,
        linger: Duration::from_millis(5),
        codec: Codec::None,
    };
    let size = record_size(None, &value, &[]);
    let now = Instant::now();
    let mut g = c.benchmark_group("accumulator");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("append_and_close_1000x100B", |b| {
        b.iter(|| {
            let mut acc = PartitionAccumulator::new(limits);
            for i in 0..1000u32 {
                acc.append(None, &value, 1_700_000_000_000, &[], size, i, || now);
            }
            acc.pop_closed().map(|b| b.builder.finish().len())
        })
    });
    g.finish();
}

criterion_group!(benches, partitioner, accumulator);
criterion_main!(benches);
