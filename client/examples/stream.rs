//! Reads one partition as a `Stream` of records, from an offset, and stops
//! after a number of them.
//!
//!     cargo run -p streamhouse-client --example stream -- 127.0.0.1:9092 orders 0 0 100
//!
//! Arguments: bootstrap, topic, partition, start offset, how many records.
//! The stream waits for records that are not written yet, so it also
//! follows a partition live; each item is a record or the error that
//! stopped the read.

use futures::{StreamExt, TryStreamExt};
use streamhouse_client::Consumer;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "orders".into());
    let partition: u32 = args.next().map_or(Ok(0), |s| s.parse())?;
    let start: u64 = args.next().map_or(Ok(0), |s| s.parse())?;
    let count: usize = args.next().map_or(Ok(100), |s| s.parse())?;

    let mut consumer = Consumer::connect(&bootstrap).await?;
    consumer.assign([(topic.clone(), partition)]).await?;
    consumer.seek(&topic, partition, start);

    // `take` ends the stream after `count` records; `try_for_each` stops at
    // the first error and returns it.
    consumer
        .stream()
        .take(count)
        .try_for_each(|r| async move {
            println!(
                "{} @ {}: {}",
                r.partition,
                r.offset,
                String::from_utf8_lossy(&r.value)
            );
            Ok(())
        })
        .await?;
    println!("streamed {count} records");
    Ok(())
}
