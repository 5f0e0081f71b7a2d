//! `streamctl group`: list, describe (with lag per partition, asked of
//! each partition's leader), delete, reset-offsets; text or JSON.

use std::collections::BTreeMap;
use std::io::Write;

use streamhouse_client::{Admin, Offset, TopicPartition};

use crate::args::{Format, GroupCmd, ResetArgs};
use crate::target::Target;
use crate::Failure;

/// Runs a `group` command.
///
/// # Cancellation
/// The command runs to its end; it is not cancelled.
pub async fn run(target: &Target, action: GroupCmd, out: &mut impl Write) -> Result<(), Failure> {
    let admin = target.admin().await?;
    match action {
        GroupCmd::List { format } => {
            let groups = admin.list_groups().await?;
            if format == Format::Json {
                let rows: Vec<_> = groups
                    .iter()
                    .map(|g| serde_json::json!({"group": g.group_id, "state": g.state, "members": g.members}))
                    .collect();
                crate::format::write_json(out, &rows)?;
            } else {
                writeln!(out, "group\tstate\tmembers")?;
                for g in groups {
                    writeln!(out, "{}\t{}\t{}", g.group_id, g.state, g.members)?;
                }
            }
        }
        GroupCmd::Describe { group, format } => {
            describe(&admin, target, &group, format, out).await?
        }
        GroupCmd::Delete { group } => {
            admin.delete_group(&group).await?;
            writeln!(out, "deleted group {group}")?;
        }
        GroupCmd::ResetOffsets(a) => reset(&admin, target, a, out).await?,
    }
    Ok(())
}

async fn describe(
    admin: &Admin,
    target: &Target,
    group: &str,
    format: Format,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let d = admin.describe_group(group).await?;
    let (coordinator_agent, coordinator_address) = admin.group_coordinator(group).await?;
    let consumer = target.connect_consumer().await?;
    let mut rows = Vec::new();
    for p in &d.partitions {
        let (_, high) = consumer.watermarks(&p.topic, p.partition).await?;
        let lag = high.saturating_sub(p.committed_offset.unwrap_or(0));
        rows.push((p, high, lag));
    }
    if format == Format::Json {
        let members: Vec<_> = d
            .members
            .iter()
            .map(|m| {
                serde_json::json!({
                    "member": m.member_id, "instance": m.group_instance_id, "client": m.client_id,
                    "host": m.client_host,
                    "epoch": m.member_epoch, "topics": m.topics,
                    "assignment": m.assignment.iter().map(|t| serde_json::json!({"topic": t.topic, "partitions": t.partitions})).collect::<Vec<_>>(),
                    "last_heartbeat_ms": m.last_heartbeat_ms, "away": m.away,
                })
            })
            .collect();
        let partitions: Vec<_> = rows
            .iter()
            .map(|(p, high, lag)| {
                serde_json::json!({
                    "topic": p.topic, "partition": p.partition, "committed": p.committed_offset,
                    "high_watermark": high, "lag": lag, "member": p.member_id,
                })
            })
            .collect();
        let j = serde_json::json!({
            "group": d.group_id, "state": d.state, "generation": d.generation,
            "assignor": d.assignor,
            "coordinator": {"agent": coordinator_agent, "address": coordinator_address},
            "members": members, "partitions": partitions,
        });
        crate::format::write_json(out, &j)?;
        return Ok(());
    }
    writeln!(
        out,
        "group {} ({}, generation {}, {}, {} members)",
        d.group_id,
        d.state,
        d.generation,
        d.assignor,
        d.members.len()
    )?;
    writeln!(
        out,
        "coordinator {coordinator_agent} ({coordinator_address})"
    )?;
    writeln!(out)?;
    writeln!(out, "member\tclient\thost\tinstance\tpartitions")?;
    for m in &d.members {
        let owned: Vec<String> = m
            .assignment
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| format!("{}/{p}", t.topic)))
            .collect();
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}",
            m.member_id,
            or_dash(&m.client_id),
            or_dash(&m.client_host),
            or_dash(&m.group_instance_id),
            or_dash(&owned.join(","))
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "topic\tpartition\tcommitted\thigh_watermark\tlag\tmember"
    )?;
    for (p, high, lag) in rows {
        let committed = p
            .committed_offset
            .map_or("-".to_string(), |o| o.to_string());
        let member = or_dash(&p.member_id);
        writeln!(
            out,
            "{}\t{}\t{committed}\t{high}\t{lag}\t{member}",
            p.topic, p.partition
        )?;
    }
    Ok(())
}

/// `s`, or `-` when it is empty (a column with nothing to show).
fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

async fn reset(
    admin: &Admin,
    target: &Target,
    a: ResetArgs,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let mut consumer = target.connect_consumer().await?;
    let n = consumer.partition_count(&a.topic).await?;
    let committed = admin.group_offsets(&a.group).await.unwrap_or_default();
    let mut plan = BTreeMap::new();
    for p in 0..n {
        let (low, high) = consumer.watermarks(&a.topic, p).await?;
        let target = if a.to_earliest {
            low
        } else if a.to_latest {
            high
        } else if let Some(t) = a.to_datetime {
            consumer.seek_to(&a.topic, p, Offset::Timestamp(t)).await?
        } else if let Some(n) = a.shift_by {
            let from = committed
                .get(&TopicPartition::new(&a.topic, p))
                .copied()
                .unwrap_or(low);
            from.saturating_add_signed(n)
        } else if let Some(o) = a.to_offset {
            o
        } else {
            return Err(Failure::Usage("say where to: --to-earliest, --to-latest, --to-datetime, --shift-by or --to-offset".into()));
        };
        plan.insert(
            TopicPartition::new(&a.topic, p),
            target.clamp(low, high.max(low)),
        );
    }
    writeln!(out, "topic\tpartition\tcommitted\tnew")?;
    for (tp, new) in &plan {
        let old = committed.get(tp).map_or("-".to_string(), |o| o.to_string());
        writeln!(out, "{}\t{}\t{old}\t{new}", tp.topic, tp.partition)?;
    }
    if a.execute {
        admin.set_group_offsets(&a.group, &plan).await?;
        writeln!(out, "reset {} partitions of group {}", plan.len(), a.group)?;
    } else {
        writeln!(out, "(a plan only: add --execute to apply it)")?;
    }
    Ok(())
}
