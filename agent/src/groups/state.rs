//! One consumer group's state and the rules that change it: members
//! joining, heartbeating, leaving and timing out; the group's generation
//! (`epoch`), bumped whenever the target assignment must be computed again;
//! and the cooperative hand-over of partitions (a partition is given to its
//! new owner only once its previous owner has reported it revoked, so no
//! two members ever own one partition at once). Pure: the caller passes
//! the time, new member ids and the topics' partition counts in, and keeps
//! the state where it likes (`store.rs`). Knows nothing of gRPC.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::assignor::{Assignment, Assignor, TopicPartition};

/// A group's member as the coordinator keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// `group_instance_id` of a static member: a new process with the same
    /// one takes this member's place (and partitions) without a rebalance.
    pub instance_id: Option<String>,
    /// What the client calls itself (shown by `group describe`).
    pub client_id: String,
    /// The IP address its heartbeats come from (shown by `group
    /// describe`); empty when unknown (state saved before it was kept).
    #[serde(default)]
    pub client_host: String,
    /// The generation this member was last told its assignment at; commits
    /// and heartbeats must carry it.
    pub epoch: u64,
    /// Subscribed topic names.
    pub topics: BTreeSet<String>,
    /// The partitions it owns (as last told to it).
    pub assigned: BTreeSet<TopicPartition>,
    /// Partitions it was told to give up and has not reported given up;
    /// nobody else gets them meanwhile.
    pub revoking: BTreeSet<TopicPartition>,
    /// Since when (ms) `revoking` has been non-empty.
    pub revoking_since_ms: Option<i64>,
    /// Last heartbeat, ms since the epoch.
    pub last_seen_ms: i64,
    /// Silent longer than this (ms) and it is removed.
    pub session_timeout_ms: i64,
    /// Given this long (ms) to report revoked partitions given up, or it is
    /// removed.
    pub rebalance_timeout_ms: i64,
    /// A static member that left for now (closed, to come back): kept,
    /// with its partitions, until its session times out.
    pub away: bool,
    /// The generation before `epoch`, until the member shows it knows
    /// `epoch`: a heartbeat or commit at it is still accepted once its
    /// answer may have been lost.
    #[serde(default)]
    pub previous_epoch: Option<u64>,
    /// Ids of earlier processes of this static member that newer ones
    /// replaced (the newest [`FENCED_IDS_KEPT`]): their requests are
    /// refused for good, so two processes with one instance id never take
    /// turns.
    #[serde(default)]
    pub fenced_ids: Vec<String>,
}

impl Member {
    /// Silent past its session timeout, or holding revoked partitions past
    /// its rebalance timeout, at `now_ms`.
    fn is_expired(&self, now_ms: i64) -> bool {
        now_ms > self.last_seen_ms.saturating_add(self.session_timeout_ms)
            || self
                .revoking_since_ms
                .is_some_and(|s| now_ms > s.saturating_add(self.rebalance_timeout_ms))
    }
}

/// Replaced member ids a static member remembers.
pub const FENCED_IDS_KEPT: usize = 8;

/// A consumer group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// The generation: bumped on every change of members, subscriptions or
    /// the subscribed topics' partition counts.
    pub epoch: u64,
    pub assignor: Assignor,
    /// Member id → member.
    pub members: BTreeMap<String, Member>,
    /// The target assignment computed at `epoch`.
    pub target: Assignment,
    /// The subscribed topics' partition counts `target` was computed for.
    pub shape: BTreeMap<String, u32>,
}

/// What a heartbeat says. `member_epoch` follows Kafka's consumer group
/// protocol: 0 joins, -1 leaves, -2 leaves for now (a static member that
/// will come back), anything else is the epoch the member was last given.
#[derive(Debug, Clone, Default)]
pub struct Beat {
    /// Empty when joining.
    pub member_id: String,
    pub member_epoch: i64,
    pub instance_id: Option<String>,
    pub client_id: String,
    /// The IP address the heartbeat came from ("" when unknown).
    pub client_host: String,
    /// Subscribed topics; `None` keeps the last ones.
    pub topics: Option<BTreeSet<String>>,
    /// The partitions the member still owns; `None` when unchanged since
    /// its last heartbeat.
    pub owned: Option<BTreeSet<TopicPartition>>,
    pub session_timeout_ms: i64,
    pub rebalance_timeout_ms: i64,
}

