//! Several agents sharing one metadata store and one S3 bucket (moto):
//! partitions spread across them, a SIGKILLed agent's partitions are taken
//! over once their leases expire, a restarted agent keeps its leases and
//! its durable data, a SIGSTOPped agent is fenced, a joining agent takes
//! only its share. Every acknowledged record is read back exactly once, in
//! send order per partition.

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use common::*;
use streamhouse_client::{Acks, Admin, Consumer, Producer, ProducerRecord};

const PARTITIONS: u32 = 12;

/// Agents on one shared SQLite file and one S3 prefix, with short leases.
struct Cluster {
    agents: Vec<Agent>,
    args: Vec<String>,
    _meta: tempfile::TempDir,
}

impl Cluster {
    fn start(n: usize) -> Cluster {
        Cluster::start_ttl(n, 2000)
    }

    fn start_ttl(n: usize, ttl_ms: u64) -> Cluster {
        Cluster::start_aged(n, ttl_ms, 500)
    }

    /// `segment_age_ms`: how long a WAL segment stays open before it is
    /// sealed and shipped.
    fn start_aged(n: usize, ttl_ms: u64, segment_age_ms: u64) -> Cluster {
        let meta = tempfile::tempdir_in(target_tmp()).unwrap();
        let url = format!("sqlite://{}", meta.path().join("meta.db").display());
        Cluster::start_full(n, url, meta, ttl_ms, segment_age_ms)
    }

    fn start_with(n: usize, metadata: String, meta: tempfile::TempDir) -> Cluster {
        Cluster::start_full(n, metadata, meta, 2000, 500)
    }

    fn start_full(
        n: usize,
        metadata: String,
        meta: tempfile::TempDir,
        ttl_ms: u64,
        segment_age_ms: u64,
    ) -> Cluster {
        let (endpoint, bucket) = s3_server();
        let args = vec![
            "--metadata".to_string(),
            metadata,
            "--object-store".into(),
            format!(
                "s3://{bucket}/{}?endpoint={endpoint}&region=us-east-1",
                unique("failover")
            ),
            "--lease-ttl-ms".into(),
            ttl_ms.to_string(),
            "--heartbeat-ms".into(),
            "200".into(),
            "--agent-timeout-ms".into(),
            "1000".into(),
            "--segment-age-ms".into(),
            segment_age_ms.to_string(),
        ];
        let mut c = Cluster {
            agents: Vec::new(),
            args,
            _meta: meta,
        };
        for _ in 0..n {
            c.add();
        }
        c
    }

    fn add(&mut self) {
        let i = self.agents.len();
        let mut args = self.args.clone();
        args.extend(["--agent-id".into(), format!("agent-{i}")]);
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        self.agents.push(Agent::start(1, &a));
    }

    fn addresses(&self) -> Vec<String> {
        self.agents
            .iter()
            .filter(|a| a.child.is_some())
            .map(|a| a.addr(0))
            .collect()
    }

    /// An admin client on the first live agent that answers.
    async fn admin(&self) -> Admin {
        for a in self.addresses() {
            if let Ok(admin) = Admin::connect(&a).await {
                return admin;
            }
        }
        panic!("no agent answers");
    }

