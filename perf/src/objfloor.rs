//! The object store's own floor, measured in the same run as an ack-`object`
//! figure: PUT latency of 1 MiB objects and sequential PUT bandwidth with
//! 8 MiB objects, through the same client the agent's uploader uses.
//! Writes under a `perf-floor/` prefix and leaves nothing else alone.

use std::time::Instant;

use bytes::Bytes;
use hdrhistogram::Histogram;
use streamhouse_agent::objstore::ObjectStore;

/// Object store floor figures.
#[derive(Debug, Clone, Default)]
pub struct ObjectFloor {
    /// The store measured (no credentials).
    pub store: String,
    /// PUT of a 1 MiB object: p50 and p99, ms.
    pub put_p50_ms: f64,
    pub put_p99_ms: f64,
    /// Sequential 8 MiB PUTs, MB/s (10^6 bytes).
    pub put_mb_s: f64,
}

/// Measures `url` (`file:///DIR` or `s3://...`).
pub async fn measure(url: &str) -> Result<ObjectFloor, String> {
    let store = ObjectStore::open(url).map_err(|e| e.to_string())?;
    let small = Bytes::from(vec![0x5au8; 1 << 20]);
    let mut h = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    for i in 0..40 {
        let t = Instant::now();
        store
            .put(&format!("perf-floor/put-{i}"), small.clone())
            .await
            .map_err(|e| e.to_string())?;
        h.record(t.elapsed().as_micros() as u64)
            .map_err(|e| e.to_string())?;
    }
    let big = Bytes::from(vec![0xa5u8; 8 << 20]);
    let t = Instant::now();
    let n = 8;
    for i in 0..n {
        store
            .put(&format!("perf-floor/big-{i}"), big.clone())
            .await
            .map_err(|e| e.to_string())?;
    }
    let mb_s = (n * big.len()) as f64 / 1e6 / t.elapsed().as_secs_f64();
    Ok(ObjectFloor {
        store: store.describe(),
        put_p50_ms: h.value_at_quantile(0.5) as f64 / 1000.0,
        put_p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
        put_mb_s: mb_s,
    })
}

/// Human-readable line.
pub fn describe(f: &ObjectFloor) -> String {
    format!(
        "object store floor ({}): PUT 1 MiB p50 {:.2} ms, p99 {:.2} ms; sequential 8 MiB PUTs {:.0} MB/s",
        f.store, f.put_p50_ms, f.put_p99_ms, f.put_mb_s
    )
}
