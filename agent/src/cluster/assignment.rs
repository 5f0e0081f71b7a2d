//! Which live agent should lead each partition: rendezvous (highest random
//! weight) hashing of (topic key, partition, agent id). Every agent computes
//! the same answer from the same list of live agents, and when an agent
//! joins or leaves only the partitions that must move do. Pure functions,
//! no I/O.

/// FNV-1a over `bytes`, then a SplitMix64 finaliser: stable across
/// builds and platforms (unlike the standard library's hasher).
fn weight(agent: &str, topic: &str, partition: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |b: &[u8]| {
        for x in b {
            h ^= u64::from(*x);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(agent.as_bytes());
    feed(&[0xff]);
    feed(topic.as_bytes());
    feed(&[0xfe]);
    feed(&partition.to_le_bytes());
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The agent (from `agents`) that should lead `topic/partition`; `None`
/// when no agent is live.
pub fn owner<'a>(agents: &'a [String], topic: &str, partition: u32) -> Option<&'a str> {
    agents
        .iter()
        .max_by_key(|a| (weight(a, topic, partition), a.as_str()))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agents(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("agent-{i}")).collect()
    }

    #[test]
    fn spreads_partitions_and_moves_only_the_joiners_share() {
        let three = agents(3);
        let mut counts = [0usize; 3];
        for p in 0..300 {
            let o = owner(&three, "t#1", p).unwrap();
            counts[three.iter().position(|a| a == o).unwrap()] += 1;
        }
        assert!(counts.iter().all(|c| *c > 70), "{counts:?}");
        let four = agents(4);
        let mut moved = 0;
        for p in 0..300 {
            let before = owner(&three, "t#1", p).unwrap();
            let after = owner(&four, "t#1", p).unwrap();
            if before != after {
                assert_eq!(after, "agent-3", "a partition moved between old agents");
                moved += 1;
            }
        }
        assert!((50..110).contains(&moved), "{moved} of 300 moved");
        // Losing an agent moves only its partitions.
        let two: Vec<String> = three.iter().filter(|a| *a != "agent-1").cloned().collect();
        for p in 0..300 {
            let before = owner(&three, "t#1", p).unwrap();
            if before != "agent-1" {
                assert_eq!(owner(&two, "t#1", p).unwrap(), before);
            }
        }
        assert_eq!(owner(&[], "t#1", 0), None);
    }

    const PINNED: u64 = 11_597_249_406_658_005_116;

    #[test]
    fn weights_are_stable() {
        // Agents on different builds must agree: pin one value.
        assert_eq!(weight("agent-1", "orders#3", 7), PINNED);
        assert_ne!(
            weight("agent-1", "orders#3", 7),
            weight("agent-2", "orders#3", 7)
        );
        assert_eq!(
            owner(&agents(5), "orders#3", 7),
            owner(&agents(5), "orders#3", 7)
        );
    }
}
