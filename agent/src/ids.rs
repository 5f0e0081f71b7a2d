//! Typed identities of what the agent stores: a topic incarnation
//! ([`TopicKey`]) and one partition of it ([`PartitionId`]). Their stored
//! form (`name#id`) is written and read here only. Imports nothing of the
//! crate.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// One incarnation of a topic: its name and the id it was created with (a
/// topic created again after a delete gets a new id, so its old data and
/// leases are never taken for the new one's). Stored as `name#id` in the
/// shard logs, the lease table and the chunk index; it dereferences to
/// that form, which is what those take. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicKey(Arc<str>);

impl TopicKey {
    /// The key of incarnation `incarnation` of topic `name`.
    pub fn new(name: &str, incarnation: u64) -> TopicKey {
        TopicKey(format!("{name}#{incarnation}").into())
    }

    /// A key in its stored form (`name#id`), as a log, a lease row or a
    /// message carries it.
    pub fn from_stored(key: &str) -> TopicKey {
        TopicKey(key.into())
    }

    /// The stored form, `name#id`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        name_of(&self.0)
    }

    /// The topic's incarnation id; `None` for a stored key without one.
    pub fn incarnation(&self) -> Option<u64> {
        incarnation_of(&self.0)
    }
}

/// The topic name of a key in its stored form `name#id` (the whole key when
/// it has no `#`; topic names never contain one).
pub fn name_of(key: &str) -> &str {
    key.rsplit_once('#').map_or(key, |(name, _)| name)
}

/// The incarnation id of a key in its stored form; `None` without one.
pub fn incarnation_of(key: &str) -> Option<u64> {
    key.rsplit_once('#').and_then(|(_, id)| id.parse().ok())
}

impl Deref for TopicKey {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// A key in its stored form (see [`TopicKey::from_stored`]).
impl From<&str> for TopicKey {
    fn from(key: &str) -> TopicKey {
        TopicKey::from_stored(key)
    }
}

impl Borrow<str> for TopicKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TopicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TopicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// One partition of one topic incarnation.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PartitionId {
    pub topic: TopicKey,
    pub partition: u32,
}

impl PartitionId {
    pub fn new(topic: TopicKey, partition: u32) -> PartitionId {
        PartitionId { topic, partition }
    }

    /// Partition `partition` of the topic whose stored key is `key`.
    pub fn of(key: &str, partition: u32) -> PartitionId {
        PartitionId::new(TopicKey::from_stored(key), partition)
    }
}

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn a_key_names_its_topic_and_incarnation_and_looks_up_by_its_stored_form() {
        let k = TopicKey::new("orders.eu", 42);
        assert_eq!(k.as_str(), "orders.eu#42");
        assert_eq!(k.name(), "orders.eu");
        assert_eq!(k.incarnation(), Some(42));
        assert_eq!(TopicKey::from_stored("orders.eu#42"), k);
        assert_ne!(TopicKey::new("orders.eu", 43), k);
        assert_eq!(name_of("legacy"), "legacy");
        assert_eq!(TopicKey::from_stored("legacy").incarnation(), None);
        let mut m = HashMap::new();
        m.insert(k.clone(), 1);
        assert_eq!(m.get("orders.eu#42"), Some(&1));
        let p = PartitionId::of("orders.eu#42", 3);
        assert_eq!(p, PartitionId::new(k, 3));
        assert_eq!(p.to_string(), "orders.eu#42/3");
    }
}
