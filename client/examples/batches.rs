//! Sends ready-made batches, one per partition at a time, and waits for all
//! their delivery futures together.
//!
//!     cargo run -p streamhouse-client --example batches -- 127.0.0.1:9092 orders 10 1000
//!
//! Arguments: bootstrap, topic, batches per partition, records per batch.
//! `send_batch` hands a whole batch to one partition as one request; its
//! future resolves with the batch's first offset once every record of it
//! is durable on the agent. Futures of many batches can be in flight at
//! once: the producer keeps each partition's batches in the order sent.

use futures::future::try_join_all;
use streamhouse_client::{Admin, BatchRecord, Producer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "orders".into());
    let batches: usize = args.next().map_or(Ok(10), |s| s.parse())?;
    let per_batch: usize = args.next().map_or(Ok(1000), |s| s.parse())?;

    let partitions = Admin::connect(&bootstrap)
        .await?
        .describe_topic(&topic)
        .await?
        .partitions
        .len() as u32;
    let producer = Producer::builder(&bootstrap).build().await?;

    let mut pending = Vec::new();
    for b in 0..batches {
        for p in 0..partitions {
            let records = (0..per_batch)
                .map(|i| BatchRecord::new(format!("batch {b} record {i}")).key(format!("p{p}")));
            pending.push(producer.send_batch(&topic, p, records));
        }
    }
    // Each future gives the batch's partition, first offset and count.
    let acked = try_join_all(pending).await?;
    for m in acked.iter().filter(|m| m.base_offset == 0) {
        println!("partition {} starts at offset 0", m.partition);
    }
    let records: u64 = acked.iter().map(|m| u64::from(m.record_count)).sum();
    producer.close().await?;
    println!("acknowledged {} batches, {records} records", acked.len());
    Ok(())
}
