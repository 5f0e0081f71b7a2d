//! `streamctl topic`: create, list, describe, delete; text or JSON.

use std::io::Write;

use streamhouse_client::Admin;

use crate::args::{Format, TopicCmd};
use crate::Failure;

/// Runs a `topic` command.
///
/// # Cancellation
/// The command runs to its end; it is not cancelled.
pub async fn run(
    bootstrap: Vec<String>,
    action: TopicCmd,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let admin = Admin::connect(bootstrap).await?;
    match action {
        TopicCmd::Create { name, partitions } => {
            let t = admin.create_topic(&name, partitions).await?;
            writeln!(
                out,
                "created topic {} with {} partitions",
                t.name,
                t.partitions.len()
            )?;
        }
        TopicCmd::List { format } => {
            let topics = admin.list_topics().await?;
            if format == Format::Json {
                serde_json::to_writer(&mut *out, &topics)?;
                writeln!(out)?;
            } else {
                for t in topics {
                    writeln!(out, "{}\t{}", t.name, t.partitions.len())?;
                }
            }
        }
        TopicCmd::Describe { name, format } => {
            let t = admin.describe_topic(&name).await?;
            if format == Format::Json {
                serde_json::to_writer(&mut *out, &t)?;
                writeln!(out)?;
            } else {
                writeln!(out, "topic {} ({} partitions)", t.name, t.partitions.len())?;
                writeln!(
                    out,
                    "partition\tleader\taddress\tshard\tepoch\thigh_watermark"
                )?;
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
                    )?;
                }
            }
        }
        TopicCmd::Delete { name } => {
            admin.delete_topic(&name).await?;
            writeln!(out, "deleted topic {name}")?;
        }
    }
    Ok(())
}
