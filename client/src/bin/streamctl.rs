//! `streamctl`: the StreamHouse command line. Topic administration, produce
//! from stdin, consume to stdout. Errors are one line on stderr and a
//! non-zero exit code (1 for a failed operation, 2 for bad usage).

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use streamhouse_client::{Acks, Admin, Consumer, Producer, ProducerRecord};

#[derive(Parser)]
#[command(name = "streamctl", version, about = "StreamHouse command line")]
struct Cli {
    /// host:port of any agent shard.
    #[arg(
        long,
        env = "STREAMHOUSE_BOOTSTRAP",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    bootstrap: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Topic administration.
    Topic {
        #[command(subcommand)]
        action: TopicCmd,
    },
    /// Send one record per stdin line; prints the last offset per partition.
    Produce {
        topic: String,
        #[arg(long)]
        partition: Option<u32>,
        /// Key for every record (records are then partitioned by it).
        #[arg(long)]
        key: Option<String>,
        #[arg(long, value_enum, default_value_t = AckArg::Durable)]
        acks: AckArg,
    },
    /// Print record values of one partition, one per line.
    Consume {
        topic: String,
        #[arg(long)]
        partition: u32,
        #[arg(long, default_value_t = 0)]
        from_offset: u64,
        /// Stop after this many records (default: at the end of the partition).
        #[arg(long)]
        count: Option<u64>,
    },
}

#[derive(Subcommand)]
enum TopicCmd {
    Create {
        name: String,
        #[arg(long, default_value_t = 1)]
        partitions: u32,
    },
    List,
    Describe {
        name: String,
    },
    Delete {
        name: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum AckArg {
    Durable,
    Object,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("streamctl: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let s = |e: streamhouse_client::Error| e.to_string();
    let out = std::io::stdout();
    let mut out = out.lock();
    match cli.command {
        Command::Topic { action } => {
            let admin = Admin::connect(&cli.bootstrap).await.map_err(s)?;
            match action {
                TopicCmd::Create { name, partitions } => {
                    let t = admin.create_topic(&name, partitions).await.map_err(s)?;
                    writeln!(
                        out,
                        "created topic {} with {} partitions",
                        t.name,
                        t.partitions.len()
                    )
                    .map_err(|e| e.to_string())?;
                }
                TopicCmd::List => {
                    for t in admin.list_topics().await.map_err(s)? {
                        writeln!(out, "{}\t{}", t.name, t.partitions.len())
                            .map_err(|e| e.to_string())?;
                    }
                }
                TopicCmd::Describe { name } => {
                    let t = admin.describe_topic(&name).await.map_err(s)?;
                    writeln!(out, "topic {} ({} partitions)", t.name, t.partitions.len())
                        .map_err(|e| e.to_string())?;
                    writeln!(
                        out,
                        "partition\tleader\taddress\tshard\tepoch\thigh_watermark"
                    )
                    .map_err(|e| e.to_string())?;
                    for p in t.partitions {
                        writeln!(
                            out,
                            "{}\t{}\t{}\t{}\t{}\t{}",
                            p.partition,
                            p.leader_agent_id,
                            p.leader_address,
                            p.shard,
                            p.lease_epoch,
                            p.high_watermark
                        )
                        .map_err(|e| e.to_string())?;
                    }
                }
                TopicCmd::Delete { name } => {
                    admin.delete_topic(&name).await.map_err(s)?;
                    writeln!(out, "deleted topic {name}").map_err(|e| e.to_string())?;
                }
            }
        }
        Command::Produce {
            topic,
            partition,
            key,
            acks,
        } => {
            let producer = Producer::builder([cli.bootstrap.clone()])
                .acks(match acks {
                    AckArg::Durable => Acks::Durable,
                    AckArg::Object => Acks::Object,
                })
                .build()
                .await
                .map_err(s)?;
            let n = producer.partitions(&topic).await.map_err(s)?;
            if let Some(p) = partition {
                if p >= n {
                    return Err(format!(
                        "topic {topic} has {n} partitions; partition {p} does not exist"
                    ));
                }
            }
            let mut pending = Vec::new();
            for line in std::io::stdin().lock().lines() {
                let line = line.map_err(|e| format!("reading stdin: {e}"))?;
                let mut r = ProducerRecord::new(topic.clone(), line.into_bytes());
                if let Some(p) = partition {
                    r = r.partition(p);
                }
                if let Some(k) = &key {
                    r = r.key(k.clone().into_bytes());
                }
                pending.push(producer.send(r));
            }
            let mut last: BTreeMap<u32, u64> = BTreeMap::new();
            let mut first_err = None;
            let total = pending.len();
            let mut failed = 0;
            for f in pending {
                match f.await {
                    Ok(m) => {
                        let e = last.entry(m.partition).or_insert(m.offset);
                        *e = (*e).max(m.offset);
                    }
                    Err(e) => {
                        failed += 1;
                        first_err.get_or_insert(e);
                    }
                }
            }
            producer.close().await.map_err(s)?;
            for (p, o) in &last {
                writeln!(out, "partition {p}: last offset {o}").map_err(|e| e.to_string())?;
            }
            if let Some(e) = first_err {
                return Err(format!("{failed} of {total} records failed: {e}"));
            }
        }
        Command::Consume {
            topic,
            partition,
            from_offset,
            count,
        } => {
            let mut c = Consumer::connect([cli.bootstrap.clone()])
                .await
                .map_err(s)?;
            c.assign([(topic.clone(), partition)]).await.map_err(s)?;
            c.seek(&topic, partition, from_offset);
            let mut printed = 0u64;
            loop {
                let wait = if count.is_some() {
                    Duration::from_secs(1)
                } else {
                    Duration::ZERO
                };
                let recs = c.poll(wait).await.map_err(s)?;
                if recs.is_empty() && count.is_none() {
                    break;
                }
                for r in recs {
                    if count.is_some_and(|n| printed >= n) {
                        break;
                    }
                    out.write_all(&r.value).map_err(|e| e.to_string())?;
                    out.write_all(b"\n").map_err(|e| e.to_string())?;
                    printed += 1;
                }
                if count.is_some_and(|n| printed >= n) {
                    break;
                }
            }
        }
    }
    Ok(())
}
