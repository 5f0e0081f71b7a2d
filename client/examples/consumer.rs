//! Reads every partition of a topic from the beginning and prints records.
//!
//!     cargo run -p streamhouse-client --example consumer -- 127.0.0.1:9092 orders

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
    let mut consumer = Consumer::connect([bootstrap]).await?;
    consumer
        .assign((0..partitions).map(|p| (topic.clone(), p)))
        .await?;

    let mut total = 0;
    loop {
        // Wait up to one second for new records; stop when none arrive.
        let records = consumer.poll(Duration::from_secs(1)).await?;
        if records.is_empty() {
            break;
        }
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
    }
    println!("read {total} records");
    Ok(())
}
