//! Group members on a bad day, against a real agent process: a member
//! stalled past its session hands out nothing another member now owns, two
//! processes with one instance id do not take turns (the older is fenced
//! for good), and the heartbeat interval a member is told always fits its
//! session several times.

mod common;
#[path = "common/group_rpc.rs"]
mod group_rpc;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use group_rpc::*;
use streamhouse_client::{
    Admin, AutoOffsetReset, Consumer, GroupConsumer, Producer, ProducerRecord,
};

const FLAGS: [&str; 2] = ["--group-min-session-timeout-ms", "500"];

async fn member(addr: &str, group: &str, instance: Option<&str>) -> GroupConsumer {
    let mut b = Consumer::builder([addr.to_string()])
        .group(group)
        .subscribe(["work"])
        .session_timeout(Duration::from_secs(2))
        .auto_commit_interval(Duration::from_millis(200))
        .auto_offset_reset(AutoOffsetReset::Earliest);
    if let Some(i) = instance {
        b = b.instance_id(i);
    }
    b.build().await.expect("group consumer")
}

async fn owns(c: &mut GroupConsumer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while c.assignment().len() != n {
        c.poll(Duration::from_millis(100)).await.expect("poll");
        assert!(Instant::now() < deadline, "owns {:?}", c.assignment());
    }
}

#[tokio::test]
async fn a_heartbeat_interval_is_at_most_a_third_of_the_session() {
    // The agent's interval is its default, 3 s; a member asks for a 1.5 s
    // session (legal): told 3 s, it would miss every session.
    let agent = Agent::start(1, &FLAGS);
    agent.create_topic("work", 1).await;
    let mut c = groups_at(&agent.addr(0)).await;
    let req = pb_beat("often", 1500);
    let r = c.heartbeat(req).await.expect("join").into_inner();
    assert!(
        r.heartbeat_interval_ms <= 500,
        "told to heartbeat every {} ms with a 1500 ms session",
        r.heartbeat_interval_ms
    );
    // A long session keeps the agent's interval.
    let r = c
        .heartbeat(pb_beat("rarely", 45_000))
        .await
        .expect("join")
        .into_inner();
    assert_eq!(r.heartbeat_interval_ms, 3000);
}

fn pb_beat(group: &str, session_ms: u32) -> streamhouse_proto::GroupHeartbeatRequest {
    let mut req = beat(group, &Member::default(), "work");
    req.session_timeout_ms = session_ms;
    req
}

/// The member's own runtime is blocked past its session (as a SIGSTOP
/// would: its heartbeats stop too) while another member takes its
/// partitions; when it runs again, its first poll hands out nothing.
#[tokio::test]
async fn a_member_stalled_past_its_session_hands_out_nothing_it_lost() {
    let agent = Agent::start(1, &FLAGS);
    let admin = Admin::connect(&agent.addr(0)).await.unwrap();
    admin.create_topic("work", 2).await.unwrap();
    let mut stalled = member(&agent.addr(0), "stall", None).await;
    owns(&mut stalled, 2).await;
    // The other member, on a thread and runtime of its own.
    let stop = Arc::new(AtomicBool::new(false));
    let other = {
        let (addr, stop) = (agent.addr(0), stop.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let mut m = member(&addr, "stall", None).await;
                while !stop.load(Ordering::Relaxed) {
                    let _ = m.poll(Duration::from_millis(100)).await;
                }
                let owned = m.assignment();
                let _ = m.close().await;
                owned
            })
        })
    };
    // Records the stalled member would read next.
    let producer = Producer::builder([agent.addr(0)]).build().await.unwrap();
    for i in 0..50u32 {
        producer
            .send(ProducerRecord::new("work", format!("v{i}")).partition(i % 2))
            .await
            .unwrap();
    }
    // Stalled for twice its session: everything here stops, heartbeats too.
    std::thread::sleep(Duration::from_secs(4));
    let first = stalled.poll(Duration::from_millis(200)).await.unwrap();
    assert!(
        first.is_empty(),
        "a member silent past its session handed out {} records of partitions it had lost",
        first.len()
    );
    assert!(
        stalled.assignment().is_empty(),
        "{:?}",
        stalled.assignment()
    );
    stop.store(true, Ordering::Relaxed);
    let other_owned = other.join().unwrap();
    assert_eq!(
        other_owned.len(),
        2,
        "the other member took both partitions"
    );
    stalled.close().await.unwrap();
}