    /// Leader agent id of every partition, once all have a live leader and
    /// `want` agents lead some.
    async fn settled(&self, topic: &str, want: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let admin = self.admin().await;
            // Bounded: an agent busy with a hung metadata call must not
            // hang the test.
            let described =
                tokio::time::timeout(Duration::from_secs(5), admin.describe_topic(topic)).await;
            if let Ok(Ok(t)) = described {
                let leaders: Vec<String> = t
                    .partitions
                    .iter()
                    .map(|p| p.leader_agent_id.clone())
                    .collect();
                let distinct: HashSet<&String> = leaders.iter().collect();
                if leaders.iter().all(|l| !l.is_empty()) && distinct.len() == want {
                    return leaders;
                }
            }
            assert!(
                Instant::now() < deadline,
                "partitions never settled on {want} agents"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn producer(c: &Cluster, acks: Acks) -> Producer {
    Producer::builder(c.addresses())
        .acks(acks)
        .retries(10_000)
        .delivery_timeout(Duration::from_secs(120))
        .request_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap()
}

/// Sends `n` records round-robin over the partitions (value = sequence
/// number); calls `midway` once half are acknowledged. Returns what was
/// acknowledged per partition: (offset, sequence number).
async fn run(
    producer: &Producer,
    topic: &str,
    n: u32,
    midway: impl FnOnce(),
) -> BTreeMap<u32, Vec<(u64, u32)>> {
    let mut futs = Vec::with_capacity(n as usize);
    let mut midway = Some(midway);
    let mut acked: BTreeMap<u32, Vec<(u64, u32)>> = BTreeMap::new();
    for i in 0..n {
        futs.push((
            i,
            producer.send(ProducerRecord::new(topic, format!("{i:08}")).partition(i % PARTITIONS)),
        ));
        if i == n / 2 {
            // Let the first half be acknowledged, then strike.
            for (j, f) in futs.drain(..) {
                let m = f.await.expect("no error reaches the caller");
                acked.entry(m.partition).or_default().push((m.offset, j));
            }
            if let Some(f) = midway.take() {
                f();
            }
        }
    }
    for (j, f) in futs {
        let m = f.await.expect("no error reaches the caller");
        acked.entry(m.partition).or_default().push((m.offset, j));
    }
    acked
}

/// Reads every partition and checks: each acknowledged record exactly once,
/// at its acknowledged offset, in send order.
async fn verify(c: &Cluster, topic: &str, acked: &BTreeMap<u32, Vec<(u64, u32)>>) {
    for (p, want) in acked {
        let mut consumer = Consumer::connect(c.addresses()).await.unwrap();
        consumer.assign([(topic.to_owned(), *p)]).await.unwrap();
        let need = want.iter().map(|(o, _)| o + 1).max().unwrap_or(0);
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while (got.len() as u64) < need {
            assert!(
                Instant::now() < deadline,
                "partition {p}: read {} of {need}",
                got.len()
            );
            got.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
        }
        let mut seen = HashSet::new();
        let mut last = None;
        for (i, r) in got.iter().enumerate() {
            assert_eq!(r.offset, i as u64, "partition {p}: offsets are dense");
            let seq: u32 = std::str::from_utf8(&r.value).unwrap().parse().unwrap();
            assert!(
                seen.insert(seq),
                "partition {p}: record {seq} appears twice"
            );
            assert_eq!(seq % PARTITIONS, *p);
            if let Some(l) = last {
                assert!(seq > l, "partition {p}: {seq} after {l}: out of order");
            }
            last = Some(seq);
        }
        for (offset, seq) in want {
            let r = &got[*offset as usize];
            assert_eq!(
                std::str::from_utf8(&r.value).unwrap(),
                format!("{seq:08}"),
                "partition {p} offset {offset}"
            );
        }
    }
}

#[tokio::test]
async fn sigkill_with_ack_object_loses_and_duplicates_nothing() {
    let mut c = Cluster::start(3);
    let admin = c.admin().await;
    admin.create_topic("fo", PARTITIONS).await.unwrap();
    let leaders = c.settled("fo", 3).await;
    let p = producer(&c, Acks::Object).await;
    let victim = 1;
    let killed_at = std::sync::Arc::new(parking_lot::Mutex::new(None));
    let k = killed_at.clone();
    let pid = c.agents[victim].pid();
    let acked = run(&p, "fo", 1_000_000, move || {
        unsafe { libc::kill(pid, libc::SIGKILL) };
        *k.lock() = Some(Instant::now());
    })
    .await;
    p.close().await.unwrap();
    c.agents[victim].kill9();
    let moved = leaders
        .iter()
        .filter(|l| **l == format!("agent-{victim}"))
        .count();
    assert!(moved > 0, "the victim led some partitions");
    let total: usize = acked.values().map(Vec::len).sum();
    assert_eq!(total, 1_000_000);
    verify(&c, "fo", &acked).await;
    let after = c.settled("fo", 2).await;
    assert!(!after.contains(&format!("agent-{victim}")));
}

#[tokio::test]
async fn sigkill_with_postgres_metadata_loses_and_duplicates_nothing() {
    let url = pg::fresh_database("failover").await;
    let mut c = Cluster::start_with(3, url, tempfile::tempdir_in(target_tmp()).unwrap());
    let admin = c.admin().await;
    admin.create_topic("fpg", PARTITIONS).await.unwrap();
    c.settled("fpg", 3).await;
    let p = producer(&c, Acks::Object).await;
    let pid = c.agents[0].pid();
    let acked = run(&p, "fpg", 200_000, move || unsafe {
        libc::kill(pid, libc::SIGKILL);
    })
    .await;
    p.close().await.unwrap();
    c.agents[0].kill9();
    assert_eq!(acked.values().map(Vec::len).sum::<usize>(), 200_000);
    verify(&c, "fpg", &acked).await;
}

#[tokio::test]
async fn sigkill_and_restart_with_ack_durable_keeps_every_record() {
    // Leases long enough that the restart surely comes before they expire,
    // however loaded the machine: the premise of this test.
    let mut c = Cluster::start_ttl(3, 10_000);
    let admin = c.admin().await;
    admin.create_topic("fd", PARTITIONS).await.unwrap();
    c.settled("fd", 3).await;
    let p = producer(&c, Acks::Durable).await;
    let victim = 2;
    let pid = c.agents[victim].pid();
    let acked = {
        let restart = std::sync::Arc::new(parking_lot::Mutex::new(false));
        let r = restart.clone();
        let acked_fut = run(&p, "fd", 300_000, move || {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            *r.lock() = true;
        });
        // Restart the victim on its data dir while its leases still hold.
        let restarter = async {
            while !*restart.lock() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let (acked, ()) = tokio::join!(acked_fut, async {
            restarter.await;
            let a = &mut c.agents[victim];
            let _ = a.wait_exit(Duration::from_secs(5));
            a.child = None;
            a.spawn();
        });
        acked
    };
    p.close().await.unwrap();
    let total: usize = acked.values().map(Vec::len).sum();
    assert_eq!(total, 300_000);
    verify(&c, "fd", &acked).await;
}

#[tokio::test]
async fn a_restarted_agent_ships_partitions_that_moved_while_it_was_down() {
    // Nothing is shipped before the kill (segments stay open a minute), and
    // leases outlive the restart.
    let mut c = Cluster::start_aged(2, 10_000, 60_000);
    let admin = c.admin().await;
    admin.create_topic("moved", PARTITIONS).await.unwrap();
    let before = c.settled("moved", 2).await;
    let p = producer(&c, Acks::Durable).await;
    let acked = run(&p, "moved", 12_000, || {}).await;
    // agent-0 dies with all its acknowledged records only on its disk; a new
    // agent joins while it is down, so some of its partitions now belong to
    // the newcomer, then agent-0 comes back on its data dir.
    c.agents[0].kill9();
    c.add();
    c.agents[0].spawn();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let after = c.settled("moved", 3).await;
        let moved = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| *b == "agent-0" && *a == "agent-2")
            .count();
        if moved > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "none of agent-0's partitions went to agent-2"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    p.close().await.unwrap();
    verify(&c, "moved", &acked).await;
}

#[tokio::test]
async fn a_joining_agent_takes_only_its_share_without_producer_errors() {
    let mut c = Cluster::start(3);
    let admin = c.admin().await;
    admin.create_topic("join", PARTITIONS).await.unwrap();
    let before = c.settled("join", 3).await;
    let p = producer(&c, Acks::Durable).await;
    let acked = {
        let first = run(&p, "join", 50_000, || {}).await;
        c.add();
        let after = c.settled("join", 4).await;
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            assert!(
                a == b || a == "agent-3",
                "partition {i} moved from {b} to {a}"
            );
        }
        let second = run(&p, "join", 50_000, || {}).await;
        let mut all = first;
        for (k, v) in second {
            all.entry(k).or_default().extend(v);
        }
        all
    };
    p.close().await.unwrap();
    // The second run's sequence numbers restart at 0: verify offsets only.
    let total: usize = acked.values().map(Vec::len).sum();
    assert_eq!(total, 100_000);
    for (part, list) in &acked {
        let offsets: HashSet<u64> = list.iter().map(|(o, _)| *o).collect();
        assert_eq!(
            offsets.len(),
            list.len(),
            "partition {part}: an offset acknowledged twice"
        );
        assert_eq!(*offsets.iter().max().unwrap() + 1, list.len() as u64);
    }
}

#[tokio::test]
async fn a_stopped_agent_whose_lease_expired_is_fenced_and_clients_move() {
    let c = Cluster::start(3);
    let admin = c.admin().await;
    admin.create_topic("stop", PARTITIONS).await.unwrap();
    let leaders = c.settled("stop", 3).await;
    let victim = 0;
    let part = leaders
        .iter()
        .position(|l| *l == format!("agent-{victim}"))
        .expect("the victim leads a partition") as u32;
    let meta = admin.describe_topic("stop").await.unwrap();
    let old_epoch = meta.partitions[part as usize].lease_epoch;
    // Committed to object storage before the stop.
    let committed = producer(&c, Acks::Object).await;
    for i in 0..20 {
        committed
            .send(ProducerRecord::new("stop", format!("early-{i}")).partition(part))
            .await
            .unwrap();
    }
    committed.close().await.unwrap();
    let p = producer(&c, Acks::Durable).await;
    // Durable-acknowledged on the victim, not yet sealed or committed.
    for i in 0..5 {
        p.send(ProducerRecord::new("stop", format!("stranded-{i}")).partition(part))
            .await
            .unwrap();
    }
    c.agents[victim].signal(libc::SIGSTOP);
    let stopped = Instant::now();
    // Another agent takes the partition once the lease expires.
    let deadline = Instant::now() + Duration::from_secs(30);
    let new_leader = loop {
        let m = meta_of(&c, "stop").await;
        let pm = &m.partitions[part as usize];
        if !pm.leader_agent_id.is_empty() && pm.leader_agent_id != format!("agent-{victim}") {
            assert!(pm.lease_epoch > old_epoch, "takeover bumps the epoch");
            break pm.leader_agent_id.clone();
        }
        assert!(Instant::now() < deadline, "no takeover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        stopped.elapsed() >= Duration::from_millis(1500),
        "taken before expiry"
    );
    // The producer moves to the new leader.
    for i in 0..100 {
        p.send(ProducerRecord::new("stop", format!("late-{i}")).partition(part))
            .await
            .unwrap();
    }
    c.agents[victim].signal(libc::SIGCONT);
    // The woken agent refuses the partition and cannot commit what it held.
    let mut direct = c.agents[victim]
        .producer_for(&meta_of(&c, "stop").await, 0)
        .await;
    let e = direct
        .produce(produce_req("stop", part, &["zombie".to_string()]))
        .await
        .unwrap_err();
    assert!(
        matches!(e.code(), tonic::Code::Unavailable | tonic::Code::NotFound),
        "{e:?}"
    );
    tokio::time::sleep(Duration::from_millis(2000)).await;
    p.close().await.unwrap();
    let mut consumer = Consumer::connect(c.addresses()).await.unwrap();
    consumer.assign([("stop".to_owned(), part)]).await.unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let recs = consumer.poll(Duration::from_millis(300)).await.unwrap();
        if recs.is_empty() && got.len() >= 120 {
            break;
        }
        got.extend(recs);
        assert!(Instant::now() < deadline, "read {} records", got.len());
    }
    let values: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8(r.value.to_vec()).unwrap())
        .collect();
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.offset, i as u64);
    }
    assert!(
        values
            .iter()
            .all(|v| !v.starts_with("stranded") && v != "zombie"),
        "the fenced agent's uncommitted writes never became visible"
    );
    let late: Vec<&String> = values.iter().filter(|v| v.starts_with("late")).collect();
    assert_eq!(
        late.len(),
        100,
        "leader {new_leader} has every record sent to it"
    );
    assert_eq!(values.iter().filter(|v| v.starts_with("early")).count(), 20);
}

