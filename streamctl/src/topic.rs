//! `streamctl topic`: create, alter (configuration, partitions), list,
//! describe, delete, delete-records; text or JSON.

use std::io::Write;

use streamhouse_client::{ConfigEntry, ConfigSource, TopicInfo};

use crate::args::{Format, TopicCmd};
use crate::target::Target;
use crate::Failure;

/// Runs a `topic` command.
///
/// # Cancellation
/// The command runs to its end; it is not cancelled.
pub async fn run(target: &Target, action: TopicCmd, out: &mut impl Write) -> Result<(), Failure> {
    let admin = target.admin().await?;
    match action {
        TopicCmd::Create {
            name,
            partitions,
            configs,
            if_not_exists,
        } => match admin
            .create_topic_with_configs(&name, partitions, configs)
            .await
        {
            Ok(t) => writeln!(
                out,
                "created topic {} with {} partitions",
                t.name,
                t.partitions.len()
            )?,
            Err(e)
                if if_not_exists && e.code() == Some(streamhouse_client::Code::AlreadyExists) =>
            {
                let t = admin.describe_topic(&name).await?;
                writeln!(
                    out,
                    "topic {} exists with {} partitions",
                    t.name,
                    t.partitions.len()
                )?;
            }
            Err(e) => return Err(e.into()),
        },
        TopicCmd::Alter {
            name,
            configs,
            delete_configs,
            partitions,
        } => {
            if let Some(n) = partitions {
                let t = admin.create_partitions(&name, n).await?;
                writeln!(out, "topic {name} has {} partitions", t.partitions.len())?;
            }
            if !configs.is_empty() || !delete_configs.is_empty() {
                let delete: Vec<&str> = delete_configs.iter().map(String::as_str).collect();
                let now = admin.alter_configs(&name, configs, &delete).await?;
                writeln!(out, "altered topic {name}")?;
                write_configs(out, &now)?;
            }
        }
        TopicCmd::List { format } => {
            let topics = admin.list_topics().await?;
            if format == Format::Json {
                crate::format::write_json(out, &topics)?;
            } else {
                writeln!(out, "topic\tpartitions")?;
                for t in topics {
                    writeln!(out, "{}\t{}", t.name, t.partitions.len())?;
                }
            }
        }
        TopicCmd::Describe { name, format } => {
            let t = admin.describe_topic(&name).await?;
            let configs = admin.describe_configs(&name).await?;
            if format == Format::Json {
                crate::format::write_json(out, &Described { topic: &t, configs })?;
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
                write_configs(out, &configs)?;
            }
        }
        TopicCmd::DeleteRecords {
            name,
            partition,
            offset,
        } => {
            let start = admin.delete_records(&name, partition, offset).await?;
            writeln!(out, "{name}/{partition} now starts at offset {start}")?;
        }
        TopicCmd::Delete { name } => {
            admin.delete_topic(&name).await?;
            writeln!(out, "deleted topic {name}")?;
        }
    }
    Ok(())
}

/// `topic describe --format json`: the topic's fields and its configuration.
#[derive(serde::Serialize)]
struct Described<'a> {
    #[serde(flatten)]
    topic: &'a TopicInfo,
    configs: Vec<ConfigEntry>,
}

/// A topic's configuration as text: `KEY=VALUE` and where it comes from.
fn write_configs(out: &mut impl Write, configs: &[ConfigEntry]) -> std::io::Result<()> {
    writeln!(out, "config\tsource")?;
    for c in configs {
        let source = match c.source {
            ConfigSource::Topic => "topic",
            ConfigSource::Default => "default",
        };
        writeln!(out, "{}={}\t{source}", c.name, c.value)?;
    }
    Ok(())
}
