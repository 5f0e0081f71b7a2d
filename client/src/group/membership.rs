//! A group consumer's membership: the background task that heartbeats to
//! the coordinator (joining, reporting what the member owns, learning its
//! assignment and generation), and the state it shares with the consumer.
//! The task never touches partitions: the consumer applies assignments in
//! `poll` and reports back through [`Shared::set_owned`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use streamhouse_proto as pb;
use tokio::sync::{watch, Notify};

use super::config::GroupConfig;
use super::link::CoordinatorLink;
use crate::error::Error;

/// A partition, by topic name.
pub use streamhouse_proto::TopicPartition;

/// What the heartbeat task and the consumer share.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub member_id: String,
    /// 0 until joined (and after being fenced: rejoin).
    pub epoch: i64,
    /// What the coordinator last said the member owns.
    pub assignment: BTreeSet<TopicPartition>,
    /// The coordinator said more partitions will come (others still
    /// give them up).
    pub awaiting: bool,
    /// What the consumer owns (applied), reported with each heartbeat.
    pub owned: BTreeSet<TopicPartition>,
    /// Set when the member was removed or fenced: what it owned is lost.
    pub lost: bool,
    /// The last heartbeat error, while heartbeats fail.
    pub error: Option<String>,
    /// Milliseconds between heartbeats, as the coordinator says.
    pub interval: Duration,
    /// When the last heartbeat that was answered was sent: the member
    /// takes itself for removed once this is a session timeout ago.
    pub last_ok: Option<Instant>,
    /// Set when heartbeats can never succeed: a newer process took this
    /// member's place for good (same group instance id), or the agent
    /// refuses the member's settings (an invalid group id, session
    /// timeout, ...). Heartbeats have stopped; polls fail with it.
    pub fatal: Option<(crate::Code, String)>,
}

impl State {
    /// Whether no heartbeat sent within the last `session` was answered
    /// while the member is in the group.
    fn silent_for(&self, session: Duration) -> bool {
        self.epoch != 0 && self.last_ok.is_some_and(|t| t.elapsed() >= session)
    }

    /// Out of the group: what it owned is someone else's now; the next
    /// heartbeat joins again under a new member id.
    fn forget_membership(&mut self) {
        self.member_id.clear();
        self.epoch = 0;
        self.assignment.clear();
        self.awaiting = false;
        self.lost = !self.owned.is_empty();
        self.last_ok = None;
    }
}

pub(crate) struct Shared {
    pub state: Mutex<State>,
    /// Heartbeat now (the consumer gave partitions up or took new ones).
    pub wake: Notify,
    /// Bumped by every heartbeat answer that changed the assignment.
    pub changed: watch::Sender<u64>,
}

impl Shared {
    pub(crate) fn new() -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(State {
                interval: Duration::from_secs(3),
                ..State::default()
            }),
            wake: Notify::new(),
            changed: watch::channel(0).0,
        })
    }

    /// Whether no heartbeat sent within the last `session` was answered
    /// while the member holds partitions ([`expire_if_silent`] without
    /// acting on it).
    ///
    /// [`expire_if_silent`]: Self::expire_if_silent
    pub(crate) fn silent_for(&self, session: Duration) -> bool {
        self.state.lock().silent_for(session)
    }

    /// Whether the member must take itself for removed: no heartbeat
    /// sent within the last `session` was answered (the process was
    /// stopped, or the coordinator unreachable), so the coordinator may
    /// have given its partitions to others. Then it forgets them (a poll
    /// must not hand out records another member now owns) and heartbeats
    /// at once to join again.
    pub(crate) fn expire_if_silent(&self, session: Duration) -> bool {
        let mut st = self.state.lock();
        let silent = st.silent_for(session);
        if silent {
            tracing::warn!(member = %st.member_id, "no heartbeat answered within the session timeout: taking this member for removed; its partitions are dropped and it joins again");
            st.forget_membership();
            self.changed.send_modify(|v| *v += 1);
            self.wake.notify_one();
        }
        silent
    }

    /// Records what the consumer now owns and heartbeats at once.
    pub(crate) fn set_owned(&self, owned: BTreeSet<TopicPartition>) {
        self.state.lock().owned = owned;
        self.wake.notify_one();
    }
}

/// Whether a heartbeat's failure can never turn into success: a newer
/// process took the member's place, or its settings are refused.
fn is_fatal(e: &Error) -> bool {
    matches!(
        e.code(),
        Some(crate::Code::AlreadyExists | crate::Code::InvalidArgument)
    )
}

/// A member id for a new join, made by the member itself so that a join
/// whose answer was lost, sent again, finds the same member.
fn new_member_id() -> String {
    format!("member-{:032x}", rand::random::<u128>())
}

