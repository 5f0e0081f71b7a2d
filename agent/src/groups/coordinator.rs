//! The consumer-group requests an agent answers, on the control thread:
//! heartbeats (join, leave, assignment) for the groups this agent
//! coordinates (commits and offset reads in `offsets.rs`), and listings,
//! descriptions and deletes for any group. A coordinated group's state is
//! held in memory (`live.rs`) as long as the stored row keeps its version;
//! a heartbeat applies the pure rules of `state.rs` to it and saves only
//! changes of membership, assignment or generation (and the heartbeat
//! times every quarter session), over the version held (redone from the
//! stored state when another agent saved first), so a coordinator change
//! loses nothing. A group's requests run one at a time on this agent
//! (striped locks). Knows nothing of `control/`: the caller passes the
//! store, the catalog and whether this agent coordinates the group.

use std::collections::BTreeMap;

use streamhouse_proto as pb;

use super::assignor::{Assignor, TopicPartition};
use super::live::{decode, encode, Fingerprint, Live, LiveGroups};
use super::settings::GroupSettings;
use super::state::{Beat, Group, GroupError, Joined};
use crate::messages::ControlError;
use crate::metastore::MetaStore;
use crate::metrics::groups::GroupMetrics;
use crate::topics::catalog::Catalog;
use streamhouse_proto::topic_partition::{flatten, group_by_topic};

/// Longest a heartbeat that changed its group waits for the save.
const SAVE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How often a change is redone when another agent saved the group first.
pub(super) const SAVE_ATTEMPTS: usize = 8;

/// Locks striping the groups (a group's requests run one at a time).
const STRIPES: usize = 64;

/// What a request runs against.
pub struct GroupContext<'a> {
    pub meta: &'a MetaStore,
    pub catalog: &'a Catalog,
    pub metrics: &'a GroupMetrics,
    /// Wall clock, ms since the Unix epoch: only for what is stored for
    /// people and the retention of empty groups (`updated_ms`,
    /// `commit_ms`), never for sessions.
    pub now_ms: i64,
    /// Monotonic ms (`clock::mono_ms`): sessions, rebalance timeouts, save
    /// and check cadences. A step of the wall clock moves none of them.
    pub mono_ms: i64,
}

