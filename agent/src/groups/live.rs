//! The live state of the groups this agent coordinates, held in memory:
//! each group's decoded state with the stored version it matches, whether
//! it holds a change not saved yet, and when it was last saved. A
//! heartbeat that changes nothing but its member's last-seen time writes
//! nothing (and reads the version at most every [`VERIFY_EVERY_MS`]); changes of membership,
//! assignment or generation are saved in batches every [`SAVE_EVERY_MS`]
//! (by the coordinator's flush) before they are answered, and the heartbeat times at
//! least every quarter of the shortest session in the group, so another
//! agent's view (describe, a takeover) is never more than that behind.
//! Owns only the map; the coordinator decides what to save.

use std::collections::HashMap;

use parking_lot::Mutex;

use super::state::{Group, Member};
use crate::messages::ControlError;
use crate::metastore::MetaStore;

/// A stored group state read back.
pub fn decode(group: &str, state: &str) -> Result<Group, ControlError> {
    serde_json::from_str(state).map_err(|e| {
        ControlError::Corrupt(format!("stored state of group {group} cannot be read: {e}"))
    })
}

/// A group state as stored.
pub fn encode(group: &Group) -> Result<String, ControlError> {
    serde_json::to_string(group)
        .map_err(|e| ControlError::Internal(format!("cannot serialize a group: {e}")))
}

/// Changes are saved at most this often per group (ms): a heartbeat that
/// changes its group is answered once the change is saved, together with
/// the changes of the group's other requests of the same 200 ms, so a
/// group of thousands of members joining at once writes its row some 5
/// times a second, not once per member.
pub const SAVE_EVERY_MS: i64 = 200;

/// How long a held group is trusted without reading its stored version
/// (ms): the requests of a busy group read the version some 10 times a
/// second, not once each. Another agent's save within that window is
/// noticed by the next save or commit (both fenced by the version) or
/// the next check; meanwhile a heartbeat that changes nothing may be
/// answered from the older state (the assignment the member already has).
pub const VERIFY_EVERY_MS: i64 = 100;

/// Groups held at most; past it the least recently used are dropped (and
/// loaded again from the store when next asked for).
pub const MAX_LIVE_GROUPS: usize = 100_000;

/// One group as the coordinator holds it.
#[derive(Debug, Clone)]
pub struct Live {
    pub group: Group,
    /// The stored row's version this state was loaded at or saved as.
    pub version: i64,
    /// A change (beyond heartbeat times) not saved yet.
    pub dirty: bool,
    /// When it was last saved or loaded (ms since the Unix epoch).
    pub saved_ms: i64,
    /// Last use, for dropping the least recently used past the bound.
    used: u64,
    /// Which load of the group this is (a new one after every load from
    /// the store), so a request waiting for its change to be saved knows
    /// when the state holding it was dropped instead.
    pub incarnation: u64,
    /// Changes applied to this incarnation so far.
    pub changes: u64,
    /// When the stored version was last seen to match (ms).
    pub verified_ms: i64,
}

impl Live {
    /// A state just loaded or saved at `version`.
    pub fn new(group: Group, version: i64, now_ms: i64) -> Live {
        Live {
            group,
            version,
            dirty: false,
            saved_ms: now_ms,
            used: 0,
            incarnation: 0,
            changes: 0,
            verified_ms: now_ms,
        }
    }

    /// Whether the state is due to be saved: a change held for
    /// [`SAVE_EVERY_MS`], or, without one, the heartbeat times after a
    /// quarter of the shortest session in the group (never without
    /// members).
    pub fn save_due(&self, now_ms: i64) -> bool {
        let since = now_ms.saturating_sub(self.saved_ms);
        if self.dirty {
            return since >= SAVE_EVERY_MS;
        }
        let shortest = self
            .group
            .members
            .values()
            .map(|m| m.session_timeout_ms)
            .min();
        shortest.is_some_and(|s| since >= s / 4)
    }
}

/// What of a group a heartbeat may change that must be saved: the
/// generation, the member count and the beating member without its
/// last-seen time.
#[derive(Debug, PartialEq, Eq)]
pub struct Fingerprint {
    epoch: u64,
    members: usize,
    member: Option<Member>,
}

impl Fingerprint {
    pub fn of(group: &Group, member_id: &str) -> Fingerprint {
        Fingerprint {
            epoch: group.epoch,
            members: group.members.len(),
            member: group.members.get(member_id).map(|m| Member {
                last_seen_ms: 0,
                ..m.clone()
            }),
        }
    }
}

