//! Consumer groups through `streamctl`, with real consumer processes:
//! `consume -G` members in turn, `group` list / describe / reset-offsets /
//! delete, a member SIGKILLed while a producer runs (its partitions move
//! to the others within its session timeout; every record is processed,
//! and duplicates are only what the killed member printed after its last
//! commit), and a member SIGSTOPped past its session (fenced, it rejoins).

//!
//! Each process test runs twice: with the agent's embedded metadata store
//! and with its metadata (groups, offsets, leases) in PostgreSQL.

mod cli;
#[path = "../../agent/tests/common/mod.rs"]
mod common;
mod members;
#[path = "../../agent/tests/common/pg.rs"]
mod pg;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cli::*;
use members::*;
use streamhouse_client::{Producer, ProducerRecord};

const AGENT_FLAGS: [&str; 4] = [
    "--group-heartbeat-ms",
    "200",
    "--group-min-session-timeout-ms",
    "500",
];

/// An agent of `shards` shards with `flags`; its metadata in the
/// PostgreSQL database at `metadata` when given, else embedded.
fn agent(shards: usize, flags: &[&str], metadata: Option<&str>) -> common::Agent {
    let mut all = flags.to_vec();
    if let Some(url) = metadata {
        all.extend(["--metadata", url]);
    }
    common::Agent::start(shards, &all)
}

/// A fresh PostgreSQL database, for a test outside a runtime.
fn postgres(prefix: &str) -> String {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(pg::fresh_database(prefix))
}

#[test]
fn consumer_groups_through_the_cli() {
    through_the_cli(None);
}

#[test]
fn on_postgres_consumer_groups_through_the_cli() {
    through_the_cli(Some(&postgres("cligroups")));
}

