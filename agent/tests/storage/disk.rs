//! A WAL disk that fills up: not ready while full and back by itself,
//! SIGTERM within the grace period while failed, and the shard's
//! partitions handed to another agent.

use super::*;

/// GETs `path` on the admin port until it answers `want`, or `within` passes.
async fn await_status(port: u16, path: &str, want: u16, within: Duration) -> (u16, String) {
    let deadline = Instant::now() + within;
    loop {
        let got = get(port, path).await;
        if got.0 == want || Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Produces one batch of 100 records to partition 0 until it is refused;
/// returns the refusal, recording what was acknowledged before it.
async fn produce_until_refused(
    agent: &Agent,
    tag: &str,
    acked: &mut BTreeMap<u32, BTreeMap<u64, String>>,
) -> tonic::Status {
    let meta = describe(agent).await;
    let mut c = agent.producer_for(&meta, 0).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    for b in 0.. {
        assert!(
            Instant::now() < deadline,
            "the full disk never refused a write"
        );
        let values: Vec<String> = (0..100)
            .map(|i| format!("{tag}-b{b}-r{i}-{}", "x".repeat(200)))
            .collect();
        match c.produce(produce_req(TOPIC, 0, &values)).await {
            Ok(r) => {
                let base = r.into_inner().base_offset;
                for (i, v) in values.into_iter().enumerate() {
                    acked.entry(0).or_default().insert(base + i as u64, v);
                }
            }
            Err(s) => return s,
        }
    }
    unreachable!()
}

/// Produces to partition 0 until a write is acknowledged again, or `within`.
async fn produce_until_accepted(
    agent: &Agent,
    tag: &str,
    acked: &mut BTreeMap<u32, BTreeMap<u64, String>>,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    loop {
        let meta = describe(agent).await;
        let mut c = agent.producer_for(&meta, 0).await;
        let values: Vec<String> = (0..10).map(|i| format!("{tag}-r{i}")).collect();
        match c.produce(produce_req(TOPIC, 0, &values)).await {
            Ok(r) => {
                let base = r.into_inner().base_offset;
                for (i, v) in values.into_iter().enumerate() {
                    acked.entry(0).or_default().insert(base + i as u64, v);
                }
                return;
            }
            Err(s) => assert!(
                Instant::now() < deadline,
                "still refused {within:?} after the disk had space again: {:?} {}",
                s.code(),
                s.message()
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An agent (1 shard, admin port, grace 3 s) whose data dir is on `fs`;
/// object and metadata stores live elsewhere. Returns it with its admin
/// port and the stores' directory.
async fn agent_on(fs: &smallfs::SmallFs) -> (Agent, u16, tempfile::TempDir) {
    let stores = tempfile::tempdir_in(target_tmp()).unwrap();
    let admin = free_ports(1);
    let args = [
        "--admin-listen".to_string(),
        format!("127.0.0.1:{admin}"),
        "--object-store".into(),
        format!("file://{}", stores.path().join("objects").display()),
        "--metadata".into(),
        format!("sqlite://{}", stores.path().join("meta.db").display()),
        "--segment-bytes".into(),
        (1 << 20).to_string(),
        "--shutdown-grace-ms".into(),
        "3000".into(),
    ];
    let args = as_strs(&args);
    let agent = Agent::start_in(&fs.mount.join("data"), 1, &args);
    agent.create_topic(TOPIC, 1).await;
    assert_eq!(
        await_status(admin, "/ready", 200, Duration::from_secs(10))
            .await
            .0,
        200
    );
    (agent, admin, stores)
}

/// A WAL whose disk fills up: the shard refuses writes (with a status the
/// clients retry) and reports not ready, then comes back by itself once
/// there is space again: nothing acknowledged is lost, offsets continue.
#[tokio::test]
async fn a_full_wal_disk_is_not_ready_and_recovers_by_itself() {
    let Some(fs) = smallfs::SmallFs::new(32) else {
        return;
    };
    let (mut agent, admin, _stores) = agent_on(&fs).await;
    let mut acked = BTreeMap::new();
    produce_until_accepted(&agent, "before", &mut acked, Duration::from_secs(5)).await;

    let filler = fs.fill();
    let refused = produce_until_refused(&agent, "full", &mut acked).await;
    assert_eq!(
        refused.code(),
        tonic::Code::Unavailable,
        "a failed WAL write is retriable: {}",
        refused.message()
    );
    let (status, body) = await_status(admin, "/ready", 503, Duration::from_secs(5)).await;
    assert_eq!(
        status, 503,
        "a shard with a failed WAL is not ready: {body}"
    );
    assert!(body.contains("WAL"), "/ready names the WAL: {body}");

    fs.free(&filler);
    produce_until_accepted(&agent, "after", &mut acked, Duration::from_secs(20)).await;
    let (status, body) = await_status(admin, "/ready", 200, Duration::from_secs(10)).await;
    assert_eq!(status, 200, "ready again once the WAL works: {body}");
    check_partition0(&agent, &acked, "after the disk had space again").await;
    agent.kill9();
    agent.spawn();
    check_partition0(&agent, &acked, "after a restart").await;
}

/// SIGTERM while the WAL is failed: the agent exits within its grace
/// period, and a restart serves every acknowledged record.
#[tokio::test]
async fn sigterm_exits_in_the_grace_period_while_the_wal_is_failed() {
    let Some(fs) = smallfs::SmallFs::new(32) else {
        return;
    };
    let (mut agent, _admin, _stores) = agent_on(&fs).await;
    let mut acked = BTreeMap::new();
    produce_until_accepted(&agent, "before", &mut acked, Duration::from_secs(5)).await;
    let filler = fs.fill();
    produce_until_refused(&agent, "full", &mut acked).await;
    let stopping = Instant::now();
    agent.signal(libc::SIGTERM);
    let code = agent.wait_exit(Duration::from_secs(15));
    assert!(
        code.is_some(),
        "SIGTERM with a failed WAL did not exit within 15 s (grace 3 s)"
    );
    eprintln!("exited {code:?} after {:?}", stopping.elapsed());
    fs.free(&filler);
    agent.spawn();
    check_partition0(&agent, &acked, "after a restart").await;
}

/// Issue 14 item 5 in a cluster: agent-0's WAL disk fills up. Its shard
/// ships what it can, gives its leases up, and agent-1 leads its
/// partitions until agent-0's disk has space again; then they return.
/// Producers see no failed send; every acknowledged record is readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_wal_disk_hands_the_shards_partitions_to_another_agent() {
    use streamhouse_client::{Admin, Producer, ProducerRecord};
    let Some(fs) = smallfs::SmallFs::new(32) else {
        return;
    };
    let stores = tempfile::tempdir_in(target_tmp()).unwrap();
    let args = |id: &str| {
        let flags = [
            "--segment-bytes",
            "1048576",
            "--segment-age-ms",
            "500",
            "--lease-ttl-ms",
            "2000",
            "--heartbeat-ms",
            "200",
            "--agent-timeout-ms",
            "1000",
            "--agent-id",
            id,
        ];
        local_stores(stores.path(), &flags)
    };
    let (a0, a1) = (args("agent-0"), args("agent-1"));
    let (a0, a1) = (as_strs(&a0), as_strs(&a1));
    let agent0 = Agent::start_in(&fs.mount.join("data"), 1, &a0);
    let agent1 = Agent::start(1, &a1);
    let admin = Admin::connect(&agent1.addr(0)).await.unwrap();
    admin.create_topic(TOPIC, 8).await.unwrap();
    let leaders = |want: usize| {
        let admin = &admin;
        async move {
            let deadline = Instant::now() + Duration::from_secs(40);
            loop {
                if let Ok(t) = admin.describe_topic(TOPIC).await {
                    let l: Vec<String> = t
                        .partitions
                        .iter()
                        .map(|p| p.leader_agent_id.clone())
                        .collect();
                    let distinct: std::collections::HashSet<&String> = l.iter().collect();
                    if l.iter().all(|x| !x.is_empty()) && distinct.len() == want {
                        return l;
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "leaders never settled on {want} agents"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let before = leaders(2).await;
    let producer = Producer::builder([agent0.addr(0), agent1.addr(0)])
        .retries(100_000)
        .delivery_timeout(Duration::from_secs(90))
        .build()
        .await
        .unwrap();
    let mut acked: BTreeMap<u32, BTreeMap<u64, String>> = BTreeMap::new();
    let send_round = |tag: String| {
        let producer = &producer;
        async move {
            let mut futs = Vec::new();
            for p in 0..8u32 {
                for i in 0..20 {
                    let v = format!("{tag}-p{p}-{i}-{}", "y".repeat(300));
                    futs.push((
                        p,
                        v.clone(),
                        producer.send(ProducerRecord::new(TOPIC, v).partition(p)),
                    ));
                }
            }
            let mut out = Vec::new();
            for (p, v, f) in futs {
                let m = f
                    .await
                    .unwrap_or_else(|e| panic!("send to {p} failed: {e}"));
                out.push((p, m.offset, v));
            }
            out
        }
    };
    for (p, o, v) in send_round("before".into()).await {
        acked.entry(p).or_default().insert(o, v);
    }

    let filler = fs.fill();
    // Writes go on (into the blocks agent-0 allocated ahead, until they run
    // out; space that shipped segments give back is filled again); agent-0's
    // partitions end up led by agent-1.
    for round in 0.. {
        fs.top_up(&filler);
        for (p, o, v) in send_round(format!("full{round}")).await {
            acked.entry(p).or_default().insert(o, v);
        }
        let now = admin.describe_topic(TOPIC).await;
        if now.is_ok_and(|t| t.partitions.iter().all(|p| p.leader_agent_id == "agent-1")) {
            break;
        }
        assert!(round < 200, "agent-0 kept its partitions on a full disk");
    }
    let during = leaders(1).await;
    assert!(during.iter().all(|l| l == "agent-1"), "{during:?}");

    // Space again: agent-0 recovers by itself and takes its share back.
    fs.free(&filler);
    let after = leaders(2).await;
    assert_eq!(after, before, "the partitions return to agent-0");
    for (p, o, v) in send_round("after".into()).await {
        acked.entry(p).or_default().insert(o, v);
    }
    producer.close().await.unwrap();
    for (p, want) in &acked {
        let leader = if after[*p as usize] == "agent-0" {
            &agent0
        } else {
            &agent1
        };
        let mut f = pb::fetch_service_client::FetchServiceClient::new(leader.channel(0).await)
            .max_decoding_message_size(64 << 20);
        let got: BTreeMap<u64, Vec<u8>> = fetch_all(&mut f, TOPIC, *p)
            .await
            .into_iter()
            .map(|r| (r.offset, r.value.to_vec()))
            .collect();
        for (o, v) in want {
            assert_eq!(
                got.get(o).map(Vec::as_slice),
                Some(v.as_bytes()),
                "acknowledged {p}/{o} is missing or differs"
            );
        }
    }
}
