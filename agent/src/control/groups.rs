//! Consumer-group requests on the control thread: which agent coordinates
//! a group (rendezvous hashing of the group id over the live agents, so it
//! moves when its agent dies, as partition leadership does), refusing a
//! heartbeat or commit for a group coordinated elsewhere, the checks the
//! group RPCs (`rpc/groups/`) share, and the periodic group sweeps and
//! flushes.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use streamhouse_proto as pb;

use crate::cluster::watermarks::{asks, Ask};
use crate::groups::coordinator::GroupContext;
use crate::messages::ControlError;
use crate::runtime::clock::{mono_ms, now_ms};
use crate::topics::routing::shard_for;

use super::state::Shared;

/// How often the metrics of groups that moved to another agent are dropped.
const METRICS_PRUNE_EVERY: Duration = Duration::from_secs(2);

/// Until the agent stops: drops the metrics of groups another agent
/// coordinates now (every 2 s), and deletes the groups this agent
/// coordinates once they are past their retention without members,
/// sweeping every quarter of the retention (at least every 100 ms, at most
/// every minute).
///
/// # Cancellation
/// Stopping it between sweeps loses nothing; within one, see
/// [`crate::groups::expiry::expire_empty_groups`].
pub(super) async fn sweep_groups(shared: Arc<Shared>) {
    let every = (shared.groups.settings().offsets_retention / 4)
        .clamp(Duration::from_millis(100), Duration::from_secs(60));
    let mut next_sweep = tokio::time::Instant::now() + every;
    while !shared.stop.load(Ordering::Acquire) {
        tokio::time::sleep(every.min(METRICS_PRUNE_EVERY)).await;
        let here = |g: &str| shared.coordinator_of(g) == shared.config.agent_id;
        shared.metrics.groups.retain(here);
        shared.groups.retain_live(here);
        shared.refresh_watermarks().await;
        if tokio::time::Instant::now() < next_sweep {
            continue;
        }
        next_sweep = tokio::time::Instant::now() + every;
        let cx = shared.group_cx();
        if let Err(e) = crate::groups::expiry::expire_empty_groups(&shared.groups, &cx, here).await
        {
            tracing::warn!(error = %e, "expiring empty consumer groups failed; retrying at the next sweep");
        }
    }
}

/// Until the agent stops: saves the consumer groups' changes held in
/// memory every `SAVE_EVERY_MS` (200 ms), in one write per group, and so
/// answers the heartbeats waiting for them.
///
/// # Cancellation
/// Stopping it between flushes loses nothing saved; changes not saved yet
/// are lost as a coordinator crash would lose them.
pub(super) async fn flush_groups(shared: Arc<Shared>) {
    let every = Duration::from_millis(crate::groups::live::SAVE_EVERY_MS as u64);
    while !shared.stop.load(Ordering::Acquire) {
        tokio::time::sleep(every).await;
        let cx = shared.group_cx();
        shared.groups.flush(&cx).await;
    }
}

/// The key a group is hashed under among the agents.
fn group_key(group: &str) -> String {
    format!("group:{group}")
}

impl Shared {
    /// The live agent that coordinates `group` (this one while it knows no
    /// other).
    pub(super) fn coordinator_of(&self, group: &str) -> String {
        let live = self.members.live();
        crate::cluster::assignment::owner(&live, &group_key(group), 0)
            .map_or_else(|| self.config.agent_id.clone(), str::to_owned)
    }

