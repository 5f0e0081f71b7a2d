//! `streamctl consume`: records of one or all partitions to stdout, as
//! values, a kcat-style format or JSON lines; follows the topic unless
//! `-e` (exit at the end) or `-c` (exit after N records). SIGINT and
//! SIGTERM end it cleanly with status 0 (a group member commits what it
//! printed and leaves first).

use std::io::Write;
use std::time::Duration;

use streamhouse_client::{
    AutoOffsetReset, ConsumerRecord, GroupConsumer, Offset, RebalanceListener, TopicPartition,
};

use crate::args::ConsumeArgs;
use crate::format::{json_line, Template};
use crate::target::Target;
use crate::Failure;

/// How long one poll waits for new records while following.
const FOLLOW_WAIT: Duration = Duration::from_secs(1);

/// Pause after a poll error a group member goes on after.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// How long one poll of a group member waits with `-e` (its partitions
/// may still be on their way).
const TO_END_WAIT: Duration = Duration::from_millis(100);

/// Resolves when the process is asked to stop: SIGINT (Ctrl-C) or SIGTERM
/// (what systemd, Docker and Kubernetes send). Never resolves when the
/// handlers cannot be installed.
async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// Runs `consume`.
///
/// # Cancellation
/// The command runs until it ends or the process is interrupted.
pub async fn run(target: &Target, a: ConsumeArgs, out: &mut impl Write) -> Result<(), Failure> {
    let topic = a.topic.name().to_owned();
    let template = match &a.format {
        Some(f) => Some(Template::parse(f).map_err(Failure::Usage)?),
        None if a.json => None,
        None => Some(Template::value_lines()),
    };
    if let Some(group) = &a.group {
        return in_group(target, group, &topic, &a, template.as_ref(), out).await;
    }
    let mut c = target
        .consumer()
        .read_level(a.read_level.into())
        .build()
        .await?;
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
    let mut stop = std::pin::pin!(stop_signal());
    loop {
        let wait = if a.exit_at_end {
            Duration::ZERO
        } else {
            FOLLOW_WAIT
        };
        let records = tokio::select! {
            r = c.poll(wait) => r?,
            _ = &mut stop => return Ok(()),
        };
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
    target: &Target,
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
    // An unknown topic is an error here, as without -G (a library member
    // would wait for it to be created).
    target
        .connect_consumer()
        .await?
        .partition_count(topic)
        .await?;
    let mut c = target
        .consumer()
        .read_level(a.read_level.into())
        .group(group)
        .subscribe([topic])
        .client_id("streamctl")
        .auto_offset_reset(reset)
        .session_timeout(Duration::from_millis(a.session_timeout_ms))
        .auto_commit_interval(Duration::from_millis(a.commit_interval_ms))
        .listener(Lost(group.to_owned()))
        .build()
        .await?;
    let printed = print_as_member(&mut c, a, template, out).await;
    // Whatever ended it (the count, the end, a signal, an error): commit
    // what was printed and leave, so the partitions move at once.
    let commit = c.commit().await;
    let close = c.close().await;
    printed?;
    commit?;
    close?;
    Ok(())
}

/// Prints the member's records until `-c`, `-e`, SIGINT or SIGTERM says
/// to stop, or a poll fails.
async fn print_as_member(
    c: &mut GroupConsumer,
    a: &ConsumeArgs,
    template: Option<&Template>,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let wait = if a.exit_at_end {
        TO_END_WAIT
    } else {
        FOLLOW_WAIT
    };
    let mut printed = 0u64;
    let mut buf = Vec::new();
    let mut stop = std::pin::pin!(stop_signal());
    while a.count != Some(printed) {
        let polled = tokio::select! {
            r = c.poll(wait) => r,
            _ = &mut stop => return Ok(()),
        };
        let records = match polled {
            Ok(rs) => rs,
            Err(e) if gives_up(&e) => return Err(e.into()),
            Err(e) => {
                // E.g. a partition moving between agents or a topic just
                // deleted: the member goes on, as the group does.
                eprintln!("streamctl: {e} (going on)");
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        let mut taken = 0;
        for r in &records {
            match template {
                Some(t) => t.render(r, &mut buf),
                None => json_line(r, &mut buf),
            }
            printed += 1;
            taken += 1;
            if a.count == Some(printed) {
                break;
            }
        }
        // Records fetched past the count are not consumed: the group
        // reads them next.
        unconsume(c, &records[taken..]);
        if c.membership_expired() {
            // Stopped (or cut off) since the poll for longer than the
            // session: these partitions may be another member's now, which
            // reads them from the committed offsets. Not printed.
            unconsume(c, &records[..taken]);
            printed -= taken as u64;
            buf.clear();
            continue;
        }
        if let Err(e) = out.write_all(&buf).and_then(|()| out.flush()) {
            // Not printed (stdout closed or failing): not committed either.
            unconsume(c, &records[..taken]);
            return Err(e.into());
        }
        buf.clear();
        if a.exit_at_end && c.at_end() {
            return Ok(());
        }
    }
    Ok(())
}

/// Whether a group member's poll error ends `consume -G` (the group
/// refuses the member for good, or its settings are wrong); others pass.
fn gives_up(e: &streamhouse_client::Error) -> bool {
    matches!(e, streamhouse_client::Error::Config(_))
        || matches!(
            e.code(),
            Some(
                streamhouse_client::Code::AlreadyExists | streamhouse_client::Code::InvalidArgument
            )
        )
}

/// Puts `records` back: each partition's position goes back to its first
/// one there, so they are neither committed nor lost.
fn unconsume(c: &mut GroupConsumer, records: &[ConsumerRecord]) {
    let mut first = std::collections::BTreeMap::new();
    for r in records {
        first
            .entry((r.topic.clone(), r.partition))
            .or_insert(r.offset);
    }
    for ((t, p), o) in first {
        c.seek(&t, p, o);
    }
}

/// Says on stderr when the member was removed from its group (its session
/// timed out, e.g. the process was stopped): what it printed since its last
/// commit will be printed again by whoever owns those partitions now.
struct Lost(String);

impl RebalanceListener for Lost {
    fn on_lost(&mut self, partitions: &[TopicPartition]) {
        eprintln!(
            "streamctl: removed from group {} (session timed out or fenced); {} partitions lost, rejoining",
            self.0,
            partitions.len()
        );
    }
}