async fn meta_of(c: &Cluster, topic: &str) -> streamhouse_proto::TopicMetadata {
    let mut admin = streamhouse_proto::admin_service_client::AdminServiceClient::new(
        c.agents[1].channel(0).await,
    );
    admin
        .describe_topic(streamhouse_proto::DescribeTopicRequest { name: topic.into() })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn sigterm_ships_everything_and_releases_leases_at_once() {
    // Leases of a minute: a takeover by expiry would take that long.
    let mut c = Cluster::start_ttl(2, 60_000);
    let admin = c.admin().await;
    admin.create_topic("term", PARTITIONS).await.unwrap();
    c.settled("term", 2).await;
    let p = producer(&c, Acks::Durable).await;
    let acked = run(&p, "term", 100_000, || {}).await;
    p.close().await.unwrap();
    let t = Instant::now();
    c.agents[0].signal(libc::SIGTERM);
    assert_eq!(c.agents[0].wait_exit(Duration::from_secs(30)), Some(0));
    let leaders = c.settled("term", 1).await;
    assert!(leaders.iter().all(|l| l == "agent-1"));
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "took {:?}: the leases were not released",
        t.elapsed()
    );
    verify(&c, "term", &acked).await;
}

#[tokio::test]
async fn a_stalled_agent_does_not_hold_up_partitions_elsewhere() {
    // Long leases: the stalled agent keeps its partitions for the test.
    let c = Cluster::start_ttl(2, 60_000);
    let admin = c.admin().await;
    admin.create_topic("hol", PARTITIONS).await.unwrap();
    let leaders = c.settled("hol", 2).await;
    let stalled: Vec<u32> = (0..PARTITIONS)
        .filter(|p| leaders[*p as usize] == "agent-0")
        .collect();
    let healthy: Vec<u32> = (0..PARTITIONS)
        .filter(|p| leaders[*p as usize] == "agent-1")
        .collect();
    let p = producer(&c, Acks::Durable).await;
    // Warm the connections to both agents.
    for part in 0..PARTITIONS {
        p.send(ProducerRecord::new("hol", "warm").partition(part))
            .await
            .unwrap();
    }
    c.agents[0].signal(libc::SIGSTOP);
    let pending: Vec<_> = stalled
        .iter()
        .map(|part| p.send(ProducerRecord::new("hol", "stuck").partition(*part)))
        .collect();
    let t = Instant::now();
    let healthy_sends: Vec<_> = healthy
        .iter()
        .flat_map(|part| {
            (0..100).map(|i| p.send(ProducerRecord::new("hol", format!("ok-{i}")).partition(*part)))
        })
        .collect();
    for f in healthy_sends {
        f.await.unwrap();
    }
    let took = t.elapsed();
    c.agents[0].signal(libc::SIGCONT);
    assert!(
        took < Duration::from_secs(5),
        "partitions of the healthy agent waited {took:?} behind the stalled one"
    );
    for f in pending {
        f.await.unwrap();
    }
    p.close().await.unwrap();
}