    /// What `crate::groups` needs of the control thread for one request
    /// or sweep, with the clocks read now.
    pub(super) fn group_cx(&self) -> GroupContext<'_> {
        GroupContext {
            meta: &self.meta,
            catalog: &self.catalog,
            metrics: &self.metrics.groups,
            now_ms: now_ms(),
            mono_ms: mono_ms(),
        }
    }

    /// Asks the leaders of the committed partitions this agent does not
    /// lead for their high watermarks (lag on `/metrics`), and forgets the
    /// values of partitions no group here commits any more. A leader that
    /// does not answer keeps its partitions' last values.
    async fn refresh_watermarks(&self) {
        let parts = self.metrics.groups.partitions();
        self.watermarks
            .retain(|t, p| parts.contains(&(t.to_owned(), p)));
        let remote: Vec<(String, u32)> = parts
            .into_iter()
            .filter(|(t, p)| self.watermarks.local(t, *p).is_none())
            .collect();
        if remote.is_empty() {
            return;
        }
        match self.leaders_of(&remote).await {
            Ok(asks) => {
                self.watermarks.ask(&asks).await;
            }
            Err(e) => tracing::debug!(error = %e, "no partition leaders to ask for lag"),
        }
    }

    /// Refuses a commit past a partition's high watermark (no record was
    /// ever written there, e.g. offsets read from a leader that died before
    /// shipping them): `INVALID_ARGUMENT` naming the partition and its
    /// end. A kept value of a partition led elsewhere may be old, so its
    /// leader is asked again first (up to `watermarks::ASK_TIMEOUT`); a
    /// partition whose leader cannot be asked is let through.
    pub(super) async fn check_commit_ends(
        &self,
        r: &pb::CommitOffsetsRequest,
    ) -> Result<(), ControlError> {
        if r.offsets.len() > crate::groups::settings::MAX_LISTED_PARTITIONS {
            return Ok(()); // refused by the coordinator's own bound
        }
        // What no log could hold is refused as such first.
        for o in &r.offsets {
            crate::groups::offsets::check_committable(o)?;
        }
        let doubtful: Vec<(String, u32)> = r
            .offsets
            .iter()
            .filter(|o| self.watermarks.local(&o.topic, o.partition).is_none())
            .filter(|o| {
                self.watermarks
                    .get(&o.topic, o.partition)
                    .is_none_or(|high| o.offset > high)
            })
            .map(|o| (o.topic.clone(), o.partition))
            .collect();
        if !doubtful.is_empty() {
            if let Ok(asks) = self.leaders_of(&doubtful).await {
                self.watermarks.ask(&asks).await;
            }
        }
        for o in &r.offsets {
            match self.watermarks.get(&o.topic, o.partition) {
                Some(high) if o.offset > high => {
                    return Err(ControlError::Invalid(format!(
                        "offset {} of {}/{} is past its high watermark {high}: no record was \
                         ever written there (commit the offset after the last record read)",
                        o.offset, o.topic, o.partition
                    )))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The leaders' shard addresses of `parts` (partitions without a live
    /// leader left out), one ask per leader and topic.
    async fn leaders_of(&self, parts: &[(String, u32)]) -> Result<Vec<Ask>, ControlError> {
        let mut topics: Vec<String> = parts.iter().map(|(t, _)| t.clone()).collect();
        topics.sort();
        topics.dedup();
        let view = self.cluster_view(&topics).await?;
        let mut found = Vec::new();
        for (topic, leaders) in &view.topics {
            for (t, p) in parts.iter().filter(|(t, _)| t == topic) {
                if let Some((_, address, _)) = leaders.get(*p as usize).filter(|l| !l.1.is_empty())
                {
                    found.push((t.clone(), *p, address.clone()));
                }
            }
        }
        Ok(asks(found))
    }

    pub(super) fn coordinated_here(&self, group: &str) -> Result<(), ControlError> {
        let c = self.coordinator_of(group);
        if c == self.config.agent_id {
            return Ok(());
        }
        Err(ControlError::Unavailable(format!(
            "agent {} does not coordinate group {group} (agent {c} does); ask FindCoordinator",
            self.config.agent_id
        )))
    }

    /// The coordinator of `group` and the address of its shard for it.
    pub(super) async fn find_coordinator(
        &self,
        group: &str,
    ) -> Result<pb::FindCoordinatorResponse, ControlError> {
        self.groups.settings().check_group_id(group)?;
        let agent = self.coordinator_of(group);
        let agents = self.members.live_rows();
        let Some(row) = agents.iter().find(|a| a.agent_id == agent) else {
            return Err(ControlError::Unavailable(format!(
                "the coordinator of group {group}, agent {agent}, has no recent heartbeat; retry"
            )));
        };
        let shard = shard_for(&group_key(group), 0, row.shard_addresses.len().max(1));
        let address = row.shard_addresses.get(shard).cloned().ok_or_else(|| {
            ControlError::Unavailable(format!("agent {agent} lists no shard address; retry"))
        })?;
        Ok(pb::FindCoordinatorResponse {
            agent_id: agent,
            address,
        })
    }
}
