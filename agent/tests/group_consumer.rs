//! The client's group consumer against a real agent process: members
//! joining one after another share a topic with a producer running, a
//! member leaving hands its partitions over, every record is processed,
//! and a new member resumes at the group's committed offsets.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use streamhouse_client::{
    Admin, AutoOffsetReset, Consumer, GroupConsumer, Producer, ProducerRecord, TopicPartition,
};
use streamhouse_proto as pb;

const GROUP_FLAGS: [&str; 4] = [
    "--group-heartbeat-ms",
    "200",
    "--group-min-session-timeout-ms",
    "500",
];

async fn member(addr: &str, group: &str, topic: &str) -> GroupConsumer {
    Consumer::builder([addr.to_string()])
        .group(group)
        .subscribe([topic])
        .session_timeout(Duration::from_secs(3))
        .auto_commit_interval(Duration::from_millis(200))
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .build()
        .await
        .expect("group consumer")
}

/// Values seen, per member.
type Seen = Arc<Mutex<Vec<BTreeSet<String>>>>;

/// Polls `c` until `stop`, recording values under `slot`.
fn run(
    mut c: GroupConsumer,
    seen: Seen,
    slot: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<GroupConsumer> {
    tokio::spawn(async move {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            match c.poll(Duration::from_millis(100)).await {
                Ok(rs) => {
                    let mut s = seen.lock().unwrap();
                    for r in rs {
                        s[slot].insert(String::from_utf8_lossy(&r.value).into_owned());
                    }
                }
                Err(e) => eprintln!("poll: {e}"),
            }
        }
        c
    })
}

