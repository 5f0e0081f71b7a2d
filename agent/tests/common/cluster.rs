//! Several agents sharing stores on this machine: their flags, two
//! agents of one shard each, a partition one of them leads with a
//! producer that waits out a leader change, and lease and commit helpers
//! that read the metadata store.
// Not every test crate that includes the harness uses each helper.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use streamhouse_client::{Acks, Admin, Producer};

use super::{as_strs, Agent};

/// Flags for stores that several agents on this machine share, under
/// `dir`: `--object-store file://<dir>/objects --metadata
/// sqlite://<dir>/meta.db`, then `extra`.
pub fn local_stores(dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--object-store".to_string(),
        format!("file://{}", dir.join("objects").display()),
        "--metadata".into(),
        format!("sqlite://{}", dir.join("meta.db").display()),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// Flags of agent `id` of a small cluster sharing stores under `dir`
/// ([`local_stores`]): heartbeats every 200 ms, taken for dead after
/// 1.5 s, leases of 2 s, consumer-group heartbeats every 200 ms and
/// sessions from 500 ms.
pub fn group_cluster_args(dir: &Path, id: &str) -> Vec<String> {
    let flags = [
        "--agent-id",
        id,
        "--heartbeat-ms",
        "200",
        "--agent-timeout-ms",
        "1500",
        "--lease-ttl-ms",
        "2000",
        "--group-heartbeat-ms",
        "200",
        "--group-min-session-timeout-ms",
        "500",
    ];
    local_stores(dir, &flags)
}

/// Agents `agent-0` and `agent-1` of one shard each, sharing stores under
/// `dir` ([`group_cluster_args`]), sealing WAL segments once their data is
/// `segment_age_ms` old.
pub fn two_agents(dir: &Path, segment_age_ms: &str) -> [Agent; 2] {
    two_agents_on(dir, segment_age_ms, None)
}

/// [`two_agents`], with the metadata store at `metadata` when given (a
/// PostgreSQL URL) instead of a SQLite file under `dir`.
pub fn two_agents_on(dir: &Path, segment_age_ms: &str, metadata: Option<&str>) -> [Agent; 2] {
    let args = |id: &str| {
        let mut a = group_cluster_args(dir, id);
        if let (Some(url), Some(i)) = (metadata, a.iter().position(|x| x == "--metadata")) {
            a[i + 1] = url.to_string();
        }
        a.extend(["--segment-age-ms".to_string(), segment_age_ms.to_string()]);
        a
    };
    let (a0, a1) = (args("agent-0"), args("agent-1"));
    [
        Agent::start(1, &as_strs(&a0)),
        Agent::start(1, &as_strs(&a1)),
    ]
}

/// Two agents ([`two_agents`], sealing segments only after 10 minutes,
/// so what agent-0 acknowledges stays in its WAL) and topic `topic` of 4
/// partitions: the agents, both bootstrap addresses, and a partition
/// agent-0 leads.
pub async fn two_agents_and_a_partition_of_agent_0(
    dir: &Path,
    topic: &str,
) -> ([Agent; 2], Vec<String>, u32) {
    let agents = two_agents(dir, "600000");
    let bootstrap = vec![agents[0].addr(0), agents[1].addr(0)];
    let admin = Admin::connect(&agents[0].addr(0)).await.unwrap();
    admin.create_topic(topic, 4).await.unwrap();
    let p = agents[0]
        .first_partition_led_by(topic, "agent-0", "agent-1")
        .await;
    (agents, bootstrap, p)
}

/// A producer at `acks` that retries through a leader change (100 tries
/// within 30 s).
pub async fn patient_producer(bootstrap: &[String], acks: Acks) -> Producer {
    Producer::builder(bootstrap.to_vec())
        .acks(acks)
        .retries(100)
        .delivery_timeout(Duration::from_secs(30))
        .build()
        .await
        .unwrap()
}

/// Takes `key/partition`'s lease for `agent` as a taker that watched the
/// holder's renewals stand still would (the holder's current
/// `lease_beats`), looking again when a renewal comes in between.
pub async fn take_over(
    m: &streamhouse_agent::metastore::MetaStore,
    key: &streamhouse_agent::ids::TopicKey,
    partition: u32,
    agent: &str,
) -> streamhouse_agent::metastore::LeaseGrant {
    use streamhouse_agent::metastore::{MetaError, Takeover};
    loop {
        let row = m.lease(key, partition).await.unwrap().unwrap();
        let agents = m.agents().await.unwrap();
        let take = Takeover {
            lease_beats: agents
                .iter()
                .find(|a| a.agent_id == row.holder)
                .map_or(0, |a| a.lease_beats),
            holder: row.holder,
            epoch: row.epoch,
        };
        let now = streamhouse_agent::runtime::clock::now_ms();
        match m
            .acquire_lease(key, partition, agent, (now, 3_600_000), Some(&take))
            .await
        {
            Ok(g) => return g,
            Err(MetaError::LeaseHeld { .. }) => continue,
            Err(e) => panic!("{e}"),
        }
    }
}

/// Waits (30 s at most) until `end` records of `topic`/`partition` are
/// committed to object storage, as the metadata store at `meta_url` says.
pub async fn await_committed_end(meta_url: &str, topic: &str, partition: u32, end: u64) {
    let m = streamhouse_agent::metastore::MetaStore::open(meta_url)
        .await
        .expect("open the metadata store");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let key = m
            .topics()
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.name == topic)
            .map(|t| t.key());
        if let Some(key) = key {
            if m.committed_end(&key, partition).await.unwrap() >= end {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{topic} never committed {end}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