#[tokio::test]
async fn a_consumer_follows_a_partition_to_its_new_leader() {
    let mut c = Cluster::start(1);
    let admin = c.admin().await;
    admin.create_topic("follow", PARTITIONS).await.unwrap();
    c.settled("follow", 1).await;
    let p = producer(&c, Acks::Object).await;
    let first = run(&p, "follow", 12_000, || {}).await;
    let mut consumer = every_partition(&c, "follow").await;
    let mut got: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    while got.values().map(Vec::len).sum::<usize>() < 6_000 {
        poll_offsets(&mut consumer, Duration::from_millis(200), &mut got).await;
    }
    // Another agent joins: some partitions move while the consumer reads.
    c.add();
    let after = c.settled("follow", 2).await;
    assert!(after.iter().any(|l| l == "agent-1"));
    let second = run(&p, "follow", 12_000, || {}).await;
    p.close().await.unwrap();
    let want: usize = first.values().chain(second.values()).map(Vec::len).sum();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.values().map(Vec::len).sum::<usize>() < want {
        assert!(Instant::now() < deadline, "consumer stuck after the move");
        poll_offsets(&mut consumer, Duration::from_millis(200), &mut got).await;
    }
    assert_dense(&got);
}

#[tokio::test]
async fn a_consumer_polls_through_its_leaders_death_without_errors() {
    let mut c = Cluster::start(2);
    let admin = c.admin().await;
    admin.create_topic("orphan", PARTITIONS).await.unwrap();
    let leaders = c.settled("orphan", 2).await;
    let p = producer(&c, Acks::Object).await;
    let acked = run(&p, "orphan", 12_000, || {}).await;
    p.close().await.unwrap();
    let mut consumer = every_partition(&c, "orphan").await;
    // Read a little so every partition's route is cached, then kill the
    // leader of some of them: polls return what they can, never an error,
    // until the partitions are taken over and read to the end.
    let mut got: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    poll_offsets(&mut consumer, Duration::from_millis(200), &mut got).await;
    c.agents[1].kill9();
    assert!(leaders.iter().any(|l| l == "agent-1"));
    let want: usize = acked.values().map(Vec::len).sum();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.values().map(Vec::len).sum::<usize>() < want {
        assert!(Instant::now() < deadline, "consumer stuck after the kill");
        poll_offsets(&mut consumer, Duration::from_millis(100), &mut got).await;
    }
    assert_dense(&got);
}

