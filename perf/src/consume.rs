//! `streamhouse-perf consume`: how fast records are read back. Prefills a
//! topic (`send_batch`, ack durable), then reads it all from offset 0:
//! `hot` from the agent's local log, `cold` once every segment is in object
//! storage and gone from the local disk, `group` by N consumer-group
//! members sharing the topic; and `e2e`, a producer at a fixed rate with a
//! member reading as it goes, timing each record from `send` to the
//! consumer's hands (one process, one clock). Owns only its own clients.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;

use crate::embedded::EmbeddedAgent;
use streamhouse_client::{
    AutoOffsetReset, BatchRecord, Consumer, GroupConsumer, Producer, ProducerRecord,
};

/// What one read-back measured.
pub struct ReadReport {
    pub what: String,
    pub records: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl ReadReport {
    pub fn describe(&self) -> String {
        let s = self.elapsed.as_secs_f64().max(1e-9);
        format!(
            "{}: {} records read in {:.2} s, {:.0} records/s ({:.1} MB/s)",
            self.what,
            self.records,
            s,
            self.records as f64 / s,
            self.bytes as f64 / s / 1e6
        )
    }
}

/// Creates `topic` with `partitions` unless it exists (plaintext, no token).
async fn ensure_topic(bootstrap: &str, topic: &str, partitions: u32) -> Result<(), String> {
    crate::produce::ensure_topic(bootstrap, &Default::default(), topic, partitions).await
}

/// Sends `records` values of `size` bytes to `topic`, `batch` per call,
/// partitions in turn; waits for every acknowledgement.
pub async fn prefill(
    bootstrap: &str,
    topic: &str,
    partitions: u32,
    records: u64,
    size: usize,
    batch: usize,
) -> Result<(), String> {
    ensure_topic(bootstrap, topic, partitions).await?;
    let p = Producer::builder([bootstrap.to_string()])
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let value = vec![b'x'; size];
    let mut pending = Vec::new();
    let mut sent = 0u64;
    let mut part = 0u32;
    while sent < records {
        let n = (records - sent).min(batch as u64) as usize;
        pending.push(p.send_batch(topic, part, (0..n).map(|_| BatchRecord::new(value.clone()))));
        part = (part + 1) % partitions;
        sent += n as u64;
        if pending.len() >= 16 {
            for f in pending.drain(..) {
                f.await.map_err(|e| e.to_string())?;
            }
        }
    }
    for f in pending {
        f.await.map_err(|e| e.to_string())?;
    }
    p.close().await.map_err(|e| e.to_string())
}

/// Reads every partition of `topic` from offset 0 until `records` came back.
pub async fn read_all(
    bootstrap: &str,
    topic: &str,
    records: u64,
    what: &str,
) -> Result<ReadReport, String> {
    let mut c = Consumer::builder([bootstrap.to_string()])
        .max_bytes_per_partition(4 << 20)
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let n = c.partition_count(topic).await.map_err(|e| e.to_string())?;
    c.assign((0..n).map(|p| (topic.to_string(), p)))
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let (mut got, mut bytes) = (0u64, 0u64);
    while got < records {
        let rs = c
            .poll(Duration::from_millis(500))
            .await
            .map_err(|e| e.to_string())?;
        got += rs.len() as u64;
        bytes += rs.iter().map(|r| r.value.len() as u64).sum::<u64>();
        if started.elapsed() > Duration::from_secs(600) {
            return Err(format!(
                "{what}: only {got} of {records} records in 10 minutes"
            ));
        }
    }
    Ok(ReadReport {
        what: what.into(),
        records: got,
        bytes,
        elapsed: started.elapsed(),
    })
}

async fn member(
    bootstrap: &str,
    group: &str,
    topic: &str,
    reset: AutoOffsetReset,
) -> Result<GroupConsumer, String> {
    Consumer::builder([bootstrap.to_string()])
        .max_bytes_per_partition(4 << 20)
        .group(group)
        .subscribe([topic])
        .auto_offset_reset(reset)
        .build()
        .await
        .map_err(|e| e.to_string())
}

/// `members` group members read the topic from offset 0 together.
pub async fn read_as_group(
    bootstrap: &str,
    topic: &str,
    records: u64,
    members: usize,
) -> Result<ReadReport, String> {
    let group = format!("perf-{}", std::process::id());
    let started = Instant::now();
    let mut tasks = Vec::new();
    let total = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    for _ in 0..members {
        let mut c = member(bootstrap, &group, topic, AutoOffsetReset::Earliest).await?;
        let total = total.clone();
        tasks.push(tokio::spawn(async move {
            let mut bytes = 0u64;
            while total.load(std::sync::atomic::Ordering::Relaxed) < records {
                if let Ok(rs) = c.poll(Duration::from_millis(200)).await {
                    total.fetch_add(rs.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    bytes += rs.iter().map(|r| r.value.len() as u64).sum::<u64>();
                }
                if started.elapsed() > Duration::from_secs(600) {
                    break;
                }
            }
            let _ = c.close().await;
            bytes
        }));
    }
    let mut bytes = 0;
    for t in tasks {
        bytes += t.await.map_err(|e| e.to_string())?;
    }
    let got = total.load(std::sync::atomic::Ordering::Relaxed);
    if got < records {
        return Err(format!(
            "group: only {got} of {records} records in 10 minutes"
        ));
    }
    Ok(ReadReport {
        what: format!("group of {members}"),
        records: got,
        bytes,
        elapsed: started.elapsed(),
    })
}

/// A producer at `rate` records/s for `records`, a group member reading
/// as it goes; per-record latency from `send` to the member's `poll`.
pub async fn end_to_end(
    bootstrap: &str,
    topic: &str,
    partitions: u32,
    records: u64,
    rate: f64,
    size: usize,
) -> Result<String, String> {
    ensure_topic(bootstrap, topic, partitions).await?;
    let mut c = member(
        bootstrap,
        &format!("perf-e2e-{}", std::process::id()),
        topic,
        AutoOffsetReset::Latest,
    )
    .await?;
    // Joined and positioned before the first record is sent.
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.assignment().is_empty() {
        c.poll(Duration::from_millis(100))
            .await
            .map_err(|e| e.to_string())?;
        if Instant::now() > deadline {
            return Err("e2e: the member got no partitions within 30 s".into());
        }
    }
    let p = Producer::builder([bootstrap.to_string()])
        .linger(Duration::from_millis(1))
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let topic_owned = topic.to_string();
    let sender = tokio::spawn(async move {
        let pad = vec![b'x'; size.saturating_sub(8)];
        let mut acks = Vec::new();
        for i in 0..records {
            let due = Duration::from_secs_f64(i as f64 / rate);
            if let Some(w) = due.checked_sub(t0.elapsed()) {
                tokio::time::sleep(w).await;
            }
            let mut v = (t0.elapsed().as_nanos() as u64).to_be_bytes().to_vec();
            v.extend_from_slice(&pad);
            acks.push(p.send(ProducerRecord::new(topic_owned.as_str(), v)));
            if acks.len() >= 10_000 {
                futures::future::join_all(acks.drain(..)).await;
            }
        }
        futures::future::join_all(acks).await;
        let _ = p.close().await;
    });
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
        .map_err(|e| e.to_string())?;
    let mut got = 0u64;
    let limit = Duration::from_secs_f64(records as f64 / rate) + Duration::from_secs(60);
    while got < records && t0.elapsed() < limit {
        let rs = c
            .poll(Duration::from_millis(100))
            .await
            .map_err(|e| e.to_string())?;
        let now = t0.elapsed().as_nanos() as u64;
        for r in rs {
            if let Some(b) = r.value.get(..8) {
                let sent = u64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
                let _ = h.record((now.saturating_sub(sent) / 1000).max(1));
                got += 1;
            }
        }
    }
    sender.await.map_err(|e| e.to_string())?;
    let _ = c.close().await;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Ok(format!(
        "e2e: {got} of {records} records at {rate:.0}/s, produce -> consumer latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        ms(0.5),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1000.0
    ))
}

#[derive(Args, Debug, Clone)]
pub struct ConsumeArgs {
    /// Records to prefill and read back.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
    /// Also read it back cold: once every segment was uploaded to the
    /// embedded agent's local object store and dropped from its disk.
    #[arg(long)]
    pub cold: bool,
    /// Members of the group read (0 skips it).
    #[arg(long, default_value_t = 3)]
    pub members: usize,
    /// Rate of the end-to-end run, records/s (0 skips it).
    #[arg(long, default_value_t = 50_000.0)]
    pub e2e_rate: f64,
    /// Records of the end-to-end run.
    #[arg(long, default_value_t = 250_000)]
    pub e2e_records: u64,
    /// Shards of the embedded agent (default: one per core).
    #[arg(long)]
    pub shards: Option<usize>,
    /// Where the embedded agent's data dir goes.
    #[arg(long, default_value = "./perf-data")]
    pub data_root: PathBuf,
}

/// `consume`: the read-back runs against one embedded agent.
pub async fn run(c: ConsumeArgs) -> Result<ExitCode, String> {
    if c.records == 0 || c.partitions == 0 {
        return Err("--records and --partitions must be positive".into());
    }
    let shards = c
        .shards
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    std::fs::create_dir_all(&c.data_root).map_err(|e| format!("--data-root: {e}"))?;
    let objects = tempfile::tempdir_in(&c.data_root).map_err(|e| format!("--data-root: {e}"))?;
    let mut extra = vec![
        format!("--object-store=file://{}", objects.path().display()),
        "--group-heartbeat-ms=500".to_string(),
    ];
    if c.cold {
        extra.push("--segment-age-ms=200".into());
    }
    let agent = EmbeddedAgent::start(&c.data_root, shards, &extra)?;
    let b = agent.bootstrap();
    println!(
        "consume: {} records x {} B in {} partitions (prefilled with send_batch of 10,000, ack durable), embedded agent {b} ({shards} shards, local object store), client in the same process on the same cores",
        c.records, c.record_size, c.partitions
    );
    prefill(
        &b,
        "perf-read",
        c.partitions,
        c.records,
        c.record_size,
        10_000,
    )
    .await?;
    println!(
        "{}",
        read_all(&b, "perf-read", c.records, "hot (local log)")
            .await?
            .describe()
    );
    if c.members > 0 {
        println!(
            "{}",
            read_as_group(&b, "perf-read", c.records, c.members)
                .await?
                .describe()
        );
    }
    if c.cold {
        // Wait until the shards hold no segment of the topic: every read
        // then goes to the chunk objects.
        let dir = agent.data_dir();
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let wal_bytes = dir_bytes(&dir, "wal");
            if wal_bytes < (c.records as usize * c.record_size / 20) as u64 {
                break;
            }
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "segments still on disk after 2 minutes ({wal_bytes} bytes)"
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        println!(
            "{}",
            read_all(&b, "perf-read", c.records, "cold (object storage)")
                .await?
                .describe()
        );
    }
    if c.e2e_rate > 0.0 && c.e2e_records > 0 {
        println!(
            "{}",
            end_to_end(
                &b,
                "perf-e2e",
                c.partitions,
                c.e2e_records,
                c.e2e_rate,
                c.record_size.max(8)
            )
            .await?
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Bytes in files ending `.{ext}` under `dir`.
fn dir_bytes(dir: &std::path::Path, ext: &str) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                total += e.metadata().map_or(0, |m| m.len());
            }
        }
    }
    total
}
