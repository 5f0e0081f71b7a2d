//! The consumer-group requests an agent answers, on the control thread:
//! heartbeats (join, leave, assignment) and offset commits for the groups
//! this agent coordinates, and offsets, listings, descriptions and deletes
//! for any group. Every change is a read of the group's row, the pure
//! rules of `state.rs`, and a save over the version read (redone when
//! another agent saved first), so a coordinator change loses nothing. A
//! group's requests run one at a time on this agent (striped locks).
//! Knows nothing of `control/`: the caller passes the store, the catalog
//! and whether this agent coordinates the group.

use std::collections::{BTreeMap, BTreeSet};

use streamhouse_proto as pb;

use super::assignor::{Assignor, TopicPartition};
use super::settings::GroupSettings;
use super::state::{Beat, Group, GroupError, Joined};
use crate::catalog::Catalog;
use crate::group_metrics::GroupMetrics;
use crate::messages::ControlError;
use crate::metastore::groups::OffsetCommit;
use crate::metastore::MetaStore;

/// How often a change is redone when another agent saved the group first.
const SAVE_ATTEMPTS: usize = 8;

/// Locks striping the groups (a group's requests run one at a time).
const STRIPES: usize = 64;

/// What a request runs against.
pub struct GroupContext<'a> {
    pub meta: &'a MetaStore,
    pub catalog: &'a Catalog,
    pub metrics: &'a GroupMetrics,
    /// Milliseconds since the epoch.
    pub now_ms: i64,
}

/// The coordinator's own state: settings, locks and member ids.
pub struct Coordinator {
    settings: GroupSettings,
    stripes: Vec<tokio::sync::Mutex<()>>,
    /// Makes member ids (injected, so tests are deterministic).
    new_id: Box<dyn Fn() -> String + Send + Sync>,
}

impl From<GroupError> for ControlError {
    fn from(e: GroupError) -> Self {
        match e {
            GroupError::Full { .. } => ControlError::Exhausted(e.to_string()),
            GroupError::FencedInstance { .. } => ControlError::Superseded(e.to_string()),
            _ => ControlError::Fenced(e.to_string()),
        }
    }
}

/// A member id: `client_id` (or "member") and 16 random hex digits.
pub fn random_member_id() -> String {
    format!("member-{:016x}", rand::random::<u64>())
}

fn to_set(parts: &[pb::TopicPartitions]) -> BTreeSet<TopicPartition> {
    parts
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| TopicPartition::new(&t.topic, *p))
        })
        .collect()
}

