//! The produce benchmark: K producers send N records of B bytes through the
//! real client library (its per-record callback API, as Kafka's perf tool
//! uses Kafka's, or `send_batch` with `--api batch`);
//! every record's latency runs from its send (or,
//! with `--rate`, from its scheduled send time: open loop, so stalls are not
//! hidden by coordinated omission) to its acknowledgement. Owns the run and
//! its report; the floor and the agent process live elsewhere.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use streamhouse_client::net::PoolConfig;
use streamhouse_client::{Acks, Admin, Producer, ProducerRecord};

/// Which client call the benchmark drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SendApi {
    /// `send_with_callback` per record; the accumulator batches.
    Record,
    /// `send_batch` with `batch_records` records per call.
    Batch,
}
use tokio::time::Instant;

/// What to run.
#[derive(Debug, Clone)]
pub struct ProduceOpts {
    pub topic: String,
    pub records: u64,
    pub record_size: usize,
    pub partitions: u32,
    pub producers: usize,
    pub batch_records: usize,
    pub batch_bytes: usize,
    pub linger: Duration,
    pub acks: Acks,
    /// Records/s over all producers; `None` = as fast as possible.
    pub rate: Option<f64>,
    pub api: SendApi,
    pub max_in_flight: usize,
    /// Requests in flight per partition.
    pub in_flight_per_partition: usize,
    pub connections: usize,
    /// Seconds between progress lines.
    pub interval: Duration,
    /// Client settings besides the above: TLS and the token
    /// (`security::SecurityArgs`).
    pub pool: PoolConfig,
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct ProduceReport {
    pub sent: u64,
    pub acked: u64,
    pub failed: u64,
    pub elapsed_s: f64,
    pub records_per_s: f64,
    pub mb_per_s: f64,
    pub avg_ms: f64,
    pub max_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub requests: u64,
    pub batches: u64,
    pub retries: u64,
    pub request_avg_ms: f64,
    pub first_error: Option<String>,
    /// Records read back by a consumer after the run (`--verify`).
    pub read_back: Option<u64>,
    /// One point per progress interval (and the last, shorter one).
    pub timeline: Vec<Tick>,
    /// Every acknowledged record's latency, µs.
    pub latency: Option<Histogram<u64>>,
}

/// What one progress interval saw: records acknowledged in it and their
/// latency.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct Tick {
    /// End of the interval, seconds since the run started.
    pub at_s: f64,
    pub records_per_s: f64,
    pub avg_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Outcomes of one producer's records, filled by their callbacks.
struct Stats {
    inner: parking_lot::Mutex<StatsInner>,
}

struct StatsInner {
    /// The whole run.
    hist: Histogram<u64>,
    /// Since the last progress line.
    interval: Histogram<u64>,
    failed: u64,
    first_error: Option<String>,
}

/// A latency histogram: 1 µs to 10 min, 3 significant digits.
fn latency_histogram() -> Histogram<u64> {
    // Constant bounds that hdrhistogram accepts.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

impl Stats {
    fn new() -> Stats {
        Stats {
            inner: parking_lot::Mutex::new(StatsInner {
                hist: latency_histogram(),
                interval: latency_histogram(),
                failed: 0,
                first_error: None,
            }),
        }
    }

    fn record<T>(&self, sent: Instant, r: streamhouse_client::Result<T>) {
        self.record_n(sent, r, 1);
    }

    /// Outcome of `n` records sent at `sent` and acknowledged together.
    fn record_n<T>(&self, sent: Instant, r: streamhouse_client::Result<T>, n: u64) {
        let us = sent.elapsed().as_micros().max(1) as u64;
        let mut st = self.inner.lock();
        match r {
            Ok(_) => {
                let _ = st.hist.record_n(us, n);
                let _ = st.interval.record_n(us, n);
            }
            Err(e) => {
                st.failed += n;
                st.first_error.get_or_insert(e.to_string());
            }
        }
    }
}

/// Takes every producer's interval histogram (leaving them empty) and
/// turns it into the interval's point, `secs` long, ending `at_s`.
fn tick(stats: &[Arc<Stats>], at_s: f64, secs: f64) -> (Tick, u64) {
    let mut h = latency_histogram();
    for s in stats {
        let mut st = s.inner.lock();
        let _ = h.add(&st.interval);
        st.interval.reset();
    }
    let n = h.len();
    let point = Tick {
        at_s,
        records_per_s: n as f64 / secs.max(1e-9),
        avg_ms: if n > 0 { h.mean() / 1000.0 } else { 0.0 },
        p50_ms: ms(h.value_at_quantile(0.50)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        max_ms: ms(h.max()),
    };
    (point, n)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Kafka-style line.
pub fn line(n: u64, secs: f64, bytes_per_record: usize, avg_ms: f64, max_ms: f64) -> String {
    let rate = n as f64 / secs.max(1e-9);
    format!(
        "{n} records sent, {rate:.1} records/sec ({:.2} MB/sec), {avg_ms:.2} ms avg latency, {max_ms:.2} ms max latency",
        rate * bytes_per_record as f64 / 1e6
    )
}

/// The final line, in kafka-producer-perf-test's format.
pub fn final_line(r: &ProduceReport, record_size: usize) -> String {
    format!(
        "{}, {:.2} ms 50th, {:.2} ms 95th, {:.2} ms 99th, {:.2} ms 99.9th.",
        line(r.acked, r.elapsed_s, record_size, r.avg_ms, r.max_ms),
        r.p50_ms,
        r.p95_ms,
        r.p99_ms,
        r.p999_ms
    )
}

/// Creates the topic if it does not exist yet.
pub async fn ensure_topic(
    bootstrap: &str,
    pool: &PoolConfig,
    topic: &str,
    partitions: u32,
) -> Result<(), String> {
    let admin = Admin::with_pool(bootstrap, pool.clone())
        .await
        .map_err(|e| e.to_string())?;
    match admin.create_topic(topic, partitions).await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(streamhouse_client::Code::AlreadyExists) => Ok(()),
        Err(e) => Err(format!("creating topic {topic}: {e}")),
    }
}

/// Runs the benchmark against `bootstrap`.
pub async fn run(bootstrap: &str, o: &ProduceOpts) -> Result<ProduceReport, String> {
    ensure_topic(bootstrap, &o.pool, &o.topic, o.partitions).await?;
    let mut producers = Vec::new();
    for _ in 0..o.producers {
        let p = Producer::builder([bootstrap.to_owned()])
            .pool(o.pool.clone())
            .acks(o.acks)
            .batch_max_records(o.batch_records)
            .batch_max_bytes(o.batch_bytes)
            .linger(o.linger)
            .max_in_flight(o.max_in_flight)
            .max_in_flight_per_partition(o.in_flight_per_partition)
            .max_connections_per_agent(o.connections)
            .buffer_memory((64 << 20).max(o.batch_bytes * 4))
            .build()
            .await
            .map_err(|e| format!("connecting producer: {e}"))?;
        producers.push(p);
    }
    let payload = Bytes::from(vec![b'x'; o.record_size]);
    let stats: Vec<Arc<Stats>> = (0..o.producers).map(|_| Arc::new(Stats::new())).collect();
    let timeline = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let start = Instant::now();
    let last_tick = Arc::new(parking_lot::Mutex::new(start));
    let reporter = {
        let (stats, timeline, last_tick) = (stats.clone(), timeline.clone(), last_tick.clone());
        let interval = o.interval;
        let size = o.record_size;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let now = Instant::now();
                let secs = (now - std::mem::replace(&mut *last_tick.lock(), now)).as_secs_f64();
                let (point, n) = tick(&stats, (now - start).as_secs_f64(), secs);
                println!("{}.", line(n, secs, size, point.avg_ms, point.max_ms));
                timeline.lock().push(point);
            }
        })
    };
    let per = o.records / o.producers as u64;
    let extra = o.records % o.producers as u64;
    let mut tasks = Vec::new();
    for (k, p) in producers.iter().enumerate() {
        let n = per + u64::from((k as u64) < extra);
        let p = p.clone();
        let topic = o.topic.clone();
        let payload = payload.clone();
        let stats = stats[k].clone();
        // Each producer's share of the rate, as an interval between sends.
        let gap = o
            .rate
            .map(|r| Duration::from_secs_f64(o.producers as f64 / r));
        let batch = o.batch_records as u64;
        let (api, partitions) = (o.api, o.partitions);
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            if api == SendApi::Batch {
                // One call per `batch` records, partitions in turn (each
                // producer starting at its own); latency counts from the
                // batch's (scheduled) send time for all of its records.
                let mut acks = Vec::new();
                let mut i = 0;
                let mut partition = k as u32 % partitions;
                while i < n {
                    let len = batch.min(n - i);
                    let t = match gap {
                        Some(g) => {
                            let at = t0 + g.mul_f64(i as f64);
                            tokio::time::sleep_until(at).await;
                            at
                        }
                        None => Instant::now(),
                    };
                    let f = p.send_batch(
                        &topic,
                        partition,
                        std::iter::repeat_n(payload.clone(), len as usize),
                    );
                    let s = stats.clone();
                    acks.push(tokio::spawn(async move { s.record_n(t, f.await, len) }));
                    partition = (partition + 1) % partitions;
                    i += len;
                    tokio::task::yield_now().await;
                }
                for a in acks {
                    let _ = a.await;
                }
                return p.flush().await;
            }
            for i in 0..n {
                let t = match gap {
                    Some(g) => {
                        let at = t0 + g.mul_f64(i as f64);
                        tokio::time::sleep_until(at).await;
                        at
                    }
                    None => Instant::now(),
                };
                let s = stats.clone();
                p.send_with_callback(
                    ProducerRecord::new(topic.clone(), payload.clone()),
                    move |r| s.record(t, r),
                )
                .await;
                if gap.is_none() && i % 1024 == 1023 {
                    tokio::task::yield_now().await;
                }
            }
            p.flush().await
        }));
    }
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).map_err(|e| e.to_string())?;
    let mut failed = 0;
    let mut first_error = None;
    for t in tasks {
        t.await
            .map_err(|e| format!("producer task: {e}"))?
            .map_err(|e| e.to_string())?;
    }
    for s in &stats {
        let st = s.inner.lock();
        hist.add(&st.hist).map_err(|e| e.to_string())?;
        failed += st.failed;
        if first_error.is_none() {
            first_error = st.first_error.clone();
        }
    }
    reporter.abort();
    let _ = reporter.await;
    let elapsed = start.elapsed().as_secs_f64();
    // The last, shorter interval.
    let now = Instant::now();
    let secs = (now - *last_tick.lock()).as_secs_f64();
    let (last, n) = tick(&stats, elapsed, secs);
    let mut timeline = std::mem::take(&mut *timeline.lock());
    if n > 0 {
        timeline.push(last);
    }
    let mut requests = 0;
    let mut batches = 0;
    let mut retries = 0;
    let mut request_ns = 0;
    for p in &producers {
        let m = p.metrics();
        requests += m.requests;
        batches += m.batches;
        retries += m.retries;
        request_ns += m.request_ns_total;
        p.close().await.map_err(|e| e.to_string())?;
    }
    let acked = hist.len();
    Ok(ProduceReport {
        sent: o.records,
        acked,
        failed,
        elapsed_s: elapsed,
        records_per_s: acked as f64 / elapsed,
        mb_per_s: acked as f64 * o.record_size as f64 / 1e6 / elapsed,
        avg_ms: hist.mean() / 1000.0,
        max_ms: ms(hist.max()),
        p50_ms: ms(hist.value_at_quantile(0.50)),
        p95_ms: ms(hist.value_at_quantile(0.95)),
        p99_ms: ms(hist.value_at_quantile(0.99)),
        p999_ms: ms(hist.value_at_quantile(0.999)),
        requests,
        batches,
        retries,
        request_avg_ms: if requests > 0 {
            request_ns as f64 / requests as f64 / 1e6
        } else {
            0.0
        },
        first_error,
        read_back: None,
        timeline,
        latency: Some(hist),
    })
}

/// Reads every partition of `topic` to its end; returns the record count.
pub async fn read_back(
    bootstrap: &str,
    pool: &PoolConfig,
    topic: &str,
    partitions: u32,
) -> Result<u64, String> {
    let mut c = streamhouse_client::Consumer::builder(bootstrap)
        .pool(pool.clone())
        .max_bytes_per_partition(8 << 20)
        .build()
        .await
        .map_err(|e| format!("verify: {e}"))?;
    c.assign((0..partitions).map(|p| (topic.to_owned(), p)))
        .await
        .map_err(|e| format!("verify: {e}"))?;
    let mut n = 0u64;
    loop {
        let recs = c
            .poll(Duration::ZERO)
            .await
            .map_err(|e| format!("verify: {e}"))?;
        if recs.is_empty() {
            return Ok(n);
        }
        n += recs.len() as u64;
    }
}
