//! The group rules end to end on the pure state: joins, cooperative
//! hand-over, session expiry, static membership and commit fencing.

use std::collections::{BTreeMap, BTreeSet};

use super::assignor::{Assignor, TopicPartition};
use super::state::{Beat, Group, GroupError, Joined};

const G: &str = "g";
const SESSION: i64 = 10_000;

fn topics(n: u32) -> BTreeMap<String, u32> {
    [("t".to_string(), n)].into_iter().collect()
}

/// A member as its client would drive it: what it owns, its epoch.
#[derive(Default, Clone)]
struct Client {
    id: String,
    epoch: i64,
    owned: BTreeSet<TopicPartition>,
    instance: Option<String>,
}

fn beat(c: &Client, epoch: i64, owned_changed: bool) -> Beat {
    Beat {
        member_id: c.id.clone(),
        member_epoch: epoch,
        instance_id: c.instance.clone(),
        client_id: "test".into(),
        client_host: "127.0.0.1".into(),
        topics: (epoch == 0).then(|| ["t".to_string()].into_iter().collect()),
        owned: owned_changed.then(|| c.owned.clone()),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: SESSION,
    }
}

/// Joins a new member named `id`.
fn join(g: &mut Group, id: &str, instance: Option<&str>, now: i64) -> Client {
    let mut c = Client {
        instance: instance.map(str::to_owned),
        ..Client::default()
    };
    let j = g
        .heartbeat(G, beat(&c, 0, false), id, &topics(12), 100, now)
        .expect("join")
        .expect("joined");
    apply(&mut c, j);
    c
}

/// What a well-behaved client does with an answer: drop revoked
/// partitions (it would commit them first), take new ones.
fn apply(c: &mut Client, j: Joined) {
    c.id = j.member_id;
    c.epoch = j.epoch as i64;
    c.owned = j.assignment;
}

/// One heartbeat of `c`, reporting what it owns.
fn tick(g: &mut Group, c: &mut Client, now: i64) {
    let j = g
        .heartbeat(G, beat(c, c.epoch, true), "unused", &topics(12), 100, now)
        .expect("heartbeat")
        .expect("member");
    apply(c, j);
}

/// No partition owned (or being given up) by two members.
fn exclusive(g: &Group) {
    let mut seen = BTreeSet::new();
    for m in g.members.values() {
        for tp in m.assigned.iter().chain(&m.revoking) {
            assert!(seen.insert(tp.clone()), "{tp:?} held twice: {g:?}");
        }
    }
}

fn settle(g: &mut Group, clients: &mut [Client], mut now: i64) -> i64 {
    for _ in 0..4 {
        for c in clients.iter_mut() {
            tick(g, c, now);
            exclusive(g);
            now += 10;
        }
    }
    now
}

#[test]
fn members_share_the_partitions_and_a_joiner_moves_only_its_share() {
    let mut g = Group::new(Assignor::CooperativeSticky);
    let mut cs = vec![
        join(&mut g, "a", None, 0),
        join(&mut g, "b", None, 0),
        join(&mut g, "c", None, 0),
    ];
    let now = settle(&mut g, &mut cs, 10);
    assert!(cs.iter().all(|c| c.owned.len() == 4), "{:?}", g.target);
    let before: Vec<BTreeSet<TopicPartition>> = cs.iter().map(|c| c.owned.clone()).collect();
    let gen = g.epoch;
    cs.push(join(&mut g, "d", None, now));
    assert!(g.epoch > gen, "a join is a new generation");
    // Until the others give up their share, the joiner gets nothing.
    assert!(cs[3].owned.is_empty());
    settle(&mut g, &mut cs, now + 10);
    assert!(cs.iter().all(|c| c.owned.len() == 3));
    for (i, c) in cs.iter().take(3).enumerate() {
        assert!(c.owned.is_subset(&before[i]), "a kept partition moved");
    }
}