/// `consume -G` as two group members in turn, then `group list`,
/// `describe` (with lag), `reset-offsets` (plan, then --execute) and
/// `delete`, and the usage errors.
fn through_the_cli(metadata: Option<&str>) {
    let agent = agent(1, &["--group-heartbeat-ms", "200"], metadata);
    let b = agent.addr(0);
    assert_eq!(
        streamctl(&b, &["topic", "create", "g", "--partitions", "2"], "").0,
        0
    );
    let lines: String = (0..40).map(|i| format!("r{i}\n")).collect();
    assert_eq!(streamctl(&b, &["produce", "g"], &lines).0, 0);
    // The first member prints 25 records and commits exactly those; the
    // second prints the other 15: together each record once.
    let (code, first, err) = streamctl(&b, &["consume", "g", "-G", "cli", "-c", "25"], "");
    assert_eq!(code, 0, "{err}");
    let (code, second, err) = streamctl(&b, &["consume", "g", "-G", "cli", "-c", "15"], "");
    assert_eq!(code, 0, "{err}");
    let mut all: Vec<String> = first
        .lines()
        .chain(second.lines())
        .map(str::to_owned)
        .collect();
    all.sort();
    let mut want: Vec<String> = (0..40).map(|i| format!("r{i}")).collect();
    want.sort();
    assert_eq!(all, want);

    let (code, out, _) = streamctl(&b, &["group", "list"], "");
    assert_eq!(
        (code, out.trim()),
        (0, "group\tstate\tmembers\ncli\tempty\t0")
    );
    let (code, out, err) = streamctl(&b, &["group", "describe", "cli"], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("group cli (empty,"), "{out}");
    let lag: u64 = out
        .lines()
        .skip_while(|l| !l.starts_with("topic\tpartition"))
        .skip(1)
        .map(|l| l.split('\t').nth(4).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(lag, 0, "{out}");
    // More records: lag 10. Reset to the earliest: planned, then applied.
    let more: String = (0..10).map(|i| format!("s{i}\n")).collect();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let before_more = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(streamctl(&b, &["produce", "g"], &more).0, 0);
    let (_, out, _) = streamctl(&b, &["group", "describe", "cli", "--format", "json"], "");
    let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let lag: u64 = j["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["lag"].as_u64().unwrap())
        .sum();
    assert_eq!(lag, 10, "{out}");
    let (code, out, _) = streamctl(
        &b,
        &["group", "reset-offsets", "cli", "-t", "g", "--to-earliest"],
        "",
    );
    assert_eq!(code, 0);
    assert!(out.contains("add --execute"), "{out}");
    let (code, out, err) = streamctl(
        &b,
        &[
            "group",
            "reset-offsets",
            "cli",
            "-t",
            "g",
            "--to-earliest",
            "--execute",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("reset 2 partitions"), "{out}");
    let (code, again, _) = streamctl(&b, &["consume", "g", "-G", "cli", "-c", "50"], "");
    assert_eq!((code, again.lines().count()), (0, 50));
    // Back to a date: the 10 records produced after it, read again.
    let (code, out, err) = streamctl(
        &b,
        &[
            "group",
            "reset-offsets",
            "cli",
            "-t",
            "g",
            "--to-datetime",
            &before_more,
            "--execute",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("reset 2 partitions"), "{out}");
    let (code, again, err) = streamctl(&b, &["consume", "g", "-G", "cli", "-c", "10"], "");
    assert_eq!(code, 0, "{err}");
    let mut again: Vec<&str> = again.lines().collect();
    again.sort();
    assert_eq!(
        again,
        ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"]
    );
    // Usage errors and failures say why.
    let (code, _, err) = streamctl(&b, &["consume", "g", "-G", "cli", "-o", "5"], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("with -G, -o is beginning or end"), "{err}");
    let (code, _, err) = streamctl(&b, &["group", "reset-offsets", "cli", "-t", "g"], "");
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = streamctl(&b, &["group", "describe", "nope"], "");
    assert_eq!(code, 1);
    assert!(err.contains("unknown group nope"), "{err}");
    let (code, out, _) = streamctl(&b, &["group", "delete", "cli"], "");
    assert_eq!((code, out.trim()), (0, "deleted group cli"));
    assert_eq!(
        streamctl(&b, &["group", "list"], "").1.trim(),
        "group\tstate\tmembers"
    );
}

#[tokio::test]
async fn a_killed_member_s_partitions_move_and_every_record_is_processed() {
    killed_member_moves(None).await;
}

#[tokio::test]
async fn on_postgres_a_killed_member_s_partitions_move_and_every_record_is_processed() {
    killed_member_moves(Some(&pg::fresh_database("killedmember").await)).await;
}

async fn killed_member_moves(metadata: Option<&str>) {
    let agent = agent(2, &AGENT_FLAGS, metadata);
    let b = agent.addr(0);
    assert_eq!(
        streamctl(&b, &["topic", "create", "k", "--partitions", "12"], "").0,
        0
    );
    let producer = Producer::builder([b.clone()]).build().await.unwrap();
    let session_ms = 2000;
    let mut ms: Vec<(Proc, Printed)> = (0..3)
        .map(|_| member(&b, "killed", "k", session_ms))
        .collect();
    // Until every member consumes, then a steady stream.
    produce(&producer, "k", "a", 1200, 2000).await;
    let want_a: BTreeSet<String> = (0..1200).map(|i| format!("a{i}")).collect();
    wait_for_all(
        &[&ms[0].1, &ms[1].1, &ms[2].1],
        &want_a,
        Duration::from_secs(20),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while ms.iter().any(|m| values(&m.1).is_empty()) {
        assert!(Instant::now() < deadline, "a member never got partitions");
        produce(&producer, "k", "w", 12, 1000).await;
    }
    let victim_parts: BTreeSet<u32> = ms[0].1.lock().unwrap().iter().map(|x| x.0).collect();
    // SIGKILL member 0 while records flow.
    let background = Producer::builder([b.clone()]).build().await.unwrap();
    let flow = tokio::spawn(async move { produce(&background, "k", "b", 2400, 600).await });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let killed_at = Instant::now();
    ms[0].0.kill().unwrap();
    let _ = ms[0].0.wait();
    flow.await.unwrap();
    let want_b: BTreeSet<String> = (0..2400).map(|i| format!("b{i}")).collect();
    // What the killed member printed (and committed) counts as processed.
    wait_for_all(
        &[&ms[0].1, &ms[1].1, &ms[2].1],
        &want_b,
        Duration::from_secs(20),
    )
    .await;
    // Its partitions were read again by the others within the session
    // timeout (plus a heartbeat round and the poll).
    let first_after: Vec<Duration> = victim_parts
        .iter()
        .filter_map(|p| {
            ms[1..]
                .iter()
                .flat_map(|m| m.1.lock().unwrap().clone())
                .filter(|x| x.0 == *p && x.3 > killed_at && x.2.starts_with('b'))
                .map(|x| x.3 - killed_at)
                .min()
        })
        .collect();
    assert_eq!(
        first_after.len(),
        victim_parts.len(),
        "every partition of the killed member moved"
    );
    let worst = first_after.iter().max().copied().unwrap_or_default();
    assert!(
        worst < Duration::from_millis(session_ms + 2000),
        "took {worst:?}"
    );
    // Duplicates: only records the killed member printed, each once more.
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for m in &ms {
        for v in values(&m.1) {
            *count.entry(v).or_default() += 1;
        }
    }
    let victim: BTreeSet<String> = values(&ms[0].1).into_iter().collect();
    let dups: Vec<&String> = count
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(v, _)| v)
        .collect();
    for d in &dups {
        assert!(
            victim.contains(*d),
            "{d} processed twice but not by the killed member"
        );
        assert_eq!(count[*d], 2, "{d}");
    }
    eprintln!(
        "killed member: {} records printed, {} processed again by the others; partitions moved after {worst:?}",
        victim.len(),
        dups.len()
    );
    for (mut c, _) in ms.into_iter().skip(1) {
        let _ = c.kill();
        let _ = c.wait();
    }
}

#[tokio::test]
async fn a_member_stopped_past_its_session_is_fenced_and_rejoins() {
    stopped_member_rejoins(None).await;
}

#[tokio::test]
async fn on_postgres_a_member_stopped_past_its_session_is_fenced_and_rejoins() {
    stopped_member_rejoins(Some(&pg::fresh_database("stoppedmember").await)).await;
}

async fn stopped_member_rejoins(metadata: Option<&str>) {
    let agent = agent(1, &AGENT_FLAGS, metadata);
    let b = agent.addr(0);
    assert_eq!(
        streamctl(&b, &["topic", "create", "s", "--partitions", "12"], "").0,
        0
    );
    let producer = Producer::builder([b.clone()]).build().await.unwrap();
    let (mut paused, printed, errors) = member_with_errors(&b, "stopped", "s", 1000);
    let (mut other, other_printed) = member(&b, "stopped", "s", 1000);
    produce(&producer, "s", "a", 600, 2000).await;
    let want: BTreeSet<String> = (0..600).map(|i| format!("a{i}")).collect();
    wait_for_all(&[&printed, &other_printed], &want, Duration::from_secs(20)).await;
    // The first member to join may hold every partition until the second's
    // arrival is settled: go on until both read, so the stopped one owns
    // partitions when stopped.
    let deadline = Instant::now() + Duration::from_secs(20);
    while values(&printed).is_empty() || values(&other_printed).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the members never shared the topic"
        );
        produce(&producer, "s", "x", 24, 1000).await;
    }
    let pid = paused.id() as i32;
    let stopped_at = stop_and_drain(&paused, &printed);
    std::thread::sleep(Duration::from_millis(2500));
    // Meanwhile the other member owns everything.
    produce(&producer, "s", "b", 240, 1000).await;
    let want_b: BTreeSet<String> = (0..240).map(|i| format!("b{i}")).collect();
    wait_for_all(&[&other_printed], &want_b, Duration::from_secs(15)).await;
    unsafe { libc::kill(pid, libc::SIGCONT) };
    // Back, it is refused as removed, rejoins and gets partitions again.
    let before = values(&printed).len();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        produce(&producer, "s", "c", 24, 1000).await;
        if values(&printed)
            .iter()
            .skip(before)
            .any(|v| v.starts_with('c'))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the resumed member never got partitions back"
        );
    }
    let want_c: BTreeSet<String> = (0..24).map(|i| format!("c{i}")).collect();
    wait_for_all(
        &[&printed, &other_printed],
        &want_c,
        Duration::from_secs(15),
    )
    .await;
    // A record both printed was the stopped member's before it stopped and
    // not yet committed: the resumed member printed nothing the other had
    // (it dropped its partitions instead of reading on, and a batch a poll
    // gave it before the stop is dropped too, not printed on resuming).
    let mine: BTreeMap<(u32, u64), Instant> = printed
        .lock()
        .unwrap()
        .iter()
        .map(|(p, o, _, at)| ((*p, *o), *at))
        .collect();
    let theirs: BTreeSet<(u32, u64)> = other_printed
        .lock()
        .unwrap()
        .iter()
        .map(|(p, o, _, _)| (*p, *o))
        .collect();
    let twice: Vec<_> = mine.iter().filter(|(k, _)| theirs.contains(*k)).collect();
    for (k, at) in &twice {
        assert!(
            **at < stopped_at,
            "{k:?} printed by the other member, then again by the resumed one {:?} after the stop",
            at.duration_since(stopped_at),
        );
    }
    let _ = paused.kill();
    let _ = paused.wait();
    let stderr = errors.lock().unwrap().clone();
    assert!(
        stderr.contains("removed from group stopped"),
        "no fencing seen: {stderr}"
    );
    eprintln!(
        "stopped member: {} records printed, {} of them again by the other member",
        mine.len(),
        twice.len()
    );
    let _ = other.kill();
    let _ = other.wait();
}

