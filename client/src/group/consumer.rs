//! [`GroupConsumer`]: a [`Consumer`] whose partitions a consumer group's
//! coordinator assigns. `poll` applies what the heartbeat task learned
//! (gives revoked partitions up after committing them, positions new ones
//! at the group's committed offsets), commits every
//! `auto_commit_interval`, then reads. Owns the applied assignment, the
//! paused partitions and the last committed positions.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::Stream;
use streamhouse_proto as pb;
use tokio::sync::watch;

use super::config::GroupConfig;
use super::link::CoordinatorLink;
use super::listener::RebalanceListener;
use super::membership::{self, Shared, TopicPartition};
use super::Position;
use crate::consumer::{Consumer, ConsumerRecord, Offset, Truncations};
use crate::error::{Error, Result};

/// A member of a consumer group reading the partitions it is assigned.
pub struct GroupConsumer {
    consumer: Consumer,
    config: GroupConfig,
    link: Arc<CoordinatorLink>,
    shared: Arc<Shared>,
    changed: watch::Receiver<u64>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Partitions applied (owned), paused ones included.
    owned: BTreeSet<TopicPartition>,
    /// Paused partitions and the position each resumes at.
    paused: BTreeMap<TopicPartition, Position>,
    /// The last position committed per partition.
    committed: BTreeMap<TopicPartition, u64>,
    /// Behind a lock only so the consumer is `Sync` (its futures `Send`);
    /// called from `poll` alone.
    listener: parking_lot::Mutex<Box<dyn RebalanceListener>>,
    last_commit: Instant,
}

impl GroupConsumer {
    /// Starts heartbeating as a member of `config`'s group over `link`,
    /// reading with `consumer`.
    pub(super) fn start(
        consumer: Consumer,
        config: GroupConfig,
        link: Arc<CoordinatorLink>,
        listener: Box<dyn RebalanceListener>,
    ) -> GroupConsumer {
        let shared = Shared::new();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(membership::run(
            config.clone(),
            link.clone(),
            shared.clone(),
            stop_rx,
        ));
        GroupConsumer {
            changed: shared.changed.subscribe(),
            consumer,
            config,
            link,
            shared,
            stop,
            task: Some(task),
            owned: BTreeSet::new(),
            paused: BTreeMap::new(),
            committed: BTreeMap::new(),
            listener: parking_lot::Mutex::new(listener),
            last_commit: Instant::now(),
        }
    }