#[test]
fn a_silent_member_is_removed_and_its_partitions_move() {
    let mut g = Group::new(Assignor::CooperativeSticky);
    let mut cs = vec![join(&mut g, "a", None, 0), join(&mut g, "b", None, 0)];
    let now = settle(&mut g, &mut cs, 10);
    let mut a = cs.remove(0);
    // b heartbeats on; a falls silent past its session.
    let mut only = vec![cs.remove(0)];
    settle(&mut g, &mut only, now + SESSION / 2);
    assert_eq!(only[0].owned.len(), 6, "a is still in");
    let later = now + SESSION + 100;
    settle(&mut g, &mut only, later);
    assert_eq!(only[0].owned.len(), 12);
    // a's heartbeat and commit are refused: it is out.
    let e = g
        .heartbeat(
            G,
            beat(&a, a.epoch, true),
            "x",
            &topics(12),
            100,
            later + 100,
        )
        .expect_err("fenced");
    assert!(matches!(e, GroupError::UnknownMember { .. }), "{e:?}");
    let tp = TopicPartition::new("t", 0);
    let e = g.check_owner(G, &a.id, a.epoch, [&tp]).expect_err("fenced");
    assert!(matches!(e, GroupError::UnknownMember { .. }), "{e:?}");
    // It rejoins as a new member and gets a share again.
    a = join(&mut g, "a2", None, later + 200);
    let mut both = vec![a, only.remove(0)];
    settle(&mut g, &mut both, later + 300);
    assert_eq!(both[0].owned.len(), 6);
}

#[test]
fn a_static_member_that_returns_in_time_gets_its_partitions_without_a_rebalance() {
    let mut g = Group::new(Assignor::CooperativeSticky);
    let mut cs = vec![
        join(&mut g, "a", Some("host-a"), 0),
        join(&mut g, "b", Some("host-b"), 0),
    ];
    let now = settle(&mut g, &mut cs, 10);
    let had = cs[0].owned.clone();
    let gen = g.epoch;
    // host-a restarts (no leave) and joins again within its session.
    let back = join(&mut g, "a-new", Some("host-a"), now + SESSION / 2);
    assert_eq!(back.owned, had);
    assert_eq!(g.epoch, gen, "no new generation");
    // The old process is fenced.
    let tp = had.iter().next().cloned().expect("a partition");
    let e = g
        .check_owner(G, &cs[0].id, cs[0].epoch, [&tp])
        .expect_err("fenced");
    assert!(matches!(e, GroupError::FencedInstance { .. }), "{e:?}");
    assert!(g.check_owner(G, &back.id, back.epoch, [&tp]).is_ok());
}

#[test]
fn a_replaced_static_process_is_fenced_for_good_and_never_takes_turns() {
    let mut g = Group::new(Assignor::CooperativeSticky);
    let mut old = join(&mut g, "old", Some("host-a"), 0);
    let now = settle(&mut g, std::slice::from_mut(&mut old), 10);
    let new = join(&mut g, "new", Some("host-a"), now);
    // The old process's heartbeat, and its attempt to join again with its
    // id, are refused for good: no ping-pong between the two.
    let e = g
        .heartbeat(
            G,
            beat(&old, old.epoch, true),
            "x",
            &topics(12),
            100,
            now + 1,
        )
        .expect_err("fenced");
    assert!(matches!(e, GroupError::FencedInstance { .. }), "{e:?}");
    assert!(e.to_string().contains("host-a"), "{e}");
    let e = g
        .heartbeat(G, beat(&old, 0, false), "x", &topics(12), 100, now + 2)
        .expect_err("fenced join");
    assert!(matches!(e, GroupError::FencedInstance { .. }), "{e:?}");
    assert_eq!(g.members.keys().collect::<Vec<_>>(), vec![&new.id]);
    // A third process with the instance id is a newcomer again and wins.
    let third = join(&mut g, "third", Some("host-a"), now + 3);
    assert_eq!(g.members.keys().collect::<Vec<_>>(), vec![&third.id]);
    let e = g
        .heartbeat(
            G,
            beat(&new, new.epoch, true),
            "x",
            &topics(12),
            100,
            now + 4,
        )
        .expect_err("the second is fenced too");
    assert!(matches!(e, GroupError::FencedInstance { .. }), "{e:?}");
}

