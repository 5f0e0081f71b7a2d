//! Sends records to a local agent with the gRPC Producer.
//!
//! Start an agent (`cargo run --release -p streamhouse-agent`), create a
//! topic (`streamctl topic create orders --partitions 4`), then:
//!
//!     cargo run -p streamhouse-client --example producer -- 127.0.0.1:9092 orders

use std::time::Duration;

use streamhouse_client::{Producer, ProducerRecord};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "orders".into());

    let producer = Producer::builder([bootstrap])
        .linger(Duration::from_millis(5))
        .build()
        .await?;

    // Queue 1,000 records; each send returns a future that resolves once the
    // record is fsynced on the agent.
    let pending: Vec<_> = (0..1000)
        .map(|i| {
            let record = ProducerRecord::new(topic.clone(), format!("order #{i}"))
                .key(format!("customer-{}", i % 10));
            producer.send(record)
        })
        .collect();
    for f in pending {
        let meta = f.await?;
        if meta.offset % 100 == 0 {
            println!("{}/{} @ {}", meta.topic, meta.partition, meta.offset);
        }
    }
    // Everything sent is acknowledged before close returns.
    producer.close().await?;
    println!("sent 1000 records; {:?}", producer.metrics());
    Ok(())
}
