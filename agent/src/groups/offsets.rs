//! Offset commits and fetches of the consumer groups: a member's commit
//! checked against the group's live state (member, generation, owned
//! partitions) and saved fenced by the group's stored version; an
//! administrative commit only for a group without members; committed
//! offsets read back for current topic incarnations. Part of the
//! coordinator; knows nothing of `control/`.

use std::collections::BTreeMap;

use streamhouse_proto as pb;

use super::assignor::TopicPartition;
use super::coordinator::{require_empty, Coordinator, GroupContext, SAVE_ATTEMPTS};
use super::live::encode;
use super::state::{Group, GroupError};
use crate::messages::ControlError;
use crate::metastore::groups::OffsetCommit;
use streamhouse_proto::topic_partition::flatten;

/// Refuses an offset or leader epoch no log can reach (offsets and epochs
/// are stored as signed 64-bit integers; a larger one would be stored
/// clamped and the group could never read the partition again).
pub fn check_committable(o: &pb::OffsetEntry) -> Result<(), ControlError> {
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

impl Coordinator {
    /// Commits offsets of partitions the member owns (or, with no member
    /// and epoch -1, of a group without members). Cancelling it may leave
    /// the offsets stored or not.
    pub async fn commit(
        &self,
        cx: &GroupContext<'_>,
        req: pb::CommitOffsetsRequest,
    ) -> Result<pb::CommitOffsetsResponse, ControlError> {
        self.settings().check_group_id(&req.group_id)?;
        self.settings()
            .check_listed("a commit", req.offsets.len())?;
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
            self.settings().check_metadata(&o.metadata)?;
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
            let Some(live) = self.live.take(cx.meta, &req.group_id, cx.mono_ms).await? else {
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
            // A member silent past its session timeout is out, saved or not.
            let checked = if req.member_id.is_empty() {
                let mut g = live.group.clone();
                g.expire(cx.mono_ms);
                require_empty(&req.group_id, &g)
            } else if live.group.expired(&req.member_id, cx.mono_ms) {
                Err(GroupError::UnknownMember {
                    group: req.group_id.clone(),
                    member: req.member_id.clone(),
                }
                .into())
            } else {
                let parts: Vec<TopicPartition> = req
                    .offsets
                    .iter()
                    .map(|o| TopicPartition::new(&o.topic, o.partition))
                    .collect();
                live.group
                    .check_owner(&req.group_id, &req.member_id, req.member_epoch, &parts)
                    .map_err(Into::into)
            };
            let version = live.version;
            self.live.put(&req.group_id, live);
            checked?;
            if cx
                .meta
                .commit_offsets(&req.group_id, version, &offsets, cx.now_ms)
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
        self.settings().check_group_id(&req.group_id)?;
        let named: usize = req
            .partitions
            .iter()
            .map(|t| t.partitions.len().max(1))
            .sum();
        self.settings().check_listed("a FetchOffsets", named)?;
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
        let offsets = flatten(&req.partitions)
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
}
