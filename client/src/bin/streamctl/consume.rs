//! `streamctl consume`: records of one or all partitions to stdout, as
//! values, a kcat-style format or JSON lines; follows the topic unless
//! `-e` (exit at the end) or `-c` (exit after N records).

use std::io::Write;
use std::time::Duration;

use streamhouse_client::{AutoOffsetReset, Consumer, Offset, RebalanceListener};

use crate::args::ConsumeArgs;
use crate::format::{json_line, Template};
use crate::Failure;

/// How long one poll waits for new records while following.
const FOLLOW_WAIT: Duration = Duration::from_secs(1);

/// Runs `consume`.
///
/// # Cancellation
/// The command runs until it ends or the process is interrupted.
pub async fn run(
    bootstrap: Vec<String>,
    a: ConsumeArgs,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let topic = a.topic.name().to_owned();
    let template = match &a.format {
        Some(f) => Some(Template::parse(f).map_err(Failure::Usage)?),
        None if a.json => None,
        None => Some(Template::value_lines()),
    };
    if let Some(group) = &a.group {
        return in_group(bootstrap, group, &topic, &a, template.as_ref(), out).await;
    }
    let mut c = Consumer::connect(bootstrap).await?;
    let n = c.partition_count(&topic).await?;
    let partitions: Vec<u32> = if a.partition.is_empty() {
        (0..n).collect()
    } else {
        a.partition.clone()
    };
    c.assign(partitions.iter().map(|p| (topic.clone(), *p)))
        .await?;
    for p in &partitions {
        c.seek_to(&topic, *p, a.offset).await?;
    }
    if a.count == Some(0) {
        return Ok(());
    }
    let mut printed = 0u64;
    let mut buf = Vec::new();
    loop {
        let wait = if a.exit_at_end {
            Duration::ZERO
        } else {
            FOLLOW_WAIT
        };
        let records = c.poll(wait).await?;
        for r in &records {
            match &template {
                Some(t) => t.render(r, &mut buf),
                None => json_line(r, &mut buf),
            }
            printed += 1;
            if a.count.is_some_and(|n| printed >= n) {
                break;
            }
        }
        out.write_all(&buf)?;
        out.flush()?;
        buf.clear();
        if a.count.is_some_and(|n| printed >= n) {
            return Ok(());
        }
        if a.exit_at_end && c.at_end() {
            return Ok(());
        }
    }
}

/// `consume -G`: as a member of `group`, committing what it printed.
async fn in_group(
    bootstrap: Vec<String>,
    group: &str,
    topic: &str,
    a: &ConsumeArgs,
    template: Option<&Template>,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let reset = match a.offset {
        Offset::Beginning => AutoOffsetReset::Earliest,
        Offset::End => AutoOffsetReset::Latest,
        other => {
            return Err(Failure::Usage(format!(
                "with -G, -o is beginning or end (where a partition the group never committed \
                 starts), not {other}"
            )))
        }
    };
    let mut c = Consumer::builder(bootstrap)
        .group(group)
        .subscribe([topic])
        .client_id("streamctl")
        .auto_offset_reset(reset)
        .session_timeout(Duration::from_millis(a.session_timeout_ms))
        .auto_commit_interval(Duration::from_millis(a.commit_interval_ms))
        .listener(Lost(group.to_owned()))
        .build()
        .await?;
    let mut printed = 0u64;
    let mut buf = Vec::new();
    // Interrupted (Ctrl-C, SIGINT): commit what was printed and leave.
    let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
    while a.count != Some(printed) {
        let records = tokio::select! {
            r = c.poll(FOLLOW_WAIT) => r?,
            _ = &mut interrupted => break,
        };
        let mut rest = records.iter();
        for r in rest.by_ref() {
            match template {
                Some(t) => t.render(r, &mut buf),
                None => json_line(r, &mut buf),
            }
            printed += 1;
            if a.count == Some(printed) {
                break;
            }
        }
        // Records fetched past the count are not consumed: the group
        // reads them next.
        let mut first_unprinted = std::collections::BTreeMap::new();
        for r in rest {
            first_unprinted
                .entry((r.topic.clone(), r.partition))
                .or_insert(r.offset);
        }
        for ((t, p), o) in first_unprinted {
            c.seek(&t, p, o);
        }
        out.write_all(&buf)?;
        out.flush()?;
        buf.clear();
    }
    c.commit().await?;
    c.close().await?;
    Ok(())
}

/// Says on stderr when the member was removed from its group (its session
/// timed out, e.g. the process was stopped): what it printed since its last
/// commit will be printed again by whoever owns those partitions now.
struct Lost(String);

impl RebalanceListener for Lost {
    fn on_lost(&mut self, partitions: &[(String, u32)]) {
        eprintln!(
            "streamctl: removed from group {} (session timed out or fenced); {} partitions lost, rejoining",
            self.0,
            partitions.len()
        );
    }
}