/// A consumer assigned every partition of `topic`.
async fn every_partition(c: &Cluster, topic: &str) -> Consumer {
    let mut consumer = Consumer::connect(c.addresses()).await.unwrap();
    consumer
        .assign((0..PARTITIONS).map(|part| (topic.to_owned(), part)))
        .await
        .unwrap();
    consumer
}

/// One poll; the offsets read go to `got` by partition. A poll is never an
/// error, also while a leader dies or moves.
async fn poll_offsets(consumer: &mut Consumer, wait: Duration, got: &mut BTreeMap<u32, Vec<u64>>) {
    let recs = consumer
        .poll(wait)
        .await
        .expect("a poll during a failover is not an error");
    for r in recs {
        got.entry(r.partition).or_default().push(r.offset);
    }
}

/// Every partition read from offset 0, in order, none twice.
fn assert_dense(got: &BTreeMap<u32, Vec<u64>>) {
    for (part, offsets) in got {
        let want: Vec<u64> = (0..offsets.len() as u64).collect();
        assert_eq!(
            offsets, &want,
            "partition {part}: offsets in order, none twice"
        );
    }
}

#[tokio::test]
async fn an_agent_back_after_a_takeover_drops_its_stale_unshipped_writes() {
    // Segments stay open for a minute (ack `object` and hand-overs still
    // seal at once): with the default 500 ms, a loaded machine could seal
    // and ship part of the "stale" writes before the SIGKILL, and those are
    // then rightly committed and served.
    let mut c = Cluster::start_aged(2, 2000, 60_000);
    let admin = c.admin().await;
    admin.create_topic("back", PARTITIONS).await.unwrap();
    let leaders = c.settled("back", 2).await;
    let part = leaders.iter().position(|l| l == "agent-0").unwrap() as u32;
    let committed = producer(&c, Acks::Object).await;
    for i in 0..10 {
        committed
            .send(ProducerRecord::new("back", format!("first-{i}")).partition(part))
            .await
            .unwrap();
    }
    // Durable on agent-0 only, then agent-0 dies before shipping them.
    let p = producer(&c, Acks::Durable).await;
    // More than the new leader will write, so the stale tail outruns it.
    for i in 0..20 {
        p.send(ProducerRecord::new("back", format!("stale-{i}")).partition(part))
            .await
            .unwrap();
    }
    c.agents[0].kill9();
    // agent-1 takes the partition over and writes after the committed end.
    c.settled("back", 1).await;
    for i in 0..5 {
        committed
            .send(ProducerRecord::new("back", format!("second-{i}")).partition(part))
            .await
            .unwrap();
    }
    // agent-0 comes back on its data dir; the partition returns to it.
    c.agents[0].spawn();
    let again = c.settled("back", 2).await;
    assert_eq!(again[part as usize], "agent-0");
    for i in 0..10 {
        committed
            .send(ProducerRecord::new("back", format!("third-{i}")).partition(part))
            .await
            .unwrap();
    }
    committed.close().await.unwrap();
    p.close().await.unwrap();
    let mut consumer = Consumer::connect(c.addresses()).await.unwrap();
    consumer.assign([("back".to_owned(), part)]).await.unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 25 {
        assert!(Instant::now() < deadline, "read {} of 25", got.len());
        got.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    got.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    let values: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8(r.value.to_vec()).unwrap())
        .collect();
    let want: Vec<String> = [("first", 10), ("second", 5), ("third", 10)]
        .iter()
        .flat_map(|(s, n)| (0..*n).map(move |i| format!("{s}-{i}")))
        .collect();
    assert_eq!(
        values, want,
        "committed records once, in order; stale ones gone"
    );
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.offset, i as u64);
    }
}