/// Answer to a heartbeat that did not leave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub member_id: String,
    pub epoch: u64,
    /// What the member owns from now on.
    pub assignment: BTreeSet<TopicPartition>,
    /// Partitions of its target that others still hold: more will come.
    pub awaiting: bool,
}

/// Why a member's request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("member {member} is not in group {group} (removed after its session timed out, or it left); rejoin")]
    UnknownMember { group: String, member: String },
    #[error(
        "member {member} of group {group} sent generation {sent}, but it is at {current}; rejoin"
    )]
    StaleEpoch {
        group: String,
        member: String,
        sent: i64,
        current: u64,
    },
    #[error(
        "member {member} of group {group} does not own {topic}/{partition} at generation {epoch}"
    )]
    NotOwner {
        group: String,
        member: String,
        topic: String,
        partition: u32,
        epoch: u64,
    },
    #[error("group {group} has {max} members, the most allowed (`--group-max-members`)")]
    Full { group: String, max: usize },
    #[error("group {group} has members ({members}); only an empty group may be changed this way")]
    NotEmpty { group: String, members: usize },
    #[error("member {member} of group {group} was replaced by a newer process with the same group instance id {instance}; this process is fenced for good (give each process its own instance id)")]
    FencedInstance {
        group: String,
        member: String,
        instance: String,
    },
}

impl Group {
    /// A new, empty group using `assignor`.
    pub fn new(assignor: Assignor) -> Group {
        Group {
            assignor,
            ..Group::default()
        }
    }

    /// Members present (not away).
    pub fn active_members(&self) -> usize {
        self.members.values().filter(|m| !m.away).count()
    }

    /// Whether [`expire`](Self::expire) at `now_ms` would remove `member`
    /// (false for a member not in the group).
    pub fn expired(&self, member: &str, now_ms: i64) -> bool {
        self.members
            .get(member)
            .is_some_and(|m| m.is_expired(now_ms))
    }

