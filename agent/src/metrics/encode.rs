//! Small helpers the collectors share to write samples through
//! `prometheus-client`'s encoders: a shard-labelled family, a histogram
//! from the storage engine's fixed buckets. Knows no metric by name.

use std::fmt;
use std::sync::atomic::Ordering;

use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use streamhouse_storage::stats::Buckets;

/// A sample's value: a counter (`_total` added to the name) or a gauge.
#[derive(Debug, Clone, Copy)]
pub(super) enum Value {
    Counter(u64),
    Gauge(f64),
    /// A gauge that is a whole number (printed without a fraction).
    IntGauge(u64),
}

impl Value {
    fn metric_type(self) -> MetricType {
        match self {
            Value::Counter(_) => MetricType::Counter,
            Value::Gauge(_) | Value::IntGauge(_) => MetricType::Gauge,
        }
    }

    pub(super) fn write(self, e: &mut MetricEncoder<'_>) -> fmt::Result {
        match self {
            Value::Counter(v) => e.encode_counter::<NoLabelSet, u64, u64>(&v, None),
            Value::Gauge(v) => e.encode_gauge(&v),
            Value::IntGauge(v) => e.encode_gauge(&v),
        }
    }
}

/// One family with a sample per shard, labelled `shard="i"`. `value` is
/// called once per shard; its variant decides the family's type (the
/// first shard's; every call must answer the same variant).
pub(super) fn per_shard<T>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    shards: &[T],
    value: impl Fn(&T) -> Value,
) -> fmt::Result {
    let values: Vec<Value> = shards.iter().map(value).collect();
    let Some(first) = values.first() else {
        return Ok(());
    };
    let mut family = enc.encode_descriptor(name, help, unit, first.metric_type())?;
    for (i, v) in values.into_iter().enumerate() {
        let shard = i.to_string();
        let labels = [("shard", shard.as_str())];
        v.write(&mut family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One histogram family with a series per `(shard, source)` pair (a
/// shard without a source, e.g. whose log is not open, has none).
pub(super) fn per_shard_histogram<T, const N: usize>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    shards: &[(String, T)],
    buckets: impl Fn(&T) -> &Buckets<N>,
    divisor: f64,
) -> fmt::Result {
    let mut family = enc.encode_descriptor(name, help, unit, MetricType::Histogram)?;
    for (shard, source) in shards {
        let labels = [("shard", shard.as_str())];
        histogram(
            &mut family.encode_family(&labels)?,
            buckets(source),
            divisor,
        )?;
    }
    Ok(())
}

/// One unlabelled sample.
pub(super) fn single(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: Value,
) -> fmt::Result {
    value.write(&mut enc.encode_descriptor(name, help, unit, value.metric_type())?)
}

/// Writes `b` as a histogram; bounds and sum are divided by `divisor`
/// (1e6 turns the engine's microseconds into seconds, 1 keeps counts).
/// The count is the buckets' total, so `_count` always equals the `+Inf`
/// bucket even while observations land during the scrape.
pub(super) fn histogram<const N: usize>(
    e: &mut MetricEncoder<'_>,
    b: &Buckets<N>,
    divisor: f64,
) -> fmt::Result {
    let mut buckets: Vec<(f64, u64)> = b
        .bounds
        .iter()
        .zip(&b.counts)
        .map(|(le, c)| (*le as f64 / divisor, c.load(Ordering::Relaxed)))
        .collect();
    buckets.push((f64::INFINITY, b.over.load(Ordering::Relaxed)));
    let count = buckets.iter().map(|(_, n)| n).sum();
    let sum = b.sum.load(Ordering::Relaxed) as f64 / divisor;
    e.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
}