    /// The partitions this member owns now, paused ones included.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.owned.iter().cloned().collect()
    }

    /// Whether this member must take itself for removed now: no heartbeat
    /// it sent within the last session timeout was answered (the process
    /// was stopped, or cut off from the coordinator), so the group may have
    /// given its partitions to others. Records an earlier
    /// [`poll`](Self::poll) returned and not yet processed should then be
    /// dropped, not processed: their partitions' new owners read them from
    /// the group's committed offsets. The next poll rejoins.
    pub fn membership_expired(&self) -> bool {
        self.shared.silent_for(self.config.session_timeout)
    }

    /// Whether this member has read everything it is meant to, for now:
    /// it has joined, owns all the coordinator means it to (none still
    /// being given up by others, none paused), and has read each owned
    /// partition up to the high watermark its last fetch saw. True with no
    /// partitions at all when the group has none for it.
    pub fn at_end(&self) -> bool {
        let settled = {
            let st = self.shared.state.lock();
            st.epoch != 0 && !st.awaiting && st.assignment == self.owned
        };
        settled && self.paused.is_empty() && self.consumer.at_end()
    }

    /// The member id the coordinator gave (empty until joined).
    pub fn member_id(&self) -> String {
        self.shared.state.lock().member_id.clone()
    }

    /// The generation the member is at (0 until joined).
    pub fn generation(&self) -> i64 {
        self.shared.state.lock().epoch
    }

    /// The next offset to be handed out from an owned partition.
    pub fn position(&self, topic: &str, partition: u32) -> Option<u64> {
        let key = TopicPartition::new(topic, partition);
        self.paused
            .get(&key)
            .map(|at| at.offset)
            .or_else(|| self.consumer.position(topic, partition))
    }

    /// The leader epoch of the last record handed out from an owned
    /// partition (committed with its position), when known.
    pub fn position_epoch(&self, topic: &str, partition: u32) -> Option<u64> {
        let key = TopicPartition::new(topic, partition);
        match self.paused.get(&key) {
            Some(at) => at.epoch,
            None => self.consumer.position_epoch(topic, partition),
        }
    }

    /// Leader changes that took back records this member had read (see
    /// [`Consumer::truncations`]).
    pub fn truncations(&self) -> Truncations {
        self.consumer.truncations()
    }

    /// Reads from the consumer's position of a partition it reads.
    fn current(&self, tp: &TopicPartition) -> Option<Position> {
        Some(Position {
            offset: self.consumer.position(&tp.topic, tp.partition)?,
            epoch: self.consumer.position_epoch(&tp.topic, tp.partition),
        })
    }

    /// Sets the next offset read from an owned partition.
    pub fn seek(&mut self, topic: &str, partition: u32, offset: u64) {
        let key = TopicPartition::new(topic, partition);
        if !self.owned.contains(&key) {
            return;
        }
        match self.paused.get_mut(&key) {
            Some(p) => {
                *p = Position {
                    offset,
                    epoch: None,
                }
            }
            None => self.consumer.seek(topic, partition, offset),
        }
    }

    /// Seeks owned partitions to their first readable offset.
    ///
    /// # Errors
    /// The leader's [`Error::Status`] or [`Error::Transport`] when it cannot
    /// say the offset; partitions this member does not own are skipped.
    ///
    /// # Cancellation
    /// Partitions not reached keep their positions.
    pub async fn seek_to_beginning(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_all(partitions, Offset::Beginning).await
    }

    /// Seeks owned partitions to their high watermark.
    ///
    /// # Errors
    /// As [`seek_to_beginning`](Self::seek_to_beginning).
    ///
    /// # Cancellation
    /// Partitions not reached keep their positions.
    pub async fn seek_to_end(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_all(partitions, Offset::End).await
    }

    async fn seek_all(&mut self, partitions: &[TopicPartition], at: Offset) -> Result<()> {
        for tp in partitions {
            if self.owned.contains(tp) {
                let offset = self.consumer.seek_to(&tp.topic, tp.partition, at).await?;
                if let Some(saved) = self.paused.get_mut(tp) {
                    *saved = Position {
                        offset,
                        epoch: None,
                    };
                }
            }
        }
        self.reassign().await
    }

    /// Stops reading these owned partitions (they stay owned, positions
    /// kept) until [`resume`](Self::resume).
    ///
    /// # Errors
    /// As [`Consumer::assign`](crate::Consumer::assign) when the read
    /// partitions are set again; partitions this member does not own are
    /// ignored.
    ///
    /// # Cancellation
    /// Dropping the future may leave them read still.
    pub async fn pause(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        for tp in partitions {
            if self.owned.contains(tp) && !self.paused.contains_key(tp) {
                let at = self.current(tp).unwrap_or(Position {
                    offset: 0,
                    epoch: None,
                });
                self.paused.insert(tp.clone(), at);
            }
        }
        self.reassign().await
    }

    /// Reads paused partitions again from where they were paused.
    ///
    /// # Errors
    /// As [`pause`](Self::pause).
    ///
    /// # Cancellation
    /// Dropping the future may leave them paused.
    pub async fn resume(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        let mut back = Vec::new();
        for tp in partitions {
            if let Some(pos) = self.paused.remove(tp) {
                back.push((tp.clone(), pos));
            }
        }
        self.reassign().await?;
        for (tp, at) in back {
            self.consumer
                .seek_with_epoch(&tp.topic, tp.partition, at.offset, at.epoch);
        }
        Ok(())
    }

    /// The consumer reads the owned partitions that are not paused.
    async fn reassign(&mut self) -> Result<()> {
        let active: Vec<TopicPartition> = self
            .owned
            .iter()
            .filter(|tp| !self.paused.contains_key(*tp))
            .cloned()
            .collect();
        self.consumer.assign(active).await
    }

    /// Applies what the coordinator last said: lost partitions are
    /// dropped, revoked ones committed (auto-commit) and given up, new
    /// ones positioned at the group's committed offsets.
    async fn apply(&mut self) -> Result<()> {
        let (target, lost) = {
            let mut st = self.shared.state.lock();
            (st.assignment.clone(), std::mem::take(&mut st.lost))
        };
        if lost {
            tracing::info!(group = %self.config.group_id, owned = self.owned.len(), "removed from the group: the partitions it owned are lost");
        }
        if lost && !self.owned.is_empty() {
            let gone: Vec<TopicPartition> = self.owned.iter().cloned().collect();
            self.owned.clear();
            self.paused.clear();
            self.committed.clear();
            self.reassign().await?;
            self.listener.lock().on_lost(&gone);
            self.shared.set_owned(BTreeSet::new());
        }
        let revoked: Vec<TopicPartition> = self.owned.difference(&target).cloned().collect();
        if !revoked.is_empty() {
            tracing::info!(group = %self.config.group_id, revoked = revoked.len(), "partitions revoked");
            self.listener.lock().on_revoked(&revoked);
            if self.config.auto_commit {
                if let Err(e) = self.commit_partitions(&revoked).await {
                    tracing::warn!(group = %self.config.group_id, error = %e, "committing revoked partitions failed");
                }
            }
            for tp in &revoked {
                self.owned.remove(tp);
                self.paused.remove(tp);
                self.committed.remove(tp);
            }
            self.reassign().await?;
            self.shared.set_owned(self.owned.clone());
        }
        let added: Vec<TopicPartition> = target.difference(&self.owned).cloned().collect();
        if added.is_empty() {
            return Ok(());
        }
        let committed = self.fetch_committed(&added).await?;
        let reset = self.config.auto_offset_reset.start();
        if reset.is_none() {
            if let Some(tp) = added.iter().find(|tp| !committed.contains_key(*tp)) {
                return Err(Error::Config(format!(
                    "group {} has no committed offset for {}/{} and auto_offset_reset is error",
                    self.config.group_id, tp.topic, tp.partition
                )));
            }
        }
        // Into the consumer first (all or nothing), then positioned; no
        // fetch runs in between.
        let mut reading: Vec<TopicPartition> = self
            .owned
            .iter()
            .filter(|tp| !self.paused.contains_key(*tp))
            .cloned()
            .collect();
        reading.extend(added.iter().cloned());
        match self.consumer.assign(reading).await {
            Ok(()) => {}
            Err(e @ (Error::UnknownTopic(_) | Error::UnknownPartition { .. })) => {
                // The agent asked does not know the topic (or its new
                // partitions) yet: taken by a later poll.
                tracing::info!(group = %self.config.group_id, error = %e, "assigned partitions are not known here yet; taking them later");
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        for tp in &added {
            match (committed.get(tp), reset) {
                (Some(at), _) => {
                    // With the committed epoch the first fetch checks that
                    // the records before `at` are still the log's (a new
                    // leader may have written others at those offsets).
                    self.consumer
                        .seek_with_epoch(&tp.topic, tp.partition, at.offset, at.epoch);
                    self.committed.insert(tp.clone(), at.offset);
                }
                (None, Some(start)) => {
                    self.consumer
                        .seek_to(&tp.topic, tp.partition, start)
                        .await?;
                }
                (None, None) => {}
            }
        }
        self.owned.extend(added.iter().cloned());
        tracing::info!(group = %self.config.group_id, added = added.len(), owned = self.owned.len(), "partitions assigned");
        self.listener.lock().on_assigned(&added);
        self.shared.set_owned(self.owned.clone());
        Ok(())
    }

    /// The group's committed offsets of `partitions`.
    ///
    /// # Errors
    /// [`Error::Status`] when the coordinator refuses; [`Error::Transport`]
    /// when it cannot be reached.
    ///
    /// # Cancellation
    /// Read-only: dropping the future has no effect.
    pub async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, u64>> {
        let at = self.fetch_committed(partitions).await?;
        Ok(at.into_iter().map(|(tp, at)| (tp, at.offset)).collect())
    }

    async fn fetch_committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Position>> {
        let set: BTreeSet<TopicPartition> = partitions.iter().cloned().collect();
        let req = pb::FetchOffsetsRequest {
            group_id: self.config.group_id.clone(),
            partitions: streamhouse_proto::topic_partition::group_by_topic(&set),
        };
        let r = self
            .link
            .ask("FetchOffsets", |mut c| {
                let req = req.clone();
                async move { c.fetch_offsets(req).await }
            })
            .await?;
        Ok(super::committed_with_epochs(r))
    }

    /// Commits the positions of every owned partition (what earlier polls
    /// handed out counts as processed).
    ///
    /// # Errors
    /// [`Error::Status`] with
    /// [`Code::FailedPrecondition`](crate::Code::FailedPrecondition) when this
    /// member was fenced (its generation is gone: the partitions are someone
    /// else's now and the positions are not committed); [`Error::Transport`]
    /// when the coordinator cannot be reached.
    ///
    /// # Cancellation
    /// A commit already sent is not withdrawn.
    pub async fn commit(&mut self) -> Result<()> {
        let all: Vec<TopicPartition> = self.owned.iter().cloned().collect();
        self.commit_partitions(&all).await
    }

    /// Starts a commit of every owned partition's position and returns at
    /// once; the task answers how it went. A later [`commit`](Self::commit)
    /// sends the same positions again (harmless if this one succeeded), so a
    /// failed one is never taken for done.
    pub fn commit_async(&self) -> tokio::task::JoinHandle<Result<()>> {
        let all: Vec<TopicPartition> = self.owned.iter().cloned().collect();
        // Not recorded as committed here: the answer comes later, and a
        // failed commit must be sent again by the next one.
        let req = self.commit_request(&all);
        let link = self.link.clone();
        tokio::spawn(async move {
            match req {
                None => Ok(()),
                Some(req) => link
                    .call("CommitOffsets", |mut c| {
                        let req = req.clone();
                        async move { c.commit_offsets(req).await }
                    })
                    .await
                    .map(|_| ()),
            }
        })
    }

    /// The request committing `partitions`' positions that changed since
    /// their last commit; `None` when none did.
    fn commit_request(&self, partitions: &[TopicPartition]) -> Option<pb::CommitOffsetsRequest> {
        let offsets: Vec<pb::OffsetEntry> = partitions
            .iter()
            .filter_map(|tp| {
                let pos = self.position(&tp.topic, tp.partition)?;
                (self.committed.get(tp) != Some(&pos)).then(|| pb::OffsetEntry {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    offset: pos,
                    metadata: String::new(),
                    leader_epoch: self.position_epoch(&tp.topic, tp.partition),
                })
            })
            .collect();
        if offsets.is_empty() {
            return None;
        }
        let st = self.shared.state.lock();
        Some(pb::CommitOffsetsRequest {
            group_id: self.config.group_id.clone(),
            member_id: st.member_id.clone(),
            member_epoch: st.epoch,
            offsets,
        })
    }

    async fn commit_partitions(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        let Some(req) = self.commit_request(partitions) else {
            return Ok(());
        };
        self.link
            .call("CommitOffsets", |mut c| {
                let req = req.clone();
                async move { c.commit_offsets(req).await }
            })
            .await?;
        for o in req.offsets {
            self.committed
                .insert(TopicPartition::new(o.topic, o.partition), o.offset);
        }
        self.last_commit = Instant::now();
        Ok(())
    }

    /// Applies assignment changes, auto-commits when due, then reads the
    /// owned partitions that are not paused, waiting up to `max_wait`
    /// (for an assignment too, while it owns none). Records of a partition
    /// come in offset order.
    ///
    /// Hands out nothing once no heartbeat was answered within the
    /// session timeout (the member drops its partitions and joins again).
    /// Fails for good with `ALREADY_EXISTS` once a newer process joined
    /// with this member's group instance id, and with `INVALID_ARGUMENT`
    /// when the agent refuses the member's settings (group id, session
    /// timeout, ...).
    ///
    /// # Errors
    /// The coordinator's fatal answer (e.g. the member was removed and cannot
    /// rejoin), or an error of [`Consumer::poll`](crate::Consumer::poll). A
    /// rebalance or a moved coordinator is handled, not returned.
    ///
    /// # Cancellation
    /// Dropping the future loses no record; an assignment change it was
    /// applying is applied again by the next poll.
    pub async fn poll(&mut self, max_wait: Duration) -> Result<Vec<ConsumerRecord>> {
        // A member whose heartbeats went unanswered for a whole session
        // (stopped, cut off) may have lost its partitions to others: it
        // drops them before reading anything.
        self.shared.expire_if_silent(self.config.session_timeout);
        self.apply().await?;
        let fatal = self.shared.state.lock().fatal.clone();
        if let Some((code, message)) = fatal {
            return Err(Error::Status {
                code,
                message,
                retry_after: None,
            });
        }
        if self.config.auto_commit && self.last_commit.elapsed() >= self.config.auto_commit_interval
        {
            if let Err(e) = self.commit().await {
                tracing::warn!(group = %self.config.group_id, error = %e, "auto-commit failed");
            }
            self.last_commit = Instant::now();
        }
        if self.owned.len() == self.paused.len() {
            let _ = tokio::time::timeout(max_wait, self.changed.changed()).await;
            return Ok(Vec::new());
        }
        let records = self.consumer.poll(max_wait).await?;
        // The wait may have outlasted the membership (the process was
        // stopped while it waited): records fetched for partitions that
        // are another member's now are not handed out; the next poll
        // drops the partitions and the group's committed offsets decide
        // where they are read again.
        let expired = self.shared.expire_if_silent(self.config.session_timeout);
        if expired || self.shared.state.lock().lost {
            tracing::info!(group = %self.config.group_id, dropped = records.len(), "the membership ended while polling; the records fetched are not handed out");
            return Ok(Vec::new());
        }
        Ok(records)
    }

    /// The owned partitions' records as a stream that never ends; errors
    /// are items and the stream goes on after them.
    ///
    /// # Cancellation
    /// As [`poll`](Self::poll).
    pub fn stream(&mut self) -> impl Stream<Item = Result<ConsumerRecord>> + '_ {
        futures::stream::unfold(
            (self, std::collections::VecDeque::new()),
            |(c, mut buf)| async move {
                loop {
                    if let Some(r) = buf.pop_front() {
                        return Some((Ok(r), (c, buf)));
                    }
                    match c.poll(c.consumer.stream_wait()).await {
                        Ok(rs) => buf.extend(rs),
                        Err(e) => return Some((Err(e), (c, buf))),
                    }
                }
            },
        )
    }

    /// Commits (with auto-commit on) and leaves the group, so its
    /// partitions move to the other members at once (a static member
    /// keeps them until its session times out).
    ///
    /// # Errors
    /// The last commit's error ([`commit`](Self::commit)); the member leaves
    /// the group either way.
    ///
    /// # Cancellation
    /// Dropping the future still stops the heartbeats; the member is then
    /// removed after its session timeout.
    pub async fn close(mut self) -> Result<()> {
        let r = if self.config.auto_commit {
            self.commit().await
        } else {
            Ok(())
        };
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        r
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        // The heartbeat task leaves the group by itself.
        let _ = self.stop.send(true);
    }
}