/// `consume -G -e` reads what the group gives it to the end and exits; a
/// member sent SIGTERM (what systemd and Docker send) commits what it
/// printed, leaves at once and exits 0, as on SIGINT.
#[tokio::test]
async fn a_member_ends_cleanly_at_the_end_and_on_sigterm() {
    member_ends_cleanly(None).await;
}

#[tokio::test]
async fn on_postgres_a_member_ends_cleanly_at_the_end_and_on_sigterm() {
    member_ends_cleanly(Some(&pg::fresh_database("endsclean").await)).await;
}

async fn member_ends_cleanly(metadata: Option<&str>) {
    let agent = agent(1, &AGENT_FLAGS, metadata);
    let b = agent.addr(0);
    assert_eq!(
        streamctl(&b, &["topic", "create", "e", "--partitions", "4"], "").0,
        0
    );
    let lines: String = (0..100).map(|i| format!("r{i}\n")).collect();
    assert_eq!(streamctl(&b, &["produce", "e"], &lines).0, 0);
    let (code, out, err) = streamctl(&b, &["consume", "e", "-G", "ends", "-e"], "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 100, "{out}");
    assert_eq!(committed_and_members(&b, "ends"), (100, 0));
    // A member that follows, until SIGTERM.
    let (mut child, printed, errors) = member_with_errors(&b, "ends", "e", 30_000);
    let producer = Producer::builder([b.clone()]).build().await.unwrap();
    for i in 0..40u32 {
        producer
            .send(ProducerRecord::new("e", format!("s{i}")).partition(i % 4))
            .await
            .unwrap();
    }
    let want: BTreeSet<String> = (0..40).map(|i| format!("s{i}")).collect();
    wait_for_all(&[&printed], &want, Duration::from_secs(20)).await;
    // Issue 44: describe names the coordinator, and each member's client
    // id, host and partitions.
    let (code, out, err) = streamctl(&b, &["group", "describe", "ends"], "");
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[1].starts_with("coordinator agent-") && lines[1].ends_with(&format!("({b})")),
        "{out}"
    );
    assert_eq!(
        lines[3], "member\tclient\thost\tinstance\tpartitions",
        "{out}"
    );
    let member: Vec<&str> = lines[4].split('\t').collect();
    assert_eq!(
        member[1..],
        ["streamctl", "127.0.0.1", "-", "e/0,e/1,e/2,e/3"],
        "{out}"
    );
    let (_, json, _) = streamctl(&b, &["group", "describe", "ends", "--format", "json"], "");
    let j: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(j["members"][0]["host"], "127.0.0.1", "{json}");
    assert_eq!(j["coordinator"]["address"], b.as_str(), "{json}");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        status.code(),
        Some(0),
        "{status:?}: {}",
        errors.lock().unwrap()
    );
    // It left (no wait for its 30 s session) and committed what it printed.
    assert_eq!(committed_and_members(&b, "ends"), (140, 0));
}

/// A member the group can never accept ends at once with the reason (it
/// used to print nothing and heartbeat for ever).
#[test]
fn a_member_the_group_refuses_exits_with_the_reason_instead_of_hanging() {
    let agent = common::Agent::start(1, &AGENT_FLAGS);
    let b = agent.addr(0);
    assert_eq!(
        streamctl(&b, &["topic", "create", "r", "--partitions", "2"], "").0,
        0
    );
    let long_group = "g".repeat(300);
    for (args, says) in [
        (
            vec!["consume", "r", "-G", long_group.as_str()],
            "group id of 300 bytes",
        ),
        (
            vec!["consume", "r", "-G", "short", "--session-timeout-ms", "100"],
            "session timeout of 100 ms",
        ),
        (
            vec!["consume", "missing", "-G", "m"],
            "unknown topic missing",
        ),
    ] {
        let started = Instant::now();
        let (code, out, err) = streamctl(&b, &args, "");
        assert_eq!(code, 1, "{args:?}: {out} {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{args:?} took {:?}",
            started.elapsed()
        );
    }
}
