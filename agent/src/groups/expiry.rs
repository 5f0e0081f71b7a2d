//! Retention of groups without members: a group nobody has joined, changed
//! or committed to for `offsets_retention` (Kafka's
//! `offsets.retention.minutes`, 7 days by default) is deleted with its
//! committed offsets, so empty groups cannot pile up for ever. Each agent
//! sweeps the groups it coordinates, a bounded batch per sweep; a group is
//! checked again under its lock and deleted only at the version read, so a
//! member joining meanwhile wins.

use super::coordinator::{Coordinator, GroupContext};
use super::live::decode;
use crate::messages::ControlError;

/// Most candidate groups looked at per sweep.
pub const EXPIRY_BATCH: usize = 1000;

/// Deletes the groups coordinated here (`here` says which) that are past
/// retention at `cx.now_ms`; the ids deleted. Cancelling it may leave some
/// deleted and others not; the next sweep goes on.
pub async fn expire_empty_groups(
    coordinator: &Coordinator,
    cx: &GroupContext<'_>,
    here: impl Fn(&str) -> bool,
) -> Result<Vec<String>, ControlError> {
    let retention = coordinator.settings().offsets_retention;
    let cutoff = cx
        .now_ms
        .saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
    let candidates = cx.meta.groups_unchanged_since(cutoff, EXPIRY_BATCH).await?;
    let mut gone = Vec::new();
    for name in candidates {
        if !here(&name) {
            continue;
        }
        let _one = coordinator.lock(&name).await;
        let Some(stored) = cx.meta.load_group(&name).await? else {
            continue;
        };
        if stored.updated_ms >= cutoff {
            continue;
        }
        let mut g = match decode(&name, &stored.state) {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(group = %name, error = %e, "not expiring a group whose state cannot be read");
                continue;
            }
        };
        g.expire(cx.mono_ms);
        if !g.members.is_empty() {
            continue;
        }
        if cx.meta.delete_group(&name, stored.version).await? {
            cx.metrics.forget(&name);
            coordinator.live.forget(&name);
            tracing::info!(group = %name, retention_ms = retention.as_millis() as u64, "deleted a consumer group without members past its offsets retention");
            gone.push(name);
        }
    }
    Ok(gone)
}