fn to_pb(set: &BTreeSet<TopicPartition>) -> Vec<pb::TopicPartitions> {
    let mut by_topic: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for tp in set {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    by_topic
        .into_iter()
        .map(|(topic, partitions)| pb::TopicPartitions {
            topic: topic.into(),
            partitions,
        })
        .collect()
}

/// How often a member with session timeout `session` is told to
/// heartbeat (ms): the configured interval, but at most a third of the
/// session, so one lost or late heartbeat never expires a member.
fn heartbeat_interval(configured: std::time::Duration, session: std::time::Duration) -> u32 {
    let ms = configured.min(session / 3).as_millis().max(1);
    u32::try_from(ms).unwrap_or(u32::MAX)
}

/// Refuses an offset or leader epoch no log can reach (offsets and epochs
/// are stored as signed 64-bit integers; a larger one would be stored
/// clamped and the group could never read the partition again).
fn check_committable(o: &pb::OffsetEntry) -> Result<(), ControlError> {
    if i64::try_from(o.offset).is_err() {
        return Err(ControlError::Invalid(format!(
            "offset {} of {}/{} is beyond any log's end (at most {})",
            o.offset,
            o.topic,
            o.partition,
            i64::MAX
        )));
    }
    if o.leader_epoch
        .is_some_and(|e| e == 0 || i64::try_from(e).is_err())
    {
        return Err(ControlError::Invalid(format!(
            "leader epoch {:?} of {}/{} is not a lease epoch (1 to {})",
            o.leader_epoch,
            o.topic,
            o.partition,
            i64::MAX
        )));
    }
    Ok(())
}

/// A group that must exist (describe, delete).
fn unknown_group(group: &str) -> ControlError {
    ControlError::Missing(format!("unknown group {group}"))
}

/// Refuses a change that needs a group without members.
fn require_empty(group: &str, g: &Group) -> Result<(), ControlError> {
    if g.members.is_empty() {
        return Ok(());
    }
    Err(ControlError::Fenced(
        GroupError::NotEmpty {
            group: group.into(),
            members: g.members.len(),
        }
        .to_string(),
    ))
}

pub(super) fn decode(group: &str, state: &str) -> Result<Group, ControlError> {
    serde_json::from_str(state).map_err(|e| {
        ControlError::Corrupt(format!("stored state of group {group} cannot be read: {e}"))
    })
}

fn encode(group: &Group) -> Result<String, ControlError> {
    serde_json::to_string(group)
        .map_err(|e| ControlError::Internal(format!("cannot serialize a group: {e}")))
}

/// The state a group is in, as listed: `empty` without members present,
/// `reconciling` while some member is giving partitions up or waiting for
/// them, `stable` otherwise.
pub fn state_name(g: &Group) -> &'static str {
    if g.active_members() == 0 {
        return "empty";
    }
    let settled = g
        .members
        .iter()
        .all(|(id, m)| m.revoking.is_empty() && g.target.get(id).is_none_or(|t| *t == m.assigned));
    if settled {
        "stable"
    } else {
        "reconciling"
    }
}

impl Coordinator {
    pub fn new(settings: GroupSettings, new_id: Box<dyn Fn() -> String + Send + Sync>) -> Self {
        Coordinator {
            settings,
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            new_id,
        }
    }

    pub fn settings(&self) -> &GroupSettings {
        &self.settings
    }

    /// Runs `group`'s requests one at a time on this agent.
    pub(super) async fn lock(&self, group: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let h = group.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        self.stripes[(h % STRIPES as u64) as usize].lock().await
    }

    /// Topic name → partition count, of every topic.
    fn topics(cx: &GroupContext<'_>) -> BTreeMap<String, u32> {
        cx.catalog
            .list()
            .into_iter()
            .map(|(n, t)| (n, t.partitions))
            .collect()
    }

