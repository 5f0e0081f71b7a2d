//! Consumer-group requests as a client drives them over the generated
//! stubs: a member's id, generation and owned partitions, its heartbeat
//! request and the answer applied. Shared by the group protocol tests.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use streamhouse_proto as pb;
use tonic::transport::Channel;

pub type Groups = pb::group_service_client::GroupServiceClient<Channel>;

pub const SESSION_MS: u32 = 2000;

pub async fn groups_at(addr: &str) -> Groups {
    let ch = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    Groups::new(ch)
}

/// A member as a client drives it.
#[derive(Default, Clone, Debug)]
pub struct Member {
    pub id: String,
    pub epoch: i64,
    pub owned: BTreeSet<(String, u32)>,
}

pub fn owned_pb(m: &Member) -> Vec<pb::TopicPartitions> {
    let mut by: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (t, p) in &m.owned {
        by.entry(t).or_default().push(*p);
    }
    by.into_iter()
        .map(|(t, ps)| pb::TopicPartitions {
            topic: t.into(),
            partitions: ps,
        })
        .collect()
}

pub fn beat(group: &str, m: &Member, topic: &str) -> pb::GroupHeartbeatRequest {
    pb::GroupHeartbeatRequest {
        group_id: group.into(),
        member_id: m.id.clone(),
        member_epoch: m.epoch,
        client_id: "groups-test".into(),
        topics: vec![topic.into()],
        topics_changed: m.epoch == 0,
        owned: owned_pb(m),
        owned_changed: m.epoch != 0,
        session_timeout_ms: SESSION_MS,
        ..Default::default()
    }
}

pub async fn heartbeat(c: &mut Groups, group: &str, m: &mut Member, topic: &str) {
    let r = c
        .heartbeat(beat(group, m, topic))
        .await
        .expect("heartbeat")
        .into_inner();
    apply(m, r);
}

/// What a client does with a heartbeat answer: its id, generation and
/// assignment are the member's now.
pub fn apply(m: &mut Member, r: pb::GroupHeartbeatResponse) {
    m.id = r.member_id;
    m.epoch = r.member_epoch;
    m.owned = r
        .assignment
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic.clone(), *p)))
        .collect();
}

/// Heartbeats every member in turn until each owns `want` partitions.
pub async fn settle(c: &mut Groups, group: &str, ms: &mut [Member], topic: &str, want: &[usize]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for m in ms.iter_mut() {
            heartbeat(c, group, m, topic).await;
        }
        let mut all = BTreeSet::new();
        for m in ms.iter() {
            for tp in &m.owned {
                assert!(all.insert(tp.clone()), "{tp:?} owned twice: {ms:?}");
            }
        }
        let counts: Vec<usize> = ms.iter().map(|m| m.owned.len()).collect();
        if counts == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {counts:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A commit of `offset` for `topic`/`partition` by member `m`.
pub fn commit(
    group: &str,
    m: &Member,
    topic: &str,
    partition: u32,
    offset: u64,
) -> pb::CommitOffsetsRequest {
    pb::CommitOffsetsRequest {
        group_id: group.into(),
        member_id: m.id.clone(),
        member_epoch: m.epoch,
        offsets: vec![pb::OffsetEntry {
            topic: topic.into(),
            partition,
            offset,
            metadata: "test".into(),
            leader_epoch: None,
        }],
    }
}
