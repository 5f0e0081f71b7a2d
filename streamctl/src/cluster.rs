//! `streamctl cluster`: the live agents (shard addresses, partitions led)
//! and every partition's leader, shard and lease epoch, as `kcat -L` and
//! `rpk cluster info` show a cluster; text or JSON.

use std::collections::BTreeMap;
use std::io::Write;

use streamhouse_client::ClusterInfo;

use crate::args::Format;
use crate::target::Target;
use crate::Failure;

/// Runs `cluster`.
///
/// # Cancellation
/// The command runs to its end; it is not cancelled.
pub async fn run(target: &Target, format: Format, out: &mut impl Write) -> Result<(), Failure> {
    let admin = target.admin().await?;
    let info = admin.metadata().await?;
    if format == Format::Json {
        crate::format::write_json(out, &info)?;
        return Ok(());
    }
    write_text(out, &info)?;
    Ok(())
}

/// Partitions led per agent id.
fn led(info: &ClusterInfo) -> BTreeMap<&str, usize> {
    let mut led = BTreeMap::new();
    for p in info.topics.iter().flat_map(|t| &t.partitions) {
        *led.entry(p.leader_agent_id.as_str()).or_insert(0) += 1;
    }
    led
}

fn write_text(out: &mut impl Write, info: &ClusterInfo) -> std::io::Result<()> {
    let led = led(info);
    writeln!(out, "{} agents", info.agents.len())?;
    writeln!(out, "agent\tshards\tpartitions_led\taddresses")?;
    for a in &info.agents {
        writeln!(
            out,
            "{}\t{}\t{}\t{}",
            a.agent_id,
            a.shard_addresses.len(),
            led.get(a.agent_id.as_str()).copied().unwrap_or(0),
            a.shard_addresses.join(",")
        )?;
    }
    let partitions: usize = info.topics.iter().map(|t| t.partitions.len()).sum();
    writeln!(out, "{} topics, {partitions} partitions", info.topics.len())?;
    writeln!(
        out,
        "topic\tpartition\tleader\taddress\tshard\tepoch\thigh_watermark"
    )?;
    for t in &info.topics {
        for p in &t.partitions {
            let leader = if p.leader_agent_id.is_empty() {
                "-"
            } else {
                &p.leader_agent_id
            };
            writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                t.name,
                p.partition,
                leader,
                p.leader_address,
                p.shard,
                p.lease_epoch,
                p.high_watermark
            )?;
        }
    }
    Ok(())
}