#[tokio::test]
async fn a_retry_goes_to_the_new_leader_once_it_is_known_not_after_its_backoff() {
    // Backoff of 30 s: with the retry only after its backoff, the record
    // below would take at least 22.5 s (30 s - 25% jitter). Going to the
    // new leader once the metadata names it takes about the lease TTL.
    let mut c = Cluster::start_ttl(2, 1000);
    let admin = c.admin().await;
    admin.create_topic("reroute", 2).await.unwrap();
    let leaders = c.settled("reroute", 2).await;
    let p = Producer::builder(c.addresses())
        // `object`: the first record must outlive its agent's disk.
        .acks(Acks::Object)
        .retries(100)
        .backoff(streamhouse_client::backoff::BackoffConfig {
            base: Duration::from_secs(30),
            max: Duration::from_secs(30),
            jitter: 0.25,
        })
        .delivery_timeout(Duration::from_secs(120))
        .request_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let moved = leaders.iter().position(|l| l == "agent-0").unwrap() as u32;
    let first = p
        .send(ProducerRecord::new("reroute", "before").partition(moved))
        .await
        .unwrap();
    c.agents[0].kill9();
    let t = Instant::now();
    let after = p
        .send(ProducerRecord::new("reroute", "after").partition(moved))
        .await
        .unwrap();
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "the retry waited {took:?} instead of following the partition to its new leader"
    );
    assert_eq!(after.offset, first.offset + 1, "nothing lost or doubled");
    let now_led_by = c.settled("reroute", 1).await;
    assert_eq!(now_led_by[moved as usize], "agent-1");
    p.close().await.unwrap();
}

