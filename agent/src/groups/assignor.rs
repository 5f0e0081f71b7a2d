//! Partition assignors of consumer groups: given the members' subscriptions
//! and the topics' partition counts, which member should own which
//! partition. `Range` and `RoundRobin` as Kafka defines them; the default,
//! `CooperativeSticky`, keeps every partition where it was unless the
//! balance needs it elsewhere, so a rebalance moves as few as possible.
//! Pure and deterministic (members and partitions in sorted order); knows
//! nothing of epochs or revocation (`state.rs`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// One partition of a topic, by topic name (the protocol crate's, shared
/// with the client).
pub use streamhouse_proto::TopicPartition;

/// Member id → the partitions it owns (or should own).
pub type Assignment = BTreeMap<String, BTreeSet<TopicPartition>>;

/// How a group's partitions are spread over its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Assignor {
    /// Per topic, contiguous ranges of partitions to the members subscribed
    /// to it, in member order (the first `partitions % members` get one
    /// more).
    Range,
    /// Every partition in (topic, partition) order to the next member, in
    /// turn, that is subscribed to its topic.
    RoundRobin,
    /// Balanced, keeping each partition with its previous owner where the
    /// balance allows (Kafka's cooperative-sticky): the default.
    #[default]
    CooperativeSticky,
}

impl Assignor {
    /// The assignor named `name` (`range`, `roundrobin`,
    /// `cooperative-sticky`; an empty name is the default).
    pub fn parse(name: &str) -> Option<Assignor> {
        match name {
            "" | "cooperative-sticky" => Some(Assignor::CooperativeSticky),
            "range" => Some(Assignor::Range),
            "roundrobin" | "round-robin" => Some(Assignor::RoundRobin),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// The target assignment: every partition of a subscribed topic in
    /// `topics` (name → partition count) to exactly one member subscribed
    /// to it; every member of `members` (id → subscribed topic names) is in
    /// the answer, possibly with none. `previous` is what the sticky
    /// assignor keeps from.
    pub fn assign(
        self,
        members: &BTreeMap<String, BTreeSet<String>>,
        topics: &BTreeMap<String, u32>,
        previous: &Assignment,
    ) -> Assignment {
        let mut out: Assignment = members
            .keys()
            .map(|m| (m.clone(), BTreeSet::new()))
            .collect();
        match self {
            Assignor::Range => range(members, topics, &mut out),
            Assignor::RoundRobin => round_robin(members, topics, &mut out),
            Assignor::CooperativeSticky => sticky(members, topics, previous, &mut out),
        }
        out
    }
}

fn subscribers<'a>(members: &'a BTreeMap<String, BTreeSet<String>>, topic: &str) -> Vec<&'a str> {
    members
        .iter()
        .filter(|(_, t)| t.contains(topic))
        .map(|(m, _)| m.as_str())
        .collect()
}

fn range(
    members: &BTreeMap<String, BTreeSet<String>>,
    topics: &BTreeMap<String, u32>,
    out: &mut Assignment,
) {
    for (topic, &count) in topics {
        let subs = subscribers(members, topic);
        if subs.is_empty() {
            continue;
        }
        let n = subs.len() as u32;
        let (each, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, m) in subs.iter().enumerate() {
            let take = each + u32::from((i as u32) < extra);
            if let Some(set) = out.get_mut(*m) {
                set.extend((next..next + take).map(|p| TopicPartition::new(topic, p)));
            }
            next += take;
        }
    }
}

fn round_robin(
    members: &BTreeMap<String, BTreeSet<String>>,
    topics: &BTreeMap<String, u32>,
    out: &mut Assignment,
) {
    let order: Vec<&str> = members.keys().map(String::as_str).collect();
    if order.is_empty() {
        return;
    }
    let mut turn = 0;
    for (topic, &count) in topics {
        if subscribers(members, topic).is_empty() {
            continue;
        }
        for p in 0..count {
            // The next member in turn subscribed to the topic (one exists).
            for _ in 0..order.len() {
                let m = order[turn % order.len()];
                turn += 1;
                if members.get(m).is_some_and(|t| t.contains(topic)) {
                    if let Some(set) = out.get_mut(m) {
                        set.insert(TopicPartition::new(topic, p));
                    }
                    break;
                }
            }
        }
    }
}

