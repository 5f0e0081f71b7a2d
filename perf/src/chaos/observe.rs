//! The checker's own eyes: the raw `Metadata` and `Fetch` RPCs (generated
//! stubs only, not the client library, whose retries and position keeping
//! could hide what the agents answered). Polls who leads each partition at
//! which epoch, tails every partition while the faults run, and reads
//! every partition back at the end. Records what it saw; judges nothing
//! (that is `checker.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use streamhouse_proto::admin_service_client::AdminServiceClient;
use streamhouse_proto::fetch_service_client::FetchServiceClient;
use streamhouse_proto::{FetchRequest, MetadataRequest};
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};

use crate::chaos::payload::{self, Stamp};
use crate::chaos::workload::ms_since;

/// Channels by address, made lazily (connecting happens on first use).
#[derive(Clone, Default)]
pub struct Channels(Arc<Mutex<HashMap<String, Channel>>>);

impl Channels {
    pub fn get(&self, addr: &str) -> Result<Channel, String> {
        let mut m = self.0.lock();
        if let Some(c) = m.get(addr) {
            return Ok(c.clone());
        }
        let c = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(3))
            .connect_lazy();
        m.insert(addr.to_string(), c.clone());
        Ok(c)
    }
}

/// The leader of a partition as last seen.
#[derive(Debug, Clone, Default)]
pub struct Leader {
    pub address: String,
    pub agent: String,
}

/// (topic, partition) → its leader, as last answered by `Metadata`.
pub type Leaders = Arc<Mutex<HashMap<(String, u32), Leader>>>;

/// A partition: (topic, partition).
pub type PartitionKey = (String, u32);

/// Reads of many partitions: each its records, or why it failed.
pub type Reads = HashMap<PartitionKey, Result<Vec<Seen>, String>>;

/// A change of leader: (ms, agent id, epoch).
pub type LeaderChange = (u64, String, u64);

/// What the leader poller saw over the run.
#[derive(Debug, Default)]
pub struct LeaderLog {
    /// Per (topic, partition): (ms, agent id, epoch) at each change.
    pub changes: HashMap<PartitionKey, Vec<LeaderChange>>,
    /// (ms, topic, partition, highest epoch seen before, epoch now).
    pub epoch_backwards: Vec<(u64, String, u32, u64, u64)>,
}

impl LeaderLog {
    /// Agents that led the partition at some point in `[from, to]` ms.
    pub fn leaders_between(&self, topic: &str, partition: u32, from: u64, to: u64) -> Vec<String> {
        let Some(ch) = self.changes.get(&(topic.to_string(), partition)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, (at, agent, _)) in ch.iter().enumerate() {
            let until = ch.get(i + 1).map_or(u64::MAX, |n| n.0);
            if *at <= to && until >= from && !out.contains(agent) {
                out.push(agent.clone());
            }
        }
        out
    }
}

/// Asks `Metadata` of each address in turn until one answers.
async fn metadata(ch: &Channels, addrs: &[String]) -> Option<streamhouse_proto::MetadataResponse> {
    for a in addrs {
        let Ok(c) = ch.get(a) else { continue };
        let mut client = AdminServiceClient::new(c);
        if let Ok(r) = client.metadata(MetadataRequest { topics: vec![] }).await {
            return Some(r.into_inner());
        }
    }
    None
}