/// Issue 14 item 9: ack-`object` requests in flight while their partition is
/// handed to a joining agent. A batch that was committed is answered with
/// its offsets; a request answered with an error left nothing in the log
/// (so an application that retries it does not duplicate it).
#[tokio::test]
async fn ack_object_during_a_handoff_answers_every_stored_batch_with_its_offsets() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let mut c = Cluster::start(1);
    let admin = c.admin().await;
    admin.create_topic("handoff", PARTITIONS).await.unwrap();
    c.settled("handoff", 1).await;
    let meta = c.agents[0].describe_topic("handoff").await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for part in 0..PARTITIONS {
        for sender in 0..2 {
            let mut client = c.agents[0].producer_for(&meta, part).await;
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let mut answers = Vec::new();
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let values: Vec<String> = (0..5)
                        .map(|j| format!("p{part}-s{sender}-b{i}-r{j}"))
                        .collect();
                    let mut req = produce_req("handoff", part, &values);
                    req.ack = streamhouse_proto::AckLevel::AckObject as i32;
                    let answer = match client.produce(req).await {
                        Ok(r) => Ok(r.into_inner().base_offset),
                        Err(e) => {
                            // Refused (moving, moved): wait as a client would.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            Err((e.code(), e.message().to_owned()))
                        }
                    };
                    answers.push((values, answer));
                }
                (part, answers)
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.add();
    c.settled("handoff", 2).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answers: BTreeMap<u32, Vec<_>> = BTreeMap::new();
    for t in tasks {
        let (part, a) = t.await.unwrap();
        answers.entry(part).or_default().extend(a);
    }
    let leaders = c.settled("handoff", 2).await;
    let mut refused = 0;
    let mut moved = 0;
    for (part, list) in &answers {
        let leader = &c.agents[if leaders[*part as usize] == "agent-0" {
            0
        } else {
            1
        }];
        let mut f = streamhouse_proto::fetch_service_client::FetchServiceClient::new(
            leader.channel(0).await,
        );
        let stored: BTreeMap<Vec<u8>, u64> = fetch_all(&mut f, "handoff", *part)
            .await
            .into_iter()
            .map(|r| (r.value.to_vec(), r.offset))
            .collect();
        for (values, answer) in list {
            match answer {
                Ok(base) => {
                    for (i, v) in values.iter().enumerate() {
                        assert_eq!(
                            stored.get(v.as_bytes()),
                            Some(&(base + i as u64)),
                            "acknowledged {v} is not at its offset"
                        );
                    }
                }
                Err((code, msg)) => {
                    refused += 1;
                    moved += usize::from(leaders[*part as usize] != "agent-0");
                    for v in values {
                        assert!(
                            !stored.contains_key(v.as_bytes()),
                            "{v} was answered {code:?} ({msg}) but is stored"
                        );
                    }
                }
            }
        }
    }
    eprintln!("{refused} requests refused during the handoff ({moved} on moved partitions)");
}

/// Issue 14 item 11: after an outage of the metadata store longer than the
/// lease TTL and the agent timeout, every heartbeat is stale because no
/// agent could write one. An agent back first must not take the partitions
/// of an agent that is alive but a moment slower.
#[tokio::test]
async fn after_a_metadata_outage_no_agent_takes_a_live_agents_partitions() {
    let url = pg::fresh_database("stale").await;
    let meta = tempfile::tempdir_in(target_tmp()).unwrap();
    let c = Cluster::start_with(2, url.clone(), meta);
    let admin = c.admin().await;
    admin.create_topic("stale", PARTITIONS).await.unwrap();
    let before = c.settled("stale", 2).await;
    let epochs = |url: String| async move {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .query("SELECT part, holder, epoch FROM leases ORDER BY part", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.get::<_, i64>(0),
                    r.get::<_, String>(1),
                    r.get::<_, i64>(2),
                )
            })
            .collect::<Vec<_>>()
    };
    // Both agents leading some partitions does not mean the first
    // rebalance is over: a hand-over still under way would finish during
    // the outage and look like a takeover. Wait until the lease rows stay
    // the same for 2 s.
    let mut held = epochs(url.clone()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = epochs(url.clone()).await;
        if now == held {
            break;
        }
        assert!(Instant::now() < deadline, "leases never stopped moving");
        held = now;
    }
    pg::execute(
        &url,
        "ALTER TABLE agents RENAME TO agents_away; ALTER TABLE leases RENAME TO leases_away",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(3000)).await;
    // agent-1 comes back 600 ms after agent-0 (well within the 1 s agent
    // timeout): it is alive throughout.
    c.agents[1].signal(libc::SIGSTOP);
    pg::execute(
        &url,
        "ALTER TABLE agents_away RENAME TO agents; ALTER TABLE leases_away RENAME TO leases",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    c.agents[1].signal(libc::SIGCONT);
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let after = epochs(url.clone()).await;
    assert_eq!(
        held, after,
        "leases changed hands after the outage although both agents were alive \
         (before: {before:?})"
    );
}