/// Two processes with one group instance id: the newer keeps the place,
/// the older stops with a clear, fatal error instead of taking it back.
#[tokio::test]
async fn the_older_of_two_processes_with_one_instance_id_is_fenced_for_good() {
    let agent = Agent::start(1, &FLAGS);
    let admin = Admin::connect(&agent.addr(0)).await.unwrap();
    admin.create_topic("work", 2).await.unwrap();
    let mut old = member(&agent.addr(0), "static", Some("host-x")).await;
    owns(&mut old, 2).await;
    let mut new = member(&agent.addr(0), "static", Some("host-x")).await;
    owns(&mut new, 2).await;
    let newer_id = new.member_id();
    let deadline = Instant::now() + Duration::from_secs(10);
    let e = loop {
        if let Err(e) = old.poll(Duration::from_millis(100)).await {
            break e;
        }
        new.poll(Duration::from_millis(10)).await.unwrap();
        assert!(
            Instant::now() < deadline,
            "the older process was never fenced"
        );
    };
    assert!(e.to_string().contains("instance id"), "{e}");
    assert!(old.assignment().is_empty());
    // No ping-pong: the newer one keeps its place while the older one
    // keeps polling (and failing).
    let settle = Instant::now() + Duration::from_secs(3);
    while Instant::now() < settle {
        assert!(old.poll(Duration::from_millis(50)).await.is_err());
        new.poll(Duration::from_millis(50)).await.unwrap();
    }
    assert_eq!(new.member_id(), newer_id);
    assert_eq!(new.assignment().len(), 2);
    let d = admin.describe_group("static").await.unwrap();
    assert_eq!(d.members.len(), 1, "{:?}", d.members);
    new.close().await.unwrap();
}

/// Groups without members expire after the offsets retention, the number
/// of groups is bounded, and so is every list and name a request carries.
#[tokio::test]
async fn empty_groups_expire_and_every_list_and_name_is_bounded() {
    let agent = Agent::start(
        1,
        &[
            "--group-min-session-timeout-ms",
            "500",
            "--group-offsets-retention-ms",
            "1500",
            "--group-max-groups",
            "3",
        ],
    );
    let admin = Admin::connect(&agent.addr(0)).await.unwrap();
    admin.create_topic("work", 2).await.unwrap();
    let at: std::collections::BTreeMap<(String, u32), u64> = [(("work".to_string(), 0), 0)].into();
    for g in ["idle-a", "idle-b"] {
        admin.set_group_offsets(g, &at).await.unwrap();
    }
    let mut live = member(&agent.addr(0), "live", None).await;
    owns(&mut live, 2).await;
    // Three groups: a fourth is refused.
    let e = admin
        .set_group_offsets("fourth", &at)
        .await
        .expect_err("a fourth group");
    assert!(e.to_string().contains("--group-max-groups"), "{e}");
    // The idle ones go after their retention; the one with a member stays.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        live.poll(Duration::from_millis(100)).await.unwrap();
        let names: Vec<String> = admin
            .list_groups()
            .await
            .unwrap()
            .into_iter()
            .map(|g| g.group_id)
            .collect();
        if names == ["live"] {
            break;
        }
        assert!(Instant::now() < deadline, "groups left: {names:?}");
    }
    admin.set_group_offsets("fourth", &at).await.unwrap();
    live.close().await.unwrap();
    // Lists and names a request carries are bounded.
    let mut c = groups_at(&agent.addr(0)).await;
    let many = streamhouse_proto::FetchOffsetsRequest {
        group_id: "fourth".into(),
        partitions: vec![streamhouse_proto::TopicPartitions {
            topic: "nope".into(),
            partitions: (0..10_001).collect(),
        }],
    };
    let e = c.fetch_offsets(many).await.expect_err("10,001 partitions");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    let mut req = pb_beat("fourth", 2000);
    req.client_id = "c".repeat(300);
    let e = c
        .heartbeat(req)
        .await
        .expect_err("a client id of 300 bytes");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("client id of 300 bytes"), "{e:?}");
}