    /// A member's heartbeat (join, leave, assignment). Cancelling it may
    /// leave the change saved or not; the member's next heartbeat finds out.
    pub async fn heartbeat(
        &self,
        cx: &GroupContext<'_>,
        req: pb::GroupHeartbeatRequest,
    ) -> Result<pb::GroupHeartbeatResponse, ControlError> {
        self.settings.check_group_id(&req.group_id)?;
        let session = self.settings.session_timeout(req.session_timeout_ms)?;
        let rebalance = self.settings.rebalance_timeout(req.rebalance_timeout_ms)?;
        let assignor = Assignor::parse(&req.assignor).ok_or_else(|| {
            ControlError::Invalid(format!(
                "unknown assignor {:?}: use cooperative-sticky, range or roundrobin",
                req.assignor
            ))
        })?;
        self.settings.check_topics(&req.topics)?;
        for (what, v) in [
            ("member id", &req.member_id),
            ("client id", &req.client_id),
            ("group instance id", &req.group_instance_id),
        ] {
            self.settings.check_name(what, v)?;
        }
        let _one = self.lock(&req.group_id).await;
        let topics = Self::topics(cx);
        for _ in 0..SAVE_ATTEMPTS {
            let stored = cx.meta.load_group(&req.group_id).await?;
            let leaving = req.member_epoch < 0;
            let (mut group, version) = match &stored {
                Some(s) => (decode(&req.group_id, &s.state)?, Some(s.version)),
                None if leaving => return Ok(pb::GroupHeartbeatResponse::default()),
                None if req.member_epoch > 0 => {
                    return Err(GroupError::UnknownMember {
                        group: req.group_id.clone(),
                        member: req.member_id.clone(),
                    }
                    .into())
                }
                None => {
                    self.check_room(cx, &req.group_id).await?;
                    (Group::new(assignor), None)
                }
            };
            let beat = Beat {
                member_id: req.member_id.clone(),
                member_epoch: req.member_epoch,
                instance_id: (!req.group_instance_id.is_empty())
                    .then(|| req.group_instance_id.clone()),
                client_id: req.client_id.clone(),
                topics: (req.topics_changed || req.member_epoch == 0)
                    .then(|| req.topics.iter().cloned().collect()),
                owned: req.owned_changed.then(|| to_set(&req.owned)),
                session_timeout_ms: session.as_millis() as i64,
                rebalance_timeout_ms: rebalance.as_millis() as i64,
            };
            let new_id = (self.new_id)();
            let out = group.heartbeat(
                &req.group_id,
                beat,
                &new_id,
                &topics,
                self.settings.max_members,
                cx.now_ms,
            )?;
            let state = encode(&group)?;
            if cx
                .meta
                .save_group(&req.group_id, &state, version, cx.now_ms)
                .await?
                .is_none()
            {
                continue;
            }
            cx.metrics
                .observe_group(&req.group_id, group.active_members() as u64, group.epoch);
            return Ok(match out {
                None => pb::GroupHeartbeatResponse::default(),
                Some(Joined {
                    member_id,
                    epoch,
                    assignment,
                    awaiting,
                }) => pb::GroupHeartbeatResponse {
                    member_id,
                    member_epoch: i64::try_from(epoch).unwrap_or(i64::MAX),
                    heartbeat_interval_ms: heartbeat_interval(
                        self.settings.heartbeat_interval,
                        session,
                    ),
                    assignment: to_pb(&assignment),
                    awaiting,
                },
            });
        }
        Err(self.contended(&req.group_id))
    }

    /// Refuses to create `group` when the cluster has `max_groups`.
    async fn check_room(&self, cx: &GroupContext<'_>, group: &str) -> Result<(), ControlError> {
        let n = cx.meta.count_groups().await?;
        if n >= self.settings.max_groups as u64 {
            return Err(ControlError::Exhausted(format!(
                "cannot create group {group}: the cluster has {n} consumer groups, the most \
                 allowed (`--group-max-groups`); delete unused ones"
            )));
        }
        Ok(())
    }

    fn contended(&self, group: &str) -> ControlError {
        ControlError::Unavailable(format!(
            "group {group} kept changing while this request was applied ({SAVE_ATTEMPTS} attempts); retry"
        ))
    }