    /// Removes members silent past their session timeout, or that did not
    /// give revoked partitions up within their rebalance timeout, as of
    /// `now_ms`; the ids removed. Removing any bumps the generation.
    pub fn expire(&mut self, now_ms: i64) -> Vec<String> {
        let gone: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.is_expired(now_ms))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            self.members.remove(id);
        }
        gone
    }

    /// Handles one heartbeat at `now_ms`: `new_id` is the member id a
    /// joining member gets; `topics` holds the partition count of every
    /// existing topic. `Ok(None)` when the member left.
    pub fn heartbeat(
        &mut self,
        group: &str,
        beat: Beat,
        new_id: &str,
        topics: &BTreeMap<String, u32>,
        max_members: usize,
        now_ms: i64,
    ) -> Result<Option<Joined>, GroupError> {
        // Expiry is settled first, so a heartbeat refused below still
        // leaves a consistent group (the coordinator keeps it in memory).
        if !self.expire(now_ms).is_empty() {
            self.recompute(topics);
        }
        let mut changed = false;
        let id = match beat.member_epoch {
            -1 | -2 => {
                let temporary = beat.member_epoch == -2;
                match self.members.get_mut(&beat.member_id) {
                    Some(m) if temporary && m.instance_id.is_some() => m.away = true,
                    Some(_) => {
                        self.members.remove(&beat.member_id);
                        changed = true;
                    }
                    None => {}
                }
                if changed {
                    self.recompute(topics);
                }
                return Ok(None);
            }
            0 if !beat.member_id.is_empty() && self.members.contains_key(&beat.member_id) => {
                // A join retried (its answer was lost): the same member.
                if let Some(m) = self.members.get_mut(&beat.member_id) {
                    m.away = false;
                }
                beat.member_id.clone()
            }
            0 => {
                self.refuse_fenced(group, &beat.member_id)?;
                // The member's own id when it brings one (a retried join
                // finds it), else one made here.
                let new_id = if beat.member_id.is_empty() {
                    new_id
                } else {
                    beat.member_id.as_str()
                };
                let static_of = beat.instance_id.as_ref().and_then(|i| {
                    self.members
                        .iter()
                        .find(|(_, m)| m.instance_id.as_ref() == Some(i))
                        .map(|(id, _)| id.clone())
                });
                let member = match static_of {
                    // The same instance again: its place and partitions
                    // under a new id, so the old process is fenced.
                    Some(old) => {
                        if let Some(t) = self.target.remove(&old) {
                            self.target.insert(new_id.to_owned(), t);
                        }
                        self.members.remove(&old).map(|mut m| {
                            m.away = false;
                            m.fenced_ids.push(old);
                            let extra = m.fenced_ids.len().saturating_sub(FENCED_IDS_KEPT);
                            m.fenced_ids.drain(..extra);
                            m
                        })
                    }
                    None => None,
                };
                let member = match member {
                    Some(m) => m,
                    None => {
                        if self.members.len() >= max_members {
                            return Err(GroupError::Full {
                                group: group.into(),
                                max: max_members,
                            });
                        }
                        changed = true;
                        Member {
                            instance_id: beat.instance_id.clone(),
                            client_id: String::new(),
                            client_host: String::new(),
                            epoch: 0,
                            topics: BTreeSet::new(),
                            assigned: BTreeSet::new(),
                            revoking: BTreeSet::new(),
                            revoking_since_ms: None,
                            last_seen_ms: now_ms,
                            session_timeout_ms: beat.session_timeout_ms,
                            rebalance_timeout_ms: beat.rebalance_timeout_ms,
                            away: false,
                            previous_epoch: None,
                            fenced_ids: Vec::new(),
                        }
                    }
                };
                self.members.insert(new_id.to_owned(), member);
                new_id.to_owned()
            }
            sent => {
                self.refuse_fenced(group, &beat.member_id)?;
                let Some(m) = self.members.get_mut(&beat.member_id) else {
                    return Err(GroupError::UnknownMember {
                        group: group.into(),
                        member: beat.member_id,
                    });
                };
                let sent_epoch = u64::try_from(sent).ok();
                if m.away || (sent_epoch != Some(m.epoch) && sent_epoch != m.previous_epoch) {
                    return Err(GroupError::StaleEpoch {
                        group: group.into(),
                        member: beat.member_id.clone(),
                        sent,
                        current: m.epoch,
                    });
                }
                if sent_epoch == Some(m.epoch) {
                    // It knows its current generation.
                    m.previous_epoch = None;
                }
                beat.member_id.clone()
            }
        };
        if let Some(m) = self.members.get_mut(&id) {
            m.last_seen_ms = now_ms;
            m.client_id = beat.client_id;
            m.client_host = beat.client_host;
            m.session_timeout_ms = beat.session_timeout_ms;
            m.rebalance_timeout_ms = beat.rebalance_timeout_ms;
            if let Some(t) = beat.topics {
                if t != m.topics {
                    m.topics = t;
                    changed = true;
                }
            }
            if let Some(owned) = &beat.owned {
                m.revoking.retain(|tp| owned.contains(tp));
                if m.revoking.is_empty() {
                    m.revoking_since_ms = None;
                }
            }
        }
        if changed || self.shape_changed(topics, &id) {
            self.recompute(topics);
        }
        Ok(Some(self.reconcile(&id, now_ms)))
    }

    /// Checks that `member` at generation `epoch` owns every partition of
    /// `partitions` (assigned, or being revoked): what a commit must pass.
    pub fn check_owner<'a>(
        &self,
        group: &str,
        member: &str,
        epoch: i64,
        partitions: impl IntoIterator<Item = &'a TopicPartition>,
    ) -> Result<(), GroupError> {
        self.refuse_fenced(group, member)?;
        let Some(m) = self.members.get(member).filter(|m| !m.away) else {
            return Err(GroupError::UnknownMember {
                group: group.into(),
                member: member.into(),
            });
        };
        let sent = u64::try_from(epoch).ok();
        if sent != Some(m.epoch) && sent != m.previous_epoch {
            return Err(GroupError::StaleEpoch {
                group: group.into(),
                member: member.into(),
                sent: epoch,
                current: m.epoch,
            });
        }
        for tp in partitions {
            if !m.assigned.contains(tp) && !m.revoking.contains(tp) {
                return Err(GroupError::NotOwner {
                    group: group.into(),
                    member: member.into(),
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    epoch: m.epoch,
                });
            }
        }
        Ok(())
    }

    /// Refuses `member` for good when a newer process of the same static
    /// member replaced it.
    fn refuse_fenced(&self, group: &str, member: &str) -> Result<(), GroupError> {
        if member.is_empty() {
            return Ok(());
        }
        match self
            .members
            .values()
            .find(|m| m.fenced_ids.iter().any(|f| f == member))
        {
            Some(m) => Err(GroupError::FencedInstance {
                group: group.into(),
                member: member.into(),
                instance: m.instance_id.clone().unwrap_or_default(),
            }),
            None => Ok(()),
        }
    }

    /// Whether the subscribed topics' partition counts differ from those
    /// the target was computed for: a topic of the shape resized or
    /// deleted, or one member `id` subscribes to created since. (A topic
    /// nobody subscribes to any more leaves with a change of members or
    /// subscriptions, which recomputes anyway.) Looks at no other member.
    fn shape_changed(&self, topics: &BTreeMap<String, u32>, id: &str) -> bool {
        self.shape.iter().any(|(t, n)| topics.get(t) != Some(n))
            || self.members.get(id).is_some_and(|m| {
                m.topics
                    .iter()
                    .any(|t| topics.contains_key(t) && !self.shape.contains_key(t))
            })
    }

    /// Partition counts of the topics some member subscribes to (those
    /// that exist).
    fn subscribed_shape(&self, topics: &BTreeMap<String, u32>) -> BTreeMap<String, u32> {
        let wanted: BTreeSet<&String> = self.members.values().flat_map(|m| &m.topics).collect();
        topics
            .iter()
            .filter(|(t, _)| wanted.contains(t))
            .map(|(t, n)| (t.clone(), *n))
            .collect()
    }

    /// A new generation and its target assignment.
    fn recompute(&mut self, topics: &BTreeMap<String, u32>) {
        self.epoch += 1;
        self.shape = self.subscribed_shape(topics);
        let subs: BTreeMap<String, BTreeSet<String>> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.topics.clone()))
            .collect();
        self.target = self.assignor.assign(&subs, &self.shape, &self.target);
    }

    /// Moves member `id` toward its target: what it must give up moves to
    /// `revoking` at once; what it gains it gets only once no other member
    /// owns or is giving it up. The member is at the current generation
    /// afterwards.
    fn reconcile(&mut self, id: &str, now_ms: i64) -> Joined {
        let target = self.target.get(id).cloned().unwrap_or_default();
        // Only what the member is to gain needs the other members' holdings
        // (a settled member's heartbeat looks at no other member).
        let held_elsewhere: BTreeSet<TopicPartition> = match self.members.get(id) {
            Some(m) => target
                .iter()
                .filter(|tp| !m.assigned.contains(*tp) && !m.revoking.contains(*tp))
                .filter(|tp| {
                    self.members.iter().any(|(other, o)| {
                        other.as_str() != id
                            && (o.assigned.contains(*tp) || o.revoking.contains(*tp))
                    })
                })
                .cloned()
                .collect(),
            None => BTreeSet::new(),
        };
        let epoch = self.epoch;
        let Some(m) = self.members.get_mut(id) else {
            return Joined {
                member_id: id.into(),
                epoch,
                assignment: BTreeSet::new(),
                awaiting: false,
            };
        };
        let give_up: Vec<TopicPartition> = m.assigned.difference(&target).cloned().collect();
        for tp in give_up {
            m.assigned.remove(&tp);
            m.revoking.insert(tp);
        }
        if !m.revoking.is_empty() && m.revoking_since_ms.is_none() {
            m.revoking_since_ms = Some(now_ms);
        }
        let mut awaiting = false;
        for tp in target {
            // Given back before it was given up: it stays.
            if m.revoking.remove(&tp) || !held_elsewhere.contains(&tp) {
                m.assigned.insert(tp);
            } else {
                awaiting = true;
            }
        }
        if m.revoking.is_empty() {
            m.revoking_since_ms = None;
        }
        if m.epoch != epoch && m.epoch != 0 {
            m.previous_epoch = Some(m.epoch);
        }
        m.epoch = epoch;
        Joined {
            member_id: id.into(),
            epoch,
            assignment: m.assigned.clone(),
            awaiting,
        }
    }
}