/// The groups held in memory, by id.
#[derive(Default)]
pub struct LiveGroups {
    map: Mutex<HashMap<String, Live>>,
    clock: Mutex<u64>,
    /// Per group: (incarnation, changes saved of it).
    saved: Mutex<HashMap<String, (u64, u64)>>,
    /// Woken after every save (and every drop of a group).
    saves: tokio::sync::Notify,
}

impl LiveGroups {
    /// The group's state as stored now, taken out of the map for one
    /// request (put it back with [`put`](Self::put)): the held copy when
    /// the store's version still matches, else the stored row decoded.
    /// `None` when the group has no row. Cancelling it loses nothing but
    /// the held copy, which the next request loads again.
    pub async fn take(
        &self,
        meta: &MetaStore,
        group: &str,
        now_ms: i64,
    ) -> Result<Option<Live>, ControlError> {
        let held = self.map.lock().remove(group);
        if let Some(l) = &held {
            // Checked against the store a moment ago: still the stored one.
            if (0..VERIFY_EVERY_MS).contains(&now_ms.saturating_sub(l.verified_ms)) {
                return Ok(held);
            }
        }
        let Some(version) = meta.group_version(group).await? else {
            return Ok(None);
        };
        if let Some(mut l) = held.filter(|l| l.version == version) {
            l.verified_ms = now_ms;
            return Ok(Some(l));
        }
        let Some(stored) = meta.load_group(group).await? else {
            return Ok(None);
        };
        let mut g = decode(group, &stored.state)?;
        // Stored heartbeat times are another process's monotonic clock (or
        // up to a quarter session old), and a coordinator change took
        // time: every member gets a full session (and rebalance timeout)
        // from this load, as from a heartbeat.
        for m in g.members.values_mut() {
            m.last_seen_ms = now_ms;
            if let Some(since) = m.revoking_since_ms.as_mut() {
                *since = now_ms;
            }
        }
        let mut live = Live::new(g, stored.version, now_ms);
        live.incarnation = self.next_use();
        self.saved
            .lock()
            .insert(group.to_owned(), (live.incarnation, 0));
        self.saves.notify_waiters();
        Ok(Some(live))
    }

    /// Records that `live` (of `group`) is saved up to its latest change,
    /// and wakes the requests waiting for it.
    pub fn mark_saved(&self, group: &str, live: &Live) {
        self.saved
            .lock()
            .insert(group.to_owned(), (live.incarnation, live.changes));
        self.saves.notify_waiters();
    }