/// Lease renewal keeps its deadline while other metadata work is slow.
/// agent-0 dies; agent-1 starts taking its partitions, but their lease rows
/// are locked by another transaction for longer than the lease TTL, so each
/// acquisition hangs. agent-1's own partitions must keep serving throughout
/// (their leases renewed on time), and once the lock is gone agent-1 leads
/// every partition.
#[tokio::test]
async fn leases_are_renewed_while_an_acquisition_hangs() {
    let url = pg::fresh_database("slowacq").await;
    let meta = tempfile::tempdir_in(target_tmp()).unwrap();
    let mut c = Cluster::start_with(2, url.clone(), meta);
    let admin = c.admin().await;
    admin.create_topic("slow", PARTITIONS).await.unwrap();
    let leaders = c.settled("slow", 2).await;
    let theirs: Vec<i64> = (0..PARTITIONS as i64)
        .filter(|p| leaders[*p as usize] == "agent-0")
        .collect();
    let mine = (0..PARTITIONS)
        .find(|p| leaders[*p as usize] == "agent-1")
        .unwrap();

    // Asked first: with the acquisitions hanging, agent-1's other metadata
    // calls (Describe) wait behind them on its main connection.
    let meta = c.agents[1].describe_topic("slow").await;
    let mut client = c.agents[1].producer_for(&meta, mine).await;

    // Another session locks agent-0's lease rows and keeps them locked.
    let (locker, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    locker.batch_execute("BEGIN").await.unwrap();
    let list: Vec<String> = theirs.iter().map(i64::to_string).collect();
    locker
        .batch_execute(&format!(
            "SELECT * FROM leases WHERE part IN ({}) FOR UPDATE",
            list.join(",")
        ))
        .await
        .unwrap();
    c.agents[0].kill9();

    // Past agent-0's lease expiry agent-1 tries to take its partitions
    // and hangs on the locks; its own partition must keep taking writes.
    let until = Instant::now() + Duration::from_secs(7);
    let mut n = 0;
    while Instant::now() < until {
        tokio::time::timeout(
            Duration::from_secs(5),
            client.produce(produce_req("slow", mine, &[format!("w{n}")])),
        )
        .await
        .unwrap_or_else(|_| panic!("write {n} hung"))
        .unwrap_or_else(|e| {
            panic!("write {n} to agent-1's own partition failed while an acquisition hung: {e:?}")
        });
        n += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    locker.batch_execute("ROLLBACK").await.unwrap();
    // Then it takes them: nothing it did meanwhile (uploads, commits,
    // renewals) may have wedged its metadata calls.
    let t = Instant::now();
    c.settled("slow", 1).await;
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
}

/// Found by the chaos run (seed 1): agent-1 is stopped past its TTL and
/// agent-0 takes its partitions over and acknowledges `durable` writes to
/// them that it has not shipped yet. The metadata store is then away for
/// longer than the TTL while agent-1 comes back. Once the store returns,
/// agent-0's lease on agent-1's partition has expired, but agent-0 is alive
/// and still holds those writes: agent-1, the partition's owner, must wait
/// for agent-0 to renew and hand the partition back, not take the expired
/// lease at a new epoch and continue at the committed end.
#[tokio::test]
async fn after_a_metadata_outage_a_taken_over_partition_keeps_its_durable_writes() {
    let url = pg::fresh_database("takenback").await;
    let meta = tempfile::tempdir_in(target_tmp()).unwrap();
    // Segments stay open for a minute, so the writes below are only in
    // agent-0's WAL when the store goes away (a hand-over still seals).
    let c = Cluster::start_full(2, url.clone(), meta, 2000, 60_000);
    let admin = c.admin().await;
    admin.create_topic("back", PARTITIONS).await.unwrap();
    let leaders = c.settled("back", 2).await;
    let part = leaders.iter().position(|l| l == "agent-1").unwrap() as u32;
    c.agents[1].signal(libc::SIGSTOP);
    c.settled("back", 1).await;
    // Only agent-0 answers now.
    let p = Producer::builder(vec![c.agents[0].addr(0)])
        .acks(Acks::Durable)
        .build()
        .await
        .unwrap();
    let mut acked = Vec::new();
    for i in 0..20 {
        let m = p
            .send(ProducerRecord::new("back", format!("taken-{i}")).partition(part))
            .await
            .unwrap();
        acked.push((m.offset, format!("taken-{i}")));
    }
    pg::execute(
        &url,
        "ALTER TABLE agents RENAME TO agents_away; ALTER TABLE leases RENAME TO leases_away",
    )
    .await;
    c.agents[1].signal(libc::SIGCONT);
    tokio::time::sleep(Duration::from_millis(3000)).await;
    pg::execute(
        &url,
        "ALTER TABLE agents_away RENAME TO agents; ALTER TABLE leases_away RENAME TO leases",
    )
    .await;
    let again = c.settled("back", 2).await;
    assert_eq!(again[part as usize], "agent-1", "the partition went home");
    p.close().await.unwrap();
    let mut consumer = Consumer::connect(c.addresses()).await.unwrap();
    consumer.assign([("back".to_owned(), part)]).await.unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while got.len() < acked.len() && Instant::now() < deadline {
        got.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    let read: Vec<(u64, String)> = got
        .iter()
        .map(|r| (r.offset, String::from_utf8_lossy(&r.value).into_owned()))
        .collect();
    assert_eq!(
        read, acked,
        "every write acknowledged at `durable` by agent-0, at its offset"
    );
}