fn ms(d: Duration) -> u32 {
    d.as_millis().min(u128::from(u32::MAX)) as u32
}

/// Heartbeats until `stop` is set, then leaves the group (-2 for a static
/// member, which keeps its partitions until its session times out).
/// Failing heartbeats are retried every second at most; a member that has
/// had no answer for its whole session timeout takes itself for removed.
///
/// # Cancellation
/// Dropping the task skips the leave: the member is removed after its
/// session timeout.
pub(crate) async fn run(
    config: GroupConfig,
    link: Arc<CoordinatorLink>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut last_ok = Instant::now();
    let mut joined_topics = false;
    loop {
        let req = {
            let mut st = shared.state.lock();
            if st.member_id.is_empty() {
                st.member_id = new_member_id();
            }
            pb::GroupHeartbeatRequest {
                group_id: config.group_id.clone(),
                member_id: st.member_id.clone(),
                member_epoch: st.epoch,
                group_instance_id: config.instance_id.clone().unwrap_or_default(),
                client_id: config.client_id.clone(),
                topics: config.topics.clone(),
                topics_changed: st.epoch == 0 || !joined_topics,
                owned: streamhouse_proto::topic_partition::group_by_topic(&st.owned),
                owned_changed: st.epoch != 0,
                session_timeout_ms: ms(config.session_timeout),
                rebalance_timeout_ms: ms(config.rebalance_timeout),
                assignor: config.assignor.clone(),
            }
        };
        let sent_at = Instant::now();
        let r = link
            .call("Heartbeat", |mut c| {
                let req = req.clone();
                async move { c.heartbeat(req).await }
            })
            .await;
        let pause = match r {
            Ok(r) => {
                let mut st = shared.state.lock();
                if st.member_id != req.member_id {
                    // The consumer took itself for removed meanwhile (see
                    // `expire_if_silent`): this answer is of the old member.
                    continue;
                }
                last_ok = Instant::now();
                joined_topics = true;
                st.last_ok = Some(sent_at);
                st.error = None;
                st.member_id = r.member_id;
                st.epoch = r.member_epoch;
                // At most a third of the session, whatever an (older)
                // coordinator says: one late heartbeat must not expire it.
                st.interval = Duration::from_millis(u64::from(r.heartbeat_interval_ms.max(10)))
                    .min(config.session_timeout / 3);
                st.awaiting = r.awaiting;
                let assignment = streamhouse_proto::topic_partition::flatten(&r.assignment);
                if assignment != st.assignment {
                    st.assignment = assignment;
                    shared.changed.send_modify(|v| *v += 1);
                }
                st.interval
            }
            Err(e) if is_fatal(&e) => {
                // A newer process joined with this member's instance id,
                // or the agent refuses the member's settings: no retry can
                // help; stop (no leave: there is nothing to leave).
                let mut st = shared.state.lock();
                tracing::error!(group = %config.group_id, member = %st.member_id, error = %e, "the group refuses this member for good; it stops");
                st.forget_membership();
                let code = e.code().unwrap_or(crate::Code::Unknown);
                st.fatal = Some((code, e.to_string()));
                shared.changed.send_modify(|v| *v += 1);
                return;
            }
            Err(e) => {
                let fenced = e.code() == Some(crate::Code::FailedPrecondition);
                let mut st = shared.state.lock();
                tracing::warn!(group = %config.group_id, member = %st.member_id, error = %e, "group heartbeat failed");
                st.error = Some(e.to_string());
                if fenced || last_ok.elapsed() >= config.session_timeout {
                    // Out of the group: rejoin as a new member; what it
                    // owned is someone else's now.
                    st.forget_membership();
                    joined_topics = false;
                    last_ok = Instant::now();
                    shared.changed.send_modify(|v| *v += 1);
                }
                if fenced {
                    Duration::ZERO
                } else {
                    st.interval.min(Duration::from_secs(1))
                }
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shared.wake.notified() => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
    }
    let leave = {
        let st = shared.state.lock();
        (!st.member_id.is_empty()).then(|| pb::GroupHeartbeatRequest {
            group_id: config.group_id.clone(),
            member_id: st.member_id.clone(),
            member_epoch: if config.instance_id.is_some() { -2 } else { -1 },
            ..Default::default()
        })
    };
    if let Some(req) = leave {
        let r: Result<_, Error> = link
            .call("Heartbeat (leave)", |mut c| {
                let req = req.clone();
                async move { c.heartbeat(req).await }
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(group = %config.group_id, error = %e, "leaving the group failed; the member is removed after its session timeout");
        }
    }
}