    /// Commits offsets of partitions the member owns (or, with no member
    /// and epoch -1, of a group without members). Cancelling it may leave
    /// the offsets stored or not.
    pub async fn commit(
        &self,
        cx: &GroupContext<'_>,
        req: pb::CommitOffsetsRequest,
    ) -> Result<pb::CommitOffsetsResponse, ControlError> {
        self.settings.check_group_id(&req.group_id)?;
        self.settings.check_listed("a commit", req.offsets.len())?;
        let mut offsets = Vec::with_capacity(req.offsets.len());
        for o in &req.offsets {
            let t = cx
                .catalog
                .get(&o.topic)
                .ok_or_else(|| ControlError::Unknown(o.topic.clone()))?;
            if o.partition >= t.partitions {
                return Err(ControlError::Invalid(format!(
                    "topic {} has {} partitions; there is no partition {}",
                    o.topic, t.partitions, o.partition
                )));
            }
            self.settings.check_metadata(&o.metadata)?;
            check_committable(o)?;
            offsets.push(OffsetCommit {
                topic: t.key(&o.topic),
                partition: o.partition,
                offset: o.offset,
                metadata: o.metadata.clone(),
                leader_epoch: o.leader_epoch,
            });
        }
        let _one = self.lock(&req.group_id).await;
        for _ in 0..SAVE_ATTEMPTS {
            let Some(stored) = cx.meta.load_group(&req.group_id).await? else {
                if req.member_id.is_empty() {
                    // An administrative commit creates the group.
                    self.check_room(cx, &req.group_id).await?;
                    let state = encode(&Group::default())?;
                    cx.meta
                        .save_group(&req.group_id, &state, None, cx.now_ms)
                        .await?;
                    continue;
                }
                return Err(GroupError::UnknownMember {
                    group: req.group_id.clone(),
                    member: req.member_id.clone(),
                }
                .into());
            };
            let mut group = decode(&req.group_id, &stored.state)?;
            // A member silent past its session timeout is out, saved or not.
            group.expire(cx.now_ms);
            if req.member_id.is_empty() {
                require_empty(&req.group_id, &group)?;
            } else {
                let parts: Vec<TopicPartition> = req
                    .offsets
                    .iter()
                    .map(|o| TopicPartition::new(&o.topic, o.partition))
                    .collect();
                group.check_owner(&req.group_id, &req.member_id, req.member_epoch, &parts)?;
            }
            if cx
                .meta
                .commit_offsets(&req.group_id, stored.version, &offsets, cx.now_ms)
                .await?
            {
                cx.metrics.observe_commit(
                    &req.group_id,
                    req.offsets
                        .iter()
                        .map(|o| (o.topic.clone(), o.partition, o.offset)),
                );
                return Ok(pb::CommitOffsetsResponse {});
            }
        }
        Err(self.contended(&req.group_id))
    }

    /// The group's committed offsets of current topic incarnations (of
    /// `partitions` when given; those never committed without an offset).
    pub async fn fetch_offsets(
        &self,
        cx: &GroupContext<'_>,
        req: pb::FetchOffsetsRequest,
    ) -> Result<pb::FetchOffsetsResponse, ControlError> {
        self.settings.check_group_id(&req.group_id)?;
        let named: usize = req
            .partitions
            .iter()
            .map(|t| t.partitions.len().max(1))
            .sum();
        self.settings.check_listed("a FetchOffsets", named)?;
        let stored = cx.meta.group_offsets(&req.group_id).await?;
        let current: BTreeMap<String, (String, u32)> = cx
            .catalog
            .list()
            .into_iter()
            .map(|(n, t)| (t.key(&n).to_string(), (n, t.partitions)))
            .collect();
        let mut by_tp: BTreeMap<TopicPartition, pb::CommittedOffset> = BTreeMap::new();
        for o in stored {
            let Some((name, _)) = current.get(o.topic.as_str()) else {
                continue;
            };
            by_tp.insert(
                TopicPartition::new(name, o.partition),
                pb::CommittedOffset {
                    topic: name.clone(),
                    partition: o.partition,
                    offset: Some(o.offset),
                    metadata: o.metadata,
                    commit_time_ms: o.commit_ms,
                    leader_epoch: o.leader_epoch,
                },
            );
        }
        if req.partitions.is_empty() {
            return Ok(pb::FetchOffsetsResponse {
                offsets: by_tp.into_values().collect(),
            });
        }
        let offsets = to_set(&req.partitions)
            .into_iter()
            .map(|tp| {
                by_tp.remove(&tp).unwrap_or(pb::CommittedOffset {
                    topic: tp.topic,
                    partition: tp.partition,
                    ..Default::default()
                })
            })
            .collect();
        Ok(pb::FetchOffsetsResponse { offsets })
    }

