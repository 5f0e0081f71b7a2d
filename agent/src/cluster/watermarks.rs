//! High watermarks of partitions led anywhere in the cluster, for the
//! consumer groups this agent coordinates: lag on `/metrics` and refusing
//! a commit past a partition's end. A partition this agent leads is read
//! exactly from its shard's published value; others are asked of their
//! leaders with ListOffsets and kept until asked again. Owns the kept
//! values and one lazily connected channel per leader address; knows
//! nothing of the control plane (callers say which leader to ask).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use parking_lot::Mutex;
use streamhouse_proto as pb;
use tonic::transport::Channel;

/// Longest wait for a leader's answer.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// Partitions asked per ListOffsets (the agent's limit).
const PER_REQUEST: usize = 1_000;
/// Remote values kept at most (the group metrics' series bound).
pub const MAX_KEPT: usize = 10_000;

/// The high watermark of a partition this agent leads, if it does.
pub type LocalWatermarks = Box<dyn Fn(&str, u32) -> Option<u64> + Send + Sync>;

/// Partitions of one topic to ask one leader about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    /// The leader's shard address (`host:port`).
    pub address: String,
    pub topic: String,
    pub partitions: Vec<u32>,
}

/// High watermarks, local and remote.
pub struct Watermarks {
    local: Mutex<Option<LocalWatermarks>>,
    remote: Mutex<HashMap<(String, u32), u64>>,
    channels: Mutex<HashMap<String, Channel>>,
}

impl Default for Watermarks {
    fn default() -> Self {
        Watermarks {
            local: Mutex::new(None),
            remote: Mutex::new(HashMap::new()),
            channels: Mutex::new(HashMap::new()),
        }
    }
}

impl Watermarks {
    /// Where local partitions' values come from (set once the catalog
    /// exists).
    pub fn set_local(&self, f: LocalWatermarks) {
        *self.local.lock() = Some(f);
    }

    /// The exact value when this agent leads the partition.
    pub fn local(&self, topic: &str, partition: u32) -> Option<u64> {
        self.local.lock().as_ref().and_then(|f| f(topic, partition))
    }

    /// The exact local value, else the last value its leader answered.
    pub fn get(&self, topic: &str, partition: u32) -> Option<u64> {
        self.local(topic, partition).or_else(|| {
            self.remote
                .lock()
                .get(&(topic.to_owned(), partition))
                .copied()
        })
    }

    /// Asks each leader for its partitions' high watermarks now (at most
    /// [`ASK_TIMEOUT`] each, all leaders at once) and keeps the answers; a
    /// leader that does not answer leaves its partitions' values as they
    /// were. Returns how many partitions were answered.
    ///
    /// # Cancellation
    /// Answers already in are kept; nothing else changes.
    pub async fn ask(&self, asks: &[Ask]) -> usize {
        let mut calls = Vec::new();
        for a in asks {
            let Some(ch) = self.channel(&a.address) else {
                continue;
            };
            for chunk in a.partitions.chunks(PER_REQUEST) {
                let req = pb::ListOffsetsRequest {
                    topic: a.topic.clone(),
                    queries: chunk
                        .iter()
                        .map(|&partition| pb::list_offsets_request::Query {
                            partition,
                            timestamp_ms: -1,
                        })
                        .collect(),
                };
                let mut client = pb::group_service_client::GroupServiceClient::new(ch.clone());
                let topic = a.topic.clone();
                let address = a.address.clone();
                calls.push(async move {
                    let r = tokio::time::timeout(ASK_TIMEOUT, client.list_offsets(req)).await;
                    match r {
                        Ok(Ok(r)) => Some((topic, r.into_inner().answers)),
                        Ok(Err(s)) => {
                            tracing::debug!(%address, topic, error = %s, "a leader did not say its high watermarks");
                            None
                        }
                        Err(_) => {
                            tracing::debug!(%address, topic, "a leader did not say its high watermarks in time");
                            None
                        }
                    }
                });
            }
        }
        let mut answered = 0;
        for (topic, answers) in futures::future::join_all(calls).await.into_iter().flatten() {
            let mut kept = self.remote.lock();
            for a in answers {
                if kept.len() < MAX_KEPT || kept.contains_key(&(topic.clone(), a.partition)) {
                    kept.insert((topic.clone(), a.partition), a.offset);
                    answered += 1;
                }
            }
        }
        answered
    }

    /// Keeps the remote values of the partitions `keep` names only.
    pub fn retain(&self, keep: impl Fn(&str, u32) -> bool) {
        self.remote.lock().retain(|(t, p), _| keep(t, *p));
    }

    /// A lazily connected channel to `address`, kept for later asks.
    fn channel(&self, address: &str) -> Option<Channel> {
        let mut chans = self.channels.lock();
        if let Some(c) = chans.get(address) {
            return Some(c.clone());
        }
        let ch = Channel::from_shared(format!("http://{address}"))
            .ok()?
            .connect_timeout(ASK_TIMEOUT)
            .connect_lazy();
        chans.insert(address.to_owned(), ch.clone());
        Some(ch)
    }
}

/// Groups `(topic, partition, leader address)` into one [`Ask`] per
/// leader and topic.
pub fn asks(parts: impl IntoIterator<Item = (String, u32, String)>) -> Vec<Ask> {
    let mut by: BTreeMap<(String, String), Vec<u32>> = BTreeMap::new();
    for (topic, p, address) in parts {
        by.entry((address, topic)).or_default().push(p);
    }
    by.into_iter()
        .map(|((address, topic), partitions)| Ask {
            address,
            topic,
            partitions,
        })
        .collect()
}