/// Waits until the coordinator describes `group` as stable with members
/// owning `sizes` partitions.
async fn settled(agent: &Agent, group: &str, sizes: &[usize]) {
    let mut groups = pb::group_service_client::GroupServiceClient::new(agent.channel(0).await);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        // Unknown until its first member's first heartbeat.
        let d = match groups
            .describe_group(pb::DescribeGroupRequest {
                group_id: group.into(),
            })
            .await
        {
            Ok(d) => d.into_inner(),
            Err(e) if e.code() == tonic::Code::NotFound => Default::default(),
            Err(e) => panic!("describe: {e:?}"),
        };
        let now: Vec<usize> = d
            .members
            .iter()
            .map(|m| m.assignment.iter().map(|t| t.partitions.len()).sum())
            .collect();
        if d.state == "stable" && now == sizes {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {} {now:?}, want {sizes:?}",
            d.state
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn members_share_a_topic_and_every_record_is_processed() {
    let agent = Agent::start(2, &GROUP_FLAGS);
    let admin = Admin::connect(&agent.addr(0)).await.unwrap();
    admin.create_topic("events", 12).await.unwrap();
    let producer = Producer::builder([agent.addr(0)]).build().await.unwrap();
    let seen: Seen = Arc::new(Mutex::new(vec![BTreeSet::new(); 3]));
    let stops: Vec<_> = (0..3)
        .map(|_| Arc::new(std::sync::atomic::AtomicBool::new(false)))
        .collect();
    let mut tasks = Vec::new();
    let total = 3000;
    let mut sent = 0;
    for (slot, stop) in stops.iter().enumerate() {
        let c = member(&agent.addr(0), "workers", "events").await;
        tasks.push(run(c, seen.clone(), slot, stop.clone()));
        // Records keep flowing while members join.
        let mut acks = Vec::new();
        for _ in 0..total / 3 {
            acks.push(producer.send(ProducerRecord::new("events", format!("v{sent}"))));
            sent += 1;
        }
        for a in futures::future::join_all(acks).await {
            a.expect("send");
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    // Every partition is owned by exactly one member once the group settles.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let all: usize = seen.lock().unwrap().iter().map(BTreeSet::len).sum();
        let union: BTreeSet<String> = seen.lock().unwrap().iter().flatten().cloned().collect();
        if union.len() == total {
            assert!(all >= total);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {total} records processed",
            union.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The coordinator's view: three members of 4 partitions each, settled.
    settled(&agent, "workers", &[4, 4, 4]).await;
    // The first member leaves: its partitions go to the others, and what
    // is produced after is processed by them.
    stops[0].store(true, std::sync::atomic::Ordering::Relaxed);
    let first = tasks.remove(0).await.unwrap();
    let had = first.assignment();
    assert!(!had.is_empty(), "the first member owned partitions");
    first.close().await.expect("close");
    let acks: Vec<_> = (0..300)
        .map(|i| producer.send(ProducerRecord::new("events", format!("after{i}"))))
        .collect();
    for a in futures::future::join_all(acks).await {
        a.expect("send");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let after = seen.lock().unwrap()[1..]
            .iter()
            .flatten()
            .filter(|v| v.starts_with("after"))
            .collect::<BTreeSet<_>>()
            .len();
        if after == 300 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{after} of 300 records after the leave"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    settled(&agent, "workers", &[6, 6]).await;
    for s in &stops {
        s.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let mut owners: BTreeMap<TopicPartition, usize> = BTreeMap::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let mut c = t.await.unwrap();
        // The coordinator told it; the member applies it at its next poll.
        let deadline = Instant::now() + Duration::from_secs(5);
        while c.assignment().len() != 6 {
            c.poll(Duration::from_millis(50)).await.expect("poll");
            assert!(Instant::now() < deadline, "{:?}", c.assignment());
        }
        for tp in c.assignment() {
            assert!(owners.insert(tp.clone(), i).is_none(), "{tp:?} owned twice");
        }
        c.close().await.expect("close");
    }
    assert_eq!(
        owners.len(),
        12,
        "the two members own every partition: {owners:?}"
    );
}

#[tokio::test]
async fn a_new_member_resumes_at_the_committed_offsets() {
    let agent = Agent::start(1, &GROUP_FLAGS);
    let admin = Admin::connect(&agent.addr(0)).await.unwrap();
    admin.create_topic("jobs", 2).await.unwrap();
    let producer = Producer::builder([agent.addr(0)]).build().await.unwrap();
    for i in 0..100 {
        producer
            .send(ProducerRecord::new("jobs", format!("a{i}")).partition(i % 2))
            .await
            .unwrap();
    }
    let mut a = member(&agent.addr(0), "resume", "jobs").await;
    let mut got = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < 100 {
        for r in a.poll(Duration::from_millis(200)).await.unwrap() {
            got.insert(String::from_utf8_lossy(&r.value).into_owned());
        }
        assert!(Instant::now() < deadline, "{} of 100", got.len());
    }
    a.commit().await.expect("commit");
    a.close().await.expect("close");
    for i in 0..10 {
        producer
            .send(ProducerRecord::new("jobs", format!("b{i}")).partition(i % 2))
            .await
            .unwrap();
    }
    // A fresh member reads only what came after the commit.
    let mut b = member(&agent.addr(0), "resume", "jobs").await;
    let mut later = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while later.len() < 10 {
        for r in b.poll(Duration::from_millis(200)).await.unwrap() {
            let v = String::from_utf8_lossy(&r.value).into_owned();
            assert!(v.starts_with('b'), "{v} was committed before");
            later.insert(v);
        }
        assert!(Instant::now() < deadline, "{} of 10", later.len());
    }
    let committed = b
        .committed(&[
            TopicPartition::new("jobs", 0),
            TopicPartition::new("jobs", 1),
        ])
        .await
        .unwrap();
    assert_eq!(committed.values().sum::<u64>(), 100, "{committed:?}");
    b.close().await.unwrap();
}

/// (partition, when) of every record a member handed out.
type Reads = Arc<Mutex<Vec<(u32, Instant)>>>;

fn run_timed(
    mut c: GroupConsumer,
    reads: Reads,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(rs) = c.poll(Duration::from_millis(50)).await {
                let now = Instant::now();
                reads
                    .lock()
                    .unwrap()
                    .extend(rs.iter().map(|r| (r.partition, now)));
            }
        }
        let _ = c.close().await;
    })
}

#[tokio::test]
async fn a_joining_member_takes_its_share_while_the_others_keep_reading() {
    // Heartbeats a second apart: the hand-over takes a few of them, long
    // enough that a pause of the kept partitions would show.
    let agent = Agent::start(
        2,
        &[
            "--group-heartbeat-ms",
            "1000",
            "--group-min-session-timeout-ms",
            "500",
        ],
    );
    let admin = Admin::connect(&agent.addr(0)).await.unwrap();
    admin.create_topic("steady", 12).await.unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A producer at about 2,400 records/s over the 12 partitions.
    let producer = Producer::builder([agent.addr(0)]).build().await.unwrap();
    let stop_p = stop.clone();
    let flow = tokio::spawn(async move {
        let mut i = 0u64;
        while !stop_p.load(std::sync::atomic::Ordering::Relaxed) {
            let acks: Vec<_> = (0..24)
                .map(|k| {
                    producer.send(
                        ProducerRecord::new("steady", format!("v{}", i + k))
                            .partition(((i + k) % 12) as u32),
                    )
                })
                .collect();
            i += 24;
            for a in futures::future::join_all(acks).await {
                a.expect("send");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let reads: Vec<Reads> = (0..3).map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
    let mut tasks = Vec::new();
    for r in reads.iter().take(2) {
        let c = member(&agent.addr(0), "steady", "steady").await;
        tasks.push(run_timed(c, r.clone(), stop.clone()));
    }
    settled(&agent, "steady", &[6, 6]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let joined = Instant::now();
    let c = member(&agent.addr(0), "steady", "steady").await;
    tasks.push(run_timed(c, reads[2].clone(), stop.clone()));
    settled(&agent, "steady", &[4, 4, 4]).await;
    let stable = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    flow.await.unwrap();
    // The partitions each old member kept: read before the join and after
    // the group settled. Over the rebalance they kept flowing: records
    // read, and no gap as long as half a heartbeat round.
    let mut during = 0;
    for r in reads.iter().take(2) {
        let r = r.lock().unwrap();
        let before: BTreeSet<u32> = r.iter().filter(|x| x.1 < joined).map(|x| x.0).collect();
        let after: BTreeSet<u32> = r.iter().filter(|x| x.1 > stable).map(|x| x.0).collect();
        let kept: BTreeSet<u32> = before.intersection(&after).copied().collect();
        assert_eq!(
            kept.len(),
            4,
            "each old member keeps 4 of its 6: {before:?} {after:?}"
        );
        for p in &kept {
            let times: Vec<Instant> = r
                .iter()
                .filter(|x| x.0 == *p && x.1 >= joined && x.1 <= stable)
                .map(|x| x.1)
                .collect();
            during += times.len();
            let mut last = joined;
            for t in times.iter().copied().chain([stable]) {
                assert!(
                    t - last < Duration::from_millis(500),
                    "partition {p} paused {:?} during the rebalance",
                    t - last
                );
                last = t;
            }
        }
    }
    assert!(during > 0);
    eprintln!(
        "rebalance took {:?}; the 8 kept partitions yielded {during} records meanwhile",
        stable - joined
    );
}

#[tokio::test]
async fn a_member_keeps_its_place_when_the_coordinator_agent_dies() {
    let stores = tempfile::tempdir_in(target_tmp()).unwrap();
    let args = |id: &str| group_cluster_args(stores.path(), id);
    let (a0, a1) = (args("agent-0"), args("agent-1"));
    let mut agents = [
        Agent::start(1, &as_strs(&a0)),
        Agent::start(1, &as_strs(&a1)),
    ];
    let admin = Admin::connect(&agents[0].addr(0)).await.unwrap();
    admin.create_topic("moves", 6).await.unwrap();
    let bootstrap = vec![agents[0].addr(0), agents[1].addr(0)];
    let mut c = Consumer::builder(bootstrap.clone())
        .group("survives")
        .subscribe(["moves"])
        .session_timeout(Duration::from_secs(8))
        .auto_commit_interval(Duration::from_millis(200))
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .build()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while c.assignment().len() != 6 {
        c.poll(Duration::from_millis(100)).await.unwrap();
        assert!(Instant::now() < deadline, "{:?}", c.assignment());
    }
    let member = c.member_id();
    let (coordinator, _) = admin.group_coordinator("survives").await.unwrap();
    let dead = usize::from(coordinator != "agent-0");
    agents[dead].kill9();
    // The producer rides out the move of the dead agent's partitions.
    let producer = Producer::builder(bootstrap)
        .retries(100)
        .delivery_timeout(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    let acks: Vec<_> = (0..60)
        .map(|i| producer.send(ProducerRecord::new("moves", format!("m{i}")).partition(i % 6)))
        .collect();
    for a in futures::future::join_all(acks).await {
        a.expect("send after the kill");
    }
    let mut got = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 60 {
        match c.poll(Duration::from_millis(200)).await {
            Ok(rs) => got.extend(
                rs.into_iter()
                    .map(|r| String::from_utf8_lossy(&r.value).into_owned()),
            ),
            Err(e) => eprintln!("poll: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "{} of 60 after the coordinator died",
            got.len()
        );
    }
    // The survivor takes the group over (once it takes the dead agent for
    // dead); the member heartbeats there, at its place.
    let survivor = Admin::connect(&agents[1 - dead].addr(0)).await.unwrap();
    let alive = if dead == 0 { "agent-1" } else { "agent-0" };
    let deadline = Instant::now() + Duration::from_secs(15);
    while survivor
        .group_coordinator("survives")
        .await
        .map(|c| c.0)
        .ok()
        .as_deref()
        != Some(alive)
    {
        c.poll(Duration::from_millis(100)).await.ok();
        assert!(
            Instant::now() < deadline,
            "the group never moved to {alive}"
        );
    }
    let moved_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let settle = Instant::now() + Duration::from_secs(2);
    while Instant::now() < settle {
        c.poll(Duration::from_millis(100)).await.ok();
    }
    assert_eq!(
        c.member_id(),
        member,
        "the member kept its place: no rejoin"
    );
    assert_eq!(c.assignment().len(), 6);
    let d = survivor.describe_group("survives").await.unwrap();
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].member_id, member);
    assert!(
        d.members[0].last_heartbeat_ms > moved_ms,
        "its heartbeats reach the new coordinator"
    );
    // Commits go there too.
    c.close().await.expect("the final commit");
}

#[tokio::test]
async fn a_failed_async_commit_is_sent_again_by_the_next_commit() {
    let mut agent = Agent::start(1, &GROUP_FLAGS);
    let admin = Admin::connect(&agent.addr(0)).await.unwrap();
    admin.create_topic("again", 1).await.unwrap();
    let producer = Producer::builder([agent.addr(0)]).build().await.unwrap();
    let acks: Vec<_> = (0..10)
        .map(|i| producer.send(ProducerRecord::new("again", format!("a{i}"))))
        .collect();
    for a in futures::future::join_all(acks).await {
        a.unwrap();
    }
    producer.close().await.unwrap();
    let mut c = Consumer::builder([agent.addr(0)])
        .group("again")
        .subscribe(["again"])
        .session_timeout(Duration::from_secs(30))
        .auto_commit(false)
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .build()
        .await
        .unwrap();
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while got < 10 {
        got += c.poll(Duration::from_millis(100)).await.unwrap().len();
        assert!(Instant::now() < deadline);
    }
    // The agent is down: the asynchronous commit fails.
    agent.kill9();
    assert!(c.commit_async().await.unwrap().is_err());
    agent.spawn();
    // Once it is back, the next commit stores the positions.
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(e) = c.commit().await {
        assert!(Instant::now() < deadline, "{e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let admin = Admin::connect(&agent.addr(0)).await.unwrap();
    let offsets = admin.group_offsets("again").await.unwrap();
    assert_eq!(
        offsets.get(&TopicPartition::new("again", 0)),
        Some(&10),
        "{offsets:?}"
    );
    c.close().await.unwrap();
}
