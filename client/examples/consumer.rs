//! Reads every partition of a topic from the beginning up to its end as it
//! was when the read began, prints the records, and stops.
//!
//!     cargo run -p streamhouse-client --example consumer -- 127.0.0.1:9092 orders
//!
//! `at_end()` says when every partition has been read up to the high
//! watermark its last fetch saw, so a partition that is slow to answer or
//! briefly empty is not taken for finished (stopping at the first empty
//! poll would be).

use std::time::Duration;

use streamhouse_client::{Admin, Consumer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "orders".into());

    let partitions = Admin::connect(&bootstrap)
        .await?
        .describe_topic(&topic)
        .await?
        .partitions
        .len() as u32;
    let mut consumer = Consumer::connect(&bootstrap).await?;
    consumer
        .assign((0..partitions).map(|p| (topic.clone(), p)))
        .await?;

    let mut total = 0;
    loop {
        let records = consumer.poll(Duration::from_secs(1)).await?;
        for r in &records {
            println!(
                "{}/{} @ {}: {}",
                r.topic,
                r.partition,
                r.offset,
                String::from_utf8_lossy(&r.value)
            );
        }
        total += records.len();
        if consumer.at_end() {
            break;
        }
    }
    println!("read {total} records");
    Ok(())
}
