//! The chaos run's producers: one [`Producer`] per stream (a topic written
//! at one ack level, idempotent or not), sending stamped records at a fixed
//! rate to its partitions in turn, and recording what happened to each
//! one: sent when, acknowledged at which offset, or failed with what. Owns
//! the producers and their logs; never reads records back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use streamhouse_client::{Acks, Producer, ProducerRecord};
use tokio::sync::watch;

use crate::chaos::payload::{self, Stamp};

/// One stream of the workload.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// Index, stamped into every record.
    pub id: u8,
    /// `durable-idempotent`, `object-plain`, ...
    pub name: String,
    pub topic: String,
    pub acks: Acks,
    pub idempotent: bool,
}

/// The fate of one sent record.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// No answer by the end of the run.
    Pending,
    Acked {
        offset: u64,
        at_ms: u64,
    },
    Failed,
}

#[derive(Debug, Clone)]
pub struct Sent {
    pub partition: u32,
    pub at_ms: u64,
    pub outcome: Outcome,
}

/// Everything one stream sent, indexed by sequence number.
#[derive(Debug, Default)]
pub struct StreamLog {
    pub sent: Vec<Sent>,
    pub failed: u64,
    /// First few distinct errors, for the report.
    pub errors: Vec<String>,
}

/// Workload settings shared by the streams.
#[derive(Debug, Clone)]
pub struct Load {
    pub partitions: u32,
    /// Records per second per stream.
    pub rate: f64,
    pub record_size: usize,
}

/// Milliseconds since the run started.
pub fn ms_since(t0: Instant) -> u64 {
    t0.elapsed().as_millis() as u64
}

/// Sends until `stop` turns true, then flushes for at most `drain`.
/// Cancelling it drops the producer: records still in flight stay
/// `Pending`.
pub async fn produce(
    spec: StreamSpec,
    bootstrap: Vec<String>,
    load: Load,
    t0: Instant,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) -> Result<StreamLog, String> {
    let producer = Producer::builder(bootstrap)
        .acks(spec.acks)
        .idempotence(spec.idempotent)
        .retries(u32::MAX)
        .linger(Duration::from_millis(5))
        .request_timeout(Duration::from_secs(5))
        .delivery_timeout(Duration::from_secs(120))
        .max_block(Duration::from_secs(120))
        .build()
        .await
        .map_err(|e| format!("{}: producer: {e}", spec.name))?;
    let log = Arc::new(Mutex::new(StreamLog::default()));
    let tick = Duration::from_millis(10);
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    let mut seq = 0u64;
    while !*stop.borrow() {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => break,
        }
        // Open loop: as many records as the rate owes by now.
        let due = (started.elapsed().as_secs_f64() * load.rate) as u64;
        while seq < due {
            let partition = (seq % u64::from(load.partitions)) as u32;
            let stamp = Stamp {
                stream: spec.id,
                partition,
                seq,
            };
            let value = payload::encode(stamp, load.record_size);
            log.lock().sent.push(Sent {
                partition,
                at_ms: ms_since(t0),
                outcome: Outcome::Pending,
            });
            let fut =
                producer.send(ProducerRecord::new(spec.topic.clone(), value).partition(partition));
            let log = log.clone();
            let i = seq as usize;
            tokio::spawn(async move {
                let r = fut.await;
                let mut l = log.lock();
                // Taken at the end: a completion after that is not recorded
                // (the record stays `Pending`, an unknown outcome).
                let Some(sent) = l.sent.get_mut(i) else {
                    return;
                };
                match r {
                    Ok(m) => {
                        sent.outcome = Outcome::Acked {
                            offset: m.offset,
                            at_ms: ms_since(t0),
                        };
                    }
                    Err(e) => {
                        sent.outcome = Outcome::Failed;
                        l.failed += 1;
                        let text = e.to_string();
                        if l.errors.len() < 5 && !l.errors.contains(&text) {
                            l.errors.push(text);
                        }
                    }
                }
            });
            seq += 1;
        }
    }
    let _ = tokio::time::timeout(drain, producer.flush()).await;
    // Completions still running after the flush land within a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), producer.close()).await;
    let log = std::mem::take(&mut *log.lock());
    Ok(log)
}
