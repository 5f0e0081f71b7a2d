//! Storage and control-plane faults an agent must survive with every
//! acknowledged record readable at its offsets, and answers that let
//! clients do the right thing meanwhile: a data dir restarted with another
//! shard count, segments whose ranges nobody committed, a WAL disk that
//! fills up, a metadata store that cannot be reached. Real agent processes,
//! a real loop-mounted filesystem, a real PostgreSQL.

mod common;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/smallfs.rs"]
mod smallfs;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use streamhouse_proto as pb;

const TOPIC: &str = "layout";
const PARTITIONS: u32 = 4;

async fn describe(agent: &Agent) -> pb::TopicMetadata {
    agent
        .admin()
        .await
        .describe_topic(pb::DescribeTopicRequest { name: TOPIC.into() })
        .await
        .expect("describe")
        .into_inner()
}

/// Produces `batches` × 100 records to every partition (ack `durable`, the
/// default); returns what each partition acknowledged, by offset.
async fn produce(
    agent: &Agent,
    tag: &str,
    batches: usize,
    acked: &mut BTreeMap<u32, BTreeMap<u64, String>>,
) {
    let meta = describe(agent).await;
    for p in 0..PARTITIONS {
        let mut c = agent.producer_for(&meta, p).await;
        for b in 0..batches {
            let values: Vec<String> = (0..100).map(|i| format!("{tag}-p{p}-b{b}-r{i}")).collect();
            let r = c
                .produce(produce_req(TOPIC, p, &values))
                .await
                .expect("produce")
                .into_inner();
            for (i, v) in values.into_iter().enumerate() {
                acked
                    .entry(p)
                    .or_default()
                    .insert(r.base_offset + i as u64, v);
            }
        }
    }
}

/// Reads every partition back and checks it holds exactly `acked`, at the
/// acknowledged offsets, densely from 0.
async fn check(agent: &Agent, acked: &BTreeMap<u32, BTreeMap<u64, String>>, when: &str) {
    let meta = describe(agent).await;
    for (p, want) in acked {
        let mut f = agent.fetcher_for(&meta, *p).await;
        let got = fetch_all(&mut f, TOPIC, *p).await;
        assert_eq!(
            got.len(),
            want.len(),
            "{when}: partition {p} reads {} records, {} were acknowledged",
            got.len(),
            want.len()
        );
        for (r, (offset, value)) in got.iter().zip(want) {
            assert_eq!(r.offset, *offset, "{when}: partition {p}");
            assert_eq!(
                &r.value[..],
                value.as_bytes(),
                "{when}: {p}/{offset} differs"
            );
        }
    }
}

#[tokio::test]
async fn a_restart_with_another_shard_count_keeps_every_record_at_its_offset() {
    let mut agent = Agent::start(2, &[]);
    agent.create_topic(TOPIC, PARTITIONS).await;
    let mut acked = BTreeMap::new();
    produce(&agent, "two", 100, &mut acked).await;
    agent.kill9();

    // One shard now: the partitions the second shard wrote must not vanish,
    // and new writes continue after the acknowledged offsets.
    agent.shards = 1;
    agent.spawn();
    check(&agent, &acked, "after 2 -> 1 shards").await;
    produce(&agent, "one", 10, &mut acked).await;
    check(&agent, &acked, "after writing on 1 shard").await;
    agent.kill9();

    // And back to three shards.
    agent.shards = 3;
    agent.spawn();
    check(&agent, &acked, "after 1 -> 3 shards").await;
    produce(&agent, "three", 10, &mut acked).await;
    agent.kill9();
    agent.spawn();
    check(&agent, &acked, "after a restart on 3 shards").await;
    assert_eq!(
        std::fs::read_to_string(agent.data_dir.join("SHARDS"))
            .unwrap()
            .trim(),
        "3"
    );
    assert!(
        !agent.data_dir.join("shard-3").exists(),
        "no stray WAL directories"
    );
}

