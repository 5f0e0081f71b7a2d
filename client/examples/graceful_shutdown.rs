//! Produces until Ctrl-C (SIGINT) or SIGTERM, then shuts down without
//! losing a record it accepted: stop sending, let every queued record be
//! acknowledged (`close`), and say how many were.
//!
//!     cargo run -p streamhouse-client --example graceful_shutdown -- 127.0.0.1:9092 orders
//!
//! The count printed at the end is exactly what the topic holds from this
//! run: a record whose future failed is reported, not counted.

use std::time::Duration;

use streamhouse_client::{Producer, ProducerRecord};
use tokio::signal::unix::{signal, SignalKind};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "orders".into());

    let producer = Producer::builder(&bootstrap)
        .linger(Duration::from_millis(5))
        .build()
        .await?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;

    // Delivery futures are awaited by a task of their own, so the sending
    // loop never waits for an acknowledgement.
    let (acks_tx, mut acks_rx) = tokio::sync::mpsc::unbounded_channel();
    let counter = tokio::spawn(async move {
        let (mut acked, mut failed) = (0u64, 0u64);
        while let Some(ack) = acks_rx.recv().await {
            match ack {
                Ok(_) => acked += 1,
                Err(e) => {
                    failed += 1;
                    eprintln!("a record was not delivered: {e}");
                }
            }
        }
        (acked, failed)
    });

    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    println!("producing; stop with Ctrl-C");
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            _ = tick.tick() => {
                let record = ProducerRecord::new(topic.clone(), format!("event {sent}"));
                let ack = producer.send(record);
                let tx = acks_tx.clone();
                tokio::spawn(async move { let _ = tx.send(ack.await); });
                sent += 1;
            }
        }
    }

    // Shutdown: nothing new is sent; close waits until every record queued
    // above is acknowledged or has failed.
    drop(acks_tx);
    producer.close().await?;
    let (acked, failed) = counter.await?;
    println!("sent {sent}, acknowledged {acked}, failed {failed}");
    Ok(())
}