#[test]
fn the_previous_generation_is_accepted_until_the_member_shows_it_knows_the_new_one() {
    let mut g = Group::new(Assignor::CooperativeSticky);
    let mut a = join(&mut g, "a", None, 0);
    let now = settle(&mut g, std::slice::from_mut(&mut a), 10);
    let before = a.epoch;
    let _b = join(&mut g, "b", None, now);
    // a's heartbeat moves it to the new generation; the answer is lost.
    let lost = g
        .heartbeat(G, beat(&a, before, true), "x", &topics(12), 100, now + 1)
        .expect("heartbeat")
        .expect("member");
    assert!(lost.epoch as i64 > before);
    // It sends the generation it knows again: the same answer, not a fence.
    let again = g
        .heartbeat(G, beat(&a, before, true), "x", &topics(12), 100, now + 2)
        .expect("the previous generation, once more")
        .expect("member");
    assert_eq!(again, lost);
    // A commit at the previous generation of a partition it still owns.
    let tp = again
        .assignment
        .iter()
        .next()
        .cloned()
        .expect("a partition");
    assert!(g.check_owner(G, &a.id, before, [&tp]).is_ok());
    // Once it heartbeats at the new generation, the old one is stale.
    apply(&mut a, again);
    tick(&mut g, &mut a, now + 3);
    let e = g
        .heartbeat(G, beat(&a, before, true), "x", &topics(12), 100, now + 4)
        .expect_err("stale now");
    assert!(matches!(e, GroupError::StaleEpoch { .. }), "{e:?}");
}

#[test]
fn a_join_sent_again_finds_the_same_member() {
    let mut g = Group::new(Assignor::CooperativeSticky);
    let c = Client {
        id: "chosen-by-the-member".into(),
        ..Client::default()
    };
    let first = g
        .heartbeat(G, beat(&c, 0, false), "made-here", &topics(12), 100, 0)
        .expect("join")
        .expect("joined");
    assert_eq!(first.member_id, "chosen-by-the-member");
    let epoch = g.epoch;
    // The answer was lost; the same join again.
    let second = g
        .heartbeat(G, beat(&c, 0, false), "made-here-2", &topics(12), 100, 5)
        .expect("join again")
        .expect("joined");
    assert_eq!(second.member_id, first.member_id);
    assert_eq!(g.members.len(), 1, "one member, not two");
    assert_eq!(g.epoch, epoch, "no new generation");
}

#[test]
fn commits_are_fenced_by_generation_and_ownership() {
    let mut g = Group::new(Assignor::Range);
    let mut cs = vec![join(&mut g, "a", None, 0)];
    settle(&mut g, &mut cs, 10);
    let a = cs[0].clone();
    let tp = TopicPartition::new("t", 3);
    assert!(g.check_owner(G, &a.id, a.epoch, [&tp]).is_ok());
    let e = g
        .check_owner(G, &a.id, a.epoch - 1, [&tp])
        .expect_err("stale");
    assert!(matches!(e, GroupError::StaleEpoch { .. }), "{e:?}");
    assert!(e.to_string().contains("rejoin"), "{e}");
    let other = TopicPartition::new("u", 0);
    let e = g
        .check_owner(G, &a.id, a.epoch, [&other])
        .expect_err("not owned");
    assert!(matches!(e, GroupError::NotOwner { .. }), "{e:?}");
    // Leaving frees everything.
    let left = g
        .heartbeat(G, beat(&a, -1, false), "x", &topics(12), 100, 1000)
        .expect("leave");
    assert!(left.is_none());
    assert!(g.members.is_empty());
}

#[test]
fn the_member_limit_is_enforced() {
    let mut g = Group::new(Assignor::RoundRobin);
    for i in 0..3 {
        g.heartbeat(
            G,
            beat(&Client::default(), 0, false),
            &format!("m{i}"),
            &topics(3),
            3,
            0,
        )
        .expect("join");
    }
    let e = g
        .heartbeat(
            G,
            beat(&Client::default(), 0, false),
            "m3",
            &topics(3),
            3,
            0,
        )
        .expect_err("full");
    assert!(matches!(e, GroupError::Full { .. }), "{e:?}");
}
