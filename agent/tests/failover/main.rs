//! Several agents sharing one metadata store and one S3 bucket (moto):
//! partitions spread across them, a SIGKILLed agent's partitions are taken
//! over once their leases expire, a restarted agent keeps its leases and
//! its durable data, a SIGSTOPped agent is fenced, a joining agent takes
//! only its share. Every acknowledged record is read back exactly once, in
//! send order per partition.

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/pg.rs"]
mod pg;

mod kills;
mod moves;
mod outages;

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
        let a = as_strs(&args);
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
