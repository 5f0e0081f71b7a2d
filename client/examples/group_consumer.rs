//! A consumer-group member with manual commits and a rebalance listener.
//! Run several at once with the same group: the partitions are shared out
//! among them and move when one joins or leaves.
//!
//!     cargo run -p streamhouse-client --example group_consumer -- 127.0.0.1:9092 orders billing 5000
//!
//! Arguments: bootstrap, topic, group, and how long to go without a record
//! before stopping (ms; 0 runs until Ctrl-C or SIGTERM).
//!
//! Offsets are committed after each batch is processed, never before:
//! after a crash the group re-reads at most the last batch (at-least-once)
//! and never skips a record. `close` commits the last positions and leaves
//! the group, so the others take its partitions over at once instead of
//! after its session times out.

use std::time::{Duration, Instant};

use streamhouse_client::{AutoOffsetReset, Consumer, RebalanceListener, TopicPartition};
use tokio::signal::unix::{signal, SignalKind};

/// Says when partitions come and go. Its methods run inside `poll`, so the
/// records handed out afterwards already reflect the change.
struct Announce;

impl RebalanceListener for Announce {
    fn on_assigned(&mut self, partitions: &[TopicPartition]) {
        println!("assigned {}", list(partitions));
    }
    fn on_revoked(&mut self, partitions: &[TopicPartition]) {
        // Everything handed out so far was committed after its batch, so
        // there is nothing left to commit for these.
        println!("revoked {}", list(partitions));
    }
    fn on_lost(&mut self, partitions: &[TopicPartition]) {
        // Removed from the group (e.g. paused past the session timeout):
        // these are someone else's now; records of them handed out since
        // the last commit will be read again by their new owner.
        println!("lost {}", list(partitions));
    }
}

fn list(partitions: &[TopicPartition]) -> String {
    let names: Vec<String> = partitions.iter().map(ToString::to_string).collect();
    names.join(",")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "orders".into());
    let group = args.next().unwrap_or_else(|| "billing".into());
    let idle_ms: u64 = args.next().map_or(Ok(0), |s| s.parse())?;

    let mut consumer = Consumer::builder(&bootstrap)
        .group(group)
        .subscribe([topic])
        .auto_commit(false)
        // A group that never committed starts at each partition's first
        // record (the default, `Latest`, would read only new ones).
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .listener(Announce)
        .build()
        .await?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;

    let mut last_record = Instant::now();
    loop {
        let records = tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            polled = consumer.poll(Duration::from_millis(500)) => polled?,
        };
        if records.is_empty() {
            if idle_ms > 0 && last_record.elapsed() >= Duration::from_millis(idle_ms) {
                break;
            }
            continue;
        }
        last_record = Instant::now();
        for r in &records {
            // The processing; here it prints.
            println!("record {}/{} @ {}", r.topic, r.partition, r.offset);
        }
        // Processed: now the group may move past these records.
        consumer.commit().await?;
    }
    consumer.close().await?;
    println!("closed");
    Ok(())
}