/// A group's metrics leave an agent once another agent coordinates it.
#[tokio::test]
async fn group_metrics_leave_an_agent_the_group_moved_away_from() {
    let stores = tempfile::tempdir_in(target_tmp()).unwrap();
    let admin_port = free_ports(1);
    let listen = format!("127.0.0.1:{admin_port}");
    let mut a0 = group_cluster_args(stores.path(), "agent-0");
    a0.extend(["--admin-listen".to_string(), listen]);
    let first = Agent::start(1, &as_strs(&a0));
    let admin = Admin::connect(&first.addr(0)).await.unwrap();
    admin.create_topic("work", 1).await.unwrap();
    let at: std::collections::BTreeMap<(String, u32), u64> = [(("work".to_string(), 0), 0)].into();
    let groups: Vec<String> = (0..12).map(|i| format!("moving-{i}")).collect();
    for g in &groups {
        admin.set_group_offsets(g, &at).await.unwrap();
    }
    let series = |text: &str, g: &str| {
        text.contains(&format!(
            "streamhouse_group_committed_offset{{group=\"{g}\",topic=\"work\",partition=\"0\"}}"
        ))
    };
    let (_, text) = get(admin_port, "/metrics").await;
    assert!(groups.iter().all(|g| series(&text, g)), "{text}");
    // A second agent: some groups move to it.
    let a1 = group_cluster_args(stores.path(), "agent-1");
    let _second = Agent::start(1, &as_strs(&a1));
    let deadline = Instant::now() + Duration::from_secs(20);
    let moved = loop {
        let mut moved = Vec::new();
        for g in &groups {
            if admin.group_coordinator(g).await.unwrap().0 == "agent-1" {
                moved.push(g.clone());
            }
        }
        if !moved.is_empty() {
            break moved;
        }
        assert!(Instant::now() < deadline, "no group moved to agent-1");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let stayed: Vec<&String> = groups.iter().filter(|g| !moved.contains(g)).collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, text) = get(admin_port, "/metrics").await;
        if moved.iter().all(|g| !series(&text, g)) {
            assert!(stayed.iter().all(|g| series(&text, g)), "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "agent-0 still shows groups coordinated by agent-1: {moved:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The stored version of `group`'s row in the agent's SQLite store (every
/// save bumps it).
fn stored_version(agent: &Agent, group: &str) -> i64 {
    let db = rusqlite::Connection::open(agent.data_dir.join("metadata.db")).unwrap();
    db.query_row(
        "SELECT version FROM consumer_groups WHERE group_id = ?1",
        [group],
        |r| r.get(0),
    )
    .unwrap()
}

/// Defect 8: a heartbeat that changes nothing but its member's last-seen
/// time writes nothing (before: every heartbeat rewrote the whole group
/// row); a join is saved before it is answered, and the heartbeat times every
/// quarter of the session, so the stored row stays close behind (and a
/// describe from the coordinator shows the time of the latest heartbeat).
#[tokio::test]
async fn only_changes_and_a_quarter_session_flush_write_the_group_row() {
    let agent = Agent::start(1, &FLAGS);
    agent.create_topic("work", 4).await;
    let mut c = groups_at(&agent.addr(0)).await;
    let mut m1 = Member::default();
    let session = 4_000;
    let beat_of = |m: &Member| {
        let mut b = beat("quiet", m, "work");
        b.session_timeout_ms = session;
        b
    };
    for _ in 0..3 {
        let r = c.heartbeat(beat_of(&m1)).await.unwrap().into_inner();
        apply(&mut m1, r);
    }
    assert_eq!(m1.owned.len(), 4);
    let settled = stored_version(&agent, "quiet");
    let mut last_beat = 0;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        last_beat = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let r = c.heartbeat(beat_of(&m1)).await.unwrap().into_inner();
        apply(&mut m1, r);
    }
    assert_eq!(
        stored_version(&agent, "quiet"),
        settled,
        "10 heartbeats that changed nothing wrote the group row"
    );
    let d = c
        .describe_group(streamhouse_proto::DescribeGroupRequest {
            group_id: "quiet".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        d.members[0].last_heartbeat_ms >= last_beat,
        "describe shows a heartbeat at {} before the last one at {last_beat}",
        d.members[0].last_heartbeat_ms
    );

    // A second member: saved before its join is answered.
    let mut m2 = Member::default();
    let r = c.heartbeat(beat_of(&m2)).await.unwrap().into_inner();
    apply(&mut m2, r);
    let joined = stored_version(&agent, "quiet");
    assert!(joined > settled, "a join was not saved");

    // Steady heartbeats for 2.5 s with a 4 s session: the times are saved
    // every second (a quarter session), not on each of the ~25 rounds.
    let until = Instant::now() + Duration::from_millis(2_500);
    let mut rounds = 0;
    while Instant::now() < until {
        for m in [&mut m1, &mut m2] {
            let r = c.heartbeat(beat_of(m)).await.unwrap().into_inner();
            apply(m, r);
        }
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let saves = stored_version(&agent, "quiet") - joined;
    assert!(
        (1..=8).contains(&saves),
        "{saves} saves in {rounds} rounds of two heartbeats (the hand-over of partitions to the new member counts a few)"
    );
    assert_eq!(m1.owned.len() + m2.owned.len(), 4);
}

/// Defect 10 (second half) and defect 2: lag on the coordinator's
/// `/metrics` for partitions another agent leads too (before: only for
/// its own), and a commit past a partition's high watermark refused with
/// `INVALID_ARGUMENT` naming it, wherever the partition is led (before:
/// stored, and the group later started past the log's end).
#[tokio::test]
async fn lag_and_the_end_check_cover_partitions_another_agent_leads() {
    let stores = tempfile::tempdir_in(target_tmp()).unwrap();
    let ports = [free_ports(1), free_ports(1)];
    let agents: Vec<Agent> = (0..2)
        .map(|i| {
            let mut a = group_cluster_args(stores.path(), &format!("agent-{i}"));
            a.extend([
                "--admin-listen".to_string(),
                format!("127.0.0.1:{}", ports[i]),
            ]);
            Agent::start(1, &as_strs(&a))
        })
        .collect();
    let admin = Admin::connect(&agents[0].addr(0)).await.unwrap();
    admin.create_topic("spread", 6).await.unwrap();
    agents[0]
        .first_partition_led_by("spread", "agent-0", "agent-1")
        .await;
    let leaders = agents[0].leaders("spread").await;
    let producer = Producer::builder([agents[0].addr(0)])
        .build()
        .await
        .unwrap();
    for p in 0..6u32 {
        for i in 0..10 {
            producer
                .send(ProducerRecord::new("spread", format!("r{i}")).partition(p))
                .await
                .unwrap();
        }
    }
    let (coordinator, _) = admin.group_coordinator("lagging").await.unwrap();
    let here = leaders.iter().position(|l| *l == coordinator).unwrap() as u32;
    let there = leaders.iter().position(|l| *l != coordinator).unwrap() as u32;
    let at = |p: u32, o: u64| -> std::collections::BTreeMap<(String, u32), u64> {
        [(("spread".to_string(), p), o)].into()
    };
    for p in [here, there] {
        let e = admin
            .set_group_offsets("lagging", &at(p, 11))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!(
                "offset 11 of spread/{p} is past its high watermark 10"
            )),
            "partition {p} (led by {}): {e}",
            leaders[p as usize]
        );
    }
    admin
        .set_group_offsets("lagging", &at(here, 10))
        .await
        .unwrap();
    admin
        .set_group_offsets("lagging", &at(there, 4))
        .await
        .unwrap();
    let port = ports[coordinator
        .trim_start_matches("agent-")
        .parse::<usize>()
        .unwrap()];
    let lag = |text: &str, p: u32| {
        let key = format!(
            "streamhouse_group_lag{{group=\"lagging\",topic=\"spread\",partition=\"{p}\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&key).map(str::to_owned))
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, text) = get(port, "/metrics").await;
        if let (Some(a), Some(b)) = (lag(&text, here), lag(&text, there)) {
            assert_eq!((a.as_str(), b.as_str()), ("0", "6"), "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no lag for spread/{there}, led by the other agent: {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
