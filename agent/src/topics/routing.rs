//! Which shard owns a partition: a stable function of (topic, partition) and
//! the shard count. Consecutive partitions of a topic go to consecutive shards,
//! starting at a shard picked by a hash of the topic name, so every topic is
//! spread evenly. Pure function; no state.

/// Shard owning `topic`/`partition` among `shards` shards.
pub fn shard_for(topic: &str, partition: u32, shards: usize) -> usize {
    let start = crc32c::crc32c(topic.as_bytes()) as u64;
    ((start + u64::from(partition)) % shards.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_balanced() {
        assert_eq!(shard_for("orders", 3, 4), shard_for("orders", 3, 4));
        let mut counts = [0; 3];
        for p in 0..30 {
            counts[shard_for("orders", p, 3)] += 1;
        }
        assert_eq!(counts, [10, 10, 10]);
        assert_eq!(shard_for("x", 7, 1), 0);
    }
}