/// Polls `Metadata` every `every` until `stop`; keeps `leaders` current.
pub async fn poll_leaders(
    ch: Channels,
    addrs: Vec<String>,
    topics: Vec<String>,
    leaders: Leaders,
    t0: Instant,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> LeaderLog {
    let mut log = LeaderLog::default();
    let mut max_epoch: HashMap<(String, u32), u64> = HashMap::new();
    let mut start = 0usize;
    while !*stop.borrow() {
        // Start with another address each round, so one dead agent
        // does not slow every round.
        let order: Vec<String> = addrs[start % addrs.len()..]
            .iter()
            .chain(addrs[..start % addrs.len()].iter())
            .cloned()
            .collect();
        start += 1;
        if let Some(md) = metadata(&ch, &order).await {
            let now = ms_since(t0);
            for t in md.topics.iter().filter(|t| topics.contains(&t.name)) {
                for p in &t.partitions {
                    if p.leader_agent_id.is_empty() {
                        continue;
                    }
                    let key = (t.name.clone(), p.partition);
                    let max = max_epoch.entry(key.clone()).or_default();
                    if p.lease_epoch < *max {
                        log.epoch_backwards.push((
                            now,
                            t.name.clone(),
                            p.partition,
                            *max,
                            p.lease_epoch,
                        ));
                    }
                    *max = (*max).max(p.lease_epoch);
                    let ch = log.changes.entry(key.clone()).or_default();
                    if ch.last().is_none_or(|l| l.1 != p.leader_agent_id) {
                        ch.push((now, p.leader_agent_id.clone(), p.lease_epoch));
                    }
                    leaders.lock().insert(
                        key,
                        Leader {
                            address: p.leader_address.clone(),
                            agent: p.leader_agent_id.clone(),
                        },
                    );
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => {}
        }
    }
    log
}

/// One record as a read returned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub offset: u64,
    /// `None`: the bytes are not an intact chaos record.
    pub stamp: Option<Stamp>,
}

/// What tailing one partition saw.
#[derive(Debug, Default)]
pub struct TailLog {
    pub topic: String,
    pub partition: u32,
    /// Offset → when (ms) and what was read there first.
    pub seen: HashMap<u64, FirstRead>,
    /// (ms, offset, first read, later read): an offset that returned two
    /// different records.
    pub changed: Vec<(u64, u64, Option<Stamp>, Option<Stamp>)>,
    /// (ms, from, to): a fetch from `from` whose records started (or went
    /// on) at `to` > `from`, skipping offsets.
    pub gaps: Vec<(u64, u64, u64)>,
    /// (ms, highest high watermark seen before, high watermark now).
    pub hw_backwards: Vec<(u64, u64, u64)>,
    pub fetches: u64,
    pub errors: u64,
}

/// What a tailer read first at one offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstRead {
    /// Since the run started, ms.
    pub at_ms: u64,
    pub stamp: Option<Stamp>,
}

/// One Fetch from the partition's current leader.
async fn fetch_once(
    ch: &Channels,
    leaders: &Leaders,
    topic: &str,
    partition: u32,
    offset: u64,
    max_wait_ms: u32,
) -> Result<(Vec<Seen>, u64), tonic::Status> {
    let addr = leaders
        .lock()
        .get(&(topic.to_string(), partition))
        .map(|l| l.address.clone())
        .filter(|a| !a.is_empty())
        .ok_or_else(|| tonic::Status::unavailable("no leader known"))?;
    let c = ch.get(&addr).map_err(tonic::Status::invalid_argument)?;
    let mut client = FetchServiceClient::new(c).max_decoding_message_size(64 << 20);
    let r = client
        .fetch(FetchRequest {
            topic: topic.to_string(),
            partition,
            offset,
            max_bytes: 1 << 20,
            max_wait_ms,
            ..Default::default()
        })
        .await?
        .into_inner();
    let seen = r
        .records
        .iter()
        .map(|rec| Seen {
            offset: rec.offset,
            stamp: payload::decode(&rec.value),
        })
        .collect();
    Ok((seen, r.high_watermark))
}

/// Tails one partition from offset 0 until `stop`.
pub async fn tail(
    ch: Channels,
    leaders: Leaders,
    topic: String,
    partition: u32,
    t0: Instant,
    mut stop: watch::Receiver<bool>,
) -> TailLog {
    let mut log = TailLog {
        topic: topic.clone(),
        partition,
        ..TailLog::default()
    };
    let mut next = 0u64;
    let mut max_hw = 0u64;
    while !*stop.borrow() {
        let r = tokio::select! {
            r = fetch_once(&ch, &leaders, &topic, partition, next, 500) => r,
            _ = stop.changed() => break,
        };
        log.fetches += 1;
        match r {
            Ok((records, hw)) => {
                let now = ms_since(t0);
                if hw < max_hw {
                    log.hw_backwards.push((now, max_hw, hw));
                }
                max_hw = max_hw.max(hw);
                let mut expect = next;
                for s in records {
                    if s.offset > expect {
                        log.gaps.push((now, expect, s.offset));
                    }
                    match log.seen.get(&s.offset) {
                        Some(first) if first.stamp != s.stamp => {
                            log.changed.push((now, s.offset, first.stamp, s.stamp));
                        }
                        Some(_) => {}
                        None => {
                            let first = FirstRead {
                                at_ms: now,
                                stamp: s.stamp,
                            };
                            log.seen.insert(s.offset, first);
                        }
                    }
                    expect = s.offset + 1;
                }
                next = expect.max(next);
            }
            Err(_) => {
                log.errors += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    log
}

/// Reads a partition from offset 0 to its high watermark (as answered by
/// the first read that reaches it), retrying errors for up to `patience`.
pub async fn read_all(
    ch: &Channels,
    addrs: &[String],
    leaders: &Leaders,
    topic: &str,
    partition: u32,
    patience: Duration,
) -> Result<Vec<Seen>, String> {
    let deadline = Instant::now() + patience;
    let mut out: Vec<Seen> = Vec::new();
    let mut next = 0u64;
    loop {
        match fetch_once(ch, leaders, topic, partition, next, 0).await {
            Ok((records, _)) => {
                // Nothing more: the end (`next >= hw`), or below the high
                // watermark a hole the agent cannot serve, which the checker
                // counts as missing offsets.
                if records.is_empty() {
                    return Ok(out);
                }
                next = records.last().map_or(next, |s| s.offset + 1);
                out.extend(records);
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                refresh_leaders(ch, addrs, leaders).await;
            }
            Err(e) => {
                return Err(format!(
                    "{topic}/{partition}: reading from offset {next}: {} {}",
                    e.code(),
                    e.message()
                ))
            }
        }
    }
}

/// Refreshes `leaders` once from any of `addrs` (for the final read).
pub async fn refresh_leaders(ch: &Channels, addrs: &[String], leaders: &Leaders) -> bool {
    let Some(md) = metadata(ch, addrs).await else {
        return false;
    };
    let mut l = leaders.lock();
    for t in md.topics {
        for p in t.partitions {
            l.insert(
                (t.name.clone(), p.partition),
                Leader {
                    address: p.leader_address,
                    agent: p.leader_agent_id,
                },
            );
        }
    }
    true
}