fn sticky(
    members: &BTreeMap<String, BTreeSet<String>>,
    topics: &BTreeMap<String, u32>,
    previous: &Assignment,
    out: &mut Assignment,
) {
    let wanted = |tp: &TopicPartition| {
        topics.get(&tp.topic).is_some_and(|&n| tp.partition < n)
            && !subscribers(members, &tp.topic).is_empty()
    };
    let eligible =
        |m: &str, tp: &TopicPartition| members.get(m).is_some_and(|t| t.contains(&tp.topic));
    // Keep what each member still may own (once: a partition listed twice
    // stays with the first).
    let mut taken = BTreeSet::new();
    for (m, parts) in previous {
        let Some(set) = out.get_mut(m) else { continue };
        for tp in parts {
            if wanted(tp) && eligible(m, tp) && taken.insert(tp.clone()) {
                set.insert(tp.clone());
            }
        }
    }
    // Every other partition to the eligible member with the fewest.
    for (topic, &count) in topics {
        for p in 0..count {
            let tp = TopicPartition::new(topic, p);
            if taken.contains(&tp) || !wanted(&tp) {
                continue;
            }
            let least = out
                .iter()
                .filter(|(m, _)| eligible(m, &tp))
                .min_by_key(|(m, s)| (s.len(), (*m).clone()))
                .map(|(m, _)| m.clone());
            if let Some(m) = least {
                if let Some(set) = out.get_mut(&m) {
                    set.insert(tp.clone());
                }
                taken.insert(tp);
            }
        }
    }
    // Then move one partition at a time from the member with the most to
    // one with at least two fewer that may own it, until none can move.
    // Each move lowers the sum of squared counts, so this ends.
    loop {
        let mut by_count: Vec<(&String, usize)> = out.iter().map(|(m, s)| (m, s.len())).collect();
        by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut moved = None;
        'find: for (from, big) in &by_count {
            for (to, small) in by_count.iter().rev() {
                if small + 1 >= *big {
                    break;
                }
                let pick = out[*from].iter().rev().find(|tp| eligible(to, tp)).cloned();
                if let Some(tp) = pick {
                    moved = Some(((*from).clone(), (*to).clone(), tp));
                    break 'find;
                }
            }
        }
        let Some((from, to, tp)) = moved else { break };
        if let Some(s) = out.get_mut(&from) {
            s.remove(&tp);
        }
        if let Some(s) = out.get_mut(&to) {
            s.insert(tp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(spec: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        spec.iter()
            .map(|(m, t)| (m.to_string(), t.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    fn topics(spec: &[(&str, u32)]) -> BTreeMap<String, u32> {
        spec.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    /// Every partition of a subscribed topic once, to a subscriber.
    fn check_complete(
        a: &Assignment,
        m: &BTreeMap<String, BTreeSet<String>>,
        t: &BTreeMap<String, u32>,
    ) {
        let mut seen = BTreeSet::new();
        for (member, parts) in a {
            for tp in parts {
                assert!(
                    m[member].contains(&tp.topic),
                    "{member} not subscribed to {tp:?}"
                );
                assert!(seen.insert(tp.clone()), "{tp:?} assigned twice");
            }
        }
        for (topic, &n) in t {
            if m.values().any(|s| s.contains(topic)) {
                for p in 0..n {
                    assert!(
                        seen.contains(&TopicPartition::new(topic, p)),
                        "{topic}/{p} unassigned"
                    );
                }
            }
        }
    }

    fn spread(a: &Assignment) -> (usize, usize) {
        let counts: Vec<usize> = a.values().map(BTreeSet::len).collect();
        (
            counts.iter().copied().min().unwrap_or(0),
            counts.iter().copied().max().unwrap_or(0),
        )
    }

    #[test]
    fn range_gives_contiguous_ranges_per_topic() {
        let m = members(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let t = topics(&[("t", 7)]);
        let a = Assignor::Range.assign(&m, &t, &Assignment::new());
        check_complete(&a, &m, &t);
        let parts = |m: &str| a[m].iter().map(|tp| tp.partition).collect::<Vec<_>>();
        assert_eq!(parts("a"), vec![0, 1, 2]);
        assert_eq!(parts("b"), vec![3, 4]);
        assert_eq!(parts("c"), vec![5, 6]);
    }

    #[test]
    fn round_robin_skips_members_not_subscribed() {
        let m = members(&[("a", &["t", "u"]), ("b", &["t"])]);
        let t = topics(&[("t", 4), ("u", 2), ("v", 3)]);
        let a = Assignor::RoundRobin.assign(&m, &t, &Assignment::new());
        check_complete(&a, &m, &t);
        assert_eq!(a["a"].len(), 4);
        assert_eq!(a["b"].len(), 2);
        assert!(a.values().flatten().all(|tp| tp.topic != "v"));
    }

    #[test]
    fn sticky_balances_and_moves_only_what_the_balance_needs() {
        let t = topics(&[("t", 12)]);
        let three = members(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let first = Assignor::CooperativeSticky.assign(&three, &t, &Assignment::new());
        check_complete(&first, &three, &t);
        assert_eq!(spread(&first), (4, 4));
        // A fourth member takes 3: one from each, the rest stay.
        let four = members(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"]), ("d", &["t"])]);
        let second = Assignor::CooperativeSticky.assign(&four, &t, &first);
        check_complete(&second, &four, &t);
        assert_eq!(spread(&second), (3, 3));
        for m in ["a", "b", "c"] {
            assert!(
                second[m].is_subset(&first[m]),
                "{m} got a partition it did not have"
            );
        }
        // A member leaves: only its partitions move.
        let gone = members(&[("a", &["t"]), ("c", &["t"]), ("d", &["t"])]);
        let third = Assignor::CooperativeSticky.assign(&gone, &t, &second);
        check_complete(&third, &gone, &t);
        assert_eq!(spread(&third), (4, 4));
        for m in ["a", "c", "d"] {
            assert!(second[m].is_subset(&third[m]), "{m} lost a partition");
        }
    }

    #[test]
    fn sticky_drops_what_no_longer_exists_or_is_not_subscribed() {
        let t = topics(&[("t", 2), ("u", 2)]);
        let m = members(&[("a", &["t"]), ("b", &["t", "u"])]);
        let mut previous = Assignment::new();
        previous.insert(
            "a".into(),
            [
                TopicPartition::new("u", 0),
                TopicPartition::new("t", 5),
                TopicPartition::new("t", 0),
            ]
            .into_iter()
            .collect(),
        );
        previous.insert(
            "gone".into(),
            [TopicPartition::new("t", 1)].into_iter().collect(),
        );
        let a = Assignor::CooperativeSticky.assign(&m, &t, &previous);
        check_complete(&a, &m, &t);
        assert!(a["a"].contains(&TopicPartition::new("t", 0)));
        assert!(!a.contains_key("gone"));
    }

    #[test]
    fn every_assignor_covers_uneven_subscriptions() {
        let m = members(&[("a", &["t"]), ("b", &["t", "u"]), ("c", &["u"]), ("d", &[])]);
        let t = topics(&[("t", 5), ("u", 3)]);
        for assignor in [
            Assignor::Range,
            Assignor::RoundRobin,
            Assignor::CooperativeSticky,
        ] {
            let a = assignor.assign(&m, &t, &Assignment::new());
            check_complete(&a, &m, &t);
            assert!(a["d"].is_empty(), "{assignor:?}");
            assert_eq!(a.len(), 4);
        }
        assert_eq!(Assignor::parse(""), Some(Assignor::CooperativeSticky));
        assert_eq!(Assignor::parse("range"), Some(Assignor::Range));
        assert_eq!(Assignor::parse("sticky-ish"), None);
    }
}