/// Reads a partition back, retrying while the agent answers errors (its
/// leases are not taken back yet), until `deadline`.
async fn read_back(agent: &Agent, p: u32, deadline: Instant) -> Vec<pb::FetchedRecord> {
    let meta = describe(agent).await;
    let mut f = agent.fetcher_for(&meta, p).await;
    let mut out = Vec::new();
    loop {
        let r = f
            .fetch(pb::FetchRequest {
                topic: TOPIC.into(),
                partition: p,
                offset: out.len() as u64,
                max_bytes: 4 << 20,
                max_wait_ms: 0,
            })
            .await;
        match r {
            Ok(r) => {
                let r = r.into_inner();
                if r.records.is_empty() && out.len() as u64 >= r.high_watermark {
                    return out;
                }
                out.extend(r.records);
            }
            Err(s) => {
                assert!(
                    Instant::now() < deadline,
                    "partition {p}: still {:?} {:?} after {} records",
                    s.code(),
                    s.message(),
                    out.len()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// After a restart during which the metadata store answers the agent's
/// heartbeat but not its lease queries, the shard holds no lease state for
/// its partitions when it ships the recovered segments: those segments must
/// stay until their ranges are committed, not be deleted as empty.
#[tokio::test]
async fn a_recovered_segment_stays_until_its_ranges_are_committed() {
    let url = pg::fresh_database("unleased").await;
    let mut agent = Agent::start(1, &["--metadata", &url, "--lease-ttl-ms", "2000"]);
    agent.create_topic(TOPIC, PARTITIONS).await;
    let mut acked = BTreeMap::new();
    produce(&agent, "before", 10, &mut acked).await;
    agent.kill9();

    // The lease table is out of reach (as with a permission change or a
    // half-failed migration); topics and heartbeats still work.
    pg::execute(&url, "ALTER TABLE leases RENAME TO leases_away").await;
    agent.spawn();
    tokio::time::sleep(Duration::from_secs(4)).await;
    pg::execute(&url, "ALTER TABLE leases_away RENAME TO leases").await;

    let deadline = Instant::now() + Duration::from_secs(30);
    for (p, want) in &acked {
        let got = read_back(&agent, *p, deadline).await;
        let values: Vec<&[u8]> = got.iter().map(|r| &r.value[..]).collect();
        let wanted: Vec<&[u8]> = want.values().map(|v| v.as_bytes()).collect();
        assert_eq!(values, wanted, "partition {p} after the lease outage");
    }
    // The recovered segment goes once its ranges are committed, and they
    // are then in object storage, not only in the WAL.
    let first = agent
        .data_dir
        .join("shard-0")
        .join(format!("{:020}.wal", 0));
    while first.exists() {
        assert!(
            Instant::now() < deadline,
            "the recovered segment was never committed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    agent.kill9();
    std::fs::remove_dir_all(agent.data_dir.join("shard-0")).unwrap();
    agent.spawn();
    let deadline = Instant::now() + Duration::from_secs(30);
    for (p, want) in &acked {
        assert_eq!(
            read_back(&agent, *p, deadline).await.len(),
            want.len(),
            "partition {p} read from object storage"
        );
    }
}

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
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
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

/// Partition 0 holds exactly the acknowledged records at their offsets
/// (records a refused write left on disk may follow them, never precede).
async fn check_partition0(agent: &Agent, acked: &BTreeMap<u32, BTreeMap<u64, String>>, when: &str) {
    let meta = describe(agent).await;
    let mut f = agent.fetcher_for(&meta, 0).await;
    let got = fetch_all(&mut f, TOPIC, 0).await;
    let by_offset: BTreeMap<u64, &[u8]> = got.iter().map(|r| (r.offset, &r.value[..])).collect();
    for (offset, value) in &acked[&0] {
        assert_eq!(
            by_offset.get(offset).copied(),
            Some(value.as_bytes()),
            "{when}: acknowledged record 0/{offset} is missing or differs"
        );
    }
}

/// During a metadata-store outage longer than the lease TTL the agent
/// cannot renew its leases: produce answers a status clients retry
/// (`UNAVAILABLE`), and a send issued meanwhile is delivered once the
/// store is back.
#[tokio::test]
async fn lease_trouble_during_a_metadata_outage_is_retriable() {
    let url = pg::fresh_database("renew").await;
    let agent = Agent::start(1, &["--metadata", &url, "--lease-ttl-ms", "1500"]);
    let meta = agent.create_topic(TOPIC, 1).await;
    let producer = streamhouse_client::Producer::builder([agent.addr(0)])
        .retries(10_000)
        .delivery_timeout(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let first = producer
        .send(streamhouse_client::ProducerRecord::new(TOPIC, "first").partition(0))
        .await
        .unwrap();

    pg::execute(&url, "ALTER TABLE leases RENAME TO leases_away").await;
    let mut c = agent.producer_for(&meta, 0).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let refused = loop {
        match c.produce(produce_req(TOPIC, 0, &["probe".into()])).await {
            Ok(_) => {}
            Err(s) => break s,
        }
        assert!(Instant::now() < deadline, "the lease never ran out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        refused.code(),
        tonic::Code::Unavailable,
        "a lease that cannot be renewed is a retriable condition: {}",
        refused.message()
    );
    let during =
        producer.send(streamhouse_client::ProducerRecord::new(TOPIC, "during").partition(0));
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg::execute(&url, "ALTER TABLE leases_away RENAME TO leases").await;
    let m = tokio::time::timeout(Duration::from_secs(30), during)
        .await
        .expect("the send issued during the outage never finished")
        .expect("a send issued during the outage is delivered once the store is back");
    assert!(m.offset > first.offset);
    let mut f = agent.fetcher_for(&meta, 0).await;
    let got = fetch_all(&mut f, TOPIC, 0).await;
    assert_eq!(got.iter().filter(|r| &r.value[..] == b"during").count(), 1);
    assert_eq!(&got[m.offset as usize].value[..], b"during");
}

/// Issue 14 item 12: `/ready` answers 200 only once every shard port takes
/// connections; a client started on the first 200 connects at once. Polled
/// from the moment the process starts, five starts in a row.
#[tokio::test]
async fn the_first_ready_200_means_every_shard_port_accepts() {
    for round in 0..5 {
        let dir = tempfile::tempdir_in(target_tmp()).unwrap();
        let (port, admin) = (free_ports(2), free_ports(1));
        let mut child = std::process::Command::new(agent_bin())
            .args(["--shards", "2", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--admin-listen")
            .arg(format!("127.0.0.1:{admin}"))
            .arg("--data-dir")
            .arg(dir.path())
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(Instant::now() < deadline, "never ready");
            let answer = async {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut s = tokio::net::TcpStream::connect(("127.0.0.1", admin))
                    .await
                    .ok()?;
                s.write_all(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
                    .await
                    .ok()?;
                let mut buf = String::new();
                s.read_to_string(&mut buf).await.ok()?;
                Some(buf.starts_with("HTTP/1.1 200"))
            };
            if answer.await == Some(true) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        for shard in 0..2u16 {
            std::net::TcpStream::connect(("127.0.0.1", port + shard)).unwrap_or_else(|e| {
                panic!("round {round}: /ready said 200 but shard {shard} refused: {e}")
            });
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Issue 14 item 13: while the metadata store cannot answer, a topic this
/// agent has not seen yet is "cannot look topics up" (`UNAVAILABLE`,
/// retried by clients), not "unknown topic" (`NOT_FOUND`).
#[tokio::test]
async fn a_topic_lookup_during_a_metadata_outage_is_unavailable_not_unknown() {
    let url = pg::fresh_database("lookup").await;
    let agent = Agent::start(1, &["--metadata", &url]);
    agent.create_topic(TOPIC, 1).await;
    pg::execute(&url, "ALTER TABLE topics RENAME TO topics_away").await;
    let mut c = pb::producer_service_client::ProducerServiceClient::new(agent.channel(0).await);
    let e = c
        .produce(produce_req("not-seen-yet", 0, &["x".into()]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{}", e.message());
    let e = agent
        .admin()
        .await
        .describe_topic(pb::DescribeTopicRequest {
            name: "not-seen-yet".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{}", e.message());
    pg::execute(&url, "ALTER TABLE topics_away RENAME TO topics").await;
    let e = c
        .produce(produce_req("not-seen-yet", 0, &["x".into()]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{}", e.message());
}

/// Issue 14 item 4: after a partition's lease went to another holder and
/// came back, the partition restarts at the committed end while its older,
/// never committed batches still sit in the WAL. A crash before they are
/// dropped must not make recovery refuse the WAL (the offsets jump back)
/// nor serve them: the restart serves exactly the batches of the new lease.
#[tokio::test]
async fn a_crash_after_a_lease_came_back_serves_only_the_new_leases_batches() {
    use streamhouse_agent::metastore::MetaStore;
    let meta_dir = tempfile::tempdir_in(target_tmp()).unwrap();
    let meta_url = format!("sqlite://{}", meta_dir.path().join("meta.db").display());
    let args = [
        "--metadata",
        &meta_url,
        "--lease-ttl-ms",
        "1500",
        "--segment-age-ms",
        "600000",
    ];
    let mut agent = Agent::start(1, &args);
    let meta = agent.create_topic(TOPIC, 1).await;
    let mut c = agent.producer_for(&meta, 0).await;
    let old: Vec<String> = (0..50).map(|i| format!("old-lease-{i}")).collect();
    c.produce(produce_req(TOPIC, 0, &old)).await.unwrap();

    // Another holder takes the lease (its clock is far ahead) and gives it
    // back at once: the agent is fenced, then acquires it again at a new
    // epoch and continues at the committed end (0), not after its WAL.
    let m = MetaStore::open(&meta_url).await.unwrap();
    let key = m.topics().await.unwrap()[0].key();
    let far = streamhouse_agent::clock::now_ms() + 3_600_000;
    let g = m
        .acquire_lease(&key, 0, "intruder", far, 3_600_000)
        .await
        .unwrap();
    m.release_lease(&key, 0, "intruder", g.epoch).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let lease = m.lease(&key, 0).await.unwrap().unwrap();
        if lease.holder == "agent-1" && lease.epoch > g.epoch {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent never took its lease back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let new: Vec<String> = (0..5).map(|i| format!("new-lease-{i}")).collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    let base = loop {
        match c.produce(produce_req(TOPIC, 0, &new)).await {
            Ok(r) => break r.into_inner().base_offset,
            Err(e) => assert!(Instant::now() < deadline, "{e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(base, 0, "the new lease continues at the committed end");

    agent.kill9();
    agent.spawn();
    let mut f = agent.fetcher_for(&meta, 0).await;
    let got: Vec<Vec<u8>> = fetch_all(&mut f, TOPIC, 0)
        .await
        .into_iter()
        .map(|r| r.value.to_vec())
        .collect();
    let want: Vec<Vec<u8>> = new.iter().map(|v| v.as_bytes().to_vec()).collect();
    assert_eq!(got, want, "after the crash, only the new lease's batches");
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
    let common = [
        "--object-store".to_string(),
        format!("file://{}", stores.path().join("objects").display()),
        "--metadata".into(),
        format!("sqlite://{}", stores.path().join("meta.db").display()),
        "--segment-bytes".into(),
        (1 << 20).to_string(),
        "--segment-age-ms".into(),
        "500".into(),
        "--lease-ttl-ms".into(),
        "2000".into(),
        "--heartbeat-ms".into(),
        "200".into(),
        "--agent-timeout-ms".into(),
        "1000".into(),
    ];
    let args = |id: &str| {
        let mut a = common.to_vec();
        a.extend(["--agent-id".into(), id.to_owned()]);
        a
    };
    let a0 = args("agent-0");
    let a0: Vec<&str> = a0.iter().map(String::as_str).collect();
    let a1 = args("agent-1");
    let a1: Vec<&str> = a1.iter().map(String::as_str).collect();
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
