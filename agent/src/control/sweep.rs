//! The object sweep: deletes the chunk objects no committed range
//! references any more (retention deleted their ranges, their topic was
//! deleted, or none of their ranges was ever kept), each once it has been
//! seen unreferenced for `--object-delete-grace-ms` on this agent's
//! monotonic clock, so reads that found a range just before retention
//! deleted it finish first; then forgets its chunk row.
//!
//! Objects under `compacted/` that no chunk row names (a compaction wrote
//! one and crashed, or could not reach the metadata store, before
//! switching the index to it) are claimed once seen unnamed for the same
//! grace: a chunk row without ranges is inserted for each, which makes it
//! an ordinary dead chunk, and a compaction that still tries to switch to
//! it finds the row and gives up. The sweep lists that prefix once per
//! sweep.
//!
//! One agent sweeps: the live agent with the smallest id, as the
//! membership shows it. Two agents sweeping at once (while they see the
//! membership differently) only delete the same objects twice: a chunk
//! without ranges never gets one back (commits below a log start keep no
//! range). A crash between the deletion and the forgetting is finished by
//! the next sweep; nothing is left behind for ever. Must not touch ranges
//! or log starts (`retention`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::compaction::COMPACTED_PREFIX;

use super::state::Shared;

/// Dead chunks looked at per sweep: 1,000.
const SWEEP_BATCH: u32 = 1_000;

impl Shared {
    /// Whether this agent is the one that sweeps now.
    fn sweeps(&self) -> bool {
        let me = &self.config.agent_id;
        self.members.live().iter().chain(std::iter::once(me)).min() == Some(me)
    }

    /// One sweep at `now`: claims the orphans seen unnamed for `grace`,
    /// notes the dead chunks not seen before in `seen` (first sighting,
    /// monotonic), deletes the objects seen dead for `grace`, and forgets
    /// their rows. Returns how many it deleted.
    pub(super) async fn sweep_once(
        &self,
        seen: &mut Sightings,
        grace: Duration,
        now: Instant,
    ) -> Result<u64, String> {
        if let Err(e) = self.claim_orphans(&mut seen.orphans, grace, now).await {
            tracing::warn!(error = %e, "cannot look for orphaned compacted objects; trying again next sweep");
        }
        let seen = &mut seen.dead;
        let dead = self
            .meta
            .dead_chunks(SWEEP_BATCH)
            .await
            .map_err(|e| e.to_string())?;
        seen.retain(|k, _| dead.contains(k));
        let mut deleted = 0;
        for key in dead {
            let first = *seen.entry(key.clone()).or_insert(now);
            if now.saturating_duration_since(first) < grace {
                continue;
            }
            self.store
                .delete(&key)
                .await
                .map_err(|e| format!("cannot delete chunk object {key}: {e}"))?;
            // Tests stop the agent here (fail point `sweep-forget`): the
            // object is gone, its row is not.
            fail::fail_point!("sweep-forget");
            self.meta
                .forget_chunk(&key)
                .await
                .map_err(|e| e.to_string())?;
            seen.remove(&key);
            deleted += 1;
            self.metrics
                .control
                .objects_deleted
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%key, "chunk object deleted: no range references it");
        }
        self.metrics
            .control
            .sweep_pending_objects
            .store(seen.len() as u64, Ordering::Relaxed);
        Ok(deleted)
    }

    /// Claims the compacted objects no chunk row has named for `grace`
    /// (first sighting in `orphans`, monotonic): each gets a row without
    /// ranges, a dead chunk the sweep deletes after its own grace.
    async fn claim_orphans(
        &self,
        orphans: &mut HashMap<String, Instant>,
        grace: Duration,
        now: Instant,
    ) -> Result<(), String> {
        let listed = self
            .store
            .list(COMPACTED_PREFIX)
            .await
            .map_err(|e| format!("cannot list {COMPACTED_PREFIX}: {e}"))?;
        let named: HashSet<String> = self
            .meta
            .compacted_keys()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .collect();
        let unnamed: HashSet<String> = listed.into_iter().filter(|k| !named.contains(k)).collect();
        orphans.retain(|k, _| unnamed.contains(k));
        for key in unnamed {
            let first = *orphans.entry(key.clone()).or_insert(now);
            if now.saturating_duration_since(first) < grace {
                continue;
            }
            if self
                .meta
                .claim_orphan(&key, 0)
                .await
                .map_err(|e| e.to_string())?
            {
                self.metrics
                    .control
                    .orphans_claimed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(%key, "claimed a compacted object no chunk row named; it will be deleted");
            }
            orphans.remove(&key);
        }
        Ok(())
    }
}

/// What a sweeper has seen, each with its first sighting (monotonic):
/// dead chunks, and compacted objects no row names.
#[derive(Debug, Default)]
pub(super) struct Sightings {
    dead: HashMap<String, Instant>,
    orphans: HashMap<String, Instant>,
}

/// Until the agent stops: a sweep every `every` while this agent is the
/// sweeper (what it saw dead is forgotten when it is not).
///
/// # Cancellation
/// Stopping it loses nothing: an object deleted whose row is not
/// forgotten yet is deleted (again, harmlessly) and forgotten by the next
/// sweep, of this agent or another.
pub(super) async fn run_sweeps(shared: Arc<Shared>, every: Duration, grace: Duration) {
    let mut seen = Sightings::default();
    while !shared.stop.load(Ordering::Acquire) {
        tokio::time::sleep(every).await;
        if !shared.sweeps() {
            seen = Sightings::default();
            continue;
        }
        match shared.sweep_once(&mut seen, grace, Instant::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(objects = n, "deleted chunk objects no range references"),
            Err(e) => tracing::warn!(error = %e, "object sweep failed; trying again next sweep"),
        }
    }
}