    /// Every group, with its state and member count.
    pub async fn list(
        &self,
        cx: &GroupContext<'_>,
    ) -> Result<pb::ListGroupsResponse, ControlError> {
        let mut groups = Vec::new();
        for s in cx.meta.list_groups().await? {
            let mut g = decode(&s.name, &s.state)?;
            g.expire(cx.now_ms);
            groups.push(pb::GroupSummary {
                group_id: s.name,
                state: state_name(&g).into(),
                members: g.active_members() as u32,
            });
        }
        Ok(pb::ListGroupsResponse { groups })
    }

    /// Members, assignment and committed offsets of one group (members past
    /// their session timeout left out).
    pub async fn describe(
        &self,
        cx: &GroupContext<'_>,
        req: pb::DescribeGroupRequest,
    ) -> Result<pb::DescribeGroupResponse, ControlError> {
        self.settings.check_group_id(&req.group_id)?;
        let Some(stored) = cx.meta.load_group(&req.group_id).await? else {
            return Err(unknown_group(&req.group_id));
        };
        let mut g = decode(&req.group_id, &stored.state)?;
        g.expire(cx.now_ms);
        let committed = self
            .fetch_offsets(
                cx,
                pb::FetchOffsetsRequest {
                    group_id: req.group_id.clone(),
                    partitions: Vec::new(),
                },
            )
            .await?;
        let mut parts: BTreeMap<TopicPartition, pb::GroupPartition> = BTreeMap::new();
        for (topic, n) in &g.shape {
            for p in 0..*n {
                parts.insert(
                    TopicPartition::new(topic, p),
                    pb::GroupPartition {
                        topic: topic.clone(),
                        partition: p,
                        ..Default::default()
                    },
                );
            }
        }
        for o in committed.offsets {
            let e = parts
                .entry(TopicPartition::new(&o.topic, o.partition))
                .or_insert_with(|| pb::GroupPartition {
                    topic: o.topic.clone(),
                    partition: o.partition,
                    ..Default::default()
                });
            e.committed_offset = o.offset;
            e.metadata = o.metadata;
        }
        let mut members = Vec::new();
        for (id, m) in &g.members {
            for tp in m.assigned.iter().chain(&m.revoking) {
                if let Some(e) = parts.get_mut(tp) {
                    e.member_id = id.clone();
                }
            }
            members.push(pb::GroupMember {
                member_id: id.clone(),
                group_instance_id: m.instance_id.clone().unwrap_or_default(),
                client_id: m.client_id.clone(),
                member_epoch: i64::try_from(m.epoch).unwrap_or(i64::MAX),
                topics: m.topics.iter().cloned().collect(),
                assignment: to_pb(&m.assigned),
                revoking: to_pb(&m.revoking),
                last_heartbeat_ms: m.last_seen_ms,
                away: m.away,
            });
        }
        Ok(pb::DescribeGroupResponse {
            group_id: req.group_id,
            state: state_name(&g).into(),
            generation: i64::try_from(g.epoch).unwrap_or(i64::MAX),
            assignor: g.assignor.name().into(),
            members,
            partitions: parts.into_values().collect(),
        })
    }

    /// Deletes a group without members, with its offsets.
    pub async fn delete(
        &self,
        cx: &GroupContext<'_>,
        req: pb::DeleteGroupRequest,
    ) -> Result<pb::DeleteGroupResponse, ControlError> {
        self.settings.check_group_id(&req.group_id)?;
        let _one = self.lock(&req.group_id).await;
        for _ in 0..SAVE_ATTEMPTS {
            let Some(stored) = cx.meta.load_group(&req.group_id).await? else {
                return Err(unknown_group(&req.group_id));
            };
            let mut g = decode(&req.group_id, &stored.state)?;
            g.expire(cx.now_ms);
            require_empty(&req.group_id, &g)?;
            if cx.meta.delete_group(&req.group_id, stored.version).await? {
                cx.metrics.forget(&req.group_id);
                return Ok(pb::DeleteGroupResponse {});
            }
        }
        Err(self.contended(&req.group_id))
    }
}