/// The coordinator's own state: settings, locks and member ids.
pub struct Coordinator {
    settings: GroupSettings,
    stripes: Vec<tokio::sync::Mutex<()>>,
    /// Makes member ids (injected, so tests are deterministic).
    new_id: Box<dyn Fn() -> String + Send + Sync>,
    /// The groups this agent coordinates, in memory.
    pub(super) live: LiveGroups,
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

/// How often a member with session timeout `session` is told to
/// heartbeat (ms): the configured interval, but at most a third of the
/// session, so one lost or late heartbeat never expires a member.
fn heartbeat_interval(configured: std::time::Duration, session: std::time::Duration) -> u32 {
    let ms = configured.min(session / 3).as_millis().max(1);
    u32::try_from(ms).unwrap_or(u32::MAX)
}

/// A group that must exist (describe, delete).
fn unknown_group(group: &str) -> ControlError {
    ControlError::Missing(format!("unknown group {group}"))
}

/// Refuses a change that needs a group without members.
pub(super) fn require_empty(group: &str, g: &Group) -> Result<(), ControlError> {
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
            live: LiveGroups::default(),
        }
    }

    pub fn settings(&self) -> &GroupSettings {
        &self.settings
    }

    /// Drops the in-memory state of groups `here` says another agent
    /// coordinates now.
    pub fn retain_live(&self, here: impl Fn(&str) -> bool) {
        self.live.retain(here);
    }

    /// Groups held in memory.
    pub fn live_groups(&self) -> usize {
        self.live.len()
    }

    /// Saves every held group whose change is due ([`super::live::SAVE_EVERY_MS`]
    /// after it was made) and that no request is changing now; a group
    /// another agent saved meanwhile is dropped (its change lost, as a
    /// coordinator crash would lose it). Returns how many were saved.
    /// Cancelling it leaves the groups not reached for the next flush.
    pub async fn flush(&self, cx: &GroupContext<'_>) -> usize {
        let mut saved = 0;
        for group in self.live.due(cx.mono_ms) {
            let _one = self.lock(&group).await;
            let live = match self.live.take(cx.meta, &group, cx.mono_ms).await {
                Ok(Some(l)) => l,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(%group, error = %e, "cannot read a consumer group to save it; retrying");
                    continue;
                }
            };
            match self.save(cx, &group, live).await {
                Ok(true) => saved += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(%group, error = %e, "saving a consumer group failed; retrying")
                }
            }
        }
        saved
    }

    /// Saves `live` as `group`'s row if it holds a change and holds it
    /// again; `false` when another agent saved first (then it is dropped,
    /// and requests waiting for its changes are told so).
    async fn save(
        &self,
        cx: &GroupContext<'_>,
        group: &str,
        mut live: Live,
    ) -> Result<bool, ControlError> {
        if !live.dirty {
            self.live.put(group, live);
            return Ok(false);
        }
        match self.save_here(cx, group, &mut live).await {
            Ok(true) => {
                self.live.put(group, live);
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => {
                self.live.put(group, live);
                Err(e)
            }
        }
    }

    /// Writes `live` over the version it holds (creating the row for a new
    /// group) and records it saved; `false` when another agent saved first
    /// (the held state is then forgotten: requests waiting for its changes
    /// are told they were lost).
    async fn save_here(
        &self,
        cx: &GroupContext<'_>,
        group: &str,
        live: &mut Live,
    ) -> Result<bool, ControlError> {
        let state = encode(&live.group)?;
        let expected = (live.version > 0).then_some(live.version);
        match cx
            .meta
            .save_group(group, &state, expected, cx.now_ms)
            .await?
        {
            None => {
                self.live.forget(group);
                Ok(false)
            }
            Some(version) => {
                live.version = version;
                live.dirty = false;
                live.saved_ms = cx.mono_ms;
                live.verified_ms = cx.mono_ms;
                self.live.mark_saved(group, live);
                Ok(true)
            }
        }
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
        peer: Option<std::net::IpAddr>,
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
            let leaving = req.member_epoch < 0;
            let mut live = match self.live.take(cx.meta, &req.group_id, cx.mono_ms).await? {
                Some(l) => l,
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
                    let mut l = Live::new(Group::new(assignor), 0, cx.mono_ms);
                    l.incarnation = self.live.fresh_incarnation();
                    l.dirty = true;
                    l
                }
            };
            let beat = Beat {
                member_id: req.member_id.clone(),
                member_epoch: req.member_epoch,
                instance_id: (!req.group_instance_id.is_empty())
                    .then(|| req.group_instance_id.clone()),
                client_id: req.client_id.clone(),
                client_host: peer.map(|ip| ip.to_string()).unwrap_or_default(),
                topics: (req.topics_changed || req.member_epoch == 0)
                    .then(|| req.topics.iter().cloned().collect()),
                owned: req.owned_changed.then(|| flatten(&req.owned)),
                session_timeout_ms: session.as_millis() as i64,
                rebalance_timeout_ms: rebalance.as_millis() as i64,
            };
            let new_id = (self.new_id)();
            let before = Fingerprint::of(&live.group, &req.member_id);
            let out = live.group.heartbeat(
                &req.group_id,
                beat,
                &new_id,
                &topics,
                self.settings.max_members,
                cx.mono_ms,
            );
            let id = match &out {
                Ok(Some(j)) => j.member_id.as_str(),
                _ => req.member_id.as_str(),
            };
            let changed = id != req.member_id || before != Fingerprint::of(&live.group, id);
            if changed {
                live.dirty = true;
                live.changes += 1;
            }
            let out = match out {
                Ok(out) => out,
                Err(e) => {
                    // Refused: what expiry settled meanwhile is kept (and
                    // saved with the group's next changes).
                    self.live.put(&req.group_id, live);
                    return Err(e.into());
                }
            };
            cx.metrics.observe_group(
                &req.group_id,
                live.group.active_members() as u64,
                live.group.epoch,
            );
            let mine = (live.incarnation, live.changes);
            if live.version == 0 || live.save_due(cx.mono_ms) {
                // A new group's row is written at once (later requests find
                // it by its version), and so are changes held for
                // SAVE_EVERY_MS (this one's with them) and the heartbeat
                // times when due: a busy group saves from its own requests,
                // without waiting for the flush behind them.
                if !self.save_here(cx, &req.group_id, &mut live).await? {
                    continue; // another agent saved first: again from its state
                }
                self.live.put(&req.group_id, live);
            } else if changed {
                // Answered once saved, with the changes of the group's other
                // requests of the same SAVE_EVERY_MS (saved by the first of
                // them past it, or by the flush).
                self.live.put(&req.group_id, live);
                drop(_one);
                self.live
                    .saved(&req.group_id, mine.0, mine.1, SAVE_WAIT)
                    .await?;
            } else {
                self.live.put(&req.group_id, live);
            }
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
                    assignment: group_by_topic(&assignment),
                    awaiting,
                },
            });
        }
        Err(self.contended(&req.group_id))
    }

    /// Refuses to create `group` when the cluster has `max_groups`.
    pub(super) async fn check_room(
        &self,
        cx: &GroupContext<'_>,
        group: &str,
    ) -> Result<(), ControlError> {
        let n = cx.meta.count_groups().await?;
        if n >= self.settings.max_groups as u64 {
            return Err(ControlError::Exhausted(format!(
                "cannot create group {group}: the cluster has {n} consumer groups, the most \
                 allowed (`--group-max-groups`); delete unused ones"
            )));
        }
        Ok(())
    }

    pub(super) fn contended(&self, group: &str) -> ControlError {
        ControlError::Unavailable(format!(
            "group {group} kept changing while this request was applied ({SAVE_ATTEMPTS} attempts); retry"
        ))
    }

    /// Every group, with its state and member count.
    pub async fn list(
        &self,
        cx: &GroupContext<'_>,
    ) -> Result<pb::ListGroupsResponse, ControlError> {
        let mut groups = Vec::new();
        for s in cx.meta.list_groups().await? {
            // The coordinator's own copy of the groups it holds (changes of
            // the last SAVE_EVERY_MS may not be stored yet).
            let mut g = match self.live.peek(&s.name, s.version) {
                Some(g) => g,
                None => decode(&s.name, &s.state)?,
            };
            g.expire(cx.mono_ms);
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
        // The coordinator's own copy when it holds the stored version:
        // its heartbeat times are current, the stored ones up to a flush old.
        let mut g = match self.live.peek(&req.group_id, stored.version) {
            Some(g) => g,
            None => {
                // Stored heartbeat times are another process's monotonic
                // clock: as a load would, count every member seen now.
                let mut g = decode(&req.group_id, &stored.state)?;
                for m in g.members.values_mut() {
                    m.last_seen_ms = cx.mono_ms;
                }
                g
            }
        };
        g.expire(cx.mono_ms);
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
                client_host: m.client_host.clone(),
                member_epoch: i64::try_from(m.epoch).unwrap_or(i64::MAX),
                topics: m.topics.iter().cloned().collect(),
                assignment: group_by_topic(&m.assigned),
                revoking: group_by_topic(&m.revoking),
                // Wall-clock ms, for people: as long ago as it was.
                last_heartbeat_ms: cx.now_ms - cx.mono_ms.saturating_sub(m.last_seen_ms),
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
            let mut g = match self.live.peek(&req.group_id, stored.version) {
                Some(g) => g,
                None => decode(&req.group_id, &stored.state)?,
            };
            g.expire(cx.mono_ms);
            require_empty(&req.group_id, &g)?;
            if cx.meta.delete_group(&req.group_id, stored.version).await? {
                cx.metrics.forget(&req.group_id);
                self.live.forget(&req.group_id);
                return Ok(pb::DeleteGroupResponse {});
            }
        }
        Err(self.contended(&req.group_id))
    }
}