    /// Waits until change `change` of incarnation `incarnation` of `group`
    /// is saved (`Ok`), or the state holding it was dropped for another
    /// agent's or an older one (`Err`), at most `within`.
    ///
    /// # Cancellation
    /// Dropping the future stops the wait only; the change is saved or not
    /// as if it were not dropped.
    pub async fn saved(
        &self,
        group: &str,
        incarnation: u64,
        change: u64,
        within: std::time::Duration,
    ) -> Result<(), ControlError> {
        let lost = || {
            ControlError::Unavailable(format!(
                "the change to group {group} was not saved (its state changed elsewhere or \
                 the store did not answer); retry"
            ))
        };
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let woken = self.saves.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            match self.saved.lock().get(group).copied() {
                Some((i, n)) if i == incarnation && n >= change => return Ok(()),
                Some((i, _)) if i == incarnation => {}
                _ => return Err(lost()),
            }
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                return Err(lost());
            }
        }
    }

    /// A new incarnation number (for a group created here).
    pub fn fresh_incarnation(&self) -> u64 {
        self.next_use()
    }

    fn next_use(&self) -> u64 {
        let mut c = self.clock.lock();
        *c += 1;
        *c
    }

    /// A copy of the held state when it matches the stored version (for
    /// reads such as describe), else `None`.
    pub fn peek(&self, group: &str, version: i64) -> Option<Group> {
        self.map
            .lock()
            .get(group)
            .filter(|l| l.version == version)
            .map(|l| l.group.clone())
    }

    /// Holds `live` as `group`'s state, dropping the least recently used
    /// group past [`MAX_LIVE_GROUPS`].
    pub fn put(&self, group: &str, mut live: Live) {
        live.used = self.next_use();
        let mut map = self.map.lock();
        map.insert(group.to_owned(), live);
        if map.len() > MAX_LIVE_GROUPS {
            let oldest = map
                .iter()
                .filter(|(_, l)| !l.dirty)
                .min_by_key(|(_, l)| l.used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
    }

    /// Groups holding a change due to be saved at `now_ms`.
    pub fn due(&self, now_ms: i64) -> Vec<String> {
        self.map
            .lock()
            .iter()
            .filter(|(_, l)| l.dirty && l.save_due(now_ms))
            .map(|(g, _)| g.clone())
            .collect()
    }

    /// Drops a group (deleted, or coordinated elsewhere now).
    pub fn forget(&self, group: &str) {
        self.map.lock().remove(group);
        self.saved.lock().remove(group);
        self.saves.notify_waiters();
    }

    /// Keeps only the groups `keep` says this agent still coordinates.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.map.lock().retain(|g, _| keep(g));
        self.saved.lock().retain(|g, _| keep(g));
        self.saves.notify_waiters();
    }

    /// Groups held.
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::assignor::Assignor;

    fn with_members(n: usize, session_ms: i64) -> Group {
        let mut g = Group::new(Assignor::default());
        for i in 0..n {
            g.members.insert(
                format!("m{i}"),
                Member {
                    instance_id: None,
                    client_id: String::new(),
                    client_host: String::new(),
                    epoch: 1,
                    topics: Default::default(),
                    assigned: Default::default(),
                    revoking: Default::default(),
                    revoking_since_ms: None,
                    last_seen_ms: 1_000,
                    session_timeout_ms: session_ms,
                    rebalance_timeout_ms: session_ms,
                    away: false,
                    previous_epoch: None,
                    fenced_ids: Vec::new(),
                },
            );
        }
        g
    }

    /// The held copy serves while the stored version is unchanged; a save
    /// by anyone else (another agent coordinating meanwhile) makes the
    /// next request load the stored state; a deleted row is gone.
    #[tokio::test]
    async fn the_held_state_serves_only_while_the_store_keeps_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("m.db").display());
        let meta = MetaStore::open(&url).await.unwrap();
        let live = LiveGroups::default();
        let one = encode(&with_members(1, 40_000)).unwrap();
        let v1 = meta.save_group("g", &one, None, 1_000).await.unwrap();
        assert_eq!(v1, Some(1));

        let mut l = live.take(&meta, "g", 1_000).await.unwrap().unwrap();
        assert_eq!((l.version, l.group.members.len()), (1, 1));
        // A heartbeat held in memory only.
        l.group.members.get_mut("m0").unwrap().last_seen_ms = 5_000;
        live.put("g", l);
        let l = live.take(&meta, "g", 5_000).await.unwrap().unwrap();
        assert_eq!(l.group.members["m0"].last_seen_ms, 5_000, "the held copy");
        live.put("g", l);

        // Another agent saves two members over version 1.
        let two = encode(&with_members(2, 40_000)).unwrap();
        assert_eq!(
            meta.save_group("g", &two, Some(1), 6_000).await.unwrap(),
            Some(2)
        );
        let l = live.take(&meta, "g", 7_000).await.unwrap().unwrap();
        assert_eq!((l.version, l.group.members.len()), (2, 2), "reloaded");
        assert!(live.peek("g", 2).is_none(), "taken out while in use");
        live.put("g", l);
        assert!(live.peek("g", 2).is_some());
        assert!(live.peek("g", 1).is_none(), "a stale version is not served");

        assert!(meta.delete_group("g", 2).await.unwrap());
        assert!(live.take(&meta, "g", 8_000).await.unwrap().is_none());
        assert!(live.is_empty());
    }

    #[test]
    fn changes_are_saved_within_200_ms_and_heartbeat_times_every_quarter_session() {
        let mut l = Live::new(with_members(3, 40_000), 1, 1_000);
        l.group.members.get_mut("m1").unwrap().session_timeout_ms = 8_000;
        assert!(!l.save_due(2_999));
        assert!(l.save_due(3_000));
        l.dirty = true;
        assert!(!l.save_due(1_199));
        assert!(l.save_due(1_200));
        let empty = Live::new(Group::default(), 1, 0);
        assert!(
            !empty.save_due(i64::MAX / 2),
            "no members, nothing to keep fresh"
        );
    }

    #[test]
    fn a_fingerprint_ignores_only_the_last_seen_time() {
        let mut g = with_members(2, 40_000);
        let before = Fingerprint::of(&g, "m0");
        g.members.get_mut("m0").unwrap().last_seen_ms = 9_999;
        assert_eq!(before, Fingerprint::of(&g, "m0"));
        g.members.get_mut("m0").unwrap().client_id = "new".into();
        assert_ne!(before, Fingerprint::of(&g, "m0"));
        let mut g = with_members(2, 40_000);
        g.epoch += 1;
        assert_ne!(before, Fingerprint::of(&g, "m0"));
        g.members.remove("m1");
        assert_ne!(
            Fingerprint::of(&with_members(2, 40_000), "m0"),
            Fingerprint::of(&g, "m0")
        );
    }
}
